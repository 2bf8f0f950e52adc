'use strict'

// Processes of a bench run: CPU pinning, the Redis and Memcached servers, the bench servers
// (child processes talking over IPC), probes, and killing everything we started.

const { spawn, spawnSync } = require('node:child_process')
const http = require('node:http')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const HOST = '127.0.0.1'
const SERVERS_DIR = path.join(__dirname, 'servers')
const READY_TIMEOUT_MS = 15_000
const PROBE_TIMEOUT_MS = 5_000
const KILL_GRACE_MS = 3_000
const OUTPUT_TAIL = 4096
const LOAD_GRACE_S = 30

/** Core of the server under test, and of the load generator plus backends. */
const SERVER_CORE = '0'
const CLIENT_CORE = '1'
const PINNED_ENV = 'EMBER_BENCH_PINNED'

/** Every process we started and that has not exited yet. */
const children = new Set()

function cores () {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length
}

function tasksetWorks () {
  const probe = spawnSync('taskset', ['-c', SERVER_CORE, 'true'], { stdio: 'ignore', timeout: 5000 })
  return probe.status === 0
}

/**
 * Runs this script again under `taskset -c 1` so the load generator owns core 1, the servers
 * get core 0. Returns true when the re-executed copy is running (the caller must do nothing
 * else); false when this process should run the bench itself (already pinned, or no taskset).
 */
function reexecPinned (script, args) {
  if (process.env[PINNED_ENV] !== undefined) return false
  if (args.includes('--no-pin') || cores() < 2 || !tasksetWorks()) {
    process.env[PINNED_ENV] = '0'
    if (!args.includes('--no-pin')) console.warn('bench: taskset or a second core is missing; running unpinned (numbers are noisier)')
    return false
  }
  const child = spawn('taskset', ['-c', CLIENT_CORE, process.execPath, script, ...args], {
    stdio: 'inherit',
    env: { ...process.env, [PINNED_ENV]: '1' }
  })
  // The terminal sends SIGINT to both of us; a signal sent to this pid alone is passed on.
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal))
  child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGINT' ? 130 : 1)))
  return true
}

/**
 * The entry of every bench script: re-executes `script` pinned (reexecPinned) or runs `main`
 * here; a failure is printed as `<label> failed`, everything we started is killed, exit 1.
 */
function runPinned (script, label, main) {
  if (reexecPinned(script, process.argv.slice(2))) return
  main().catch(async (err) => {
    console.error(label + ' failed:', err?.stack ?? err)
    await killAll()
    process.exit(1)
  })
}

function isPinned () {
  return process.env[PINNED_ENV] === '1'
}

/** Spawns a tracked process, on `core` when pinned. */
function spawnTracked (core, command, args, options = {}) {
  const [file, argv] = isPinned() ? ['taskset', ['-c', core, command, ...args]] : [command, args]
  const child = spawn(file, argv, { ...options, env: { ...process.env, ...options.env } })
  child.outputTail = ''
  const keep = (chunk) => { child.outputTail = (child.outputTail + chunk).slice(-OUTPUT_TAIL) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  child.exited = false
  children.add(child)
  child.on('exit', () => {
    child.exited = true
    children.delete(child)
  })
  child.on('error', (err) => {
    child.exited = true
    child.spawnError = err
    children.delete(child)
  })
  return child
}

/** SIGTERM, then SIGKILL whatever is still there after the grace period. */
async function killAll () {
  const alive = [...children]
  for (const child of alive) child.kill('SIGTERM')
  const deadline = Date.now() + KILL_GRACE_MS
  while (children.size > 0 && Date.now() < deadline) await sleep(50)
  for (const child of children) child.kill('SIGKILL')
}

/** Last resort from process.on('exit'): synchronous, no waiting. */
function killAllNow () {
  for (const child of children) {
    try { child.kill('SIGKILL') } catch {}
  }
}

function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, HOST, () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Sends `command` over raw TCP and resolves true when the answer starts with `expect`. */
function rawAsk (port, command, expect) {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST)
    let answer = ''
    const finish = (ok) => { socket.destroy(); resolve(ok) }
    socket.setTimeout(500, () => finish(false))
    socket.on('connect', () => socket.write(command))
    socket.on('data', (chunk) => {
      answer += chunk
      if (answer.includes('\r\n')) finish(answer.startsWith(expect))
    })
    socket.on('error', () => finish(false))
  })
}

async function waitForAnswer (child, port, command, expect, what) {
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (child.exited) throw new Error(what + ' exited at start-up: ' + (child.spawnError?.message ?? child.outputTail))
    if (await rawAsk(port, command, expect)) return
    await sleep(100)
  }
  throw new Error(what + ' did not answer on port ' + port + ' within ' + READY_TIMEOUT_MS + ' ms')
}

/** A throwaway redis-server: no persistence, loopback only. Placed with the load generator. */
async function startRedis () {
  const port = await freePort()
  const child = spawnTracked(CLIENT_CORE, 'redis-server', [
    '--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', os.tmpdir()
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  await waitForAnswer(child, port, 'PING\r\n', '+PONG', 'redis-server')
  return { url: 'redis://' + HOST + ':' + port, port, child }
}

/** A throwaway memcached (64 MB, loopback only, no UDP). Placed with the load generator. */
async function startMemcached () {
  const port = await freePort()
  const args = ['-l', HOST, '-p', String(port), '-U', '0', '-m', '64']
  if (typeof process.getuid === 'function' && process.getuid() === 0) args.push('-u', 'root')
  const child = spawnTracked(CLIENT_CORE, 'memcached', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  await waitForAnswer(child, port, 'version\r\n', 'VERSION', 'memcached')
  return { servers: HOST + ':' + port, port, child }
}

/**
 * Starts bench/servers/<script> on the server core and waits for its 'ready' message.
 * `nodeArgs` go to node itself (e.g. --cpu-prof).
 */
function startServer (script, env, nodeArgs = []) {
  const child = spawnTracked(SERVER_CORE, process.execPath, [...nodeArgs, path.join(SERVERS_DIR, script)], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { PORT: '0', ...env }
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(script + ' not ready within ' + READY_TIMEOUT_MS + ' ms: ' + child.outputTail)), READY_TIMEOUT_MS)
    const onMessage = (message) => {
      if (message?.type !== 'ready') return
      cleanup()
      resolve({ script, port: message.port, child, nextId: 0 })
    }
    const onExit = () => fail(new Error(script + ' exited at start-up: ' + (child.spawnError?.message ?? child.outputTail)))
    const fail = (err) => {
      cleanup()
      child.kill('SIGKILL')
      reject(err)
    }
    const cleanup = () => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      child.off('error', onExit)
    }
    child.on('message', onMessage)
    child.on('exit', onExit)
    child.on('error', onExit)
  })
}

/** The server's counters (handler calls), or undefined when it does not answer in time. */
function serverStats (server) {
  if (server.child.exited || !server.child.connected) return Promise.resolve(undefined)
  const id = ++server.nextId
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(undefined), 2000)
    const onMessage = (message) => {
      if (message?.type === 'stats' && message.id === id) done(message)
    }
    const done = (value) => {
      clearTimeout(timer)
      server.child.off('message', onMessage)
      resolve(value)
    }
    server.child.on('message', onMessage)
    server.child.send({ type: 'stats', id })
  })
}

/** Stops one server gracefully (so --cpu-prof can write its profile), SIGKILL after the grace period. */
async function stopServer (server) {
  const child = server.child
  if (child.exited) return
  child.kill('SIGTERM')
  const deadline = Date.now() + KILL_GRACE_MS * 2
  while (!child.exited && Date.now() < deadline) await sleep(50)
  if (!child.exited) child.kill('SIGKILL')
}

/**
 * Runs autocannon with `opts` for about `seconds`, and stops it anyway LOAD_GRACE_S later: a
 * hung server keeps sockets open and autocannon would never call back. `onInstance` receives
 * the running instance (to stop it on Ctrl-C).
 */
function runLoad (opts, seconds, onInstance = () => {}) {
  const autocannon = require('autocannon')
  return new Promise((resolve, reject) => {
    const instance = autocannon(opts, (err, result) => {
      clearTimeout(guard)
      if (err) reject(err)
      else resolve(result)
    })
    onInstance(instance)
    const guard = setTimeout(() => instance.stop(), (seconds + LOAD_GRACE_S) * 1000)
  })
}

/** One GET with a fresh connection: status, headers and body. */
function probe (port, urlPath, headers = {}) {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: HOST, port, path: urlPath, headers, agent: false, timeout: PROBE_TIMEOUT_MS }, (response) => {
      const chunks = []
      response.on('data', (chunk) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks) }))
      response.on('error', reject)
    })
    request.on('timeout', () => request.destroy(new Error('probe timed out: ' + urlPath)))
    request.on('error', reject)
  })
}

module.exports = {
  HOST, reexecPinned, runPinned, isPinned, killAll, killAllNow, sleep, startRedis, startMemcached, startServer, stopServer, serverStats, probe, runLoad
}
