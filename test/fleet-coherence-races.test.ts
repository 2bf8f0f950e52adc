// Races between instances of a fleet: L1 tiers and the bus, a frozen or half-down Redis, and the
// invalidations made meanwhile. Each test pins a defect the soak and fault-under-load tests found,
// and failed on the code before its fix.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { RedisCache } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { delayProxy } from './helpers/delay-proxy'
import { sleep } from './helpers/fault-kit'
import { FAULT_OPTIONS, pause } from './helpers/fault-suite'
import { startRedis } from './helpers/servers'
import { emberApp } from './helpers/apps'

t.test('an instance without an L1 did not announce its invalidations: another instance\'s L1 kept serving the invalidated entry (found by test/soak.test.ts)', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const keyPrefix = freshPrefix('announce')
  let version = 1
  const member = async (cache: RedisCache): Promise<FastifyInstance> => {
    const app = await emberApp(t)
    app.get('/doc', { config: { cache: { cache, ttl: 60 } } }, async () => ({ version }))
    await app.ready()
    return app
  }
  const withL1 = await member(new RedisCache({ url: redis.url, keyPrefix, l1: true }))
  const withoutL1 = await member(new RedisCache({ url: redis.url, keyPrefix }))
  t.equal((await withL1.inject('/doc')).json().version, 1)
  t.match((await withL1.inject('/doc')).headers['cache-status'], /detail=l1/, 'held in L1')
  version = 2
  await withoutL1.emberCache.invalidate({ key: 'GET:/doc' })
  await sleep(50)
  t.equal((await withL1.inject('/doc')).json().version, 2, 'the L1 instance heard of the invalidation')
})

t.test('an L2 read that raced an invalidation filled L1 after the bus had dropped the key: the old entry was served until l1.ttl (found while fixing the soak\'s stale reads)', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  // B's commands go through a proxy that holds Redis' replies back; its bus listens directly.
  const proxy = await delayProxy(redis.port)
  t.teardown(() => proxy.close())
  const keyPrefix = freshPrefix('race')
  let version = 1
  const member = async (cache: RedisCache): Promise<FastifyInstance> => {
    const app = await emberApp(t)
    app.get('/doc', { config: { cache: { cache, ttl: 60 } } }, async () => ({ version }))
    await app.ready()
    return app
  }
  const a = await member(new RedisCache({ url: redis.url, keyPrefix }))
  const b = await member(new RedisCache({ url: proxy.url, keyPrefix, commandTimeout: 2_000, l1: true, bus: { url: redis.url } }))
  await a.inject('/doc')
  await sleep(20)
  proxy.toClientMs = 150
  // B reads (Redis answers at once with the old entry; the reply reaches B 150 ms later)...
  const racing = b.inject('/doc')
  await sleep(30)
  // ...while A invalidates: Redis drops the entry, and the bus tells B before its reply arrives.
  version = 2
  await a.emberCache.invalidate({ key: 'GET:/doc' })
  t.equal((await racing).json().version, 1, 'the racing read began before the invalidation: the old entry is a fair answer for it')
  proxy.toClientMs = 0
  const after = await b.inject('/doc')
  t.equal(after.json().version, 2, 'but it was not kept in L1: the next read gets the new data')
  t.notMatch(after.headers['cache-status'], /detail=l1/)
})

t.test('reads right after Redis came back served an entry another instance had invalidated while it was frozen (found by test/faults-under-load.test.ts)', async (t) => {
  const redis = await startRedis()
  t.teardown(async () => {
    try { redis.resume() } catch {}
    await redis.stop()
  })
  if (!redis.managed) { t.plan(0, 'needs a harness-managed Redis'); return }
  const keyPrefix = freshPrefix('settle')
  let version = 1
  const member = async (): Promise<FastifyInstance> => {
    const app = await emberApp(t)
    const cache = new RedisCache({ url: redis.url, keyPrefix, ...FAULT_OPTIONS })
    app.get('/doc', { config: { cache: { cache, ttl: 60 } } }, async () => ({ version }))
    app.put('/doc', { config: { cache: { cache } } }, async () => ({ version: ++version }))
    await app.ready()
    return app
  }
  const [a, b] = [await member(), await member()]
  await a.inject('/doc')
  await sleep(30)
  t.equal((await b.inject('/doc')).headers['x-cache'], 'HIT')
  await pause(redis)
  // B's breaker opens first, A's later: A cannot send its invalidation (its circuit is open),
  // queues it, and retries one cooldown after its last failure, after B is back reading.
  for (let i = 0; i < 3; i++) await b.inject('/doc')
  for (let i = 0; i < 3; i++) await a.inject('/doc')
  const write = await a.inject({ method: 'PUT', url: '/doc' })
  t.match(write.headers['cache-status'], /invalidation-queued/, 'the write is answered, its invalidation queued')
  redis.resume()
  const seen: number[] = []
  const until = Date.now() + 4 * FAULT_OPTIONS.circuitBreaker.cooldownMs
  while (Date.now() < until) {
    seen.push((await b.inject('/doc')).json().version)
    await sleep(5)
  }
  t.equal(seen.filter((v) => v < 2).length, 0, `B never served the replaced entry (${seen.length} reads: ${seen.join('')})`)
  t.equal((await b.inject('/doc')).headers['x-cache'], 'HIT', 'and caches again')
})

t.test('an invalidation made while the circuit was open was not sent: another instance, whose circuit never opened, kept reading the replaced entry (found by test/faults-under-load.test.ts on a Cluster with one master down)', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  // A reaches Redis through a proxy that can make it slow; B directly, never failing.
  const proxy = await delayProxy(redis.port)
  t.teardown(() => proxy.close())
  const keyPrefix = freshPrefix('forced')
  let version = 1
  const member = async (url: string): Promise<FastifyInstance> => {
    const app = await emberApp(t)
    const cache = new RedisCache({ url, keyPrefix, commandTimeout: 100, circuitBreaker: { threshold: 3, cooldownMs: 3_000 } })
    app.get('/doc', { config: { cache: { cache, ttl: 60 } } }, async () => ({ version }))
    app.put('/doc', { config: { cache: { cache } } }, async () => ({ version: ++version }))
    await app.ready()
    return app
  }
  const [a, b] = [await member(proxy.url), await member(redis.url)]
  await b.inject('/doc')
  t.equal((await b.inject('/doc')).headers['x-cache'], 'HIT')
  proxy.toServerMs = 300
  for (let i = 0; i < 3; i++) await a.inject('/doc')
  t.equal(a.emberCache.stats().caches[0].breaker, 'open', "A's circuit is open")
  proxy.toServerMs = 0
  await sleep(400) // what the proxy held back has gone through; A's circuit stays open (3 s)
  const write = await a.inject({ method: 'PUT', url: '/doc' })
  t.equal(write.statusCode, 200)
  t.notMatch(write.headers['cache-status'] ?? '', /invalidation-queued/, 'the invalidation went through, circuit open or not')
  t.equal((await b.inject('/doc')).json().version, 2, 'B reads the new data')
})
