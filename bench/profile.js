'use strict'

// node bench/profile.js [config] [--duration 5] [--warmup 2] [--top 15]   (npm run build first)
//
// Runs one bench configuration (default ember-memory) under `node --cpu-prof`, pinned like
// the bench, loads it with autocannon (warm-up, then --duration seconds), stops it so V8
// writes the profile, and prints the functions where the server spent its time. The profile
// (which includes start-up and warm-up) is kept in bench/profiles/ for DevTools.

const fs = require('node:fs')
const path = require('node:path')
const procs = require('./procs')

const PROFILES_DIR = path.join(__dirname, 'profiles')

procs.runPinned(__filename, 'profile', main)

async function main () {
  const { CONFIGS } = require('./configs')
  const { load, summarize } = require('./cpuprofile-top')
  const options = parseArgs(process.argv.slice(2))
  const config = CONFIGS.find((c) => c.name === options.config)
  if (config === undefined) throw new Error('no configuration ' + options.config + ' (node bench/run.js --list)')

  let stopping = false
  const stop = () => {
    if (stopping) return
    stopping = true
    procs.killAll().finally(() => process.exit(130))
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  process.on('exit', procs.killAllNow)

  const env = {}
  if (config.needs?.includes('redis')) env.REDIS_URL = (await procs.startRedis()).url
  if (config.needs?.includes('memcached')) env.MEMCACHED_SERVERS = (await procs.startMemcached()).servers
  fs.mkdirSync(PROFILES_DIR, { recursive: true })
  const name = `${config.name}-${Date.now()}.cpuprofile`
  const server = await procs.startServer(config.script, { ...env, ...config.env }, ['--cpu-prof', '--cpu-prof-dir', PROFILES_DIR, '--cpu-prof-name', name])

  let seq = 0
  const load1 = (seconds) => {
    const opts = { url: `http://${procs.HOST}:${server.port}/item`, connections: 50, pipelining: 1, duration: seconds }
    if (config.unique) opts.requests = [{ method: 'GET', setupRequest: (r) => { r.path = '/item?r=p' + (++seq); return r } }]
    return procs.runLoad(opts, seconds)
  }
  await procs.probe(server.port, config.unique ? '/item?r=first' : '/item')
  if (options.warmup > 0) await load1(options.warmup)
  const from = Number(process.hrtime.bigint() / 1000n)
  const result = await load1(options.duration)
  const to = Number(process.hrtime.bigint() / 1000n)
  console.log(`${config.name}: ${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms over ${options.duration} s (profiled, so slower than the bench)`)
  await procs.stopServer(server)
  const file = path.join(PROFILES_DIR, name)
  if (!fs.existsSync(file)) throw new Error('the server wrote no profile at ' + file)
  console.log(`profile: ${path.relative(process.cwd(), file)}\n`)
  // V8 stamps samples with the monotonic clock process.hrtime reads, so the window lines up.
  process.stdout.write(summarize(load(file), options.top, { from, to, requests: result.requests.total }))
  await procs.killAll()
}

function parseArgs (args) {
  const options = { config: 'ember-memory', duration: 5, warmup: 2, top: 15 }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '--no-pin') continue
    if (arg === '--duration' || arg === '--warmup' || arg === '--top') {
      const n = Number(args[++i])
      if (!Number.isInteger(n) || n < 0 || n > 600) throw new Error(arg + ' expects an integer from 0 to 600')
      options[arg.slice(2)] = n
    } else if (!arg.startsWith('--')) {
      options.config = arg
    } else {
      throw new Error('unknown argument ' + arg)
    }
  }
  if (options.duration < 1 || options.top < 1) throw new Error('--duration and --top must be at least 1')
  return options
}
