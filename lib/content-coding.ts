import { brotliCompress, brotliCompressSync, constants, deflate, deflateSync, gzip, gzipSync, type BrotliOptions, type ZlibOptions } from 'node:zlib'

// Content codings stored with an entry (compressed once, at store time) and the choice of one
// per request by Accept-Encoding (RFC 9110 §12.5.3). A hit then sends stored bytes whatever
// the client accepts, and a compression plugin after us leaves them alone.

/** The content codings an entry may hold besides identity, in our order of preference. */
export type Coding = 'br' | 'gzip' | 'deflate'
export const CODINGS: readonly Coding[] = ['br', 'gzip', 'deflate']

/** One stored content coding of an entry's body. */
export interface EncodedBody {
  coding: Coding
  body: Buffer
}

/** What a route does about content codings (the `compression` option, resolved). */
export interface CompressionSettings {
  /** Codings computed at store time, in the order we prefer them when a client ranks them equally. */
  encodings: readonly Coding[]
  /** Bodies smaller than this are stored identity only (compression would not pay). */
  minBytes: number
  /** Bodies larger than this are stored identity only (compressing them would take too long). */
  maxBytes: number
}

export const DEFAULT_COMPRESSION: CompressionSettings = Object.freeze({ encodings: Object.freeze(['br', 'gzip'] as Coding[]), minBytes: 1024, maxBytes: 1024 * 1024 })

/**
 * Brotli quality 5: for JSON of 1-5 KB it costs about what gzip's default level does (~60 µs
 * for 5 KB here) and is 30% smaller; quality 9 costs 20x more, 11 (zlib's default) 150x.
 */
const BROTLI_QUALITY = 5

// Text-like types compress; images, video, archives and fonts already are.
const COMPRESSIBLE = /^text\/(?!event-stream)|^application\/(?:[\w.-]+\+)?(?:json|xml|javascript|ecmascript|x-www-form-urlencoded|wasm|graphql)\b|[/+](?:json|xml|yaml)\b|^image\/svg\+xml|^application\/(?:x-)?(?:yaml|toml|ndjson|x-ndjson|csv)\b/

/** True when a response of this Content-Type is worth compressing. */
export function compressible (contentType: unknown): boolean {
  return typeof contentType === 'string' && COMPRESSIBLE.test(contentType.toLowerCase())
}

/**
 * Bodies up to this size are compressed on the event loop, in one go (~0.1 ms for 4 KB, ~0.3 ms
 * for 8 KB): a round trip to zlib's thread pool costs more than that on a busy core. Larger ones
 * go to the pool (64 KB on the loop cost 2.7 ms, every other request waiting).
 */
export const SYNC_MAX_BYTES = 8 * 1024

/** Bodies larger than this are sampled first: one that does not compress is not compressed whole. */
const SAMPLE_FROM_BYTES = 16 * 1024
const SAMPLE_BYTES = 4 * 1024
/** A sample that keeps more than this share of its size is incompressible (already dense). */
const INCOMPRESSIBLE = 0.9

/**
 * Compresses `body` in every coding of `codings`: at once when small, else on zlib's thread
 * pool. A large body whose first 4 KB do not compress (gzip, fastest level) is left identity
 * only ([]): compressing 200 KB of dense bytes to throw the result away cost 3x a miss.
 */
export async function encodeBody (body: Buffer, codings: readonly Coding[]): Promise<EncodedBody[]> {
  if (body.length <= SYNC_MAX_BYTES) return encodeBodySync(body, codings)
  if (body.length >= SAMPLE_FROM_BYTES) {
    const sample = body.subarray(0, SAMPLE_BYTES)
    if (gzipSync(sample, { level: 1 }).length >= sample.length * INCOMPRESSIBLE) return []
  }
  return await Promise.all(codings.map(async (coding) => ({ coding, body: await compress(coding, body) })))
}

/** Compresses `body` in every coding of `codings`, on the event loop. */
export function encodeBodySync (body: Buffer, codings: readonly Coding[]): EncodedBody[] {
  return codings.map((coding) => ({
    coding,
    body: coding === 'br' ? brotliCompressSync(body, brotliOptions(body)) : coding === 'gzip' ? gzipSync(body, zlibOptions(body)) : deflateSync(body, zlibOptions(body))
  }))
}

function compress (coding: Coding, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, out: Buffer): void => { if (err === null) resolve(out); else reject(err) }
    if (coding === 'br') brotliCompress(body, brotliOptions(body), done)
    else if (coding === 'gzip') gzip(body, zlibOptions(body), done)
    else deflate(body, zlibOptions(body), done)
  })
}

/**
 * A window no larger than the body: the output is the same size (the window covers the whole
 * body either way), and setting up the encoder costs much less (zlib's default window is 32 KB,
 * brotli's 4 MB). Decoders read the window size from the stream.
 */
function windowBits (body: Buffer, min: number, max: number): number {
  return Math.max(min, Math.min(max, Math.ceil(Math.log2(body.length + 1))))
}

function brotliOptions (body: Buffer): BrotliOptions {
  return {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
      [constants.BROTLI_PARAM_LGWIN]: windowBits(body, constants.BROTLI_MIN_WINDOW_BITS, constants.BROTLI_MAX_WINDOW_BITS),
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT
    }
  }
}

function zlibOptions (body: Buffer): ZlibOptions {
  return { windowBits: windowBits(body, 9, 15) }
}

/**
 * The entity tag of an encoded representation: RFC 9110 §8.8.3 requires a different validator
 * for each content coding of one resource. `"abc"` becomes `"abc-br"`, `W/"abc"` `W/"abc-br"`.
 */
export function codedEtag (etag: string, coding: Coding): string {
  const end = etag.lastIndexOf('"')
  if (end <= 0) return etag
  return etag.slice(0, end) + '-' + coding + etag.slice(end)
}

/** A client's Accept-Encoding, parsed: q-values by coding, and the fallbacks. */
interface Accepted {
  /** q of each coding the header names (lower-case); identity included when named. */
  named: Map<string, number>
  /** q of `*` when given: applies to every coding not named. */
  any: number | undefined
}

const acceptMemo = new Map<string, Accepted>()
const ACCEPT_MEMO_LIMIT = 256
/**
 * Of an Accept-Encoding, the members read: real clients send a handful. A 14 KB header of
 * 1,300 members cost 2.6 ms a hit to parse, every request a new one to dodge the memo.
 */
const MAX_ACCEPT_MEMBERS = 32

/** RFC 9110 §12.5.3: `gzip;q=0.8, br, *;q=0`. Memoized: clients send few distinct values. */
function parseAcceptEncoding (given: string): Accepted {
  const header = given.length <= MAX_ACCEPT_MEMBERS * 16 ? given : firstMembers(given)
  let accepted = acceptMemo.get(header)
  if (accepted !== undefined) return accepted
  accepted = { named: new Map(), any: undefined }
  for (const part of header.split(',', MAX_ACCEPT_MEMBERS)) {
    const [name, ...params] = part.split(';')
    const coding = name.trim().toLowerCase()
    if (coding === '') continue
    let q = 1
    for (const param of params) {
      const match = /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/i.exec(param)
      // A malformed weight makes the member unusable, rather than guessed at.
      q = match === null ? 0 : Math.min(1, Number(match[1]))
    }
    // x-gzip is gzip (RFC 9110 §8.4.1.3).
    const canonical = coding === 'x-gzip' ? 'gzip' : coding
    if (canonical === '*') accepted.any = q
    else accepted.named.set(canonical, Math.max(q, accepted.named.get(canonical) ?? 0))
  }
  if (acceptMemo.size >= ACCEPT_MEMO_LIMIT) acceptMemo.clear()
  acceptMemo.set(header, accepted)
  return accepted
}

/** The first MAX_ACCEPT_MEMBERS members of a long list (what parseAcceptEncoding reads of it). */
function firstMembers (header: string): string {
  let end = -1
  for (let i = 0; i < MAX_ACCEPT_MEMBERS; i++) {
    end = header.indexOf(',', end + 1)
    if (end === -1) return header.slice(0, 4096)
  }
  return header.slice(0, Math.min(end, 4096))
}

function weightOf (accepted: Accepted, coding: string): number {
  const named = accepted.named.get(coding)
  if (named !== undefined) return named
  if (coding === 'identity') {
    // Identity is acceptable unless excluded by name or by `*;q=0` (RFC 9110 §12.5.3).
    return accepted.any === 0 ? 0 : 1
  }
  return accepted.any ?? 0
}

/** True when the client accepts `coding` (identity included); no header accepts identity only. */
export function accepts (header: string | string[] | undefined, coding: Coding | 'identity'): boolean {
  if (header === undefined) return coding === 'identity'
  return weightOf(parseAcceptEncoding(typeof header === 'string' ? header : header.join(',')), coding) > 0
}

/**
 * The stored representation to send: the coding among `available` the client weights highest
 * (ties go to our order, then identity), or undefined for identity. No header, or one that
 * accepts nothing we hold, gets identity: the one representation every client can read.
 * Range requests get identity too (byte ranges of the unencoded body are what we can serve).
 */
export function chooseCoding (header: string | string[] | undefined, available: readonly EncodedBody[]): EncodedBody | undefined {
  if (header === undefined || available.length === 0) return undefined
  const accepted = parseAcceptEncoding(typeof header === 'string' ? header : header.join(','))
  let best: EncodedBody | undefined
  let bestWeight = 0
  for (const encoded of available) {
    const weight = weightOf(accepted, encoded.coding)
    if (weight > bestWeight) {
      best = encoded
      bestWeight = weight
    }
  }
  if (best === undefined) return undefined
  // Identity is acceptable unless excluded, but ranks only with a weight the client gave it (by
  // name or `*`): then it wins when the client prefers it outright.
  const identity = accepted.named.get('identity') ?? accepted.any ?? 0
  return identity > bestWeight ? undefined : best
}
