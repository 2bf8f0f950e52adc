import { hash } from 'node:crypto'
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib'
import type { StoredHeaders } from './entry'

// The HTTP caching rules this plugin follows, in one place. Section numbers cite RFC 9110
// (semantics), RFC 9111 (caching), RFC 9211 (Cache-Status) and RFC 5861 (stale extensions).

/** Parsed Cache-Control: directive name (lower-case) -> argument ('' when it has none). */
export type Directives = Map<string, string>

const EMPTY_DIRECTIVES: Directives = new Map()

// RFC 9110 §7.6.1: hop-by-hop fields are never stored. Set-Cookie is personal (RFC 9111 §7.3),
// content-length is recomputed per response, age is ours to set on a hit. A Date the handler
// set (a proxied origin's) is kept: it says when the origin made the response (RFC 9110 §6.6.1).
const NOT_STORED = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'set-cookie', 'content-length', 'age'
])

/** A directive given twice with different values: neither value is trusted (RFC 9111 §4.2.1). */
export const CONFLICTING = '\u0000conflict'

/**
 * RFC 9111 §5.2: Cache-Control is a comma list of `name` or `name=value`, the value a token or a
 * quoted-string (commas inside quotes do not split). Names are case-insensitive. An element that
 * is not well formed (`max-age =3600`, `max-age= 3600`) is ignored. A directive repeated with
 * another value is CONFLICTING: RFC 9111 §4.2.1 allows using the first or considering the
 * response stale, and a cache that would rather serve nothing stale takes the latter.
 */
export function parseCacheControl (header: string | string[] | number | undefined): Directives {
  if (header === undefined) return EMPTY_DIRECTIVES
  const text = Array.isArray(header) ? header.join(',') : String(header)
  if (text.length === 0) return EMPTY_DIRECTIVES
  const directives: Directives = new Map()
  let i = 0
  while (i < text.length) {
    const element = readElement(text, i)
    i = element.end + 1
    if (element.name === undefined) continue
    const previous = directives.get(element.name)
    if (previous === undefined) directives.set(element.name, element.value)
    else if (previous !== element.value) directives.set(element.name, CONFLICTING)
  }
  if (text.includes('"')) addQuotedRestrictions(text, directives)
  return directives
}

const RESTRICTIVE = /(?:^|[\s,"])(no-store|no-cache|private|must-revalidate|proxy-revalidate)(?=$|[\s,=";])/gi

/**
 * Quotes decide what is a list element: a stray or unbalanced one can make `no-store` part of
 * some quoted value (`foo="x, no-store, "`). When in doubt, restrict: a restrictive directive's
 * name anywhere in a header with quotes counts as given. Found by test/properties.test.ts.
 */
function addQuotedRestrictions (text: string, directives: Directives): void {
  for (const match of text.matchAll(RESTRICTIVE)) {
    const name = match[1].toLowerCase()
    if (!directives.has(name)) directives.set(name, '')
  }
}

const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/

/** One list element from `start`: its name and value, or no name when malformed. `end` is its comma (or the end). */
function readElement (text: string, start: number): { name: string | undefined, value: string, end: number } {
  let i = start
  while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++
  const nameStart = i
  while (i < text.length && TOKEN_CHAR.test(text[i])) i++
  const name = text.slice(nameStart, i).toLowerCase()
  let value = ''
  let valid = name.length > 0
  if (i < text.length && text[i] === '=') {
    i++
    if (text[i] === '"') {
      // quoted-string (RFC 9110 §5.6.4), with backslash escapes
      i++
      let closed = false
      while (i < text.length) {
        const c = text[i]
        if (c === '\\' && i + 1 < text.length) { value += text[i + 1]; i += 2; continue }
        if (c === '"') { closed = true; i++; break }
        value += c
        i++
      }
      if (!closed) valid = false
    } else {
      const valueStart = i
      while (i < text.length && TOKEN_CHAR.test(text[i])) i++
      value = text.slice(valueStart, i)
      if (value.length === 0) valid = false
    }
  }
  // Only whitespace may follow, up to the next comma.
  while (i < text.length && text[i] !== ',') {
    if (text[i] !== ' ' && text[i] !== '\t') valid = false
    i++
  }
  // A malformed element ends at its first comma: a stray quote must not swallow the elements
  // after it (`foo="x, no-store` still says no-store). Found by test/properties.test.ts.
  if (!valid) {
    const comma = text.indexOf(',', start)
    if (comma !== -1 && comma < i) i = comma
  }
  return { name: valid ? name : undefined, value, end: i }
}

/** RFC 9111 §1.2.2: delta-seconds beyond 2^31 are taken as 2^31 (about 68 years). */
const MAX_DELTA_SECONDS = 2147483648

/** A delta-seconds argument (RFC 9111 §1.2.2), or undefined when absent or not a number. */
export function deltaSeconds (directives: Directives, name: string): number | undefined {
  const raw = directives.get(name)
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined
  return Math.min(Number(raw), MAX_DELTA_SECONDS)
}

/**
 * Why a response produced by the handler may not be stored, or undefined when it may.
 * RFC 9111 §3: no-store and private forbid a shared cache to store; Set-Cookie is personal.
 */
export function refusalReason (statusCode: number, allowedStatus: Set<number>, headers: Record<string, unknown>, responseDirectives: Directives): string | undefined {
  if (!allowedStatus.has(statusCode)) return 'status'
  if (headers['set-cookie'] !== undefined) return 'set-cookie'
  if (responseDirectives.has('no-store')) return 'no-store'
  if (responseDirectives.has('private')) return 'private'
  // RFC 9110 §12.5.5: Vary: * (alone or in a list) means the response depends on things outside the request.
  const vary = headers.vary
  if (vary !== undefined && varyNames(vary as string | string[]).includes('*')) return 'vary-star'
  return undefined
}

const LIST_SEPARATOR = /[\s,]+/
const VARY_MEMO_LIMIT = 1000
const varyMemo = new Map<string, readonly string[]>()

/**
 * RFC 9110 §12.5.5: the request headers a response varies on, lower-case (`*` kept).
 * Accept-Encoding is left out: one entry holds the body in every stored coding and each
 * request gets its own (content-coding.ts), so it never selects a variant. Memoized: runs on hits.
 */
export function varyNames (vary: string | string[]): readonly string[] {
  const text = typeof vary === 'string' ? vary : vary.join(',')
  let names = varyMemo.get(text)
  if (names !== undefined) return names
  names = text.toLowerCase().split(LIST_SEPARATOR).filter((name) => name.length > 0 && name !== 'accept-encoding')
  if (varyMemo.size >= VARY_MEMO_LIMIT) varyMemo.clear()
  varyMemo.set(text, names)
  return names
}

/** True when a Vary value lists Accept-Encoding: the body was negotiated by content coding. */
export function variesOnEncoding (vary: unknown): boolean {
  return vary !== undefined && String(vary).toLowerCase().includes('accept-encoding')
}

/** A Vary value without Accept-Encoding, or undefined when nothing else is left. */
export function varyWithoutEncoding (vary: string | string[]): string | undefined {
  const names = varyNames(vary)
  return names.length === 0 ? undefined : names.join(', ')
}

/**
 * The identity body of a content-coded response (RFC 9110 §8.4), or why it cannot be stored:
 * 'content-encoding' (unknown coding, bytes that do not decode) or 'too-large' (over
 * `maxBytes` once decoded). Used on a miss only, when a compression hook ran before ours: the
 * entry must hold what any client can be sent.
 */
export function decodeContent (body: Buffer, coding: string, maxBytes: number): Buffer | 'content-encoding' | 'too-large' {
  const options = { maxOutputLength: maxBytes + 1 }
  let decoded: Buffer
  try {
    switch (coding.trim().toLowerCase()) {
      case 'gzip': case 'x-gzip': decoded = gunzipSync(body, options); break
      case 'deflate': decoded = inflateSync(body, options); break
      case 'br': decoded = brotliDecompressSync(body, options); break
      default: return 'content-encoding'
    }
  } catch (err) {
    // zlib stops at maxOutputLength with ERR_BUFFER_TOO_LARGE; anything else is corrupt input.
    return (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' ? 'too-large' : 'content-encoding'
  }
  return decoded.length > maxBytes ? 'too-large' : decoded
}

/** Surrogate keys (cache tags) from a response header: tokens separated by spaces or commas. */
export function surrogateTags (value: string | number | string[]): string[] {
  const text = Array.isArray(value) ? value.join(',') : String(value)
  return text.split(LIST_SEPARATOR).filter((tag) => tag.length > 0)
}

/**
 * `ttl: 'from-response'`: RFC 9111 §5.2.2.10 s-maxage is meant for shared caches like this
 * one, so it wins over §5.2.2.1 max-age. Undefined when the response sets neither.
 */
export function responseTtl (directives: Directives): number | undefined {
  return deltaSeconds(directives, 's-maxage') ?? deltaSeconds(directives, 'max-age')
}

/**
 * RFC 9111 §3.2, §4.3.4: a stored response's headers updated by a 304 (or HEAD) response: each
 * field the new response carries replaces the stored one, except those a cache must not take
 * from it: what is not stored at all, and the fields that describe the stored body itself
 * (Content-Length, Content-Encoding, Content-Range, Content-MD5) or name it (ETag).
 */
export function updatedHeaders (stored: StoredHeaders, fresh: StoredHeaders): StoredHeaders {
  const updated: StoredHeaders = { ...stored }
  for (const name in fresh) {
    if (KEPT_ON_UPDATE.has(name)) continue
    updated[name] = fresh[name]
  }
  return updated
}

const KEPT_ON_UPDATE = new Set(['content-length', 'content-encoding', 'content-range', 'content-md5', 'etag'])

/** Copies the headers worth replaying, with lower-case names and string values. */
export function storableHeaders (headers: Record<string, unknown>, cacheHeaderName: string | false, perRequest: ReadonlySet<string>): StoredHeaders {
  const stored: StoredHeaders = {}
  // RFC 9110 §7.6.1: fields named in Connection are hop-by-hop for this response too.
  const connection = headers.connection
  const listed = connection === undefined ? undefined : new Set(String(connection).toLowerCase().split(',').map((name) => name.trim()))
  for (const name in headers) {
    if (NOT_STORED.has(name) || name === cacheHeaderName || perRequest.has(name) || listed?.has(name) === true) continue
    const value = headers[name]
    if (value === undefined) continue
    stored[name] = Array.isArray(value) ? value.map(String) : String(value)
  }
  return stored
}

/**
 * A validator computed once, when the entry is stored (RFC 9110 §8.8.3). Weak, because a
 * compression plugin after us may send other bytes under it (RFC 9110 §8.8.1: a strong
 * validator names one exact representation); If-None-Match compares weakly anyway.
 */
export function computeEtag (body: Buffer): string {
  return 'W/"' + hash('sha1', body, 'base64url') + '"'
}

/** RFC 9110 §13.1.2: If-None-Match uses weak comparison; `*` matches any current entity. */
export function ifNoneMatchHits (header: string, etag: string): boolean {
  if (header.trim() === '*') return true
  const opaque = stripWeak(etag)
  for (const candidate of header.split(',')) {
    if (stripWeak(candidate.trim()) === opaque) return true
  }
  return false
}

function stripWeak (tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag
}

/** RFC 9110 §13.1.3: not modified when Last-Modified is no later than If-Modified-Since. */
export function notModifiedSince (ifModifiedSince: string, lastModified: string | string[] | undefined): boolean {
  if (typeof lastModified !== 'string') return false
  const since = Date.parse(ifModifiedSince)
  const modified = Date.parse(lastModified)
  return Number.isFinite(since) && Number.isFinite(modified) && modified <= since
}

/**
 * Cache-Control sent with a cached route's response when the handler set none (RFC 9111
 * §5.2.2). `scope` is '', 'public, ' or 'private, '. max-age is the entry's whole lifetime, on
 * hits too: they also send Age, and a cache in front counts max-age - Age (§4.2.3); sending the
 * remaining time as max-age would have it subtract the age twice.
 */
export function freshnessHeader (ttl: number, scope: string): string {
  // ttl 0 keeps the entry forever on the server, but clients must ask again every time.
  if (ttl === 0) return scope + 'no-cache'
  // RFC 9111 §1.2.2: delta-seconds is an integer; a fractional ttl rounds up.
  return scope + 'max-age=' + Math.ceil(ttl)
}

/** RFC 9110 §12.5.5: `vary` plus the names in `add` it lacks (case-insensitive), or undefined. */
export function mergeVary (vary: unknown, add: readonly string[]): string | undefined {
  if (vary === undefined || vary === null || vary === '') return add.length === 0 ? undefined : add.join(', ')
  const text = Array.isArray(vary) ? vary.join(', ') : String(vary)
  const present = varyNames(text)
  const missing = add.filter((name) => !present.includes(name) && name !== 'accept-encoding')
  // Vary: * already covers every header.
  if (missing.length === 0 || present.includes('*')) return text
  return text + ', ' + missing.join(', ')
}
