import type { FastifyReply } from 'fastify'
import type { CacheEntry } from '../entry'
import { FLAG_COMPUTED_ETAG, FLAG_ENCODE_LATER } from '../http-freshness'
import { parseCacheControl, storableHeaders, updatedHeaders } from '../http-semantics'
import { setReplayHeaders } from '../replay'
import type { CacheRequest } from './request-state'
import { responseEntryOf } from './response-entry'
import { notModified, representationOf, type OnSendDone } from './serve'
import { varyWithEncoding } from './encode'
import { fixedDecision, responseDecision, type AddressedFields } from './storability'
import { targetedDirectives } from '../targeted-cache-control'

// Revalidation (RFC 9111 §4.3): a stored entry that may not be used as it is, but has the
// origin's validators, is not refetched: the handler gets a conditional request, and a 304
// freshens the entry, whose body the client then gets (or a 304 of its own). Handlers behind
// reply-from forward the conditionals upstream; an ordinary handler may answer 304 when
// `request.headers['if-none-match']` names its current ETag.

/** True when the entry carries a validator the origin gave (ours would mean nothing to it). */
export function hasOriginValidators (entry: CacheEntry): boolean {
  return (typeof entry.headers.etag === 'string' && (entry.flags & FLAG_COMPUTED_ETAG) === 0) ||
    typeof entry.headers['last-modified'] === 'string'
}

/**
 * Sends the handler a conditional request for `entry`: its validators replace the client's
 * (kept in the state: we answer them ourselves), so that a 304 is always about our entry.
 */
export function startRevalidation (state: CacheRequest, entry: CacheEntry): void {
  const headers = state.request.headers
  state.revalidating = entry
  state.clientIfNoneMatch = headers['if-none-match']
  state.clientIfModifiedSince = headers['if-modified-since']
  const etag = (entry.flags & FLAG_COMPUTED_ETAG) === 0 ? entry.headers.etag : undefined
  if (typeof etag === 'string') headers['if-none-match'] = etag
  else delete headers['if-none-match']
  const lastModified = entry.headers['last-modified']
  if (typeof lastModified === 'string') headers['if-modified-since'] = lastModified
  else delete headers['if-modified-since']
}

/**
 * The handler answered 304 to our conditional request: store the freshened entry (RFC 9111
 * §4.3.4) and answer the client with it. The request carried only our entry's validators, so
 * the 304 confirms that entry; its stored ETag stays (a 304 must not replace it).
 */
export function finishRevalidation (state: CacheRequest, reply: FastifyReply, addressed: AddressedFields | undefined, done: OnSendDone): void {
  const { settings } = state
  const stale = state.revalidating as CacheEntry
  const freshHeaders = storableHeaders(reply.getHeaders(), settings.header, settings.perRequestHeaders)
  const headers = updatedHeaders(stale.headers, freshHeaders)
  const cacheControl = parseCacheControl(headers['cache-control'])
  const decision = settings.ttlFromResponse
    // A targeted field on the 304 decides; else the stored response's (CDN-Cache-Control is kept).
    ? responseDecision(state, stale.status, headers, cacheControl, {
      surrogateControl: addressed?.surrogateControl,
      targeted: addressed?.targeted ?? targetedDirectives(headers, settings.targetedCacheControl)
    })
    : fixedDecision(state, stale.status, headers, cacheControl)
  const entry = responseEntryOf(settings, stale.status, headers, stale.body, decision, stale.tags)
  entry.flags |= stale.flags & (FLAG_COMPUTED_ETAG | FLAG_ENCODE_LATER)
  // The body is the same, and so are its stored codings, made or to be made (whatever Vary the
  // 304 came with).
  if (stale.encodings !== undefined && stale.encodings.length > 0) entry.encodings = stale.encodings
  if ((stale.encodings !== undefined && stale.encodings.length > 0) || (stale.flags & FLAG_ENCODE_LATER) !== 0) headers.vary = varyWithEncoding(headers.vary)
  let detail = 'fwd=stale; fwd-status=304'
  if (decision.refusal === undefined) {
    if (state.flight !== '') {
      settings.cache.flights.settle(state.flight, { entry, variant: state.variant })
      state.flight = ''
    }
    const storing = settings.cache.store(state.key, state.variant, entry, state.fence)
    if (state.refresh !== undefined) state.refresh.stored = true
    detail += '; stored'
    if (storing instanceof Promise) storing.catch(() => {})
  }
  state.settle(undefined)
  if (settings.counters !== undefined) settings.counters.revalidated++
  answer(state, reply, entry, detail, done)
}

/** The client's answer from a revalidated entry: its body, or a 304 when its own conditionals match. */
function answer (state: CacheRequest, reply: FastifyReply, entry: CacheEntry, detail: string, done: OnSendDone): void {
  reply.removeHeader('content-length')
  reply.removeHeader('transfer-encoding')
  reply.code(entry.status)
  // The handler's 304 went through the hooks before ours; the body we send is ours to label.
  reply.removeHeader('content-encoding')
  const encoded = representationOf(state, entry)
  setReplayHeaders(reply, state.settings, entry, Date.now(), 'REVALIDATED', detail, state.key, encoded)
  if (notModified(state, entry.headers, encoded)) {
    reply.code(304)
    return done(null, null)
  }
  done(null, state.request.method === 'HEAD' ? null : (encoded?.body ?? entry.body))
}
