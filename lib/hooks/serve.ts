import type { FastifyReply } from 'fastify'
import { accepts, chooseCoding, codedEtag, type EncodedBody } from '../content-coding'
import type { CacheEntry } from '../entry'
import { ifNoneMatchHits, notModifiedSince } from '../http-semantics'
import { contentRange, ifRangeHolds, parseRange } from '../http-range'
import { ageSeconds, setHeaderCopies, setReplayHeaders, setStatusHeaders } from '../replay'
import { SERVED, type CacheRequest } from './request-state'
import { codingsForHit } from './encode'

// Answers built from a stored entry: hits, stale answers, collapsed answers, revalidated ones.

export type OnSendDone = (err: Error | null, payload?: unknown) => void

/**
 * Answers from an entry: stored bytes, stored headers, freshness computed now. The first answer
 * that asks for a coding of an entry whose codings are made on demand waits for them (encode.ts).
 */
export function serveEntry (state: CacheRequest, reply: FastifyReply, entry: CacheEntry, shortStatus: string, cacheStatus: string): void {
  state.phase = SERVED
  const making = codingsOnDemand(state, entry)
  if (making === undefined) return sendEntry(state, reply, entry, shortStatus, cacheStatus)
  const send = (): void => sendEntry(state, reply, entry, shortStatus, cacheStatus)
  making.then(send, send)
}

/** The codings this answer waits for, if it asks for one of an entry that has none made yet. */
function codingsOnDemand (state: CacheRequest, entry: CacheEntry): Promise<void> | undefined {
  // Range requests are answered from the identity body.
  if (state.request.headers.range !== undefined) return undefined
  const { settings } = state
  return codingsForHit(settings, entry, state.request.headers['accept-encoding'], () => settings.cache.codingsAdded(state.key, state.variant, entry))
}

function sendEntry (state: CacheRequest, reply: FastifyReply, entry: CacheEntry, shortStatus: string, cacheStatus: string): void {
  reply.code(entry.status)
  const encoded = representationOf(state, entry)
  setReplayHeaders(reply, state.settings, entry, Date.now(), shortStatus, cacheStatus, state.key, encoded)
  if (shortStatus === 'STALE') expireAtEdge(state, reply, entry)
  if (notModified(state, entry.headers, encoded)) {
    reply.code(304).send()
    return
  }
  if (encoded !== undefined) {
    reply.send(encoded.body)
    return
  }
  const range = rangeOf(state, entry)
  if (range === undefined) {
    reply.send(entry.body)
    return
  }
  reply.code(range.status).header('content-range', range.contentRange).send(range.body)
}

/**
 * A stale answer is not for the edge to keep for the route's edgeTtl: that would hold the old
 * version there long after our refresh. It gets no edge freshness, so the edge asks again.
 */
function expireAtEdge (state: CacheRequest, reply: FastifyReply, entry: CacheEntry): void {
  const edge = state.settings.edge
  if (edge !== undefined && entry.headers[edge.ttlHeader] !== undefined) reply.header(edge.ttlHeader, 'max-age=0')
}

/**
 * RFC 9110 §13.2.2: If-None-Match takes precedence; If-Modified-Since only without it. The
 * client's own conditionals: while we revalidate, the request carries ours instead.
 */
export function notModified (state: CacheRequest, headers: Record<string, unknown>, encoded?: EncodedBody): boolean {
  const revalidating = state.revalidating !== undefined
  const ifNoneMatch = revalidating ? state.clientIfNoneMatch : state.request.headers['if-none-match']
  if (ifNoneMatch !== undefined) {
    if (typeof headers.etag !== 'string') return false
    // The validator of the representation this request would get (RFC 9110 §8.8.3).
    return ifNoneMatchHits(ifNoneMatch, encoded === undefined ? headers.etag : codedEtag(headers.etag, encoded.coding))
  }
  const ifModifiedSince = revalidating ? state.clientIfModifiedSince : state.request.headers['if-modified-since']
  // RFC 9111 §4.3.2: without Last-Modified, the stored response's Date stands in for it.
  return ifModifiedSince !== undefined && notModifiedSince(ifModifiedSince, (headers['last-modified'] ?? headers.date) as string | undefined)
}

/**
 * RFC 9110 §14: a Range request on a stored full 200 (GET) gets a 206 of that range, or a 416
 * when it asks past the end; undefined serves the whole representation (no Range, several
 * ranges, an If-Range that names another representation).
 */
function rangeOf (state: CacheRequest, entry: CacheEntry): { status: number, contentRange: string, body: Buffer } | undefined {
  const header = state.request.headers.range
  if (header === undefined || entry.status !== 200 || state.request.method !== 'GET') return undefined
  const ifRange = state.request.headers['if-range']
  if (!ifRangeHolds(typeof ifRange === 'string' ? ifRange : undefined, entry.headers.etag, entry.headers['last-modified'])) return undefined
  const size = entry.body.length
  const range = parseRange(header, size)
  if (range === undefined) return undefined
  if (range === 'unsatisfiable') return { status: 416, contentRange: contentRange(undefined, size), body: Buffer.alloc(0) }
  return { status: 206, contentRange: contentRange(range, size), body: entry.body.subarray(range.start, range.end + 1) }
}

/**
 * RFC 5861 §4: replaces an origin error, already on its way through onSend, with a stale entry
 * (`detail` says why: stale-if-error, or origin-failed where the origin could not answer).
 */
export function replaceWithStale (state: CacheRequest, reply: FastifyReply, entry: CacheEntry, done: OnSendDone, detail = 'stale-if-error'): void {
  const making = codingsOnDemand(state, entry)
  if (making === undefined) return sendStale(state, reply, entry, done, detail)
  const send = (): void => sendStale(state, reply, entry, done, detail)
  making.then(send, send)
}

function sendStale (state: CacheRequest, reply: FastifyReply, entry: CacheEntry, done: OnSendDone, detail: string): void {
  reply.code(entry.status)
  reply.removeHeader('content-type')
  // A compression hook that ran before ours coded the error body; ours says what we send.
  reply.removeHeader('content-encoding')
  setHeaderCopies(reply, entry.headers)
  const encoded = representationOf(state, entry)
  if (encoded !== undefined) setCoding(reply, entry, encoded)
  reply.header('age', ageSeconds(entry, Date.now()))
  expireAtEdge(state, reply, entry)
  setStatusHeaders(reply, state.settings, 'STALE', 'hit; fwd=stale; detail=' + detail, state.key)
  done(null, encoded === undefined ? entry.body : encoded.body)
}

/**
 * The stored coding this request gets (RFC 9110 §12.5.3), or undefined for identity. Range
 * requests get identity: their byte offsets are the unencoded body's.
 */
export function representationOf (state: CacheRequest, entry: CacheEntry): EncodedBody | undefined {
  const encodings = entry.encodings
  if (encodings === undefined || encodings.length === 0 || state.request.headers.range !== undefined) return undefined
  const acceptEncoding = state.request.headers['accept-encoding']
  const chosen = chooseCoding(acceptEncoding, encodings)
  // A client revalidating a representation it holds and still accepts gets that one selected,
  // so the 304 confirms what it has rather than a 200 with the same content in another coding.
  const ifNoneMatch = state.revalidating !== undefined ? state.clientIfNoneMatch : state.request.headers['if-none-match']
  const etag = entry.headers.etag
  if (ifNoneMatch === undefined || typeof etag !== 'string' || ifNoneMatchHits(ifNoneMatch, chosen === undefined ? etag : codedEtag(etag, chosen.coding))) return chosen
  if (chosen !== undefined && accepts(acceptEncoding, 'identity') && ifNoneMatchHits(ifNoneMatch, etag)) return undefined
  for (const encoded of encodings) {
    if (encoded !== chosen && accepts(acceptEncoding, encoded.coding) && ifNoneMatchHits(ifNoneMatch, codedEtag(etag, encoded.coding))) return encoded
  }
  return chosen
}

/** Content-Encoding and the coded representation's own ETag. */
function setCoding (reply: FastifyReply, entry: CacheEntry, encoded: EncodedBody): void {
  reply.header('content-encoding', encoded.coding)
  const etag = entry.headers.etag
  if (typeof etag === 'string') reply.header('etag', codedEtag(etag, encoded.coding))
}
