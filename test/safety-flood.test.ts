// Cache-busting floods (issue 19): 100 000 distinct query strings (FLOOD_REQUESTS) against the
// byte bound of MemoryCache and of the two-tier L1 in front of Redis. Memory stays bounded (the
// heap is measured after a forced GC) and a popular key keeps hitting throughout.
import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { MemoryCache, RedisCache } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { startRedis } from './helpers/servers'

// Two floods of 100 000 requests take about a minute here: more than a file's default timeout
// when CI runs files side by side.
t.setTimeout(300_000)

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function heapAfterGc (): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

interface FloodFigures { sent: number, heapGrowth: number, popularHits: number, popularAsked: number, bytesHeld: number }

/**
 * `count` requests with distinct query strings (`pad` bytes each), `concurrency` at a time, with a
 * request for one popular URL after every 100; the heap is measured after a forced GC.
 */
async function flood (app: FastifyInstance, count: number, pad: number, concurrency: number): Promise<Omit<FloodFigures, 'bytesHeld'>> {
  const filler = 'f'.repeat(pad)
  await app.inject('/item?popular=1')
  const before = heapAfterGc()
  let popularHits = 0
  let popularAsked = 0
  let failures = 0
  for (let start = 0; start < count; start += concurrency) {
    const batch: Array<Promise<unknown>> = []
    for (let i = start; i < Math.min(count, start + concurrency); i++) {
      batch.push(app.inject(`/item?bust=${i}&pad=${filler}`).then((res) => { if (res.statusCode !== 200) failures++ }))
    }
    await Promise.all(batch)
    // A served request gives the event loop a turn (sockets are I/O); inject alone would not, and
    // work the plugin defers with setImmediate (compression) would pile up as no server lets it.
    await new Promise((resolve) => setImmediate(resolve))
    if (start % 100 < concurrency) {
      popularAsked++
      if ((await app.inject('/item?popular=1')).headers['x-cache'] === 'HIT') popularHits++
    }
  }
  if (failures > 0) throw new Error(`${failures} flood requests failed`)
  return { sent: count, heapGrowth: heapAfterGc() - before, popularHits, popularAsked }
}

const FLOOD = Number(process.env.FLOOD_REQUESTS ?? 100_000)
const MB = 1024 * 1024

t.test(`cache-busting flood: ${FLOOD} distinct query strings against MemoryCache({ maxSize: 4 MiB })`, async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache)
  const cache = new MemoryCache({ maxSize: 4 * MB, ttl: 600 })
  app.get('/item', { config: { cache } }, async (request) => ({ query: request.query }))
  await app.ready()
  // Long query strings: the key is most of what an entry holds, so the bound must count it.
  const figures = await flood(app, FLOOD, 1000, 20)
  const bytesHeld = cache.stats().bytes ?? 0
  t.comment(JSON.stringify({ ...figures, bytesHeld, entries: cache.stats().entries }))
  t.ok(bytesHeld <= 4 * MB, `the cache holds at most maxSize (${(bytesHeld / MB).toFixed(1)} MiB)`)
  // The keys and bodies are ASCII (one byte a character in V8); a held entry costs its counted
  // bytes plus per-object overhead; 4x maxSize + 16 MiB is generous and still catches unbounded growth
  // (100 000 requests of this size are over 200 MB).
  t.ok(figures.heapGrowth < 4 * 4 * MB + 16 * MB, `heap grew ${(figures.heapGrowth / MB).toFixed(1)} MiB`)
  t.equal(figures.popularHits, figures.popularAsked, `the popular key kept hitting (${figures.popularHits}/${figures.popularAsked})`)
})

t.test(`cache-busting flood: ${FLOOD} distinct query strings against RedisCache with l1: { maxSize: 2 MiB }`, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache)
  // Short query strings keep the server's own memory small (~60 MB); the L1 bound is what is tested.
  // A generous command timeout: the test is about memory bounds, and a busy machine must not turn hits into BYPASS.
  const cache = new RedisCache({ url: redis.url, keyPrefix: freshPrefix('flood'), ttl: 120, commandTimeout: 2_000, l1: { maxSize: 2 * MB } })
  app.get('/item', { config: { cache } }, async (request) => ({ query: request.query }))
  await app.ready()
  const figures = await flood(app, FLOOD, 100, 50)
  const l1 = cache.stats().l1
  t.comment(JSON.stringify({ ...figures, l1 }))
  t.ok(l1 !== undefined && l1.bytes <= 2 * MB, `L1 holds at most its maxSize (${((l1?.bytes ?? 0) / MB).toFixed(1)} MiB)`)
  t.ok(figures.heapGrowth < 4 * 2 * MB + 16 * MB, `heap grew ${(figures.heapGrowth / MB).toFixed(1)} MiB`)
  // The popular entry may leave L1 under the flood; it is then a Redis hit, still a hit.
  t.ok(figures.popularHits >= figures.popularAsked - 1, `the popular key kept hitting (${figures.popularHits}/${figures.popularAsked})`)
})
