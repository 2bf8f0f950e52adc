// Small tools for backend and fault tests: bounded waits, timed requests, captured logs and
// a count of the handles that keep the process alive. Every wait here has a deadline.

import { Writable } from 'node:stream'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` every `everyMs` until it returns true; throws after `timeoutMs`. */
export async function waitFor (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 3_000, everyMs = 25): Promise<number> {
  const started = Date.now()
  const deadline = started + timeoutMs
  for (;;) {
    if (await check()) return Date.now() - started
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

export interface Timed {
  url: string
  status: number
  xCache: string
  body: string
  ms: number
}

/** One injected GET, with its wall time. */
export async function timedGet (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<Timed> {
  const started = performance.now()
  const res: LightMyRequestResponse = await app.inject({ method: 'GET', url, headers })
  return { url, status: res.statusCode, xCache: String(res.headers['x-cache']), body: res.body, ms: performance.now() - started }
}

/** Sends `count` requests one after the other (fresh URLs from `urlOf`), timing each. */
export async function sequential (app: FastifyInstance, count: number, urlOf: (i: number) => string): Promise<Timed[]> {
  const out: Timed[] = []
  for (let i = 0; i < count; i++) out.push(await timedGet(app, urlOf(i)))
  return out
}

/**
 * Repeats `attempt` (at most `maxAttempts` times, `everyMs` apart) until it returns true.
 * Returns how many attempts it took; throws when it never did.
 */
export async function retryUntil (what: string, attempt: () => Promise<boolean>, maxAttempts: number, everyMs: number): Promise<number> {
  for (let i = 1; i <= maxAttempts; i++) {
    if (await attempt()) return i
    await sleep(everyMs)
  }
  throw new Error(`${what}: not reached within ${maxAttempts} attempts ${everyMs} ms apart`)
}

export interface Summary { count: number, max: number, p50: number, over: (ms: number) => number }

export function summarize (results: Timed[]): Summary {
  const times = results.map((r) => r.ms).sort((a, b) => a - b)
  return {
    count: times.length,
    max: times[times.length - 1] ?? 0,
    p50: times[Math.floor(times.length / 2)] ?? 0,
    over: (ms) => times.filter((time) => time >= ms).length
  }
}

export interface LogLine { level: number, msg: string, [field: string]: unknown }

/** A pino destination that keeps every line parsed, for `Fastify({ logger: { stream } })`. */
export function logCapture (): { stream: Writable, lines: LogLine[], count: (msg: string | RegExp) => number } {
  const lines: LogLine[] = []
  let partial = ''
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      partial += chunk.toString('utf8')
      let eol
      while ((eol = partial.indexOf('\n')) !== -1) {
        const line = partial.slice(0, eol)
        partial = partial.slice(eol + 1)
        if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine)
      }
      callback()
    }
  })
  const count = (msg: string | RegExp): number => lines.filter((line) => typeof msg === 'string' ? line.msg === msg : msg.test(line.msg)).length
  return { stream, lines, count }
}

/** The kinds of handle that would keep a finished process alive, counted. */
export function liveHandles (): { sockets: number, timers: number } {
  const info = process.getActiveResourcesInfo()
  return {
    sockets: info.filter((kind) => kind === 'TCPSocketWrap' || kind === 'TLSWrap').length,
    timers: info.filter((kind) => kind === 'Timeout').length
  }
}
