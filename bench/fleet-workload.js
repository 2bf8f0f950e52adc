'use strict'

// Issue 30's fleet workload: two instances of an app on one Redis, each with an L1 tier, a
// Zipf(1.1) key popularity over 10,000 keys, TTL 10 s, 5% writes (of keys picked uniformly)
// that invalidate their key's tag softly, for a bounded time. Reports the hit ratio, handler runs per key per TTL for the
// 100 hottest keys, whether any of their requests answered MISS after warm-up, and p50/p99
// overall and in the second after each TTL boundary.
//
//   npm run build && node bench/fleet-workload.js                 # 60 s, early refresh on
//   node bench/fleet-workload.js --duration 30 --early 0          # early refresh off
//   node bench/fleet-workload.js --writes 0                       # reads only: runs per key per TTL
// Needs redis-server on PATH (a server is started on a free 127.0.0.1 port). In-process load
// (inject), bounded by time and by MAX_REQUESTS.
const { spawn } = require('node:child_process')
const { createServer } = require('node:net')
const Fastify = require('fastify')
const { emberCache, RedisCache } = require(process.env.EMBER_DIST ?? '../dist/lib/index.js')

const argument = (name, fallback) => process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback
const DURATION_MS = argument('--duration', 60) * 1000
const EARLY = argument('--early', 1)
const KEYS = 10_000
const TTL = 10
const WRITE_SHARE = argument('--writes', 0.05)
const WORKERS = 32
const HANDLER_MS = 5
const WARMUP_MS = 2 * TTL * 1000
const MAX_REQUESTS = 5_000_000
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function freePort () {
  return new Promise((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => resolve(port)) })
  })
}

/** Zipf(s) over n ranks: a sampler returning 0..n-1, 0 the most popular. */
function zipf (n, s) {
  const cdf = new Float64Array(n)
  let sum = 0
  for (let k = 1; k <= n; k++) { sum += 1 / k ** s; cdf[k - 1] = sum }
  for (let k = 0; k < n; k++) cdf[k] /= sum
  return () => {
    const u = Math.random()
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cdf[mid] < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

function quantile (values, q) {
  if (values.length === 0) return NaN
  const sorted = Float64Array.from(values).sort()
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]
}

async function instance (redisUrl, keyPrefix, runs) {
  const app = Fastify()
  const cache = new RedisCache({ url: redisUrl, keyPrefix, l1: { ttl: 5 }, commandTimeout: 1_000 })
  await app.register(emberCache)
  app.get('/item/:id', { config: { cache: { cache, ttl: TTL, earlyRefresh: EARLY > 0 ? EARLY : false, tags: (request) => ['item:' + request.params.id] } } }, async (request) => {
    const id = Number(request.params.id)
    runs.push([id, performance.now()])
    await sleep(HANDLER_MS)
    return { id, at: Date.now() }
  })
  app.post('/item/:id', async (request) => {
    await app.emberCache.invalidate({ tags: 'item:' + request.params.id, soft: true })
    return { ok: true }
  })
  await app.ready()
  return app
}

async function main () {
  const port = await freePort()
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  await sleep(300)
  const runs = []
  const keyPrefix = 'fleet' + Date.now() + ':'
  const apps = [await instance(`redis://127.0.0.1:${port}`, keyPrefix, runs), await instance(`redis://127.0.0.1:${port}`, keyPrefix, runs)]
  const pick = zipf(KEYS, 1.1)
  const started = performance.now()
  const deadline = started + DURATION_MS
  const reads = [] // [at, ms, xCache, rank]
  const writes = [] // [at, rank]
  let sent = 0
  const worker = async (w) => {
    while (performance.now() < deadline && sent < MAX_REQUESTS) {
      sent++
      const app = apps[(w + sent) % 2]
      const at = performance.now()
      if (Math.random() < WRITE_SHARE) {
        // Writes change any item alike (a hot item is read more, not written more).
        const written = Math.floor(Math.random() * KEYS)
        writes.push([at, written])
        await app.inject({ method: 'POST', url: '/item/' + written })
        continue
      }
      const rank = pick()
      const response = await app.inject('/item/' + rank)
      reads.push([at, performance.now() - at, response.headers['x-cache'], rank])
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)))
  for (const app of apps) await app.close()
  redis.kill('SIGKILL')

  const warm = started + WARMUP_MS
  const after = reads.filter((read) => read[0] >= warm)
  const hits = after.filter((read) => read[2] === 'HIT' || read[2] === 'STALE').length
  const hot = new Set(Array.from({ length: 100 }, (_, i) => i))
  const hotMisses = after.filter((read) => hot.has(read[3]) && read[2] === 'MISS').length
  // Handler runs of hot keys after warm-up, per key per TTL (writes add the refreshes they ask for).
  const measuredSeconds = (deadline - warm) / 1000
  const hotRuns = runs.filter(([id, at]) => hot.has(id) && at >= warm)
  const writesHot = writes.filter(([at, rank]) => hot.has(rank) && at >= warm).length
  const perKeyPerTtl = hotRuns.length / 100 / (measuredSeconds / TTL)
  // TTL boundaries of entries first stored in the first second: t = started + n * TTL.
  const atBoundary = (at) => ((at - started) % (TTL * 1000)) < 1000
  const boundary = after.filter((read) => atBoundary(read[0])).map((read) => read[1])
  const steady = after.filter((read) => !atBoundary(read[0])).map((read) => read[1])
  const all = after.map((read) => read[1])
  const result = {
    seconds: DURATION_MS / 1000,
    earlyRefresh: EARLY,
    writeShare: WRITE_SHARE,
    reads: reads.length,
    writes: writes.length,
    hitRatio: +(hits / after.length).toFixed(4),
    hotMissesAfterWarmup: hotMisses,
    hotHandlerRunsPerKeyPerTtl: +perKeyPerTtl.toFixed(2),
    hotWritesAfterWarmup: writesHot,
    p50Ms: +quantile(all, 0.5).toFixed(2),
    p99Ms: +quantile(all, 0.99).toFixed(2),
    boundaryP99Ms: +quantile(boundary, 0.99).toFixed(2),
    steadyP99Ms: +quantile(steady, 0.99).toFixed(2)
  }
  result.boundaryOverSteadyP99 = +(result.boundaryP99Ms / result.steadyP99Ms).toFixed(2)
  console.log(JSON.stringify(result, null, 2))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
