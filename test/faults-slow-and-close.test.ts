// A backend slower than the command timeout (a TCP proxy that holds Redis' bytes back), and
// app.close() while requests, background refreshes, fill locks and compressions are in flight
// (issue 19). Requests are answered within the timeouts plus the handler's time, the breaker
// opens and closes as documented; a close leaves no unhandled rejection, handle or lock.
import t from 'tap'
import { get as httpGet } from 'node:http'
import Fastify from 'fastify'
import emberCache, { RedisCache } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { liveHandles, retryUntil, sleep, timedGet, waitFor } from './helpers/fault-kit'
import { redisCommand, startRedis } from './helpers/servers'
import { entryName } from './helpers/redis-raw'
import { delayProxy } from './helpers/delay-proxy'

const COMMAND_TIMEOUT = 100
const HANDLER_MS = 20
const COOLDOWN = 500

t.test('a backend slower than commandTimeout: answered within the timeouts plus the handler; the breaker opens, then closes', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const proxy = await delayProxy(redis.port)
  t.teardown(() => proxy.close())
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache)
  const cache = new RedisCache({ url: proxy.url, keyPrefix: freshPrefix('slow'), commandTimeout: COMMAND_TIMEOUT, connectTimeout: 500, circuitBreaker: { threshold: 3, cooldownMs: COOLDOWN } })
  let runs = 0
  app.get('/item/:id', { config: { cache: { cache, ttl: 60 } } }, async (request) => {
    await sleep(HANDLER_MS)
    return { id: (request.params as { id: string }).id, run: ++runs }
  })
  await app.ready()
  t.equal((await timedGet(app, '/item/a')).xCache, 'MISS')
  t.equal((await timedGet(app, '/item/a')).xCache, 'HIT')

  proxy.toServerMs = 400
  const slow = []
  for (let i = 0; i < 20; i++) slow.push(await timedGet(app, `/item/${i % 4 === 0 ? 'a' : 'b' + String(i)}`))
  t.ok(slow.every((r) => r.status === 200), 'every request answered 200')
  const max = Math.max(...slow.map((r) => r.ms))
  // A miss may wait for its lookup and for its fill lock, each at most the command timeout.
  const bound = 2 * COMMAND_TIMEOUT + HANDLER_MS + 150
  t.ok(max < bound, `slowest ${max.toFixed(0)} ms, bound ${bound} ms (2 x commandTimeout ${COMMAND_TIMEOUT} + handler ${HANDLER_MS} + 150 slack)`)
  const paid = slow.filter((r) => r.ms >= COMMAND_TIMEOUT * 0.8).length
  t.ok(paid <= 4, `${paid} of 20 paid the timeout (threshold 3): the breaker opened`)
  t.ok(slow.slice(4).every((r) => r.xCache === 'BYPASS' && r.ms < COMMAND_TIMEOUT * 0.8), 'then BYPASS, without waiting for the backend')
  t.equal(app.emberCache.stats().caches[0].breaker, 'open', 'stats say the breaker is open')
  t.ok(app.emberCache.stats().caches[0].backendTimeouts >= 3, 'and count the timeouts')

  proxy.toServerMs = 0
  await sleep(COOLDOWN)
  let n = 0
  const attempts = await retryUntil('caching to resume', async () => {
    const url = `/item/back${++n}`
    return (await timedGet(app, url)).xCache === 'MISS' && (await timedGet(app, url)).xCache === 'HIT'
  }, 40, 100)
  t.ok(attempts <= 10, `caching resumed ${attempts} attempt(s) after the delay went`)
  t.equal(app.emberCache.stats().caches[0].breaker, 'closed', 'stats say the breaker closed')
})

t.test('app.close() with requests, background refreshes, fill locks and compressions in flight', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const rejections: unknown[] = []
  const onRejection = (reason: unknown): void => { rejections.push(reason) }
  process.on('unhandledRejection', onRejection)
  t.teardown(() => { process.off('unhandledRejection', onRejection) })
  const baseline = liveHandles()
  const keyPrefix = freshPrefix('closing')

  const app = Fastify()
  await app.register(emberCache)
  const cache = new RedisCache({ url: redis.url, keyPrefix, commandTimeout: 500 })
  const big = JSON.stringify({ rows: Array.from({ length: 400 }, (_, i) => ({ id: i, name: 'row ' + String(i) })) })
  let runs = 0
  app.get('/item/:id', { config: { cache: { cache, ttl: 1, staleWhileRevalidate: 30 } } }, async (request, reply) => {
    runs++
    await sleep(150)
    reply.type('application/json')
    return big.replace('"rows"', `"id":"${(request.params as { id: string }).id}","rows"`)
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  // Real requests only (background refreshes come through inject, not the server).
  let arrived = 0
  app.server.on('request', () => { arrived++ })
  // One connection per request (agent: false): a keep-alive client would hold app.close() for
  // the server's keepAliveTimeout (72 s), with or without this plugin.
  const get = (path: string): Promise<number> => new Promise((resolve) => {
    const req = httpGet(base + path, { agent: false, headers: { 'accept-encoding': 'gzip' } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', () => resolve(0))
  })
  // Entries that go stale, so the next requests start background refreshes.
  await Promise.all(['/item/s1', '/item/s2', '/item/s3'].map(get))
  await sleep(1_100)
  const inFlight = [
    ...['/item/s1', '/item/s2', '/item/s3'].map(get), // stale: answered at once, a refresh runs
    ...Array.from({ length: 8 }, (_, i) => get(`/item/m${i % 4}`)) // misses: fill locks, then compressions
  ]
  // In flight means arrived: on a busy machine 40 ms did not get every new connection to the
  // server before close(), which then refused it (0) or answered 503 before any hook of ours ran.
  await waitFor('the 11 requests to arrive', () => arrived >= 3 + 11, 5_000, 5)
  await sleep(10)
  const started = performance.now()
  await app.close()
  const closeMs = performance.now() - started
  const statuses = await Promise.all(inFlight)
  t.ok(closeMs < 3_000, `app.close() resolved in ${closeMs.toFixed(0)} ms`)
  t.same(statuses.filter((status) => status !== 200), [], `the ${statuses.length} requests in flight were answered`)
  t.ok(runs >= 3 + 4, `handlers ran (${runs})`)
  await sleep(300)
  t.same(rejections, [], 'no unhandled rejection')
  const settled = await waitFor('our sockets and timers to go', () => {
    const now = liveHandles()
    return now.sockets <= baseline.sockets && now.timers <= baseline.timers
  }, 2_000).catch(() => -1)
  t.ok(settled >= 0, `no socket or timer left behind (baseline ${JSON.stringify(baseline)}, now ${JSON.stringify(liveHandles())})`)
  const entries = (await redisCommand(redis, ['KEYS', entryName(keyPrefix, 'GET:/item/m*')])) as string[]
  // Fill locks are fields of the entries' hashes (issue 30).
  const fields = (await Promise.all(entries.map(async (entry) => await redisCommand(redis, ['HKEYS', entry]) as string[]))).flat()
  t.same(fields.filter((field) => field.startsWith('\u0000lock:')), [], 'no fill lock left in Redis (found here: close() did not wait for the release)')
  t.equal(entries.length, 4, 'the four misses were stored, compressed, before the cache closed')
})
