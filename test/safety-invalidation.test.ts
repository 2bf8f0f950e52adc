// Issue 13, second half: invalidation that cannot be lost. A backend that fails an
// invalidation reports it, queues it, and serves no hit until it has run; several caches are
// invalidated independently with a report per cache; clear() stays under the cache's prefix;
// a cache used only for cache-aside opens by itself. Real servers, paused with SIGSTOP.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import memjs from 'memjs'
import emberCache, { MemcachedCache, MemoryCache, RedisCache, type EmberCache } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { sleep } from './helpers/fault-kit'
import { startMemcached, startRedis, type MemcachedServer, type RedisServer } from './helpers/servers'

const FAST = { commandTimeout: 100, connectTimeout: 500, circuitBreaker: { threshold: 1, cooldownMs: 200 } }

/** An app whose GET /item/:id answers { id, n } from `cache`, tagged 'items' and 'item:<id>'. */
async function itemApp (t: Test, cache: EmberCache | MemoryCache, extra?: MemoryCache, logs?: string[]): Promise<{ app: FastifyInstance, calls: () => number }> {
  const app = Fastify(logs === undefined ? {} : { logger: { level: 'info', stream: { write: (line: string) => { logs.push(line) } } } })
  t.teardown(() => app.close())
  await app.register(emberCache)
  let calls = 0
  app.get('/item/:id', { config: { cache: { cache, tags: (request) => ['items', 'item:' + request.params.id] } } }, async (request) => ({ id: (request.params as { id: string }).id, n: ++calls }))
  app.post('/item/:id', { config: { cache: { cache, invalidate: ['tags:item:{id}'] } } }, async () => ({ saved: true }))
  if (extra !== undefined) app.get('/local', { config: { cache: extra } }, async () => ({ n: ++calls }))
  await app.ready()
  return { app, calls: () => calls }
}

/**
 * Reads `url` until the cache answers again (not BYPASS), failing on any answer the
 * invalidation had removed (n === staleN). Returns the first answer that is not BYPASS.
 */
async function untilServing (t: Test, app: FastifyInstance, url: string, staleN: number): Promise<{ cache: string, n: number }> {
  const deadline = Date.now() + 8_000
  let bypasses = 0
  while (Date.now() < deadline) {
    const res = await app.inject(url)
    t.equal(res.statusCode, 200, 'never an error')
    if (res.json().n === staleN) {
      t.fail('served the entry the queued invalidation removes: ' + String(res.headers['x-cache']))
      return { cache: String(res.headers['x-cache']), n: staleN }
    }
    if (res.headers['x-cache'] !== 'BYPASS') {
      t.pass(`cache answering again after ${bypasses} bypassed requests: ${String(res.headers['x-cache'])}`)
      return { cache: String(res.headers['x-cache']), n: res.json().n }
    }
    bypasses++
    await sleep(50)
  }
  t.fail('the cache never answered again')
  return { cache: 'BYPASS', n: -1 }
}

function queueSuite (t: Test, label: string, pause: () => void, resume: () => void, make: () => EmberCache): void {
  t.test(`${label}: an invalidation the backend cannot take is reported, queued, and runs before the next hit`, async (t) => {
    const cache = make()
    const logs: string[] = []
    const { app } = await itemApp(t, cache, undefined, logs)
    t.equal((await app.inject('/item/1')).headers['x-cache'], 'MISS')
    t.equal((await app.inject('/item/1')).headers['x-cache'], 'HIT')
    pause()
    let resumed = false
    t.teardown(() => { if (!resumed) resume() })
    const err = await cache.invalidate({ tags: 'items' }).then(() => undefined, (error: unknown) => error)
    t.match(err, { code: 'FST_EMBER_CACHE_INVALIDATION_FAILED', message: new RegExp(cache.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + ' could not invalidate') }, 'the caller is told, with the cache\'s name')
    t.equal(cache.queuedInvalidations, 1, 'and it is queued')
    const report = await app.emberCache.invalidate({ key: 'GET:/item/1' })
    t.same({ ok: report.ok, queued: report.queued.map((item) => item.cache) }, { ok: false, queued: [cache.name] }, 'the decorator names the cache that could not do it')
    const write = await app.inject({ method: 'POST', url: '/item/1' })
    t.equal(write.statusCode, 200, 'a write route still answers')
    t.match(write.headers['cache-status'], /detail=invalidation-queued/, 'and says so in Cache-Status')
    t.ok(logs.some((line) => line.includes('invalidation failed') && line.includes(cache.name)), 'and in the log, naming the cache')
    resume()
    resumed = true
    const first = await untilServing(t, app, '/item/1', 1)
    t.equal(first.cache, 'MISS', 'the entry the invalidation named is gone once the cache serves again')
    t.equal(cache.queuedInvalidations, 0, 'the queue ran')
    t.equal((await app.inject('/item/1')).headers['x-cache'], 'HIT', 'caching resumed')
  })
}

t.test('queued invalidations', async (t) => {
  const redis: RedisServer = await startRedis()
  t.teardown(() => redis.stop())
  const memcached: MemcachedServer = await startMemcached()
  t.teardown(() => memcached.stop())
  if (redis.managed) {
    queueSuite(t, 'redis', () => redis.pause(), () => redis.resume(), () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('queue'), ...FAST }))
  }
  if (memcached.managed) {
    queueSuite(t, 'memcached', () => memcached.pause(), () => memcached.resume(), () => new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('queue'), ...FAST }))
  }

  t.test('one cache that is down or cannot do it does not stop the others; the report says which', { skip: !redis.managed && 'needs a managed server' }, async (t) => {
    const remote = new RedisCache({ url: redis.url, keyPrefix: freshPrefix('multi'), ...FAST })
    const local = new MemoryCache({ name: 'local-items' })
    const mc = new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('multi') })
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(emberCache, { caches: [mc] })
    let calls = 0
    app.get('/a', { config: { cache: remote } }, async () => ++calls)
    app.get('/local', { config: { cache: local } }, async () => ++calls)
    await app.ready()
    await app.inject('/local')
    t.equal((await app.inject('/local')).headers['x-cache'], 'HIT')
    redis.pause()
    t.teardown(() => redis.resume())
    const report = await app.emberCache.invalidate('GET:/local')
    t.equal(report.ok, false)
    t.same(report.done.sort(), ['local-items', mc.name].sort(), 'memory and memcached did it')
    t.same(report.queued.map((item) => item.cache), [remote.name], 'redis is named as queued')
    t.equal((await app.inject('/local')).headers['x-cache'], 'MISS', 'the memory entry is gone')
    const pattern = await app.emberCache.invalidate({ pattern: 'GET:/l*' })
    t.same(pattern.unsupported.map((item) => item.cache), [mc.name], 'a pattern on memcached is reported, not thrown')
    t.ok(pattern.done.includes('local-items'))
    redis.resume()
  })

  t.test('redis: clear() removes everything under the prefix (entries, tag sets, locks) and nothing else', async (t) => {
    const raw = new Redis(redis.url)
    t.teardown(() => raw.disconnect())
    const prefixA = freshPrefix('clearA')
    const prefixB = freshPrefix('clearB')
    const a = new RedisCache({ url: redis.url, keyPrefix: prefixA })
    const b = new RedisCache({ url: redis.url, keyPrefix: prefixB })
    const appA = await itemApp(t, a)
    const appB = await itemApp(t, b)
    await raw.set('foreign:' + prefixA, 'keep me')
    await raw.hset('foreign-hash:' + prefixA, 'f', 'keep me')
    for (const { app } of [appA, appB]) await app.inject('/item/1')
    await raw.set(prefixA + '\u0000\u0000fill:GET:/item/1\u0000x', 'a lock')
    t.ok((await raw.keys(prefixA + '*')).length >= 3, 'entry, tag sets and lock under A')
    await a.clear()
    t.same(await raw.keys(prefixA + '*'), [], 'nothing left under A')
    t.equal(await raw.get('foreign:' + prefixA), 'keep me', 'a key outside the prefix survives')
    t.equal(await raw.hget('foreign-hash:' + prefixA, 'f'), 'keep me')
    t.equal((await appA.app.inject('/item/1')).headers['x-cache'], 'MISS')
    t.equal((await appB.app.inject('/item/1')).headers['x-cache'], 'HIT', 'the other prefix is untouched')
    // Without a prefix, a cache still owns only its own names (they start with a NUL): clear()
    // and a pattern of '*' leave everything else alone (a pattern once deleted foreign data).
    const bare = new RedisCache({ url: redis.url, keyPrefix: '' })
    const bareApp = await itemApp(t, bare)
    await bareApp.app.inject('/item/1')
    await raw.set('session:42', 'keep me')
    await raw.set('GET:/item/1', 'a foreign key named like ours')
    for (const invalidate of [() => bare.invalidate({ pattern: '*' }), () => bare.clear()]) {
      await bareApp.app.inject('/item/1')
      t.equal((await bareApp.app.inject('/item/1')).headers['x-cache'], 'HIT')
      await invalidate()
      t.equal((await bareApp.app.inject('/item/1')).headers['x-cache'], 'MISS', 'its own entry is gone')
      t.equal(await raw.get('session:42'), 'keep me', 'foreign data survives')
      t.equal(await raw.get('GET:/item/1'), 'a foreign key named like ours')
    }
    await raw.del('session:42', 'GET:/item/1')
  })

  t.test('memcached: clear() ends every entry of the cache, no flush_all', async (t) => {
    const raw = memjs.Client.create(memcached.servers, { retries: 1, logger: { log: () => {} } })
    t.teardown(() => raw.close())
    const a = new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('clearA') })
    const b = new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('clearB') })
    const appA = await itemApp(t, a)
    const appB = await itemApp(t, b)
    await raw.set('foreign-key', 'keep me', { expires: 0 })
    for (const { app } of [appA, appB]) await app.inject('/item/1')
    await a.set('aside', { v: 1 })
    await a.clear()
    t.equal((await appA.app.inject('/item/1')).headers['x-cache'], 'MISS')
    t.equal(await a.get('aside'), undefined, 'cache-aside values too')
    t.equal((await appB.app.inject('/item/1')).headers['x-cache'], 'HIT', 'another prefix on the same server is untouched')
    t.equal(String((await raw.get('foreign-key')).value), 'keep me', 'and so is other data')
  })

  t.test('memory: clear() empties the cache', async (t) => {
    const cache = new MemoryCache()
    const { app } = await itemApp(t, cache)
    await app.inject('/item/1')
    await cache.clear()
    t.equal(cache.stats().entries, 0)
    t.equal((await app.inject('/item/1')).headers['x-cache'], 'MISS')
    const report = await app.emberCache.clear()
    t.same(report.done, [cache.name])
  })

  for (const [label, make] of [
    ['redis', () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('aside') })],
    ['memcached', () => new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('aside') })]
  ] as const) {
    t.test(`${label}: a cache used only for cache-aside connects on first use and closes when asked`, async (t) => {
      const cache = make()
      await cache.set('user:1', { name: 'Ada' }, { ttl: 30, tags: ['users'] })
      t.same(await cache.get('user:1'), { name: 'Ada' }, 'set then get, without any connect() call')
      t.equal(await cache.has('user:1'), true)
      t.equal(await cache.wrap('user:2', async () => 'two'), 'two')
      await cache.invalidate({ tags: 'users' })
      t.equal(await cache.get('user:1'), undefined)
      await cache.set('user:3', 3)
      await cache.delete('user:3')
      t.equal(await cache.get('user:3'), undefined, 'delete works (no CIRCUIT_OPEN)')
      await cache.close()
      if (label === 'redis') {
        await t.resolves((async () => {
          const deadline = Date.now() + 2_000
          while ((cache as RedisCache).client.status !== 'end' && Date.now() < deadline) await sleep(20)
        })())
        t.equal((cache as RedisCache).client.status, 'end', 'close() ended the connection it opened')
      }
    })
  }
})
