// Issue 30: no expiry cliffs. A hot entry is refreshed before it expires (XFetch), once per
// stored entry across the fleet; ttlJitter spreads the expiries of entries stored together.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { MemoryCache, RedisCache, type EmberCache, type RouteCacheConfig } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { startRedis } from './helpers/servers'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** An app whose GET /r takes `costMs` and counts its runs in `runs` (shared by instances). */
async function slowApp (t: Test, cache: EmberCache, route: Partial<RouteCacheConfig>, runs: { n: number }, costMs = 40): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache)
  app.get('/r', { config: { cache: { cache, ...route } as RouteCacheConfig } }, async () => {
    runs.n++
    await sleep(costMs)
    return { run: runs.n }
  })
  await app.ready()
  return app
}

/** Hits `apps` in turn until the handler ran once more than `before`, or `limit` requests went by. */
async function hitUntilRefreshed (apps: FastifyInstance[], runs: { n: number }, before: number, limit: number): Promise<string[]> {
  const seen: string[] = []
  for (let i = 0; i < limit && runs.n === before; i++) {
    seen.push(String((await apps[i % apps.length].inject('/r')).headers['x-cache']))
    await sleep(2)
  }
  return seen
}

t.test('a hit near expiry refreshes the entry in the background: no request finds it expired', async (t) => {
  const runs = { n: 0 }
  const app = await slowApp(t, new MemoryCache({ ttl: 1 }), {}, runs)
  await app.inject('/r')
  t.equal(runs.n, 1)
  // Far from expiry: nothing is drawn, nothing refreshed.
  for (let i = 0; i < 50; i++) t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
  t.equal(runs.n, 1, 'no refresh while the entry has most of its life ahead')
  // The last ~100 ms of a 1 s entry whose miss costs 40 ms: each hit refreshes with p >= 1/e^2.5.
  await sleep(900 - 2 * 40)
  const seen = await hitUntilRefreshed([app], runs, 1, 200)
  t.ok(seen.every((status) => status === 'HIT'), 'answered from the entry meanwhile: ' + seen.join(' '))
  t.equal(runs.n, 2, 'refreshed once, before expiry')
  await sleep(150)
  const after = await app.inject('/r')
  t.same([after.headers['x-cache'], JSON.parse(after.body)], ['HIT', { run: 2 }], 'past the first entry\'s expiry: the refreshed one, a HIT')
  t.equal(app.emberCache.stats().routes[0].refreshes, 1)
})

t.test('earlyRefresh: false waits for expiry, as before', async (t) => {
  const runs = { n: 0 }
  const app = await slowApp(t, new MemoryCache({ ttl: 1 }), { earlyRefresh: false }, runs)
  await app.inject('/r')
  await sleep(900)
  for (let i = 0; i < 30; i++) {
    await app.inject('/r')
    await sleep(2)
  }
  t.equal(runs.n, 1, 'no early refresh')
  await sleep(200)
  t.equal((await app.inject('/r')).headers['x-cache'], 'MISS', 'the request that finds it expired pays')
})

t.test('two instances on one Redis: an entry about to expire is refreshed once across the fleet', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const keyPrefix = freshPrefix('xfetch')
  const runs = { n: 0 }
  const apps = [
    await slowApp(t, new RedisCache({ url: redis.url, keyPrefix, l1: { ttl: 1 } }), { ttl: 2 }, runs),
    await slowApp(t, new RedisCache({ url: redis.url, keyPrefix, l1: { ttl: 1 } }), { ttl: 2 }, runs)
  ]
  // Each instance measures what a miss costs by running one: two keys' worth of warm-up.
  await apps[0].inject('/r')
  await apps[1].inject({ url: '/r', headers: { 'cache-control': 'no-cache' } })
  t.equal(runs.n, 2)
  // The entry both share was stored by the second request: wait for its last ~100 ms.
  const stored = Date.now()
  t.equal((await apps[0].inject('/r')).headers['x-cache'], 'HIT')
  await sleep(2_000 - 100 - (Date.now() - stored))
  const seen = await hitUntilRefreshed(apps, runs, 2, 300)
  t.ok(seen.every((status) => status === 'HIT'), 'every request answered from the entry: ' + seen.join(' '))
  // Both instances keep hitting the old entry until the refreshed one arrives: still one refresh.
  for (let i = 0; i < 40; i++) {
    await apps[i % 2].inject('/r')
    await sleep(3)
  }
  t.equal(runs.n, 3, 'one refresh of that entry across both instances')
})

t.test('ttlJitter spreads the expiries of entries stored together, and never lengthens them', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache)
  app.get('/j/:id', { config: { cache: { mode: 'memory', ttl: 100, ttlJitter: 0.2 } } }, async () => 'x')
  app.get('/plain/:id', { config: { cache: { mode: 'memory', ttl: 100 } } }, async () => 'x')
  const ages = new Set<string>()
  for (let i = 0; i < 40; i++) {
    const response = await app.inject('/j/' + String(i))
    const maxAge = Number(/max-age=(\d+)/.exec(String(response.headers['cache-control']))?.[1])
    t.ok(maxAge >= 80 && maxAge <= 100, `max-age ${maxAge} within 80-100`)
    ages.add(String(maxAge))
  }
  t.ok(ages.size >= 5, `spread over ${ages.size} values`)
  t.equal((await app.inject('/plain/1')).headers['cache-control'], 'max-age=100', 'no jitter unless asked')
  for (const bad of [-0.1, 0.6, '0.1', Number.NaN]) {
    const other = Fastify()
    t.teardown(() => other.close())
    await other.register(emberCache)
    await t.rejects(async () => {
      other.get('/x', { config: { cache: { mode: 'memory', ttl: 10, ttlJitter: bad as number } } }, async () => 'x')
      await other.ready()
    }, { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /ttlJitter/ })
  }
})
