// Soak (issue 19): two instances on one Redis (one with an L1 tier, one without) under steady
// reads, writes and invalidations by key and pattern, with short TTLs and stale-while-
// revalidate so entries expire, refresh and are stored all the time. No request fails, no
// read holds data a write had replaced or another item's data, and memory is flat after
// warm-up. SOAK_SECONDS (default 8 in npm test; `npm run soak` runs 90).
import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify, { type FastifyInstance } from 'fastify'
import { RedisCache } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { sleep } from './helpers/fault-kit'
import { Load, VersionedData, fleetMember } from './helpers/load'
import { startRedis } from './helpers/servers'

const SECONDS = Number(process.env.SOAK_SECONDS ?? 8)
const ITEMS = 500
t.setTimeout((SECONDS + 60) * 1000)

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const MB = 1024 * 1024

function memory (): { heap: number, rss: number } {
  gc()
  gc()
  const { heapUsed, rss } = process.memoryUsage()
  return { heap: heapUsed, rss }
}

t.test(`soak: ${SECONDS} s of reads, writes and invalidations on two instances sharing Redis`, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const data = new VersionedData(ITEMS)
  const keyPrefix = freshPrefix('soak')
  const apps: FastifyInstance[] = []
  const bases: string[] = []
  for (const l1 of [false, true]) {
    const app = Fastify()
    t.teardown(() => app.close())
    const cache = new RedisCache({ url: redis.url, keyPrefix, ...(l1 ? { l1: { maxSize: 4 * MB } } : {}) })
    await fleetMember(app, cache, data, { ttl: 2, staleWhileRevalidate: 1 })
    bases.push(await app.listen({ host: '127.0.0.1', port: 0 }))
    apps.push(app)
  }
  const load = new Load({ bases, items: ITEMS, readers: 40, writeEveryMs: 10, keepSamples: false })
  let invalidations = 0
  const state = { running: true }
  // Invalidations by key and by pattern, from either instance, besides the writes' own.
  const invalidator = (async () => {
    while (state.running) {
      await sleep(50)
      const app = apps[invalidations % 2]
      const item = Math.floor(Math.random() * ITEMS)
      const target = invalidations % 5 === 0 ? { pattern: `GET:/item/${item % 10}*` } : { key: `GET:/item/${item}` }
      const report = await app.emberCache.invalidate(target)
      if (!report.ok) throw new Error('an invalidation failed: ' + JSON.stringify(report))
      invalidations++
    }
  })()
  // RSS and external (Buffer) memory every few seconds, to see that they level off.
  const series: number[][] = []
  const sampler = setInterval(() => {
    const { rss, external } = process.memoryUsage()
    series.push([Math.round(load.now() / 1000), Math.round(rss / MB), Math.round(external / MB)])
  }, Math.max(1_000, SECONDS * 100))
  const warmUp = Math.max(2, SECONDS / 4) * 1000
  await sleep(warmUp)
  const afterWarmUp = memory()
  await sleep(SECONDS * 1000 - warmUp)
  const atEnd = memory()
  clearInterval(sampler)
  state.running = false
  await invalidator
  await load.stop()

  const { totals } = load
  const figures = {
    seconds: SECONDS,
    reads: totals.reads,
    hitRatio: Number((totals.hits / totals.reads).toFixed(3)),
    writes: load.writes.length,
    invalidations,
    non2xx: totals.non2xx + load.writes.filter((w) => w.status !== 200).length,
    stale: totals.stale,
    wrongItem: totals.wrongItem,
    heapGrowthMB: Number(((atEnd.heap - afterWarmUp.heap) / MB).toFixed(1)),
    rssMB: [Number((afterWarmUp.rss / MB).toFixed(0)), Number((atEnd.rss / MB).toFixed(0))],
    /** [second, rss MiB, external MiB] */
    series
  }
  t.comment(JSON.stringify(figures))
  t.ok(totals.reads > SECONDS * 500, `${totals.reads} reads, ${load.writes.length} writes, ${invalidations} invalidations`)
  t.ok(totals.hits > totals.reads / 4, `hits throughout (ratio ${figures.hitRatio})`)
  t.equal(figures.non2xx, 0, 'no request failed')
  t.equal(totals.stale, 0, 'no read held data a write had replaced')
  t.equal(totals.wrongItem, 0, "no read held another item's data")
  // Flat after warm-up: the L1 bound is 4 MiB; 16 MiB leaves room for GC timing, not for a leak
  // (a leak of even 100 bytes a request is over 30 MiB in the 90 s soak).
  t.ok(figures.heapGrowthMB < 16, `heap after warm-up grew ${figures.heapGrowthMB} MiB`)
  // RSS swings by tens of MiB with each major GC here; only a long run can tell flat from rising:
  // the mean of its last third against the mean of its middle third.
  if (SECONDS >= 60) {
    const mean = (rows: number[][]): number => rows.reduce((sum, row) => sum + row[1], 0) / rows.length
    const third = Math.floor(series.length / 3)
    const middle = mean(series.slice(third, 2 * third))
    const last = mean(series.slice(2 * third))
    t.ok(last <= middle * 1.25, `RSS flat after warm-up: mean ${middle.toFixed(0)} MiB, then ${last.toFixed(0)} MiB`)
  }
})
