import { chooseCoding, compressible, encodeBody, type EncodedBody } from '../content-coding'
import type { CacheEntry } from '../entry'
import { FLAG_ENCODE_LATER } from '../http-freshness'
import type { Directives } from '../http-semantics'
import type { RouteSettings } from '../options'

// Compressing an entry's body (the `compression` option): which responses qualify, and when.
// Not at store: an entry that qualifies is flagged (FLAG_ENCODE_LATER) and its codings are made
// when a hit first asks for one, once per entry and process, and kept with the entry this
// process holds (a memory cache's own object, a remote cache's decoded copy and L1); the
// shared backend keeps the identity body only, so no write-back can ever replace a newer entry.
// A process-wide bound on the work in flight: past it, hits are served identity meanwhile.

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

/** Codings being made, per entry object: concurrent first hits wait for the same work. */
const making = new WeakMap<CacheEntry, Promise<void>>()

/**
 * The codings of a flagged entry, made now if this hit asks for one they would give: resolves
 * once they are on the entry (the hit then serves one), or undefined when there is nothing to
 * wait for (not flagged, made already, not asked for, or the bound is reached: serve identity).
 */
export function codingsForHit (settings: RouteSettings, entry: CacheEntry, acceptEncoding: string | string[] | undefined, kept: () => void): Promise<void> | undefined {
  if ((entry.flags & FLAG_ENCODE_LATER) === 0 || entry.encodings !== undefined || acceptEncoding === undefined) return undefined
  const compression = settings.compression
  if (compression === undefined || chooseCoding(acceptEncoding, compression.encodings.map((coding) => ({ coding, body: EMPTY }))) === undefined) return undefined
  const running = making.get(entry)
  if (running !== undefined) return running
  const encoding = encodeEntry(settings, entry)
  if (encoding === undefined) return undefined
  const made = encoding.then((encodings) => {
    // Set once, even empty (nothing paid): later hits do not try again.
    entry.encodings = encodings ?? []
    kept()
  })
  making.set(entry, made)
  return made
}

const EMPTY = Buffer.alloc(0)

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
