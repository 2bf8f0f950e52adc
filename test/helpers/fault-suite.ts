// Real faults against a real server: killed, SIGSTOPped, down at start-up. Run by
// faults-redis and faults-memcached. Each scenario gets its own server, so one scenario's
// corpse never leaks into the next. Every request must be answered 200 within a bound;
// caching must come back by itself; the log must say so once per incident.

import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { type EmberCache } from '../../lib/index'
import type { ServerHandle } from './servers'
import { liveHandles, logCapture, retryUntil, sequential, sleep, summarize, timedGet, waitFor, type Timed } from './fault-kit'

/** Short, so the tests are quick and the bounds below mean something. */
export const FAULT_OPTIONS = {
  commandTimeout: 100,
  connectTimeout: 500,
  circuitBreaker: { threshold: 3, cooldownMs: 300 }
} as const

// No request may take this long, whatever the backend does (commandTimeout is 100 ms; the
// slack covers a lookup and a store each timing out, plus a loaded CI machine).
const REQUEST_BOUND_MS = 1_000
// A request that skips the backend (breaker open) is this fast.
const FAST_MS = 50
const FAILING = /cache backend failing/
const BACK = /cache backend is back/

export interface FaultTarget<S extends ServerHandle> {
  start: () => Promise<S>
  /** A cache on `server` with FAULT_OPTIONS and this key prefix. */
  makeCache: (server: S, keyPrefix: string) => EmberCache
}

/**
 * SIGSTOP lands when the kernel next schedules the server: on a busy machine a request sent
 * at once may still be answered. A short wait makes "paused" mean paused.
 */
export async function pause (server: ServerHandle): Promise<void> {
  server.pause()
  await sleep(50)
}

function resumeQuietly (server: ServerHandle): void {
  try {
    server.resume()
  } catch {
    // Not running (killed): nothing to resume.
  }
}

export function runFaultSuite<S extends ServerHandle> (t: Test, name: string, target: FaultTarget<S>): void {
  let prefixes = 0

  /** A server for one scenario; undefined (and the test skipped) when it is not ours to kill. */
  async function server (t: Test): Promise<S | undefined> {
    const started = await target.start()
    t.teardown(async () => {
      // A SIGSTOPped server must never outlive its test.
      resumeQuietly(started)
      await started.stop()
    })
    if (started.managed) return started
    t.plan(0, 'fault injection needs a harness-managed server (REDIS_URL/MEMCACHED_URL or Docker in use)')
    return undefined
  }

  async function faultApp (t: Test, srv: S, options: { logs?: ReturnType<typeof logCapture> } = {}): Promise<{ app: FastifyInstance, cache: EmberCache }> {
    const cache = target.makeCache(srv, `fault${++prefixes}:`)
    const app = Fastify(options.logs === undefined ? {} : { logger: { level: 'info', stream: options.logs.stream } })
    let closed = false
    t.teardown(async () => { if (!closed) await app.close() })
    app.addHook('onClose', async () => { closed = true })
    await app.register(emberCache)
    let runs = 0
    app.get('/item/:id', { config: { cache: { cache, ttl: 60 } } }, async (request) => ({ id: (request.params as { id: string }).id, n: ++runs }))
    return { app, cache }
  }

  /** Fresh URLs until one is stored (MISS) and then served (HIT); returns the attempts it took. */
  async function cachingResumes (app: FastifyInstance, label: string): Promise<{ attempts: number, ms: number }> {
    const started = Date.now()
    let n = 0
    const attempts = await retryUntil(`${name}: caching to resume (${label})`, async () => {
      const url = `/item/${label}-${++n}`
      const first = await timedGet(app, url)
      if (first.status !== 200) throw new Error(`${url} answered ${first.status}`)
      if (first.xCache !== 'MISS') return false
      return (await timedGet(app, url)).xCache === 'HIT'
    }, 60, 100)
    return { attempts, ms: Date.now() - started }
  }

  function allAnswered (t: Test, results: Timed[], what: string): void {
    const bad = results.filter((r) => r.status !== 200)
    t.equal(bad.length, 0, `${what}: all ${results.length} answered 200` + (bad.length > 0 ? ` (not: ${JSON.stringify(bad.slice(0, 3))})` : ''))
    const { max, p50 } = summarize(results)
    t.ok(max < REQUEST_BOUND_MS, `${what}: slowest ${max.toFixed(0)} ms (p50 ${p50.toFixed(1)} ms), bound ${REQUEST_BOUND_MS} ms`)
  }

  t.test(`${name}: down at start-up: the app starts in time, serves BYPASS, caches once it is back`, async (t) => {
    const srv = await server(t)
    if (srv === undefined) return
    await srv.kill()
    const { app } = await faultApp(t, srv)
    const started = performance.now()
    await app.ready()
    const readyMs = performance.now() - started
    t.ok(readyMs < FAULT_OPTIONS.connectTimeout + 500, `app.ready() took ${readyMs.toFixed(0)} ms (connectTimeout ${FAULT_OPTIONS.connectTimeout} ms)`)

    const down = await sequential(app, 10, (i) => `/item/down-${i}`)
    allAnswered(t, down, 'while down')
    t.ok(down.every((r) => r.xCache === 'BYPASS'), 'every answer says x-cache: BYPASS')

    await srv.restart()
    const { attempts, ms } = await cachingResumes(app, 'up')
    t.ok(attempts <= 40, `caching resumed by itself: MISS then HIT after ${attempts} attempt(s), ${ms} ms after restart`)
  })

  t.test(`${name}: SIGSTOPped at start-up: app.ready() resolves within connectTimeout; caching resumes after SIGCONT`, async (t) => {
    const srv = await server(t)
    if (srv === undefined) return
    // The port still accepts connections (kernel backlog), but nothing answers: the connect
    // cannot fail fast, so this is where connectTimeout is the only bound.
    await pause(srv)
    const { app } = await faultApp(t, srv)
    const started = performance.now()
    await app.ready()
    const readyMs = performance.now() - started
    t.ok(readyMs < FAULT_OPTIONS.connectTimeout + 500, `app.ready() took ${readyMs.toFixed(0)} ms (connectTimeout ${FAULT_OPTIONS.connectTimeout} ms)`)
    const down = await sequential(app, 10, (i) => `/item/stopped-${i}`)
    allAnswered(t, down, 'while stopped')
    t.ok(down.every((r) => r.xCache === 'BYPASS'), 'every answer says x-cache: BYPASS')
    srv.resume()
    const { attempts, ms } = await cachingResumes(app, 'continued')
    t.ok(attempts <= 40, `caching resumed after SIGCONT: ${attempts} attempt(s), ${ms} ms`)
  })

  t.test(`${name}: killed mid-traffic: every request answered in time; caching resumes after restart`, async (t) => {
    const srv = await server(t)
    if (srv === undefined) return
    const { app } = await faultApp(t, srv)
    await app.ready()
    t.equal((await timedGet(app, '/item/warm')).xCache, 'MISS')
    t.equal((await timedGet(app, '/item/warm')).xCache, 'HIT')

    const results: Array<Timed & { at: number }> = []
    const began = Date.now()
    const stopAt = began + 1_200
    // Four clients in parallel over 20 keys, paced so they measure us, not the CPU.
    const workers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; Date.now() < stopAt; i++) {
        results.push({ ...(await timedGet(app, `/item/k${(w * 7 + i) % 20}`)), at: Date.now() - began })
        await sleep(2)
      }
    })
    await sleep(300)
    const killedAt = Date.now() - began
    await srv.kill()
    await Promise.all(workers)

    allAnswered(t, results, `${results.length} requests across the kill`)
    t.ok(results.some((r) => r.at < killedAt && r.xCache === 'HIT'), 'hits before the kill')
    const after = results.filter((r) => r.at > killedAt + 50)
    t.ok(after.length > 0 && after.every((r) => r.xCache === 'BYPASS'), `all ${after.length} answers after the kill are BYPASS`)

    await srv.restart()
    const { attempts, ms } = await cachingResumes(app, 'restarted')
    t.ok(attempts <= 40, `caching resumed after ${attempts} attempt(s), ${ms} ms after restart`)
  })

  t.test(`${name}: SIGSTOP mid-traffic: a few requests pay the timeout, then the breaker keeps them fast`, async (t) => {
    const srv = await server(t)
    if (srv === undefined) return
    const { app } = await faultApp(t, srv)
    await app.ready()
    for (let i = 0; i < 5; i++) await timedGet(app, `/item/p${i}`)
    t.equal((await timedGet(app, '/item/p0')).xCache, 'HIT', 'warm before the pause')

    await pause(srv)
    const batch = await sequential(app, 30, (i) => `/item/p${i % 5}`)
    allAnswered(t, batch, '30 sequential requests while paused')
    const slow = summarize(batch).over(FAST_MS)
    t.ok(batch.every((r) => r.xCache === 'BYPASS'), 'all BYPASS')
    t.ok(batch[0].ms >= FAULT_OPTIONS.commandTimeout * 0.8, `the first request paid the command timeout (${batch[0].ms.toFixed(0)} ms)`)
    // Expected: 3 (the threshold) plus a probe per cooldown; the slack absorbs a loaded machine.
    t.ok(slow <= 8, `${30 - slow} of 30 under ${FAST_MS} ms; ${slow} paid the timeout (threshold 3, then one probe per ${FAULT_OPTIONS.circuitBreaker.cooldownMs} ms)`)
    t.ok(summarize(batch.slice(3)).p50 < 10, `after the breaker opened: p50 ${summarize(batch.slice(3)).p50.toFixed(1)} ms`)

    srv.resume()
    const { attempts, ms } = await cachingResumes(app, 'resumed')
    t.ok(attempts <= 40, `caching resumed after SIGCONT: ${attempts} attempt(s), ${ms} ms`)
    t.equal((await timedGet(app, '/item/p1')).status, 200)
  })

  t.test(`${name}: one warning per incident, not per request`, async (t) => {
    const srv = await server(t)
    if (srv === undefined) return
    const logs = logCapture()
    const { app, cache } = await faultApp(t, srv, { logs })
    await app.ready()
    await timedGet(app, '/item/w')

    await srv.kill()
    allAnswered(t, await sequential(app, 50, (i) => `/item/a${i % 10}`), 'incident 1 (killed), 50 requests')
    t.equal(logs.count(FAILING), 1, 'incident 1: exactly one "cache backend failing" warning')
    await srv.restart()
    await cachingResumes(app, 'after-kill')
    t.equal(logs.count(BACK), 1, 'incident 1: one "back" line once it recovered')

    await pause(srv)
    allAnswered(t, await sequential(app, 50, (i) => `/item/b${i % 10}`), 'incident 2 (paused), 50 requests')
    t.equal(logs.count(FAILING), 2, 'incident 2: exactly one more warning')
    srv.resume()
    await cachingResumes(app, 'after-pause')
    t.equal(logs.count(BACK), 2, 'incident 2: one more "back" line')

    const warning = logs.lines.find((line) => FAILING.test(line.msg))
    t.equal(warning?.level, 40, 'logged at warn')
    t.match(warning, { cache: cache.name, reason: String, err: { message: String } }, 'with structured fields: the cache, the reason in words and the error')
    t.match(warning?.cache, new RegExp(`^${name}:fault\\d+:@127\\.0\\.0\\.1:\\d+$`), `the cache named by kind, prefix and server (${String(warning?.cache)})`)
    t.match(warning?.reason, /connection|answer in time|refused|closed|disconnected/, `a reason a person understands: ${String(warning?.reason)}`)
    const warnings = logs.lines.filter((line) => line.level >= 40)
    t.equal(warnings.length, 2, `${warnings.length} warn-or-worse lines for 100 failed requests: ${warnings.map((line) => line.msg).join(' | ')}`)
  })

  for (const fault of ['killed', 'paused'] as const) {
    t.test(`${name}: app.close() with the backend ${fault} is prompt and leaves no handle behind`, async (t) => {
      const srv = await server(t)
      if (srv === undefined) return
      const baseline = liveHandles()
      const { app } = await faultApp(t, srv)
      await app.ready()
      await timedGet(app, '/item/c')
      await timedGet(app, '/item/c')
      if (fault === 'killed') await srv.kill()
      else await pause(srv)
      allAnswered(t, await sequential(app, 10, (i) => `/item/c${i}`), `10 requests while ${fault}`)

      const started = performance.now()
      await app.close()
      const closeMs = performance.now() - started
      t.ok(closeMs < 2_000, `app.close() resolved in ${closeMs.toFixed(0)} ms`)
      // Checked while the server is still down or stopped: a socket waiting for its reply
      // would keep the process alive until the server comes back, if it ever does.
      const settleMs = await waitFor('our sockets and timers to go', () => {
        const now = liveHandles()
        return now.sockets <= baseline.sockets && now.timers <= baseline.timers
      }, 1_000).catch((err: Error) => {
        t.fail(`${err.message}: ${JSON.stringify({ baseline, now: liveHandles() })}`)
        return -1
      })
      if (settleMs >= 0) t.pass(`no socket or timer of ours left ${settleMs} ms after close (baseline ${JSON.stringify(baseline)})`)
    })
  }
}
