// Fleet caching (issue 15): an in-process tier (L1) in front of Redis / Memcached, kept coherent
// by a pub/sub bus; invalidation that wins races across instances; soft invalidation. Several
// app instances (separate Fastify apps, each with its own cache object) on one real Redis, on
// a real 3-master Cluster, and on Memcached.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { MemcachedCache, RedisCache, type EmberCache, type InvalidationTarget } from '../lib/index'
import { BYPASS } from '../lib/caches/cache'
import { freshPrefix, runBackendSuite } from '../lib/test-suite'
import { sleep, waitFor } from './helpers/fault-kit'
import { redisCommand, startMemcached, startRedis, startRedisCluster, type RedisServer } from './helpers/servers'

interface Instance { app: FastifyInstance, cache: EmberCache, calls: () => number, version: { value: number } }

/**
 * One app instance: GET /item (tag 'items') answers the shared data version; GET /slow takes
 * `slowMs`; both from `cache`. `version` is the fleet's "database", shared by the instances.
 */
async function instance (t: Test, cache: EmberCache, version: { value: number }, slowMs = 200): Promise<Instance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache)
  let calls = 0
  app.get('/item', { config: { cache: { cache, tags: ['items'], ttl: 60 } } }, async () => ({ version: version.value, run: ++calls }))
  app.get('/slow', { config: { cache: { cache, tags: ['items'], ttl: 60 } } }, async () => {
    const seen = version.value
    await sleep(slowMs)
    return { version: seen, run: ++calls }
  })
  await app.ready()
  return { app, cache, calls: () => calls, version }
}

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

function fleetSuite (t: Test, label: string, makeCache: (keyPrefix: string, l1: boolean) => EmberCache): void {
  t.test(`${label}: an L1 hit answers from the process; an L2 hit fills L1; Cache-Status names the tier`, async (t) => {
    const keyPrefix = freshPrefix('l1')
    const version = { value: 1 }
    const a = await instance(t, makeCache(keyPrefix, true), version)
    const b = await instance(t, makeCache(keyPrefix, true), version)
    const miss = await a.app.inject('/item')
    t.equal(miss.headers['x-cache'], 'MISS')
    const l1 = await a.app.inject('/item')
    t.equal(l1.headers['x-cache'], 'HIT')
    t.match(l1.headers['cache-status'], /hit; detail=l1/, 'the storing instance answers from L1')
    const l2 = await b.app.inject('/item')
    t.match(l2.headers['cache-status'], /^ember; hit; ttl=/, 'another instance reads L2 first')
    t.match((await b.app.inject('/item')).headers['cache-status'], /hit; detail=l1/, 'then holds it in L1')
    t.equal(a.calls() + b.calls(), 1)
  })

  t.test(`${label}: an invalidation on one instance reaches the others' L1 (three instances; delay over 1,000)`, async (t) => {
    const keyPrefix = freshPrefix('bus')
    const version = { value: 1 }
    const [a, b, c] = [await instance(t, makeCache(keyPrefix, true), version), await instance(t, makeCache(keyPrefix, true), version), await instance(t, makeCache(keyPrefix, true), version)]
    await a.app.inject('/item')
    for (const other of [b, c]) {
      await other.app.inject('/item')
      t.match((await other.app.inject('/item')).headers['cache-status'], /detail=l1/)
    }
    version.value = 2
    await a.cache.invalidate({ tags: 'items' })
    for (const other of [b, c]) {
      await waitFor('the bus message', () => !((other.cache.lookup('GET:/item', ':origin=http://localhost:80')) !== undefined && !(other.cache.lookup('GET:/item', ':origin=http://localhost:80') instanceof Promise)), 2_000, 1)
      const fresh = await other.app.inject('/item')
      t.equal(fresh.json().version, 2, 'the other instance reads the new data, not its L1 copy')
    }
    // The delay, measured from outside: A invalidates, B's L1 stops answering.
    const delays: number[] = []
    const bCache = b.cache as EmberCache
    for (let i = 0; i < 1_000; i++) {
      const key = 'k' + String(i % 20)
      await a.cache.set(key, i)
      await b.cache.get(key)
      if (bCache.lookup(key, '') instanceof Promise) continue
      const started = performance.now()
      await a.cache.invalidate(key)
      while (!(bCache.lookup(key, '') instanceof Promise) && performance.now() - started < 1_000) await new Promise((resolve) => setImmediate(resolve))
      delays.push(performance.now() - started)
    }
    delays.sort((x, y) => x - y)
    const p50 = percentile(delays, 0.5)
    const p99 = percentile(delays, 0.99)
    t.comment(`${label}: invalidation to another instance's L1 over ${delays.length}: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${delays[delays.length - 1].toFixed(2)} ms`)
    t.ok(delays.length >= 900, 'measured ' + String(delays.length))
    t.ok(p99 < 100, `p99 ${p99.toFixed(2)} ms`)
  })

  t.test(`${label}: invalidation wins the race across instances: a slow miss on A does not store after B invalidated`, async (t) => {
    const keyPrefix = freshPrefix('race')
    const version = { value: 1 }
    const a = await instance(t, makeCache(keyPrefix, false), version, 400)
    const b = await instance(t, makeCache(keyPrefix, false), version)
    const targets: InvalidationTarget[] = [{ key: 'GET:/slow' }, { tags: ['items'] }]
    for (const target of targets) {
      await a.cache.clear()
      version.value++
      const slow = a.app.inject('/slow')
      await sleep(100)
      version.value++
      await b.cache.invalidate(target)
      const answered = await slow
      t.equal(answered.json().version, version.value - 1, 'A answers its own (older) read')
      const first = await b.app.inject('/slow')
      t.equal(first.headers['x-cache'], 'MISS', `${JSON.stringify(target)}: the older response was not stored`)
      t.equal(first.json().version, version.value)
      t.equal((await a.app.inject('/slow')).json().version, version.value, 'and nobody reads it afterwards')
    }
  })

  t.test(`${label}: soft invalidation: 100 concurrent requests on a hot key get the stale entry, the handler runs once`, async (t) => {
    const keyPrefix = freshPrefix('soft')
    const version = { value: 1 }
    const a = await instance(t, makeCache(keyPrefix, true), version)
    const b = await instance(t, makeCache(keyPrefix, true), version)
    await a.app.inject('/item')
    await b.app.inject('/item')
    const before = a.calls() + b.calls()
    version.value = 2
    await a.cache.invalidate({ tags: 'items', soft: true })
    await sleep(50)
    const answers = await Promise.all(Array.from({ length: 100 }, async () => await b.app.inject('/item')))
    t.same([...new Set(answers.map((res) => res.headers['x-cache']))], ['STALE'], 'every one answered at once from the stale entry')
    t.same([...new Set(answers.map((res) => res.json().version))], [1])
    await waitFor('the background refresh', async () => (await b.app.inject('/item')).json().version === 2, 3_000)
    t.equal(a.calls() + b.calls() - before, 1, 'one background refresh ran the handler, once')
    t.equal((await a.app.inject('/item')).json().version, 2, 'and the other instance sees it too')
  })
}

t.test('one Redis', async (t) => {
  const redis: RedisServer = await startRedis()
  t.teardown(() => redis.stop())
  fleetSuite(t, 'redis', (keyPrefix, l1) => new RedisCache({ url: redis.url, keyPrefix, commandTimeout: 2_000, ...(l1 ? { l1: { ttl: 30 } } : {}) }))

  t.test('redis: a lost bus never leaves an entry older than l1.ttl after an invalidation; L1 is emptied when it is back', { skip: !redis.managed && 'needs a managed server' }, async (t) => {
    const keyPrefix = freshPrefix('lost')
    const version = { value: 1 }
    const make = (): RedisCache => new RedisCache({ url: redis.url, keyPrefix, commandTimeout: 500, l1: { ttl: 1 } })
    const a = await instance(t, make(), version)
    const b = await instance(t, make(), version)
    await a.app.inject('/item')
    await b.app.inject('/item')
    t.match((await b.app.inject('/item')).headers['cache-status'], /detail=l1/)
    // Kill every subscriber connection: B hears nothing of the next invalidation.
    await redisCommand(redis, ['CLIENT', 'KILL', 'TYPE', 'pubsub'])
    version.value = 2
    await a.cache.invalidate({ tags: 'items' })
    const invalidatedAt = Date.now()
    let lastOld = 0
    while (Date.now() - invalidatedAt < 2_500) {
      const res = await b.app.inject('/item')
      if (res.json().version === 1) lastOld = Date.now() - invalidatedAt
      await sleep(20)
    }
    t.ok(lastOld <= 1_100, `the old entry was served at most until l1.ttl (1 s) after the invalidation: last at ${lastOld} ms`)
    // Back: the resubscription empties L1.
    await waitFor('B to resubscribe', () => b.cache.stats().bus?.healthy === true, 5_000)
    await b.app.inject('/item')
    t.match((await b.app.inject('/item')).headers['cache-status'], /detail=l1/)

    // A restarted server: the bus reconnects and B's L1 is emptied again.
    await redis.kill()
    await redis.restart()
    await waitFor('B to resubscribe after a restart', () => b.cache.stats().bus?.healthy === true, 8_000)
    const lookup = b.cache.lookup('GET:/item', ':origin=http://localhost:80')
    // Not from L1: read from Redis, or (settling after the outage) not at all.
    t.ok(lookup instanceof Promise || lookup === BYPASS, 'nothing answered from L1 after the bus came back (messages may have been missed)')
    await lookup
  })

  runBackendSuite(t, 'redis-two-tier', async ({ keyPrefix }) => ({
    cache: new RedisCache({ url: redis.url, keyPrefix, commandTimeout: 2_000, l1: { ttl: 30 } }),
    cleanup: async () => {}
  }), { shared: true, patterns: true, fillLock: true, throughBus: true })
})

t.test('a 3-master Redis Cluster', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  fleetSuite(t, 'cluster', (keyPrefix, l1) => new RedisCache({ clusterNodes: cluster.nodes, keyPrefix, commandTimeout: 2_000, ...(l1 ? { l1: { ttl: 30 } } : {}) }))
})

t.test('Memcached, with a Redis bus', async (t) => {
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  fleetSuite(t, 'memcached', (keyPrefix, l1) => new MemcachedCache({ servers: memcached.servers, keyPrefix, commandTimeout: 2_000, ...(l1 ? { l1: { ttl: 30 }, bus: { url: redis.url } } : {}) }))

  t.test('memcached: without a bus, L1 is refused beyond a short ttl', async (t) => {
    t.throws(() => new MemcachedCache({ servers: memcached.servers, l1: { ttl: 30 } }), { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /l1\.ttl.*without a coherence bus/ })
    t.doesNotThrow(() => new MemcachedCache({ servers: memcached.servers, l1: true }))
  })

  runBackendSuite(t, 'memcached-two-tier', async ({ keyPrefix }) => ({
    cache: new MemcachedCache({ servers: memcached.servers, keyPrefix, commandTimeout: 2_000, l1: { ttl: 30 }, bus: { url: redis.url } }),
    cleanup: async () => {}
  }), { shared: true, patterns: false, fillLock: false, throughBus: true })
})
