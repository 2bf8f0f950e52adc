import type { FastifyReply } from 'fastify'
import { mergeVary } from '../http-semantics'
import { COOKIE_NAME_PREFIX } from '../variant'
import type { CacheRequest } from './request-state'

// What a miss's reads of its caller (read-observer.ts) mean for storing its answer
// (README, "Security: per-caller reads"):
// - a header the key does not name: the entry varies on it (learned per key, like a response's
//   own Vary), and downstream caches are told so in Vary;
// - a cookie by name: the entry varies on that cookie's value; downstream caches cannot vary on
//   one cookie, so the answer says private;
// - the session, the user, a named caller property, the caller's address, or every header at
//   once: not stored, unless the route keys per caller (a keyFn; private, for identities that
//   travel in Authorization or Cookie).

export interface ReadsVerdict {
  /** Why the answer is not stored, or undefined. */
  refusal: string | undefined
  /** Cookies the entry varies on, as variant names ('cookie:theme'). */
  cookies: readonly string[]
}

const NOTHING: ReadsVerdict = Object.freeze({ refusal: undefined, cookies: Object.freeze([]) as readonly string[] })

/**
 * Judges what the handler read, and adds the headers the entry varies on to the response's
 * Vary. When a cookie shaped the answer, the caller makes it private (privateOnly) once its
 * storability is decided: a from-response route reads `private` as "do not store".
 */
export function judgeReads (state: CacheRequest, reply: FastifyReply): ReadsVerdict {
  const observer = state.observer
  if (observer === undefined) return NOTHING
  observer.stop()
  const { settings } = state
  const { identities, headers, cookies } = observer
  if (identities === undefined && headers === undefined && cookies === undefined && !observer.allHeaders) return NOTHING
  for (const identity of identities ?? []) {
    if (identityKeyed(state, identity)) continue
    warnOnce(state, identity, identity === 'ip'
      ? `ember-cache: ${settings.label} read the caller's address (request.ip) during a miss; its answer was not stored: key on it with a keyFn, or public: true if it is the same for everyone`
      : settings.callerKey.length > 0
        ? `ember-cache: ${settings.label} read request.${identity} during a miss of a request without the credentials its key holds (${(settings.callerKey as readonly string[]).join(', ')}), so its key cannot tell such callers apart; its answer was not stored: key per caller with a keyFn, or public: true if it is the same for everyone`
        : `ember-cache: ${settings.label} read request.${identity} during a miss; its answer was not stored: add private: true or a keyFn, or public: true if it is the same for everyone`)
    return { refusal: 'read-' + identity, cookies: NOTHING.cookies }
  }
  if (observer.allHeaders) {
    warnOnce(state, 'all-headers', `ember-cache: ${settings.label} read every request header during a miss (it enumerated request.headers); its answer was not stored: read headers by name, or public: true if the answer is the same for everyone`)
    return { refusal: 'read-all-headers', cookies: NOTHING.cookies }
  }
  if (headers !== undefined) {
    reply.header('vary', mergeVary(reply.getHeader('vary'), headers))
    for (const name of headers) {
      noteOnce(state, 'header:' + name, `ember-cache: ${settings.label} read request header ${name} during a miss; its entries vary on it (Vary: ${name}). Say so with varyHeaders, or list it in unkeyedHeaders if it does not shape the answer`)
    }
  }
  if (cookies === undefined) return NOTHING
  for (const name of cookies) {
    noteOnce(state, 'cookie:' + name, `ember-cache: ${settings.label} read cookie ${name} during a miss; its entries vary on its value and are sent private. Say so with varyCookies`)
  }
  return { refusal: undefined, cookies: cookies.map((name) => COOKIE_NAME_PREFIX + name) }
}

/** Whether the route's key already tells apart callers whose `identity` differs. */
function identityKeyed (state: CacheRequest, identity: string): boolean {
  const { callerKey } = state.settings
  if (callerKey === 'keyFn') return true
  // A key on credential headers (private: Authorization and Cookie) separates identities those
  // carry (sessions, tokens): only when the request carries one of them, and never addresses.
  if (identity === 'ip') return false
  const headers = state.request.headers
  return callerKey.some((name) => headers[name] !== undefined)
}

function warnOnce (state: CacheRequest, input: string, message: string): void {
  const { settings } = state
  if (settings.warned.has(input)) return
  settings.warned.add(input)
  state.request.log.warn({ route: settings.label, cache: settings.cache.name, input }, message)
}

function noteOnce (state: CacheRequest, input: string, message: string): void {
  const { settings } = state
  if (settings.warned.has(input)) return
  settings.warned.add(input)
  state.request.log.info({ route: settings.label, cache: settings.cache.name, input }, message)
}

/**
 * A Cache-Control that keeps shared caches out (RFC 9111 §5.2.2.7): `private` first, without
 * `public` and `s-maxage` (directives for shared caches). Elements are split on commas outside
 * quoted strings.
 */
export function privateOnly (cacheControl: string): string {
  const kept: string[] = []
  let hasPrivate = false
  for (const element of splitList(cacheControl)) {
    const name = element.split('=', 1)[0].trim().toLowerCase()
    if (name === 'public' || name === 's-maxage') continue
    if (name === 'private' && !element.includes('=')) hasPrivate = true
    if (element.trim() !== '') kept.push(element.trim())
  }
  return hasPrivate ? kept.join(', ') : ['private', ...kept].join(', ')
}

function splitList (text: string): string[] {
  const parts: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '\\' && quoted) i++
    else if (c === '"') quoted = !quoted
    else if (c === ',' && !quoted) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts
}
