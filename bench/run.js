'use strict'

// npm run bench [-- --rounds 3 --duration 5 --warmup 2 --connections 50 --only a,b --no-pin]
//
// Starts Redis and Memcached, one server process per configuration (bench/configs.js) on
// core 0, and drives them with autocannon from this process on core 1. After a discarded
// warm-up per configuration, every round runs every configuration once, in the same order
// (A B C ... A B C ...), so drift hits all of them alike. Reports per configuration the
// median req/s, the median p99 and the ratio to the plain route of the same run.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { isDeepStrictEqual } = require('node:util')
const procs = require('./procs')
const cpu = require('./cpu')

const { CONFIGS, REFERENCE, TARGETS } = require('./configs')
const { payload } = require('./fixture')

const RESULTS_DIR = path.join(__dirname, 'results')
const ITEM_PATH = '/item'
// Others share this machine (tests, builds): before a sample, wait (bounded) until they use
// less than QUIET_PCT of a core; a sample taken while they used more than NOISY_PCT is flagged.
const QUIET_PCT = 20
const NOISY_PCT = 25
const QUIET_PROBE_MS = 500

let current
let aborted = false

// Pinned runs re-execute this file under `taskset -c 1`; the outer copy only waits for it.
if (!procs.reexecPinned(__filename, process.argv.slice(2))) {
  main().catch(async (err) => {
    console.error('bench failed:', err?.stack ?? err)
    await procs.killAll()
    process.exit(1)
  })
}

async function main () {
  const options = parseArgs(process.argv.slice(2))
  if (options.list) {
    for (const config of CONFIGS) console.log(config.name.padEnd(28) + config.what)
    return
  }
  installCleanup()
  const selected = selectConfigs(options.only)
  const minutes = options.reuse
    ? selected.length * (options.warmup + options.rounds * (options.duration + 0.5)) / 60
    : selected.length * options.rounds * (options.warmup + options.duration + 1) / 60
  console.log(`bench: ${selected.length} configurations, ${options.rounds} rounds x ${options.duration} s, warm-up ${options.warmup} s ` +
    `${options.reuse ? 'once per server' : 'per sample on a fresh server process'}, ${options.connections} connections; about ${Math.ceil(minutes)} min` +
    (procs.isPinned() ? '; servers on core 0, load generator on core 1' : '; unpinned'))

  const { env, pids: backendPids } = await startBackends(selected)
  options.backendPids = backendPids
  const envOf = (config) => ({ ...env, ...config.env })
  const runnable = () => selected.filter((config) => config.broken === undefined && !aborted)
  const started = Date.now()
  const servers = new Map()
  if (options.reuse) {
    for (const config of selected) {
      try {
        servers.set(config.name, await procs.startServer(config.script, envOf(config)))
      } catch (err) {
        config.broken = 'start: ' + err.message
      }
      if (config.broken === undefined) config.broken = await check(config, servers.get(config.name))
      if (config.broken !== undefined) console.warn(`  ${config.name}: BROKEN (${config.broken}); left out`)
    }
    for (const config of runnable()) {
      await measure(config, servers.get(config.name), options.warmup, { ...options, quietWait: 0 })
    }
  }
  const rounds = new Map(selected.map((config) => [config.name, []]))
  for (let round = 1; round <= options.rounds; round++) {
    if (aborted) break
    // --shuffle: a new order every round, so no configuration always follows the same one.
    const order = options.shuffle ? shuffled(runnable()) : runnable()
    for (const config of order) {
      const sample = options.reuse
        ? await measure(config, servers.get(config.name), options.duration, options)
        : await freshSample(config, envOf(config), options)
      if (config.broken !== undefined) console.warn(`  ${config.name}: BROKEN (${config.broken}); left out`)
      if (sample === undefined) continue
      sample.round = round
      rounds.get(config.name).push(sample)
      console.log(`  round ${round}/${options.rounds}  ${config.name.padEnd(26)} ${fmtInt(sample.rps).padStart(8)} req/s  p99 ${sample.p99} ms` +
        `  srv ${sample.serverUsPerRequest ?? '?'} µs/req  cpu srv ${sample.cpu.server ?? '?'}% cli ${sample.cpu.client ?? '?'}% other ${sample.cpu.foreign ?? '?'}%` +
        (sample.quietWaitMs >= 1000 ? `  (waited ${Math.round(sample.quietWaitMs / 1000)} s for quiet)` : '') +
        (sample.noisy ? '  (noisy)' : '') + (sample.problem === undefined ? '' : '  ! ' + sample.problem))
    }
  }
  if (aborted) return
  const report = summarize(selected, rounds, options, Date.now() - started)
  const markdown = toMarkdown(report)
  console.log('\n' + markdown)
  const base = options.only === undefined ? 'latest' : 'partial'
  fs.mkdirSync(RESULTS_DIR, { recursive: true })
  fs.writeFileSync(path.join(RESULTS_DIR, base + '.json'), JSON.stringify(report, null, 2) + '\n')
  fs.writeFileSync(path.join(RESULTS_DIR, base + '.md'), markdown)
  console.log(`bench: wrote bench/results/${base}.json and bench/results/${base}.md`)
  await procs.killAll()
}

/**
 * One sample on a server process of its own: start, check, warm up, measure, stop. The same
 * script differs by up to ~15% from one process to the next (JIT and memory layout), so a
 * process per sample turns that into noise the median absorbs instead of a bias that sticks.
 */
async function freshSample (config, env, options) {
  const waited = await waitForQuiet([], options)
  let server
  try {
    server = await procs.startServer(config.script, env)
  } catch (err) {
    config.broken = 'start: ' + err.message
    return undefined
  }
  try {
    const broken = await check(config, server)
    if (broken !== undefined) {
      config.broken = broken
      return undefined
    }
    await measure(config, server, options.warmup, { ...options, quietWait: 0 })
    const sample = await measure(config, server, options.duration, { ...options, quietWait: 0 })
    if (sample !== undefined) sample.quietWaitMs = waited
    return sample
  } finally {
    await procs.stopServer(server)
  }
}

function parseArgs (args) {
  const options = { rounds: 3, duration: 5, warmup: 2, connections: 50, quietWait: 2, only: undefined, list: false, shuffle: false, reuse: false }
  const numbers = { '--rounds': [1, 50], '--duration': [1, 600], '--warmup': [0, 600], '--connections': [1, 1000], '--quiet-wait': [0, 600] }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    const [name, inline] = arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined]
    const value = () => inline ?? args[++i]
    if (name in numbers) {
      const raw = value()
      const n = Number(raw)
      const [min, max] = numbers[name]
      if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} expects an integer from ${min} to ${max}, got ${raw}`)
      options[name.slice(2).replace(/-(.)/g, (_, c) => c.toUpperCase())] = n
    } else if (name === '--only') {
      options.only = String(value() ?? '').split(',').map((s) => s.trim()).filter(Boolean)
    } else if (name === '--shuffle') {
      options.shuffle = true
    } else if (name === '--reuse') {
      options.reuse = true
    } else if (name === '--list') {
      options.list = true
    } else if (name === '--no-pin') {
      // handled by procs.reexecPinned
    } else if (name === '--help' || name === '-h') {
      console.log('usage: node bench/run.js [--rounds N] [--duration S] [--warmup S] [--connections N] [--quiet-wait S] [--only a,b] [--shuffle] [--reuse] [--list] [--no-pin]')
      process.exit(0)
    } else {
      throw new Error('unknown argument ' + arg + ' (try --help)')
    }
  }
  return options
}

/** The configurations asked for, plus the ones they are compared with (plain always). */
function selectConfigs (only) {
  const fresh = CONFIGS.map((config) => ({ ...config }))
  if (only === undefined) return fresh
  const byName = new Map(fresh.map((config) => [config.name, config]))
  for (const name of only) if (!byName.has(name)) throw new Error('--only: no configuration ' + name + ' (try --list)')
  const wanted = new Set([REFERENCE, ...only])
  return fresh.filter((config) => wanted.has(config.name))
}

async function startBackends (selected) {
  const needs = new Set(selected.flatMap((config) => config.needs ?? []))
  const env = {}
  const pids = []
  if (needs.has('redis')) {
    const redis = await procs.startRedis()
    env.REDIS_URL = redis.url
    pids.push(redis.child.pid)
  }
  if (needs.has('memcached')) {
    const memcached = await procs.startMemcached()
    env.MEMCACHED_SERVERS = memcached.servers
    pids.push(memcached.child.pid)
  }
  return { env, pids }
}

/**
 * Before measuring: the server answers the same object, a cached configuration serves its
 * second request from the cache. Returns why the configuration is broken, or undefined.
 */
async function check (config, server) {
  try {
    const paths = config.unique ? [ITEM_PATH + '?r=probe-a', ITEM_PATH + '?r=probe-b'] : [ITEM_PATH, ITEM_PATH]
    let last
    for (const urlPath of paths) {
      last = await procs.probe(server.port, urlPath)
      if (last.status !== 200) return `GET ${urlPath} answered ${last.status}`
      if (!isDeepStrictEqual(JSON.parse(last.body.toString('utf8')), payload)) return `GET ${urlPath} answered another body`
      // Hand-written hooks store without waiting: give the write a moment before the second probe.
      await procs.sleep(50)
    }
    if (config.xCache !== undefined && last.headers['x-cache'] !== config.xCache) {
      return `second request had x-cache ${last.headers['x-cache']}, expected ${config.xCache}`
    }
    return undefined
  } catch (err) {
    return err.message
  }
}

/** One autocannon run; undefined when aborted or when the server is gone. */
async function measure (config, server, seconds, options) {
  if (aborted || seconds === 0) return undefined
  if (server.child.exited) {
    config.broken ??= 'server exited: ' + server.child.outputTail
    return undefined
  }
  const waited = await waitForQuiet([server.child.pid], options)
  const before = await procs.serverStats(server)
  let seq = 0
  const opts = {
    url: `http://${procs.HOST}:${server.port}${ITEM_PATH}`,
    connections: options.connections,
    pipelining: 1,
    duration: seconds
  }
  if (config.unique) {
    // Every request a new key; the counter is shared by all connections.
    const prefix = ITEM_PATH + '?r=' + Date.now().toString(36) + '-'
    opts.requests = [{ method: 'GET', setupRequest: (request) => { request.path = prefix + (++seq); return request } }]
  }
  const meter = cpu.startMeter(server.child.pid, options.backendPids)
  const result = await runAutocannon(opts, seconds)
  const usage = meter.stop()
  const after = await procs.serverStats(server)
  if (result === undefined) return undefined
  const total = result.requests.total
  const handlerCalls = before !== undefined && after !== undefined ? after.handlerCalls - before.handlerCalls : undefined
  return {
    rps: result.requests.average,
    p99: result.latency.p99,
    latencyAvg: result.latency.average,
    total,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    handlerCalls,
    cpu: usage,
    // Server CPU per request: steadier than req/s on a shared machine (neighbours steal time,
    // not per-request work), and the truer cost when the server was not the bottleneck.
    serverUsPerRequest: usage.serverMs === undefined || total === 0 ? undefined : roundTo(usage.serverMs * 1000 / total, 1),
    quietWaitMs: waited,
    noisy: usage.foreign !== undefined && usage.foreign > NOISY_PCT,
    problem: problemOf(config, result, handlerCalls)
  }
}

/** Waits (at most --quiet-wait seconds) until other processes leave the machine alone; returns the wait in ms. */
async function waitForQuiet (ownPids, options) {
  const started = Date.now()
  const deadline = started + options.quietWait * 1000
  while (Date.now() < deadline) {
    if (aborted) break
    const foreign = await cpu.foreignLoad([...ownPids, ...options.backendPids], QUIET_PROBE_MS)
    if (foreign === undefined || foreign < QUIET_PCT) break
  }
  return Date.now() - started
}

async function runAutocannon (opts, seconds) {
  try {
    const result = await procs.runLoad(opts, seconds, (instance) => { current = instance })
    return aborted ? undefined : result
  } finally {
    current = undefined
  }
}

/** Why a sample should not be trusted (errors, non-2xx, a "hit" that ran the handler). */
function problemOf (config, result, handlerCalls) {
  const problems = []
  if (result.errors > 0 || result.timeouts > 0) problems.push(`${result.errors} errors, ${result.timeouts} timeouts`)
  if (result.non2xx > 0) problems.push(`${result.non2xx} non-2xx`)
  if (handlerCalls !== undefined) {
    const total = result.requests.total
    if (config.origin === 'once' && handlerCalls > Math.max(1, total * 0.001)) problems.push(`handler ran ${handlerCalls} times (not a hit)`)
    if (config.origin === 'every' && handlerCalls < total * 0.99) problems.push(`handler ran ${handlerCalls} times for ${total} requests`)
  }
  return problems.length === 0 ? undefined : problems.join('; ')
}

function shuffled (items) {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    const swap = out[i]
    out[i] = out[j]
    out[j] = swap
  }
  return out
}

/**
 * a/b within each round where both had a quiet sample: the two ran minutes apart at most, so
 * slow drift cancels. Their spread shows how far one run's ratio can be trusted.
 */
function perRoundRatios (a, b) {
  const ratios = []
  for (const sample of a.samples) {
    const other = b.samples.find((s) => s.round === sample.round)
    if (other === undefined || sample.noisy || other.noisy || other.rps === 0) continue
    ratios.push(sample.rps / other.rps)
  }
  return ratios.length === 0 ? undefined : { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), rounds: ratios.length }
}

function median (values) {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function medianCpu (samples) {
  const out = {}
  for (const name of ['server', 'client', 'backends', 'foreign']) {
    const values = samples.map((s) => s.cpu?.[name]).filter((v) => v !== undefined)
    const value = median(values)
    out[name] = value === undefined ? undefined : Math.round(value)
  }
  return out
}

function summarize (selected, rounds, options, elapsedMs) {
  const results = selected.map((config) => {
    const samples = rounds.get(config.name)
    // Medians over the quiet samples when there are at least two: a neighbour's test run
    // says nothing about us. Otherwise over all of them (and the table says so).
    const quiet = samples.filter((s) => !s.noisy)
    const used = quiet.length >= 2 || (quiet.length === samples.length) ? quiet : samples
    return {
      name: config.name,
      what: config.what,
      broken: config.broken,
      rps: median(used.map((s) => s.rps)),
      p99: roundTo(median(used.map((s) => s.p99)), 1),
      cpu: medianCpu(used),
      serverUsPerRequest: roundTo(median(used.map((s) => s.serverUsPerRequest).filter((v) => v !== undefined)), 1),
      basis: used === quiet ? `${quiet.length}/${samples.length} quiet` : `all ${samples.length} (only ${quiet.length} quiet)`,
      samples,
      problems: samples.map((s) => s.problem).filter(Boolean)
    }
  })
  const byName = new Map(results.map((r) => [r.name, r]))
  const reference = byName.get(REFERENCE)?.rps
  const ratio = (a, b) => {
    const x = byName.get(a)?.rps
    const y = byName.get(b)?.rps
    return x === undefined || y === undefined || y === 0 ? undefined : x / y
  }
  for (const result of results) {
    result.ratio = reference === undefined || result.rps === undefined ? undefined : result.rps / reference
    const vs = selected.find((c) => c.name === result.name).vs
    if (vs !== undefined && byName.has(vs)) result.vs = { name: vs, ratio: ratio(result.name, vs) }
  }
  const targets = TARGETS
    .filter(([a, b]) => byName.has(a) && byName.has(b))
    .map(([name, against, min, source = 'issue 6']) => {
      const value = ratio(name, against)
      return { name, against, min, source, ratio: value, pass: value === undefined ? undefined : value >= min, perRound: perRoundRatios(byName.get(name), byName.get(against)) }
    })
  return {
    date: new Date().toISOString(),
    machine: {
      node: process.version,
      cpu: os.cpus()[0]?.model,
      cores: os.cpus().length,
      platform: os.platform() + ' ' + os.release(),
      pinned: procs.isPinned()
    },
    git: gitDescribe(),
    settings: { rounds: options.rounds, duration: options.duration, warmup: options.warmup, connections: options.connections, pipelining: 1, quietWait: options.quietWait, shuffle: options.shuffle, freshProcessPerSample: !options.reuse, only: options.only },
    bodyBytes: Buffer.byteLength(JSON.stringify(payload)),
    elapsedSeconds: Math.round(elapsedMs / 1000),
    results,
    targets
  }
}

function gitDescribe () {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: __dirname, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'lib'], { cwd: path.join(__dirname, '..'), encoding: 'utf8' }).trim() !== ''
    return commit + (dirty ? ' (lib/ modified)' : '')
  } catch {
    return undefined
  }
}

function toMarkdown (report) {
  const { machine, settings } = report
  const lines = []
  lines.push(`### Benchmark (${report.date.slice(0, 10)}, ${report.git ?? 'no git'})`, '')
  lines.push(`Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), ${machine.pinned ? 'server pinned to core 0, autocannon + Redis + Memcached to core 1' : 'unpinned'}; ` +
    `${settings.connections} connections, pipelining 1, ${report.bodyBytes} B JSON body; ` +
    (settings.freshProcessPerSample ? `every sample on a fresh server process warmed ${settings.warmup} s, ` : `warm-up ${settings.warmup} s per server, `) +
    `median of ${settings.rounds} interleaved rounds x ${settings.duration} s${settings.shuffle ? ' (order shuffled per round)' : ''}. CPU: median % of one core used by the server / by autocannon ` +
    '(a server below ~95% was not the bottleneck: the load generator, a backend round trip or a neighbour was); ' +
    'srv µs/req: server CPU time per request. samples: rounds the medians use; a sample during which other processes ' +
    `used more than ${NOISY_PCT}% of a core is left out when at least two quiet ones remain.`, '')
  lines.push('| configuration | req/s | p99 ms | x plain | vs anchor | CPU % srv/cli | srv µs/req | samples | what |')
  lines.push('|---|--:|--:|--:|---|--:|--:|---|---|')
  for (const r of report.results) {
    if (r.broken !== undefined || r.rps === undefined) {
      lines.push(`| ${r.name} | - | - | - | - | - | - | - | BROKEN: ${escapeCell(r.broken ?? 'no samples')} |`)
      continue
    }
    const vs = r.vs?.ratio === undefined ? '' : `${r.vs.ratio.toFixed(2)}x ${r.vs.name}`
    const flag = r.problems.length > 0 ? ' (!)' : ''
    const usage = `${r.cpu.server ?? '?'}/${r.cpu.client ?? '?'}`
    lines.push(`| ${r.name}${flag} | ${fmtInt(r.rps)} | ${r.p99} | ${r.ratio === undefined ? '-' : r.ratio.toFixed(2) + 'x'} | ${vs} | ${usage} | ${r.serverUsPerRequest ?? '-'} | ${r.basis} | ${r.what} |`)
  }
  const flagged = report.results.filter((r) => r.problems.length > 0)
  if (flagged.length > 0) {
    lines.push('', '(!) samples to distrust:')
    for (const r of flagged) lines.push(`- ${r.name}: ${[...new Set(r.problems)].join('; ')}`)
  }
  if (report.targets.length > 0) {
    lines.push('', 'ratio: of the median req/s (what the targets are judged on); per round: the median, lowest and highest of the ratios within each round.', '')
    lines.push('| target | ratio | needed | | per round: median (min-max) | set by |', '|---|--:|--:|---|--:|---|')
    for (const t of report.targets) {
      const verdict = t.pass === undefined ? 'n/a' : t.pass ? 'pass' : '**miss**'
      const perRound = t.perRound === undefined ? '-' : `${t.perRound.median.toFixed(2)}x (${t.perRound.min.toFixed(2)}-${t.perRound.max.toFixed(2)})`
      lines.push(`| ${t.name} / ${t.against} | ${t.ratio === undefined ? '-' : t.ratio.toFixed(2) + 'x'} | >= ${t.min}x | ${verdict} | ${perRound} | ${t.source} |`)
    }
  }
  lines.push('', `Per-round req/s (* = noisy): ${report.results.filter((r) => r.samples.length > 0).map((r) => `${r.name} ${r.samples.map((s) => fmtInt(s.rps) + (s.noisy ? '*' : '')).join('/')}`).join('; ')}.`, '')
  return lines.join('\n')
}

function roundTo (value, digits) {
  return value === undefined ? undefined : Number(value.toFixed(digits))
}

function escapeCell (text) {
  return String(text).replace(/\|/g, '\\|').replace(/\s+/g, ' ').slice(0, 200)
}

function fmtInt (n) {
  return Math.round(n).toLocaleString('en-US')
}

function installCleanup () {
  let stopping = false
  const stop = (signal) => {
    if (stopping) return
    stopping = true
    aborted = true
    console.warn(`\nbench: ${signal}; stopping load and servers`)
    current?.stop()
    procs.killAll().finally(() => process.exit(130))
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('exit', procs.killAllNow)
}
