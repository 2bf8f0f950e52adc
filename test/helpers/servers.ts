// Real Redis / Memcached servers for tests, independent of the code under test:
// readiness probes and admin commands speak raw TCP (node:net), never ioredis/memjs,
// so a bug in a client library cannot make the harness lie.
//
// Resolution order per backend:
//   1. REDIS_URL / MEMCACHED_URL  -> an external server; managed=false (no fault injection)
//   2. a Docker engine answering  -> testcontainers, if installed; managed=false
//   3. otherwise                  -> spawn the local binary on a free 127.0.0.1 port
// Fault tests should `t.skip` when `!server.managed`. Containers cost those tests, so
// EMBER_CACHE_TEST_DOCKER=0 skips step 2 where the local binaries exist.
// Redis Cluster always spawns locally (step 3).

import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { childEnv } from './child-env'

export interface Endpoint {
  host: string
  port: number
  /** rediss:// only; the raw probe then speaks TLS. */
  tls?: boolean
  username?: string
  password?: string
}

export interface ServerHandle {
  host: string
  port: number
  /** True when the harness owns the process, i.e. kill/pause/resume/restart work. */
  managed: boolean
  /** Graceful shutdown; waits for exit and removes the temp dir. No-op when unmanaged. */
  stop(): Promise<void>
  /** SIGKILL, waits for exit; keeps the data dir so restart() can reuse it. */
  kill(): Promise<void>
  /** SIGSTOP: the port still accepts connections (kernel backlog) but nothing answers. */
  pause(): void
  /** SIGCONT */
  resume(): void
  /** Start again on the same port and wait until it answers. */
  restart(): Promise<void>
  flushAll(): Promise<void>
}

export interface RedisServer extends ServerHandle, Endpoint {
  url: string
  /** connected_clients from INFO, minus the probe's own connection. */
  clientCount(): Promise<number>
}

export interface MemcachedServer extends ServerHandle {
  /** 'host:port' (or the MEMCACHED_URL list), ready for memjs. */
  servers: string
  /** curr_items from `stats`, summed over every server in the list. */
  itemCount(): Promise<number>
}

export interface RedisClusterHandle {
  nodes: Array<{ host: string, port: number }>
  servers: RedisServer[]
  /**
   * Resolves once every node reports cluster_state:ok with all slots and nodes known.
   * Needed after restarting a node: it answers PING at once but rejoins ~node-timeout later.
   */
  waitForOk(timeoutMs?: number): Promise<void>
  flushAll(): Promise<void>
  stop(): Promise<void>
}

export interface StartRedisOptions {
  /** Appended to the redis-server command line (spawned servers only). */
  extraArgs?: string[]
}

const HOST = '127.0.0.1'
const READY_TIMEOUT_MS = 5_000
const CLUSTER_READY_TIMEOUT_MS = 15_000
const EXIT_TIMEOUT_MS = 5_000
const PROBE_TIMEOUT_MS = 250
const OUTPUT_TAIL_BYTES = 8 * 1024
// Redis cluster uses port + 10000 for its bus, and ports stop at 65535.
const CLUSTER_BUS_OFFSET = 10_000
const CLUSTER_SLOTS = 16_384

const UNMANAGED_MESSAGE = 'fault injection needs a harness-managed server ' +
  '(unset REDIS_URL / MEMCACHED_URL and have no Docker, so the harness spawns its own); ' +
  'check `server.managed` and t.skip'

function unmanaged (): never {
  throw new Error(UNMANAGED_MESSAGE)
}

// ---------------------------------------------------------------------------
// Orphan protection. The 'exit' hook covers normal ends and thrown failures; a
// watchdog child covers SIGKILL of this process (tap does that on timeouts), since
// it sees its stdin pipe close however we die.

const live = new Map<number, ChildProcess>()
const liveDirs = new Set<string>()
let exitHookInstalled = false
let watchdog: ChildProcess | undefined

// It ignores catchable signals so a Ctrl-C or `kill -- -pgid` aimed at the whole
// process group cannot take it down before it has cleaned up.
const WATCHDOG_SOURCE = `
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => {})
const pids = new Set(); const dirs = new Set(); let buf = ''
process.stdin.on('data', (d) => {
  buf += d; let i
  while ((i = buf.indexOf('\\n')) >= 0) {
    const l = buf.slice(0, i); buf = buf.slice(i + 1)
    const v = l.slice(2)
    if (l[0] === '+') pids.add(Number(v)); else if (l[0] === '-') pids.delete(Number(v))
    else if (l[0] === 'd') dirs.add(v); else if (l[0] === 'r') dirs.delete(v)
  }
})
process.stdin.on('end', () => {
  for (const p of pids) { try { process.kill(p, 'SIGKILL') } catch {} }
  for (const d of dirs) { try { require('fs').rmSync(d, { recursive: true, force: true }) } catch {} }
  process.exit(0)
})
`

function tellWatchdog (line: string): void {
  if (watchdog === undefined) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], { stdio: ['pipe', 'ignore', 'ignore'], env: childEnv() })
    // Never let the watchdog keep a finished test process alive.
    watchdog.unref()
    ;(watchdog.stdin as unknown as Socket).unref()
    watchdog.stdin?.on('error', () => {})
  }
  watchdog.stdin?.write(line + '\n')
}

function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const child of live.values()) {
      try { child.kill('SIGKILL') } catch {}
    }
    for (const dir of liveDirs) {
      try { rmSync(dir, { recursive: true, force: true }) } catch {}
    }
  })
}

function trackDir (prefix: string): string {
  installExitHook()
  const dir = mkdtempSync(join(tmpdir(), prefix))
  liveDirs.add(dir)
  tellWatchdog('d ' + dir)
  return dir
}

function removeDir (dir: string): void {
  rmSync(dir, { recursive: true, force: true })
  liveDirs.delete(dir)
  tellWatchdog('r ' + dir)
}

// ---------------------------------------------------------------------------
// Ports

function listenOn (port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(undefined)
      else reject(err)
    })
    srv.listen({ port, host: HOST, exclusive: true }, () => {
      const address = srv.address()
      const bound = typeof address === 'object' && address !== null ? address.port : undefined
      srv.close(() => resolve(bound))
    })
  })
}

/** A port the OS just handed out; racy by nature, callers retry on EADDRINUSE. */
export async function freePort (): Promise<number> {
  const port = await listenOn(0)
  if (port === undefined) throw new Error('the OS gave no free port on ' + HOST)
  return port
}

async function freeClusterPort (taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await freePort()
    const bus = port + CLUSTER_BUS_OFFSET
    if (bus > 65_535 || taken.has(port) || taken.has(bus)) continue
    if (await listenOn(bus) === bus) {
      taken.add(port)
      taken.add(bus)
      return port
    }
  }
  throw new Error('found no free port pair (port, port+10000) for a Redis cluster node')
}

// ---------------------------------------------------------------------------
// Raw TCP

function exchange (target: Endpoint, payload: string, isComplete: (reply: Buffer) => boolean, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const where = `${target.host}:${target.port}`
    let reply = Buffer.alloc(0)
    let settled = false
    const socket: Socket = target.tls === true
      ? tlsConnect({ host: target.host, port: target.port, rejectUnauthorized: false })
      : netConnect({ host: target.host, port: target.port })
    const finish = (err: Error | undefined): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if (err === undefined) resolve(reply)
      else reject(err)
    }
    const timer = setTimeout(() => finish(new Error(`no reply from ${where} within ${timeoutMs} ms`)), timeoutMs)
    socket.once(target.tls === true ? 'secureConnect' : 'connect', () => socket.write(payload))
    socket.on('data', (chunk: Buffer) => {
      reply = Buffer.concat([reply, chunk])
      if (isComplete(reply)) finish(undefined)
    })
    socket.once('error', (err) => finish(new Error(`${where}: ${err.message}`)))
    socket.once('close', () => finish(new Error(`${where} closed the connection before replying`)))
  })
}

/** A decoded RESP2 reply; error replies are thrown, so they never appear here. */
export type RespReply = string | number | null | RespReply[]
type RespValue = string | number | null | Error | RespValue[]

function encodeResp (args: string[]): string {
  let out = `*${args.length}\r\n`
  for (const arg of args) out += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`
  return out
}

// RESP2 only: the server never sees HELLO 3, so it never sends RESP3 types.
function parseResp (buf: Buffer, offset: number): { value: RespValue, next: number } | undefined {
  const eol = buf.indexOf('\r\n', offset)
  if (eol < 0) return undefined
  const line = buf.toString('utf8', offset + 1, eol)
  switch (String.fromCharCode(buf[offset] ?? 0)) {
    case '+': return { value: line, next: eol + 2 }
    case '-': return { value: new Error(line), next: eol + 2 }
    case ':': return { value: Number(line), next: eol + 2 }
    case '$': {
      const len = Number(line)
      if (len < 0) return { value: null, next: eol + 2 }
      const end = eol + 2 + len
      if (buf.length < end + 2) return undefined
      return { value: buf.toString('utf8', eol + 2, end), next: end + 2 }
    }
    case '*': {
      const len = Number(line)
      if (len < 0) return { value: null, next: eol + 2 }
      return parseSequence(buf, eol + 2, len)
    }
    default: throw new Error(`unsupported RESP reply: ${JSON.stringify(buf.toString('utf8', offset, eol).slice(0, 40))}`)
  }
}

function parseSequence (buf: Buffer, offset: number, count: number): { value: RespValue[], next: number } | undefined {
  const value: RespValue[] = []
  let next = offset
  while (value.length < count) {
    const parsed = parseResp(buf, next)
    if (parsed === undefined) return undefined
    value.push(parsed.value)
    next = parsed.next
  }
  return { value, next }
}

function firstError (value: RespValue): Error | undefined {
  if (value instanceof Error) return value
  if (Array.isArray(value)) for (const item of value) { const err = firstError(item); if (err !== undefined) return err }
  return undefined
}

/** One Redis command over a fresh raw connection (AUTH first when the endpoint has a password). */
export async function redisCommand (target: Endpoint, args: string[], timeoutMs = 1_000): Promise<RespReply> {
  const commands = target.password === undefined
    ? [args]
    : [target.username === undefined ? ['AUTH', target.password] : ['AUTH', target.username, target.password], args]
  const payload = commands.map(encodeResp).join('')
  const reply = await exchange(target, payload, (buf) => parseSequence(buf, 0, commands.length) !== undefined, timeoutMs)
  const values = parseSequence(reply, 0, commands.length)?.value ?? []
  for (const value of values) {
    const err = firstError(value)
    if (err !== undefined) throw new Error(`redis ${args[0] ?? ''}: ${err.message}`)
  }
  return values[values.length - 1] as RespReply
}

const MEMCACHED_TERMINAL = /^(END|STORED|NOT_STORED|EXISTS|NOT_FOUND|DELETED|TOUCHED|OK|ERROR|VERSION .*|CLIENT_ERROR .*|SERVER_ERROR .*|\d+)$/

// A reply is complete at its terminal line; VALUE blocks are skipped by their byte
// count so a stored value that happens to contain "END" cannot end it early.
function memcachedReplyComplete (buf: Buffer): boolean {
  let offset = 0
  for (;;) {
    const eol = buf.indexOf('\r\n', offset)
    if (eol < 0) return false
    const line = buf.toString('latin1', offset, eol)
    if (line.startsWith('VALUE ')) {
      const bytes = Number(line.split(' ')[3])
      offset = eol + 2 + bytes + 2
      if (buf.length < offset) return false
      continue
    }
    if (MEMCACHED_TERMINAL.test(line)) return true
    offset = eol + 2
  }
}

/** One memcached text-protocol command (payload includes its CRLFs); returns the raw reply. */
export async function memcachedCommand (target: Endpoint, payload: string, timeoutMs = 1_000): Promise<string> {
  const reply = await exchange(target, payload, memcachedReplyComplete, timeoutMs)
  return reply.toString('utf8')
}

async function pingRedis (target: Endpoint, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  try {
    return await redisCommand(target, ['PING'], timeoutMs) === 'PONG'
  } catch {
    return false
  }
}

async function pingMemcached (target: Endpoint, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  try {
    return (await memcachedCommand(target, 'version\r\n', timeoutMs)).startsWith('VERSION ')
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------
// Spawned processes

interface ProcessSpec {
  name: string
  command: string
  args: string[]
  port: number
  ready: () => Promise<boolean>
  /** Removed on stop(); kept across kill()/restart() so cluster state survives. */
  dir?: string
  /** Signal stop() sends first; defaults to SIGTERM. */
  stopSignal?: NodeJS.Signals
}

const shellQuote = (arg: string): string => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

class ManagedProcess {
  private child: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()
  private output = ''

  constructor (private readonly spec: ProcessSpec) {}

  /** Spawn and wait for the readiness probe; rejects with the server's output on failure. */
  async start (): Promise<void> {
    installExitHook()
    this.output = ''
    const child = spawn(this.spec.command, this.spec.args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    // A test that forgets stop() must still end (the exit hook then kills the server);
    // every wait below has its own timer, so nothing needs the child to hold the loop open.
    child.unref()
    ;(child.stdout as unknown as Socket | null)?.unref()
    ;(child.stderr as unknown as Socket | null)?.unref()
    let exitInfo: string | undefined
    let spawnError: Error | undefined
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        exitInfo = signal !== null ? `signal ${signal}` : `code ${String(code)}`
        if (child.pid !== undefined) {
          live.delete(child.pid)
          tellWatchdog('- ' + String(child.pid))
        }
        resolve()
      })
      child.once('error', (err) => {
        // ENOENT etc.: no 'exit' follows a failed spawn.
        spawnError = err
        exitInfo = err.message
        resolve()
      })
    })
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES)
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    if (child.pid !== undefined) {
      live.set(child.pid, child)
      tellWatchdog('+ ' + String(child.pid))
    }

    const deadline = Date.now() + READY_TIMEOUT_MS
    while (Date.now() < deadline) {
      if (exitInfo !== undefined) break
      if (await this.spec.ready()) return
      await delay(50)
    }
    if (spawnError === undefined && exitInfo === undefined) await this.kill()
    const why = spawnError !== undefined
      ? `could not run ${this.spec.command}: ${spawnError.message} (is it installed? see scripts/ensure-servers.js)`
      : exitInfo !== undefined
        ? `exited early (${exitInfo})`
        : `did not answer within ${READY_TIMEOUT_MS} ms`
    throw new Error(`${this.spec.name} on ${HOST}:${this.spec.port} ${why}\n` +
      `command: ${[this.spec.command, ...this.spec.args].map(shellQuote).join(' ')}\n` +
      `output:\n${this.output.trim() === '' ? '(none)' : this.output}`)
  }

  get pid (): number | undefined {
    return this.child?.pid
  }

  get outputTail (): string {
    return this.output
  }

  private get running (): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  private async waitExit (ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
    const result = await Promise.race([this.exited.then(() => true), timedOut])
    clearTimeout(timer)
    return result
  }

  async stop (): Promise<void> {
    if (this.running) {
      // A SIGSTOPped process would queue SIGTERM forever.
      this.child?.kill('SIGCONT')
      this.child?.kill(this.spec.stopSignal ?? 'SIGTERM')
      if (!(await this.waitExit(EXIT_TIMEOUT_MS))) await this.kill()
    }
    if (this.spec.dir !== undefined) removeDir(this.spec.dir)
  }

  async kill (): Promise<void> {
    if (!this.running) return
    this.child?.kill('SIGKILL')
    if (!(await this.waitExit(EXIT_TIMEOUT_MS))) {
      throw new Error(`${this.spec.name} (pid ${String(this.child?.pid)}) survived SIGKILL for ${EXIT_TIMEOUT_MS} ms`)
    }
  }

  pause (): void {
    if (!this.running) throw new Error(`${this.spec.name} is not running`)
    this.child?.kill('SIGSTOP')
    // kill() returns before the process has stopped: a command sent right after could still be
    // answered. Wait (briefly, synchronously) until the kernel reports it stopped.
    const pid = this.child?.pid
    if (pid === undefined) return
    const deadline = Date.now() + 1_000
    while (Date.now() < deadline && processState(pid) !== 'T') { /* spin: a stop lands within microseconds */ }
  }

  resume (): void {
    if (!this.running) throw new Error(`${this.spec.name} is not running`)
    this.child?.kill('SIGCONT')
  }

  async restart (): Promise<void> {
    if (this.running) await this.kill()
    await this.start()
  }
}

/** The one-letter state of a process (R, S, T for stopped...) from /proc, or '' where there is none. */
function processState (pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  } catch {
    return ''
  }
}

/** Retries a fresh port when another process grabbed ours between probe and bind. */
async function startOnFreePort (build: (port: number) => ManagedProcess, pickPort: () => Promise<number> = freePort): Promise<{ proc: ManagedProcess, port: number }> {
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await pickPort()
    const proc = build(port)
    try {
      await proc.start()
      return { proc, port }
    } catch (err) {
      lastError = err
      await proc.stop()
      if (!/address already in use|failed to listen/i.test(proc.outputTail)) throw err
    }
  }
  throw lastError
}

// ---------------------------------------------------------------------------
// Docker (testcontainers): optional, never a hard dependency.

function dockerAnswers (): Promise<boolean> {
  const hostEnv = process.env.DOCKER_HOST
  let options: { path: string } | { host: string, port: number } = { path: '/var/run/docker.sock' }
  if (hostEnv !== undefined && hostEnv !== '') {
    let url: URL
    try {
      url = new URL(hostEnv)
    } catch {
      return Promise.resolve(false)
    }
    if (url.protocol === 'unix:') options = { path: url.pathname }
    else if (url.protocol === 'tcp:' || url.protocol === 'http:' || url.protocol === 'https:') options = { host: url.hostname, port: Number(url.port || 2375) }
    // ssh:// and npipe:// cannot be probed cheaply; fall back to spawning.
    else return Promise.resolve(false)
  }
  return new Promise((resolve) => {
    const socket = netConnect(options)
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(300, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

interface ContainerEndpoint { host: string, port: number, stop: () => Promise<void> }

async function startContainer (image: string, containerPort: number): Promise<ContainerEndpoint | undefined> {
  if (process.env.EMBER_CACHE_TEST_DOCKER === '0' || !(await dockerAnswers())) return undefined
  // testcontainers is optional: a variable specifier keeps tsc and the CommonJS
  // output from needing it, and a failed import just means "spawn instead".
  const moduleName = 'testcontainers'
  let tc: any
  try {
    tc = await import(moduleName)
  } catch {
    return undefined
  }
  const container = await new tc.GenericContainer(image).withExposedPorts(containerPort).start()
  return {
    host: container.getHost() as string,
    port: container.getMappedPort(containerPort) as number,
    stop: async () => { await container.stop() }
  }
}

// ---------------------------------------------------------------------------
// Redis

function redisHandle (target: Endpoint, url: string, managed: boolean, ops: Pick<ServerHandle, 'stop' | 'kill' | 'pause' | 'resume' | 'restart'>): RedisServer {
  return {
    // Carries REDIS_URL's tls/credentials, so redisCommand(server, ...) just works.
    ...target,
    url,
    managed,
    ...ops,
    async clientCount () {
      const info = await redisCommand(target, ['INFO', 'clients'])
      const match = /connected_clients:(\d+)/.exec(String(info))
      if (match === null) throw new Error(`INFO clients had no connected_clients: ${String(info)}`)
      return Number(match[1]) - 1
    },
    async flushAll () {
      await redisCommand(target, ['FLUSHALL'])
    }
  }
}

const UNMANAGED_OPS = {
  kill: async (): Promise<void> => unmanaged(),
  pause: (): void => unmanaged(),
  resume: (): void => unmanaged(),
  restart: async (): Promise<void> => unmanaged()
}

function endpointFromRedisUrl (raw: string): Endpoint {
  const url = new URL(raw)
  return {
    host: url.hostname,
    port: Number(url.port || 6379),
    tls: url.protocol === 'rediss:',
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password)
  }
}

function spawnRedis (port: number, extraArgs: (dir: string) => string[]): ManagedProcess {
  const dir = trackDir(`ember-cache-redis-${port}-`)
  const target = { host: HOST, port }
  const proc = new ManagedProcess({
    name: 'redis-server',
    command: 'redis-server',
    port,
    dir,
    // Protected mode stays on: loopback-only bind, no password, nothing reachable from outside.
    args: ['--port', String(port), '--bind', HOST, '--protected-mode', 'yes', '--daemonize', 'no',
      '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs(dir)],
    ready: () => pingRedis(target)
  })
  return proc
}

function managedRedis (proc: ManagedProcess, port: number): RedisServer {
  return redisHandle({ host: HOST, port }, `redis://${HOST}:${port}`, true, {
    stop: () => proc.stop(),
    kill: () => proc.kill(),
    pause: () => proc.pause(),
    resume: () => proc.resume(),
    restart: () => proc.restart()
  })
}

export async function startRedis (options: StartRedisOptions = {}): Promise<RedisServer> {
  const envUrl = process.env.REDIS_URL
  if (envUrl !== undefined && envUrl !== '') {
    const target = endpointFromRedisUrl(envUrl)
    if (!(await pingRedis(target, 2_000))) throw new Error(`REDIS_URL=${envUrl} does not answer PING`)
    return redisHandle(target, envUrl, false, { stop: async () => {}, ...UNMANAGED_OPS })
  }

  const container = await startContainer('redis:7-alpine', 6379)
  if (container !== undefined) {
    const target = { host: container.host, port: container.port }
    return redisHandle(target, `redis://${target.host}:${target.port}`, false, { stop: container.stop, ...UNMANAGED_OPS })
  }

  const { proc, port } = await startOnFreePort((p) => spawnRedis(p, () => options.extraArgs ?? []))
  return managedRedis(proc, port)
}

// ---------------------------------------------------------------------------
// Memcached

function endpointsFromMemcachedUrl (raw: string): Endpoint[] {
  return raw.split(',').map((entry) => {
    // Accept memjs-style entries: [memcached://][user:pass@]host[:port]
    const hostPort = entry.trim().replace(/^[a-z]+:\/\//i, '').replace(/^.*@/, '')
    const colon = hostPort.lastIndexOf(':')
    return colon < 0
      ? { host: hostPort, port: 11211 }
      : { host: hostPort.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(colon + 1)) }
  })
}

function memcachedHandle (targets: Endpoint[], servers: string, managed: boolean, ops: Pick<ServerHandle, 'stop' | 'kill' | 'pause' | 'resume' | 'restart'>): MemcachedServer {
  const first = targets[0]
  if (first === undefined) throw new Error('no memcached server given')
  return {
    servers,
    host: first.host,
    port: first.port,
    managed,
    ...ops,
    async flushAll () {
      for (const target of targets) {
        const reply = await memcachedCommand(target, 'flush_all\r\n')
        if (!reply.startsWith('OK')) throw new Error(`flush_all on ${target.host}:${target.port} replied ${reply.trim()}`)
      }
    },
    async itemCount () {
      let total = 0
      for (const target of targets) {
        const stats = await memcachedCommand(target, 'stats\r\n')
        const match = /STAT curr_items (\d+)/.exec(stats)
        if (match === null) throw new Error(`stats on ${target.host}:${target.port} had no curr_items`)
        total += Number(match[1])
      }
      return total
    }
  }
}

export async function startMemcached (): Promise<MemcachedServer> {
  const envUrl = process.env.MEMCACHED_URL
  if (envUrl !== undefined && envUrl !== '') {
    const targets = endpointsFromMemcachedUrl(envUrl)
    for (const target of targets) {
      if (!(await pingMemcached(target, 2_000))) throw new Error(`MEMCACHED_URL entry ${target.host}:${target.port} does not answer version`)
    }
    return memcachedHandle(targets, envUrl, false, { stop: async () => {}, ...UNMANAGED_OPS })
  }

  const container = await startContainer('memcached:1.6-alpine', 11211)
  if (container !== undefined) {
    const target = { host: container.host, port: container.port }
    return memcachedHandle([target], `${target.host}:${target.port}`, false, { stop: container.stop, ...UNMANAGED_OPS })
  }

  const { proc, port } = await startOnFreePort((p) => new ManagedProcess({
    name: 'memcached',
    command: 'memcached',
    port: p,
    // -U 0: no UDP listener (amplification risk, and a second port to collide on).
    // memcached refuses to run as root unless told which user to keep.
    args: ['-l', HOST, '-p', String(p), '-U', '0', '-m', '64', ...(process.getuid?.() === 0 ? ['-u', 'root'] : [])],
    // memcached only notices SIGTERM on its once-a-second clock tick, and it keeps
    // nothing on disk, so a graceful stop buys nothing but a 1 s wait per test file.
    stopSignal: 'SIGKILL',
    ready: () => pingMemcached({ host: HOST, port: p })
  }))
  return memcachedHandle([{ host: HOST, port }], `${HOST}:${port}`, true, {
    stop: () => proc.stop(),
    kill: () => proc.kill(),
    pause: () => proc.pause(),
    resume: () => proc.resume(),
    restart: () => proc.restart()
  })
}

// ---------------------------------------------------------------------------
// Redis Cluster: 3 masters, no replicas, always spawned locally.

function runRedisCli (args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`redis-cli ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`))
      else resolve(stdout)
    })
  })
}

async function clusterSettled (nodes: Endpoint[]): Promise<string | undefined> {
  for (const node of nodes) {
    let info: string
    try {
      info = String(await redisCommand(node, ['CLUSTER', 'INFO'], PROBE_TIMEOUT_MS))
    } catch (err) {
      return `${node.port}: ${(err as Error).message}`
    }
    // Every node must agree, not just one: clients may ask any node for the slot map.
    if (!info.includes('cluster_state:ok') ||
      !info.includes(`cluster_slots_assigned:${CLUSTER_SLOTS}`) ||
      !info.includes(`cluster_known_nodes:${nodes.length}`)) {
      return `${node.port}: ${info.replace(/\r\n/g, ' ').slice(0, 200)}`
    }
  }
  return undefined
}

export async function startRedisCluster (): Promise<RedisClusterHandle> {
  const taken = new Set<number>()
  const servers: RedisServer[] = []
  const stopAll = async (): Promise<void> => { await Promise.all(servers.map(async (s) => await s.stop())) }
  try {
    for (let i = 0; i < 3; i++) {
      const { proc, port } = await startOnFreePort((p) => spawnRedis(p, (dir) => [
        // The node config lives in the node's own dir, so restart() rejoins the cluster from it.
        '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${p}.conf`),
        '--cluster-node-timeout', '2000'
      ]), () => freeClusterPort(taken))
      servers.push(managedRedis(proc, port))
    }
    const nodes = servers.map((s) => ({ host: s.host, port: s.port }))
    await runRedisCli(['--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`),
      '--cluster-replicas', '0', '--cluster-yes'], 10_000)

    const waitForOk = async (timeoutMs = CLUSTER_READY_TIMEOUT_MS): Promise<void> => {
      const deadline = Date.now() + timeoutMs
      let pending = await clusterSettled(nodes)
      while (pending !== undefined && Date.now() < deadline) {
        await delay(100)
        pending = await clusterSettled(nodes)
      }
      if (pending !== undefined) throw new Error(`redis cluster not ok within ${timeoutMs} ms; ${pending}`)
    }
    await waitForOk()

    return {
      nodes,
      servers,
      waitForOk,
      // FLUSHALL is per node in a cluster.
      async flushAll () { await Promise.all(servers.map(async (s) => await s.flushAll())) },
      stop: stopAll
    }
  } catch (err) {
    await stopAll()
    throw err
  }
}

// ---------------------------------------------------------------------------
// Varnish (issue 31): the edge in front of an app, always spawned locally, with the VCL the
// repository ships (docs/varnish/default.vcl) pointed at the app's port.

export interface VarnishServer extends ServerHandle {
  /** http://127.0.0.1:<port>, for requests and for varnishPurgers({ servers }). */
  url: string
}

/** Varnish in front of 127.0.0.1:`backendPort`, on `port` when given (else a free one). */
export async function startVarnish (backendPort: number, port?: number): Promise<VarnishServer> {
  const dir = trackDir('ember-varnish-')
  // varnishd drops privileges: its workers must read the VCL and the working directory.
  chmodSync(dir, 0o755)
  const vcl = readFileSync(join(__dirname, '..', '..', 'docs', 'varnish', 'default.vcl'), 'utf8')
    .replace(/\.host = "[^"]*";/, `.host = "${HOST}";`).replace(/\.port = "\d+";/, `.port = "${backendPort}";`)
  writeFileSync(join(dir, 'default.vcl'), vcl, { mode: 0o644 })
  const { proc, port: listening } = await startOnFreePort((p) => new ManagedProcess({
    name: 'varnishd',
    // Debian puts it in /usr/sbin, which a non-root PATH may lack.
    command: existsSync('/usr/sbin/varnishd') ? '/usr/sbin/varnishd' : 'varnishd',
    port: p,
    args: ['-F', '-n', join(dir, 'work'), '-a', `${HOST}:${p}`, '-f', join(dir, 'default.vcl'), '-s', 'malloc,32m', '-p', 'ban_lurker_sleep=0.01'],
    ready: () => varnishAnswers(p)
  }), port === undefined ? freePort : async () => port)
  return {
    host: HOST,
    port: listening,
    url: `http://${HOST}:${listening}`,
    managed: true,
    stop: async () => { await proc.stop(); removeDir(dir) },
    // varnishd -F is the manager; requests are served by the cache process it forks: kill,
    // pause and resume reach both (a killed manager's child went on answering for a moment).
    kill: async () => { signalChildren(proc.pid, 'SIGKILL'); await proc.kill() },
    pause: () => { proc.pause(); signalChildren(proc.pid, 'SIGSTOP') },
    resume: () => { signalChildren(proc.pid, 'SIGCONT'); proc.resume() },
    restart: () => proc.restart(),
    flushAll: async () => { await fetch(`http://${HOST}:${listening}/`, { method: 'BAN' }) }
  }
}

/** Sends a signal to the processes `pid` forked (from /proc: no pgrep needed). */
function signalChildren (pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try { stat = readFileSync(`/proc/${entry}/stat`, 'utf8') } catch { continue }
    // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (ppid === pid) {
      try { process.kill(Number(entry), signal) } catch {}
    }
  }
}

/** Varnish's child answers (a purge of a tag nobody has is harmless). */
async function varnishAnswers (port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://${HOST}:${port}/`, { method: 'PURGE', headers: { 'xkey-purge': 'ember-probe' }, signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) })
    return response.status === 200
  } catch {
    return false
  }
}
