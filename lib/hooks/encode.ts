import { compressible, encodeBody, type EncodedBody } from '../content-coding'
import type { CacheEntry } from '../entry'
import type { Directives } from '../http-semantics'
import type { RouteSettings } from '../options'

// Compressing an entry's body once, when it is stored (the `compression` option): which
// responses qualify, and a process-wide bound on the work in flight, so a flood of large
// misses cannot queue unbounded compression (past the bound, entries are stored identity only).

/**
 * Compressions waiting or running in this process at most (small bodies are compressed in one
 * go after the answer; large ones in zlib's pool of 4 threads): past it, stored identity only.
 */
const MAX_IN_FLIGHT = 16
let inFlight = 0

/** Statuses whose body may be stored coded: a 206 is a part, 204 and 304 have none. */
const NO_BODY_STATUS = new Set([204, 206, 304])

/**
 * True when this response's body should be stored in the route's codings too: a compressible
 * type, a size that pays, not coded already, and no `no-transform` (RFC 9110 §7.7, RFC 9111
 * §5.2.2.6: an intermediary must not change the content's coding then).
 */
export function mayEncode (settings: RouteSettings, status: number, stored: CacheEntry['headers'], body: Buffer, responseDirectives: Directives): boolean {
  const compression = settings.compression
  if (compression === undefined || NO_BODY_STATUS.has(status)) return false
  if (body.length < compression.minBytes || body.length > compression.maxBytes) return false
  const coding = stored['content-encoding']
  if (coding !== undefined && coding !== 'identity') return false
  return compressible(stored['content-type']) && !responseDirectives.has('no-transform')
}

/** A Vary value that names Accept-Encoding (added when missing). */
export function varyWithEncoding (vary: unknown): string {
  if (vary === undefined || vary === null || vary === '') return 'accept-encoding'
  const text = Array.isArray(vary) ? vary.join(', ') : String(vary)
  return /(?:^|,)\s*(?:accept-encoding|\*)\s*(?:,|$)/i.test(text) ? text : text + ', accept-encoding'
}

/**
 * The entry's body in the route's codings, off the event loop; undefined when the bound is
 * reached (the caller stores identity only) or compression failed. The whole entry must stay
 * within maxEntryBytes: codings that do not fit are left out.
 */
export function encodeEntry (settings: RouteSettings, entry: CacheEntry): Promise<EncodedBody[] | undefined> | undefined {
  const compression = settings.compression
  if (compression === undefined || inFlight >= MAX_IN_FLIGHT) return undefined
  inFlight++
  // After the answer is on its way (setImmediate: the response is written first), never before.
  const made = new Promise<EncodedBody[]>((resolve, reject) => setImmediate(() => { encodeBody(entry.body, compression.encodings).then(resolve, reject) }))
  return made.then((encodings) => {
    let room = settings.maxEntryBytes - entry.body.length
    return encodings.filter((encoded) => {
      // A coding that saves nothing is not worth its bytes (already-dense content).
      if (encoded.body.length >= entry.body.length || encoded.body.length > room) return false
      room -= encoded.body.length
      return true
    })
  }, () => undefined).finally(() => { inFlight-- })
}
