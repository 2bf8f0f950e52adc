'use strict'

// Issue 31's load figure: an app behind a real Varnish (docs/varnish/default.vcl, vmod-xkey),
// readers and one writer through Varnish for a bounded time, with edge.wait off and on.
//   - old reads: reads that began after a write was answered and still got the version before it
//   - purge delay: from the write's invalidation to Varnish confirming the purge (p50, p99)
//
//   npm run build && node bench/edge-freshness.js               # 20 s per case
//   node bench/edge-freshness.js --duration 5 --readers 8
// Everything binds to 127.0.0.1; the loop is bounded by time and by a request count.
const { spawn } = require('node:child_process')
const { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const { subscribe, unsubscribe } = require('node:diagnostics_channel')
const Fastify = require('fastify')
const { emberCache, varnishPurgers } = require(process.env.EMBER_DIST ?? '../dist/lib/index.js')

const argument = (name, fallback) => process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback
const DURATION_MS = argument('--duration', 20) * 1000
const READERS = argument('--readers', 4)
const MAX_REQUESTS = 2_000_000
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function startVarnish (backendPort) {
  const dir = mkdtempSync(join(tmpdir(), 'ember-bench-varnish-'))
  chmodSync(dir, 0o755)
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  const vcl = readFileSync(join(__dirname, '..', 'docs', 'varnish', 'default.vcl'), 'utf8').replace(/\.port = "\d+";/, `.port = "${backendPort}";`)
  writeFileSync(join(dir, 'default.vcl'), vcl, { mode: 0o644 })
  const command = existsSync('/usr/sbin/varnishd') ? '/usr/sbin/varnishd' : 'varnishd'
  const child = spawn(command, ['-F', '-n', join(dir, 'work'), '-a', `127.0.0.1:${port}`, '-f', join(dir, 'default.vcl'), '-s', 'malloc,64m'], { stdio: 'ignore' })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url + '/', { method: 'PURGE', headers: { 'xkey-purge': 'probe' } })).status === 200) break
    } catch {}
    await sleep(100)
  }
  return { url, stop: () => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }) } }
}

function quantile (values, q) {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]
}

async function runCase (wait) {
  let version = 1
  const edgeAt = { url: '' }
  const app = Fastify()
  await app.register(emberCache, { edge: { tagHeader: 'xkey', wait, purgers: [{ name: 'varnish', purge: (request) => varnishPurgers({ servers: [edgeAt.url] })[0].purge(request) }] } })
  app.get('/doc', { config: { cache: { mode: 'memory', ttl: 60, edgeTtl: 3600, tags: ['doc'] } } }, async () => ({ version }))
  app.put('/doc', { config: { cache: { mode: 'memory', invalidate: ['tags:doc'] } } }, async () => { version++; return { version } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const varnish = await startVarnish(app.server.address().port)
  edgeAt.url = varnish.url

  const purgeDelays = []
  const started = new WeakMap()
  const handlers = {
    start: (context) => started.set(context, performance.now()),
    asyncEnd: (context) => purgeDelays.push(performance.now() - started.get(context))
  }
  subscribe('tracing:ember-cache:edge-purge:start', handlers.start)
  subscribe('tracing:ember-cache:edge-purge:asyncEnd', handlers.asyncEnd)

  // The newest version a write has answered with, and when.
  let answered = 1
  let reads = 0
  let oldReads = 0
  let writes = 0
  const deadline = Date.now() + DURATION_MS
  const reader = async () => {
    while (Date.now() < deadline && reads < MAX_REQUESTS) {
      const mustSee = answered
      const response = await fetch(varnish.url + '/doc')
      const body = await response.json()
      reads++
      if (body.version < mustSee) oldReads++
    }
  }
  const writer = async () => {
    while (Date.now() < deadline) {
      await sleep(50)
      const response = await fetch(varnish.url + '/doc', { method: 'PUT' })
      const body = await response.json()
      writes++
      answered = Math.max(answered, body.version)
    }
  }
  await Promise.all([writer(), ...Array.from({ length: READERS }, reader)])
  unsubscribe('tracing:ember-cache:edge-purge:start', handlers.start)
  unsubscribe('tracing:ember-cache:edge-purge:asyncEnd', handlers.asyncEnd)
  varnish.stop()
  await app.close()
  return { wait, reads, writes, oldReads, purges: purgeDelays.length, purgeP50: quantile(purgeDelays, 0.5), purgeP99: quantile(purgeDelays, 0.99) }
}

async function main () {
  const rows = []
  for (const wait of [0, 2000]) rows.push(await runCase(wait))
  console.log(`${DURATION_MS / 1000} s per case, ${READERS} readers and 1 writer (a PUT every 50 ms) through Varnish 7\n`)
  console.log('| edge.wait | reads | writes | old reads after a write answered | purges | purge p50 ms | purge p99 ms |')
  console.log('| --: | --: | --: | --: | --: | --: | --: |')
  for (const row of rows) console.log(`| ${row.wait} | ${row.reads} | ${row.writes} | ${row.oldReads} | ${row.purges} | ${row.purgeP50.toFixed(2)} | ${row.purgeP99.toFixed(2)} |`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
