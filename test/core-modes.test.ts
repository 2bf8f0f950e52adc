// The in-process modes and the three forms of config.cache: memory and static, as a mode, as
// a cache object, and as { cache, ...overrides }. TTL expiry, static forever, LRU bounds.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { MemoryCache, StaticCache, type EmberCachePluginOptions, type RouteCacheConfig } from '../lib/index'
import { countingApp, emberApp, type Scope } from './helpers/apps'

async function build (t: Scope, cache: RouteCacheConfig, options: EmberCachePluginOptions = {}): Promise<{ app: FastifyInstance, calls: () => number }> {
  return await countingApp(t, (request, _reply, run) => ({ n: run, q: request.query }), cache, options)
}

const FORMS: Array<[string, () => RouteCacheConfig]> = [
  ['MemoryCache object', () => new MemoryCache({ ttl: 30, max: 100 })],
  ['StaticCache object', () => new StaticCache()],
  ['{ mode: memory }', () => ({ mode: 'memory', ttl: 30 })],
  ['{ mode: static }', () => ({ mode: 'static' })],
  ['{ cache: MemoryCache, ttl, tags }', () => ({ cache: new MemoryCache(), ttl: 5, tags: ['me'] })],
  ['{ cache: StaticCache, tags }', () => ({ cache: new StaticCache(), tags: ['me'] })]
]

for (const [label, make] of FORMS) {
  t.test(`${label}: miss, then hit without running the handler`, async (t) => {
    const { app, calls } = await build(t, make())
    const miss = await app.inject('/r')
    t.equal(miss.statusCode, 200)
    t.equal(miss.headers['x-cache'], 'MISS')
    for (let i = 0; i < 3; i++) {
      const hit = await app.inject('/r')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(hit.body, miss.body)
    }
    t.equal(calls(), 1)
    t.equal(app.emberCache.caches.length, 1, 'the route cache is managed')
  })
}

t.test('routes of the same mode share one cache; the two modes are separate', async (t) => {
  const app = await emberApp(t)
  app.get('/m1', { config: { cache: { mode: 'memory' } } }, async () => 'm1')
  app.get('/m2', { config: { cache: { mode: 'memory', ttl: 5 } } }, async () => 'm2')
  app.get('/s1', { config: { cache: { mode: 'static' } } }, async () => 's1')
  app.get('/s2', { config: { cache: { mode: 'static' } } }, async () => 's2')
  await app.ready()
  const caches = app.emberCache.caches
  t.equal(caches.length, 2)
  t.same(caches.map((cache) => cache.kind).sort(), ['memory', 'static'])
  for (const url of ['/m1', '/m2', '/s1', '/s2']) await app.inject(url)
  const memory = caches.find((cache) => cache.kind === 'memory') as MemoryCache
  const stat = caches.find((cache) => cache.kind === 'static') as StaticCache
  t.equal(memory.stats().entries, 2)
  t.equal(stat.stats().entries, 2)
  await memory.invalidate({ pattern: '*' })
  t.equal((await app.inject('/m1')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/s1')).headers['x-cache'], 'HIT')
})

t.test('a cache object shared by routes holds all their entries', async (t) => {
  const cache = new MemoryCache()
  const app = await emberApp(t)
  app.get('/a', { config: { cache } }, async () => 'a')
  app.get('/b', { config: { cache: { cache, ttl: 5 } } }, async () => 'b')
  await app.inject('/a')
  await app.inject('/b')
  t.equal(cache.stats().entries, 2)
  t.equal(app.emberCache.caches.length, 1)
})

t.test('TTL: memory entries expire, static entries do not', async (t) => {
  const memory = await build(t, { mode: 'memory' }, { defaultTtl: 1 })
  const memoryObject = await build(t, new MemoryCache({ ttl: 1 }))
  const staticMode = await build(t, { mode: 'static' }, { defaultTtl: 1 })
  const staticObject = await build(t, new StaticCache())
  const all = [memory, memoryObject, staticMode, staticObject]
  for (const { app } of all) await app.inject('/r')
  for (const { app } of all) t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const expired = await memory.app.inject('/r')
  t.equal(expired.headers['x-cache'], 'MISS', 'memory mode expired after 1 s')
  t.equal(expired.json().n, 2)
  t.equal((await memoryObject.app.inject('/r')).headers['x-cache'], 'MISS', 'MemoryCache ttl expired')
  t.equal((await staticMode.app.inject('/r')).headers['x-cache'], 'HIT', 'static mode ignores the plugin ttl')
  t.equal((await staticObject.app.inject('/r')).headers['x-cache'], 'HIT', 'StaticCache never expires')
  t.equal(staticMode.calls(), 1)
  t.equal(staticObject.calls(), 1)
})

t.test('StaticCache is bounded by an LRU entry limit', async (t) => {
  const { app, calls } = await build(t, new StaticCache({ max: 2 }))
  await app.inject('/r?p=1')
  await app.inject('/r?p=2')
  await app.inject('/r?p=1') // p=1 becomes the most recently used
  await app.inject('/r?p=3') // evicts p=2
  t.equal(calls(), 3)
  t.equal((await app.inject('/r?p=1')).headers['x-cache'], 'HIT')
  t.equal((await app.inject('/r?p=3')).headers['x-cache'], 'HIT')
  t.equal((await app.inject('/r?p=2')).headers['x-cache'], 'MISS', 'the least recently used went')
})

t.test('plugin static options bound { mode: static } routes', async (t) => {
  const { app, calls } = await build(t, { mode: 'static' }, { static: { max: 1 } })
  await app.inject('/r?p=1')
  await app.inject('/r?p=2')
  t.equal((await app.inject('/r?p=1')).headers['x-cache'], 'MISS')
  t.equal(calls(), 3)
})

t.test('MemoryCache max bounds entries, variants included', async (t) => {
  const cache = new MemoryCache({ max: 2 })
  const { app } = await build(t, { cache, varyHeaders: ['x-v'] })
  for (const v of ['1', '2', '3']) await app.inject({ url: '/r', headers: { 'x-v': v } })
  t.equal(cache.stats().entries, 2)
  t.equal((await app.inject({ url: '/r', headers: { 'x-v': '1' } })).headers['x-cache'], 'MISS')
  t.equal((await app.inject({ url: '/r', headers: { 'x-v': '3' } })).headers['x-cache'], 'HIT')
})

t.test('an evicted entry leaves the tag index: its old tag no longer removes the next entry under its key', async (t) => {
  const cache = new MemoryCache({ max: 1 })
  const app = await emberApp(t)
  let calls = 0
  // The first store of /r is tagged "old", every later store "new".
  app.get('/:id', { config: { cache: { cache, tags: () => [calls === 1 ? 'old' : 'new'] } } }, async () => ({ n: ++calls }))
  await app.inject('/r') // /r stored with "old"
  await app.inject('/s') // evicts /r
  await app.inject('/r') // /r stored again with "new" (evicts /s)
  await cache.invalidate({ tags: ['old'] })
  const after = await app.inject('/r')
  t.equal(after.headers['x-cache'], 'HIT', 'invalidating "old" left the entry tagged "new"')
  t.equal(after.json().n, 3)
  t.equal(calls, 3)
})

t.test('MemoryCache maxSize bounds bytes', async (t) => {
  const cache = new MemoryCache({ maxSize: 3000 })
  const app = await emberApp(t)
  let calls = 0
  app.get('/big/:id', { config: { cache } }, async () => {
    calls++
    return 'x'.repeat(1000)
  })
  for (const id of [1, 2, 3, 4]) await app.inject('/big/' + id)
  t.ok((cache.stats().entries ?? 0) < 4, 'not every 1000-byte entry fits in 3000 bytes')
  t.equal((await app.inject('/big/4')).headers['x-cache'], 'HIT', 'the newest stays')
  t.equal((await app.inject('/big/1')).headers['x-cache'], 'MISS', 'the oldest went')
  const huge = await app.inject('/big/huge')
  t.equal(huge.body.length, 1000)
  t.equal(calls, 6)
})

t.test('an entry larger than maxSize is served but not stored', async (t) => {
  // Identity only: with codings, the second request would be answered by the first one's flight.
  const cache = new MemoryCache({ maxSize: 500, compression: false })
  const app = await emberApp(t)
  let n = 0
  app.get('/big', { config: { cache } }, async () => ({ n: ++n, pad: 'y'.repeat(2000) }))
  const first = await app.inject('/big')
  const second = await app.inject('/big')
  t.equal(first.json().pad.length, 2000)
  t.equal(second.json().pad.length, 2000)
  t.equal(second.headers['x-cache'], 'MISS')
  t.equal(cache.stats().entries, 0)
  t.equal(n, 2)
})

t.test('enabled: false leaves cache objects untouched and routes uncached', async (t) => {
  const cache = new MemoryCache()
  const { app, calls } = await build(t, cache, { enabled: false })
  await app.inject('/r')
  const second = await app.inject('/r')
  t.equal(calls(), 2)
  t.notOk('x-cache' in second.headers)
  t.equal(cache.stats().entries, 0)
})
