import { nestedNames } from './option-spec'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CacheEntry } from './entry'
import { InvalidOptionError } from './errors'
import { checkNonNegativeInteger, checkObject, describe, isToken, rejectUnknown } from './validate'

// Read your own writes, fleet-wide (the plugin's `readYourWrites` option). A write route that
// answers 2xx/3xx gives its caller a short-lived cookie holding when the write was done, on the
// cache backend's clock, signed with the plugin's key hash. A read that carries it does not use
// an entry stored before that time, on any instance (an L1 copy the bus has not reached yet, a
// Memcached copy during an incident): it runs the handler, whose answer is stored as usual. Only
// the writer pays, and only for keys whose entry predates its write; a forged or expired cookie
// is ignored.

export interface ReadYourWritesOptions {
  /** Seconds after a write during which its caller's reads skip older entries. Default 10. */
  window?: number
  /** The cookie's name. Default 'ember-ryw'. */
  cookie?: string
}

export interface ReadYourWrites {
  cookie: string
  windowMs: number
}

const OPTIONS: ReadonlySet<string> = nestedNames('readYourWrites')
/** A writer's clock may run this far ahead of a reader's backend clock before its mark is refused. */
const FUTURE_SLACK_MS = 5_000

export function readYourWritesSettings (given: boolean | ReadYourWritesOptions | undefined, hasSecret: boolean): ReadYourWrites | undefined {
  if (given === undefined || given === false) return undefined
  // The default secret is random per process: another instance could not verify a mark.
  if (!hasSecret) throw new InvalidOptionError('readYourWrites', 'needs keyHashSecret, the same on every instance: it signs the marks that any instance must verify')
  const options = given === true ? {} : given
  checkObject('readYourWrites', options)
  rejectUnknown('readYourWrites.', options, OPTIONS)
  checkNonNegativeInteger('readYourWrites.window', options.window)
  if (options.cookie !== undefined && !isToken(options.cookie)) {
    throw new InvalidOptionError('readYourWrites.cookie', 'expected a cookie name, got ' + describe(options.cookie))
  }
  return { cookie: options.cookie ?? 'ember-ryw', windowMs: (options.window ?? 10) * 1000 }
}

/** Gives a writer its mark: now on the backend's clock, signed. */
export function markWrite (reply: FastifyReply, settings: ReadYourWrites, now: number, sign: (text: string) => string, secure: boolean): void {
  const value = String(now) + '.' + sign('ryw:' + String(now))
  const cookie = `${settings.cookie}=${value}; Max-Age=${Math.ceil(settings.windowMs / 1000)}; Path=/; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`
  const existing = reply.getHeader('set-cookie')
  reply.header('set-cookie', existing === undefined ? cookie : [...(Array.isArray(existing) ? existing : [String(existing)]), cookie])
}

/** The time of the caller's last write (backend clock), when it is signed, recent and not from the future. */
export function writeMarkOf (request: FastifyRequest, settings: ReadYourWrites, now: number, sign: (text: string) => string): number | undefined {
  const header = request.headers.cookie
  if (header === undefined) return undefined
  const at = header.indexOf(settings.cookie + '=')
  if (at === -1 || (at > 0 && header[at - 1] !== ' ' && header[at - 1] !== ';')) return undefined
  const end = header.indexOf(';', at)
  const value = header.slice(at + settings.cookie.length + 1, end === -1 ? undefined : end).trim()
  const dot = value.indexOf('.')
  if (dot === -1) return undefined
  const time = Number(value.slice(0, dot))
  if (!Number.isSafeInteger(time) || time > now + FUTURE_SLACK_MS || time < now - settings.windowMs) return undefined
  return value.slice(dot + 1) === sign('ryw:' + String(time)) ? time : undefined
}

/** True when an entry was stored before the caller's write (both on the backend's clock). */
export function predatesWrite (entry: CacheEntry, writtenAt: number, clockOffset: number): boolean {
  return entry.storedAt + clockOffset < writtenAt
}
