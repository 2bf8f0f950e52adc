'use strict'

// node bench/scale.js [--duration 5] [--only memory-100000x1024,...] [--no-huge]   (npm run build first)
//
// How hit throughput and memory grow with entry count and body size (README "Scale on paper").
// Per case: a fresh bench/servers/scale.js process (pinned like the bench), filled with N
// distinct URLs (every one a miss that stores), then loaded for --duration seconds with hits
// on URLs picked at random among the N. Reports req/s, p99, MB/s, the app's memory per entry
// (after a full GC) and, for Redis, Redis's memory per entry, CPU per hit and the hit rate one
// Redis core would sustain. Writes bench/results/scale.{md,json}.

const procs = require('./procs')
const { writeResults } = require('./sample')

const KB = 1024
const CASES = [
  ['memory', 1_000, KB], ['memory', 100_000, KB], ['memory', 1_000, 100 * KB], ['memory', 100_000, 100 * KB],
  ['redis', 1_000, KB], ['redis', 100_000, KB], ['redis', 1_000, 100 * KB], ['redis', 10_000, 100 * KB]
]
const FILL_CONNECTIONS = 20
const LOAD_CONNECTIONS = 50

procs.runPinned(__filename, 'scale', main)

async function main () {
  const options = parseArgs(process.argv.slice(2))
  process.on('exit', procs.killAllNow)
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => procs.killAll().finally(() => process.exit(130)))
  const results = []
  for (const [backend, entries, bodyBytes] of CASES) {
    const name = `${backend}-${entries}x${bodyBytes}`
    if (options.only !== undefined && !options.only.includes(name)) continue
    if (options.noHuge && entries * bodyBytes > 2 * KB * KB * KB) continue
    console.log(`scale: ${name} ...`)
    results.push(await runCase(backend, entries, bodyBytes, options))
    const r = results[results.length - 1]
    console.log(`  fill ${fmt(r.fillSeconds, 1)} s, ${fmt(r.rps)} req/s, p99 ${r.p99} ms, ${fmt(r.mbPerSecond)} MB/s, app ${fmt(r.appBytesPerEntry)} B/entry` +
      (r.redis === undefined ? '' : `, redis ${fmt(r.redis.bytesPerEntry)} B/entry, ${fmt(r.redis.usPerHit, 2)} µs CPU/hit`))
  }
  const markdown = toMarkdown(results, options)
  console.log('\n' + markdown)
  const base = options.only === undefined ? 'scale' : 'scale-partial'
  writeResults('scale', base, { date: new Date().toISOString(), node: process.version, results }, markdown)
  await procs.killAll()
}

async function runCase (backend, entries, bodyBytes, options) {
  const redis = backend === 'redis' ? await procs.startRedis() : undefined
  const client = redis === undefined ? undefined : new (require('ioredis'))(redis.url)
  const env = { ENTRIES: String(entries), BODY_BYTES: String(bodyBytes), BACKEND: backend, ...(redis && { REDIS_URL: redis.url }) }
  const server = await procs.startServer('scale.js', env, ['--expose-gc'])
  try {
    const before = await procs.serverStats(server)
    const redisBefore = client === undefined ? undefined : await redisInfo(client)
    let next = 0
    const fillStarted = Date.now()
    const fill = await load(server.port, { amount: entries, connections: FILL_CONNECTIONS }, () => '/item/' + (next++))
    const fillSeconds = (Date.now() - fillStarted) / 1000
    const filled = await procs.serverStats(server)
    if (filled.handlerCalls !== entries) throw new Error(`${backend} ${entries}x${bodyBytes}: filling ran the handler ${filled.handlerCalls} times for ${entries} URLs`)
    const redisFilled = client === undefined ? undefined : await redisInfo(client)
    await load(server.port, { duration: 2, connections: LOAD_CONNECTIONS }, randomPath(entries))
    const redisLoadStart = client === undefined ? undefined : await redisInfo(client)
    const result = await load(server.port, { duration: options.duration, connections: LOAD_CONNECTIONS }, randomPath(entries))
    const redisLoadEnd = client === undefined ? undefined : await redisInfo(client)
    const after = await procs.serverStats(server)
    const hits = result.requests.total
    const row = {
      name: `${backend}-${entries}x${bodyBytes}`,
      backend,
      entries,
      bodyBytes,
      fillSeconds,
      fillErrors: fill.errors + fill.non2xx,
      rps: result.requests.average,
      p99: result.latency.p99,
      mbPerSecond: result.throughput.average / (KB * KB),
      errors: result.errors + result.non2xx,
      handlerRunsWhileHitting: after.handlerCalls - filled.handlerCalls,
      // Heap plus Buffers, after a full GC: what the entries hold. RSS also grows with JIT code
      // and allocator slack, which swamps the figure at 1k entries.
      appBytesPerEntry: (filled.memory.heapUsed + filled.memory.external - before.memory.heapUsed - before.memory.external) / entries,
      appRssMb: after.memory.rss / (KB * KB)
    }
    if (client !== undefined) {
      const cpuSeconds = redisLoadEnd.cpu - redisLoadStart.cpu
      row.redis = {
        bytesPerEntry: (redisFilled.usedMemory - redisBefore.usedMemory) / entries,
        usedMemoryMb: redisFilled.usedMemory / (KB * KB),
        usPerHit: (cpuSeconds * 1e6) / hits,
        // One Redis main thread at 100%: the hit rate this CPU cost allows (network I/O included).
        hitsPerCore: hits / cpuSeconds
      }
    }
    return row
  } finally {
    await procs.stopServer(server)
    if (client !== undefined) client.disconnect()
    if (redis !== undefined) redis.child.kill('SIGKILL')
  }
}

function randomPath (entries) {
  return () => '/item/' + Math.floor(Math.random() * entries)
}

function load (port, opts, nextPath) {
  const request = { method: 'GET', setupRequest: (r) => { r.path = nextPath(); return r } }
  // A fill runs by amount, not duration: bounded at 10 minutes (100k entries of 100 KB took ~1).
  return procs.runLoad({ url: `http://${procs.HOST}:${port}/`, pipelining: 1, ...opts, requests: [request] }, opts.duration ?? 600)
}

async function redisInfo (client) {
  const [memory, cpu] = await Promise.all([client.info('memory'), client.info('cpu')])
  const field = (text, name) => Number(new RegExp('^' + name + ':([\\d.]+)', 'm').exec(text)?.[1])
  return {
    usedMemory: field(memory, 'used_memory'),
    cpu: field(cpu, 'used_cpu_user') + field(cpu, 'used_cpu_sys')
  }
}

function toMarkdown (results, options) {
  const lines = [
    `### Scale (${new Date().toISOString().slice(0, 10)})`,
    '',
    `Node ${process.version}; one app process on core 0, autocannon (${LOAD_CONNECTIONS} connections) and Redis on core 1; ` +
      `hits on URLs picked at random among the N stored, ${options.duration} s after a 2 s warm-up; one sample per case. ` +
      'App B/entry: growth of V8 heap + Buffers (after a full GC) while filling, divided by N; app RSS: the process at the end. Redis: used_memory growth per entry; ' +
      'CPU/hit: Redis user+sys CPU during the measured load divided by the hits served; hits/s per Redis core: its inverse.',
    '',
    '| backend | entries | body | req/s | p99 ms | MB/s | app B/entry | app RSS MB | Redis B/entry | Redis µs CPU/hit | hits/s per Redis core | fill s |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|'
  ]
  for (const r of results) {
    lines.push(`| ${r.backend} | ${fmt(r.entries)} | ${r.bodyBytes / KB} KB | ${fmt(r.rps)} | ${r.p99} | ${fmt(r.mbPerSecond)} | ${fmt(r.appBytesPerEntry)} | ${fmt(r.appRssMb)} | ` +
      `${r.redis === undefined ? '' : fmt(r.redis.bytesPerEntry)} | ${r.redis === undefined ? '' : fmt(r.redis.usPerHit, 1)} | ` +
      `${r.redis === undefined ? '' : fmt(r.redis.hitsPerCore)} | ${fmt(r.fillSeconds, 1)} |` +
      (r.errors > 0 || r.handlerRunsWhileHitting > 0 ? ` (!) ${r.errors} errors, ${r.handlerRunsWhileHitting} handler runs while hitting` : ''))
  }
  return lines.join('\n') + '\n'
}

function fmt (value, digits = 0) {
  return value === undefined || Number.isNaN(value) ? '-' : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

function parseArgs (args) {
  const options = { duration: 5, only: undefined, noHuge: false }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '--duration') options.duration = Number(args[++i])
    else if (arg === '--only') options.only = args[++i].split(',')
    else if (arg === '--no-huge') options.noHuge = true
    else if (arg === '--no-pin') continue
    else throw new Error('unknown argument ' + arg + ' (--duration S, --only a,b, --no-huge, --no-pin)')
  }
  if (!Number.isFinite(options.duration) || options.duration < 1 || options.duration > 600) throw new Error('--duration: 1..600 seconds')
  return options
}
