// fastify.emberCache.stats() after scripted traffic, on an in-process cache, Redis and
// Memcached: every request counted once by how it was answered, work (stores, refusals,
// refreshes, invalidations) counted apart, backend failures counted with the backend really
// killed; and the logs of an incident name the cache that failed, once.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { MemcachedCache, MemoryCache, RedisCache, type EmberCache, type RouteStats } from '../lib/index'
import { logCapture, sleep, waitFor } from './helpers/fault-kit'
import { useClock } from './helpers/clock'
import { startMemcached, startRedis, type ServerHandle } from './helpers/servers'

const QUICK = { commandTimeout: 100, connectTimeout: 500, circuitBreaker: { threshold: 3, cooldownMs: 60_000 } } as const

interface Scripted { app: FastifyInstance, runs: Record<string, number>, failing: { on: boolean } }

/** Routes for every outcome: plain, stale-while-revalidate, stale-if-error, slow, refused. */
async function scriptedApp (t: Test, cache: EmberCache, options: { stats?: boolean } = {}): Promise<Scripted> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache, options)
  const runs: Record<string, number> = {}
  const ran = (name: string): number => (runs[name] = (runs[name] ?? 0) + 1)
  const failing = { on: false }
  app.get('/a', { config: { cache: { cache, ttl: 60 } } }, async () => ({ a: ran('a') }))
  app.get('/swr', { config: { cache: { cache, ttl: 1, staleWhileRevalidate: 600 } } }, async () => ({ swr: ran('swr') }))
  app.get('/sie', { config: { cache: { cache, ttl: 1, staleIfError: 600 } } }, async (request, reply) => {
    ran('sie')
    if (failing.on) return reply.code(503).send({ error: 'down' })
    return { sie: runs.sie, q: request.query }
  })
  app.get('/slow', { config: { cache: { cache, ttl: 60 } } }, async () => {
    await sleep(100)
    return { slow: ran('slow') }
  })
  app.get('/refused', { config: { cache: { cache, ttl: 60 } } }, async (request, reply) => {
    reply.header('set-cookie', 'session=1')
    return { refused: ran('refused') }
  })
  await app.ready()
  return { app, runs, failing }
}

function routeStats (app: FastifyInstance, route: string): RouteStats {
  const found = app.emberCache.stats().routes.find((stats) => stats.route === route)
  if (found === undefined) throw new Error('no stats for ' + route)
  return found
}

async function get (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await app.inject({ url, headers })
  return String(res.headers['x-cache'])
}

/** The same script on every backend; the counters must come out exactly. */
async function runScript (t: Test, cache: EmberCache): Promise<Scripted> {
  const scripted = await scriptedApp(t, cache)
  const { app, runs, failing } = scripted
  const clock = useClock(t)

  t.same([await get(app, '/a'), await get(app, '/a'), await get(app, '/a')], ['MISS', 'HIT', 'HIT'])
  t.equal(await get(app, '/a', { authorization: 'Bearer x' }), 'BYPASS')
  t.equal(await get(app, '/a', { 'cache-control': 'no-store' }), 'BYPASS')
  t.match(routeStats(app, 'GET /a'), {
    cache: cache.name, hits: 2, hitsL1: 0, misses: 1, bypassAuthorization: 1, bypassRequest: 1, stores: 1, notStored: 0, collapsed: 0
  }, 'GET /a: 1 miss, 2 hits, a bypass for credentials and one for the request directive, 1 store')

  t.equal(await get(app, '/swr'), 'MISS')
  t.equal(await get(app, '/sie?k=1'), 'MISS')
  t.equal(await get(app, '/sie?k=2'), 'MISS')
  clock.advance(5)
  t.equal(await get(app, '/swr'), 'STALE', 'stale-while-revalidate')
  await waitFor('the background refresh to store', () => routeStats(app, 'GET /swr').stores === 2)
  t.equal(runs.swr, 2, 'the refresh ran the handler')
  t.match(routeStats(app, 'GET /swr'), { misses: 1, staleWhileRevalidate: 1, refreshes: 1, stores: 2, hits: 0 })
  t.equal(await get(app, '/swr'), 'HIT', 'the refreshed entry')

  failing.on = true
  t.equal(await get(app, '/sie?k=1'), 'STALE', 'stale-if-error answers the 503')
  t.equal(await get(app, '/sie?k=2', { 'cache-control': 'max-stale=3600' }), 'STALE', 'max-stale')
  t.match(routeStats(app, 'GET /sie'), { misses: 2, staleIfError: 1, staleMaxStale: 1, stores: 2 }, 'the failed request counts as a stale answer, not a miss')

  const slow = await Promise.all(Array.from({ length: 5 }, () => get(app, '/slow')))
  t.equal(runs.slow, 1, 'five concurrent requests ran the handler once')
  t.same(slow.sort(), ['HIT', 'HIT', 'HIT', 'HIT', 'MISS'])
  t.match(routeStats(app, 'GET /slow'), { misses: 1, collapsed: 4, hits: 0, stores: 1 })

  await get(app, '/refused')
  await get(app, '/refused')
  t.match(routeStats(app, 'GET /refused'), { misses: 2, stores: 0, refusals: { 'set-cookie': 2 } }, 'refusals by reason')

  await app.emberCache.invalidate({ key: '/a' })
  const cacheStats = app.emberCache.stats().caches.find((stats) => stats.name === cache.name)
  t.match(cacheStats, { kind: cache.kind, invalidations: 1, invalidationsFailed: 0, backendErrors: 0, backendTimeouts: 0 }, 'the cache counted the invalidation')
  return scripted
}

t.test('memory: counters after scripted traffic; entries and bytes held', async (t) => {
  const cache = new MemoryCache({ name: 'scripted' })
  const { app } = await runScript(t, cache)
  const stats = app.emberCache.stats().caches.find((c) => c.name === 'scripted')
  t.ok(stats?.entries !== undefined && stats.entries >= 5, `entries held: ${String(stats?.entries)}`)
  t.ok(stats?.bytes !== undefined && stats.bytes > 200, `bytes held: ${String(stats?.bytes)}`)
  t.equal(stats?.breaker, undefined, 'no breaker in process')
  t.same(JSON.parse(JSON.stringify(app.emberCache.stats())), app.emberCache.stats(), 'stats() is plain data (serializes as is)')
})

/** Kills the backend and checks the counters of the outage. */
async function killedBackend (t: Test, srv: ServerHandle, scripted: Scripted, cache: EmberCache): Promise<void> {
  const { app } = scripted
  if (!srv.managed) return
  await srv.kill()
  const answers = []
  for (let i = 0; i < 6; i++) answers.push(await get(app, '/a?down=' + i))
  t.same(answers, Array(6).fill('BYPASS'), 'served without cache while the backend is down')
  const route = routeStats(app, 'GET /a')
  t.equal(route.bypassBackendDown, 6, 'six bypasses for a backend down')
  const stats = app.emberCache.stats().caches.find((c) => c.name === cache.name)
  t.ok(stats !== undefined && stats.backendErrors + stats.backendTimeouts >= 3, `backend failures counted: ${stats?.backendErrors} errors, ${stats?.backendTimeouts} timeouts`)
  t.equal(stats?.breaker, 'open', 'and the circuit open')
  const report = await app.emberCache.invalidate({ key: '/a' })
  t.equal(report.ok, false)
  t.match(app.emberCache.stats().caches.find((c) => c.name === cache.name), { invalidations: 2, invalidationsFailed: 1, queuedInvalidations: 1 }, 'the failed invalidation counted and queued')
}

t.test('redis: counters after scripted traffic, then with the server killed', async (t) => {
  const srv = await startRedis()
  t.teardown(() => srv.stop())
  const cache = new RedisCache({ url: srv.url, keyPrefix: 'stats:', ...QUICK })
  const scripted = await runScript(t, cache)
  t.match(scripted.app.emberCache.stats().caches[0], { breaker: 'closed', queuedInvalidations: 0 })
  await killedBackend(t, srv, scripted, cache)
})

t.test('memcached: counters after scripted traffic, then with the server killed', async (t) => {
  const srv = await startMemcached()
  t.teardown(() => srv.stop())
  const cache = new MemcachedCache({ servers: srv.servers, keyPrefix: 'stats:', ...QUICK })
  const scripted = await runScript(t, cache)
  await killedBackend(t, srv, scripted, cache)
})

t.test('redis SIGSTOPped: commands that time out are counted as timeouts', async (t) => {
  const srv = await startRedis()
  t.teardown(async () => {
    srv.resume()
    await srv.stop()
  })
  if (!srv.managed) return t.plan(0, 'needs a harness-managed server')
  const cache = new RedisCache({ url: srv.url, keyPrefix: 'stats-paused:', ...QUICK })
  const { app } = await scriptedApp(t, cache)
  t.equal(await get(app, '/a'), 'MISS')
  srv.pause()
  await sleep(50)
  for (let i = 0; i < 4; i++) t.equal(await get(app, '/a?paused=' + i), 'BYPASS')
  const stats = app.emberCache.stats().caches[0]
  t.ok(stats.backendTimeouts >= 3, `timeouts counted: ${stats.backendTimeouts} (errors ${stats.backendErrors})`)
  t.equal(stats.breaker, 'open')
  t.equal(routeStats(app, 'GET /a').bypassBackendDown, 4)
})

t.test('a two-tier cache counts its L1 hits apart, and reports the tier and the bus', async (t) => {
  const srv = await startRedis()
  t.teardown(() => srv.stop())
  const cache = new RedisCache({ url: srv.url, keyPrefix: 'stats-l1:', l1: { max: 100 }, ...QUICK })
  const { app } = await scriptedApp(t, cache)
  t.same([await get(app, '/a'), await get(app, '/a'), await get(app, '/a')], ['MISS', 'HIT', 'HIT'])
  t.match(routeStats(app, 'GET /a'), { misses: 1, hits: 2, hitsL1: 2 }, 'both hits came from L1')
  t.match(app.emberCache.stats().caches[0], { l1: { entries: 1 }, bus: { healthy: true } })
})

t.test('stats: false counts nothing on routes; caches still report', async (t) => {
  const cache = new MemoryCache()
  const { app } = await scriptedApp(t, cache, { stats: false })
  await get(app, '/a')
  await get(app, '/a')
  t.same(app.emberCache.stats().routes, [])
  t.equal(app.emberCache.stats().caches[0].entries, 1)
})

t.test('two Redis caches, one killed: one warning, naming the cache that failed, with the reason in words', async (t) => {
  const [one, two] = await Promise.all([startRedis(), startRedis()])
  t.teardown(() => one.stop())
  t.teardown(() => two.stop())
  if (!two.managed) return t.plan(0, 'needs harness-managed servers')
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(emberCache)
  const users = new RedisCache({ url: one.url, keyPrefix: 'users:', ...QUICK })
  const orders = new RedisCache({ url: two.url, keyPrefix: 'orders:', ...QUICK })
  t.not(users.name, orders.name, `default names tell them apart: ${users.name} / ${orders.name}`)
  app.get('/users/:id', { config: { cache: { cache: users, ttl: 60 } } }, async () => ({ user: 1 }))
  app.get('/orders/:id', { config: { cache: { cache: orders, ttl: 60 } } }, async () => ({ order: 1 }))
  await app.ready()
  await two.kill()
  for (let i = 0; i < 20; i++) {
    await get(app, '/users/' + i)
    await get(app, '/orders/' + i)
  }
  const warnings = logs.lines.filter((line) => line.level >= 40)
  t.equal(warnings.length, 1, `one warning for 20 failed requests: ${warnings.map((line) => line.msg).join(' | ')}`)
  t.match(warnings[0], { cache: orders.name, msg: /cache backend failing/, reason: /refused|closed|disconnected|in time/ })
  t.match(warnings[0].cache, new RegExp(':' + String(two.port) + '$'), 'the name carries the server that failed')
  t.equal(routeStats(app, 'GET /users/:id').bypassBackendDown, 0, 'the other cache kept caching')
  t.equal(routeStats(app, 'GET /orders/:id').bypassBackendDown, 20)
})

t.test('caches left unnamed are numbered; two given one name get a warning at start-up', async (t) => {
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(emberCache)
  app.get('/x', { config: { cache: { cache: new MemoryCache() } } }, async () => 'x')
  app.get('/y', { config: { cache: { cache: new MemoryCache() } } }, async () => 'y')
  app.get('/z', { config: { cache: { mode: 'memory' } } }, async () => 'z')
  app.get('/a', { config: { cache: { cache: new MemoryCache({ name: 'api' }) } } }, async () => 'a')
  app.get('/b', { config: { cache: { cache: new MemoryCache({ name: 'api' }) } } }, async () => 'b')
  await app.ready()
  t.same(app.emberCache.stats().caches.map((cache) => cache.name), ['memory', 'memory #2', 'memory #3', 'api', 'api'])
  t.same(app.emberCache.stats().routes.filter((route) => route.route.startsWith('GET ')).map((route) => route.cache), ['memory', 'memory #2', 'memory #3', 'api', 'api'])
  t.equal(logs.count(/two caches share this name/), 1, 'one warning, for the two caches named "api"')
})
