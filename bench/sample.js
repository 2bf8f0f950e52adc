'use strict'

// Measuring one bench server: the backends it needs, the check before measuring, one
// autocannon sample with its CPU meters, and stopping cleanly on Ctrl-C. Shared by run.js
// (rounds over every configuration) and paired.js (A/B pairs per target).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { isDeepStrictEqual } = require('node:util')
const procs = require('./procs')
const cpu = require('./cpu')
const { payloadOf } = require('./fixture')
const { brotliDecompressSync, gunzipSync, inflateSync } = require('node:zlib')

const ITEM_PATH = '/item'
const RESULTS_DIR = path.join(__dirname, 'results')
// Others share this machine (tests, builds): before a sample, wait (bounded) until they use
// less than QUIET_PCT of a core; a sample taken while they used more than NOISY_PCT is flagged.
const QUIET_PCT = 20
const NOISY_PCT = 25
const QUIET_PROBE_MS = 500

/** The autocannon run in progress (stopped on Ctrl-C), and whether the bench was stopped. */
let current
let aborted = false

function isAborted () {
  return aborted
}

/** Ctrl-C / SIGTERM: stop the load, kill every process we started, exit 130. */
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

/** Starts the Redis / Memcached servers `configs` need; their URLs go to the servers' env. */
async function startBackends (configs) {
  const needs = new Set(configs.flatMap((config) => config.needs ?? []))
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
      last = await procs.probe(server.port, urlPath, requestHeaders(config))
      if (last.status !== 200) return `GET ${urlPath} answered ${last.status}`
      if (!isDeepStrictEqual(JSON.parse(decodedBody(last).toString('utf8')), payloadOf(config.body))) return `GET ${urlPath} answered another body`
      // Hand-written hooks store without waiting: give the write a moment before the second probe.
      await procs.sleep(50)
    }
    if (config.xCache !== undefined && last.headers['x-cache'] !== config.xCache) {
      return `second request had x-cache ${last.headers['x-cache']}, expected ${config.xCache}`
    }
    // A compression configuration must measure what it says: the coding the client asked for.
    const coding = last.headers['content-encoding'] ?? 'identity'
    if (config.acceptEncoding !== undefined && coding !== config.acceptEncoding) return `answered ${coding}, expected ${config.acceptEncoding}`
    return undefined
  } catch (err) {
    return err.message
  }
}

/** The request headers of a configuration: Accept-Encoding for the compression ones. */
function requestHeaders (config) {
  return config.acceptEncoding === undefined || config.acceptEncoding === 'identity' ? {} : { 'accept-encoding': config.acceptEncoding }
}

/** A probe's body, decoded from its Content-Encoding. */
function decodedBody (response) {
  switch (response.headers['content-encoding']) {
    case 'br': return brotliDecompressSync(response.body)
    case 'gzip': return gunzipSync(response.body)
    case 'deflate': return inflateSync(response.body)
    default: return response.body
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
    duration: seconds,
    headers: requestHeaders(config)
  }
  // --rate: a fixed request rate instead of as fast as the server goes, so latency shows what
  // a path adds to each answer rather than how the server queues at saturation.
  if (options.rate > 0) opts.overallRate = options.rate
  if (config.unique) {
    // Every request a new key; the counter is shared by all connections.
    const prefix = ITEM_PATH + '?r=' + Date.now().toString(36) + '-'
    opts.requests = [{ method: 'GET', headers: opts.headers, setupRequest: (request) => { request.path = prefix + (++seq); return request } }]
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

function median (values) {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
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

/**
 * Command-line options: `--name value` or `--name=value`. `numbers` maps an option to its
 * integer bounds, `lists` take `a,b,c`, `flags` take nothing; --no-pin is procs' business.
 * Options land camel-cased on a copy of `defaults`; anything unknown throws.
 */
function parseOptions (args, { defaults, numbers = {}, lists = [], flags = [], usage }) {
  const options = { ...defaults }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    const [name, inline] = arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined]
    const value = () => inline ?? args[++i]
    const key = name.slice(2).replace(/-(.)/g, (_, c) => c.toUpperCase())
    if (name in numbers) {
      const raw = value()
      const n = Number(raw)
      const [min, max] = numbers[name]
      if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} expects an integer from ${min} to ${max}, got ${raw}`)
      options[key] = n
    } else if (lists.includes(name)) {
      options[key] = String(value() ?? '').split(',').map((s) => s.trim()).filter(Boolean)
    } else if (flags.includes(name)) {
      options[key] = true
    } else if (name === '--no-pin') {
      // handled by procs.reexecPinned
    } else if (name === '--help' || name === '-h') {
      console.log(usage)
      process.exit(0)
    } else {
      throw new Error('unknown argument ' + arg + ' (try --help)')
    }
  }
  return options
}

/** Writes results/<base>.json and results/<base>.md and says so. */
function writeResults (label, base, report, markdown) {
  fs.mkdirSync(RESULTS_DIR, { recursive: true })
  fs.writeFileSync(path.join(RESULTS_DIR, base + '.json'), JSON.stringify(report, null, 2) + '\n')
  fs.writeFileSync(path.join(RESULTS_DIR, base + '.md'), markdown)
  console.log(`${label}: wrote bench/results/${base}.json and bench/results/${base}.md`)
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

function machine () {
  return {
    node: process.version,
    cpu: os.cpus()[0]?.model,
    cores: os.cpus().length,
    platform: os.platform() + ' ' + os.release(),
    pinned: procs.isPinned()
  }
}

module.exports = {
  ITEM_PATH,
  NOISY_PCT,
  isAborted,
  installCleanup,
  startBackends,
  check,
  measure,
  waitForQuiet,
  median,
  roundTo,
  escapeCell,
  fmtInt,
  parseOptions,
  writeResults,
  gitDescribe,
  machine
}
