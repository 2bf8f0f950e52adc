import type { FastifyReply, FastifyRequest } from 'fastify'
import { freshUntil, varyPointer, type CacheEntry } from '../entry'
import { FLAG_COMPUTED_ETAG, FLAG_ENCODE_LATER } from '../http-freshness'
import {
  computeEtag, decodeContent, freshnessHeader, mergeVary, parseCacheControl,
  storableHeaders, surrogateTags, variesOnEncoding, varyWithoutEncoding
} from '../http-semantics'
import type { RouteSettings } from '../options'
import { setStatusHeaders } from '../replay'
import { channels, trace } from '../observe'
import { extendVariant } from '../variant'
import { MISSED, SERVED, stateOf, type CacheRequest } from './request-state'
import { bodyOf, responseEntryOf, tagsOf } from './response-entry'
import { finishRevalidation } from './revalidate'
import { notModified, replaceWithStale, type OnSendDone } from './serve'
import { fixedDecision, responseDecision, type AddressedFields, type StoreDecision } from './storability'
import { CDN_CACHE_CONTROL, targetedDirectives } from '../targeted-cache-control'
import { bufferStream, isStream } from './stream-buffer'
import { setEdgeHeaders } from '../edge/edge-headers'
import { mayEncode, varyWithEncoding } from './encode'
import { learnedNames } from './variants'
import { judgeReads, privateOnly } from './caller-reads'

// The onSend hook of a cached read route: stores a storable miss, freshens a revalidated
// entry, answers stale on origin errors, and labels every response with its cache status.

/** What the store step needs besides the request state: the response as it leaves. */
interface Outgoing {
  reply: FastifyReply
  /** The payload as the next onSend hook must get it (a replay stream after buffering). */
  payload: unknown
  body: Buffer
  /** Tags from the surrogate-key header, if the handler set one. */
  surrogate: string[] | undefined
  /** Fields addressed to this cache (from-response routes only). */
  addressed: AddressedFields | undefined
  done: OnSendDone
}

/**
 * The onError hook of a from-response read route: the handler could not get an answer from its
 * origin (reply-from's 502/503/504) or threw, so a 5xx on its way out may be replaced by a stale
 * entry. An origin's own 503, sent as a response, is not an error and passes through.
 */
export function markOriginFailed (request: FastifyRequest, _reply: FastifyReply, _error: Error, done: () => void): void {
  const state = stateOf(request)
  if (state !== null && state !== undefined) state.originFailed = true
  done()
}

/** The onSend hook of a GET route: store a cacheable miss, answer stale on origin errors. */
export function buildStoreHook (settings: RouteSettings) {
  const { surrogateKeyHeader, ttlFromResponse } = settings
  return function emberCacheStore (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: OnSendDone): void {
    const state = stateOf(request)
    if (state?.phase === SERVED) return done(null, payload)
    // The surrogate-key header is for us, never for clients, whatever happens to the response.
    const surrogate = surrogateKeyHeader === false ? undefined : takeHeader(reply, surrogateKeyHeader, surrogateTags)
    // So are Surrogate-Control and our own targeted field on a proxy cache.
    const addressed = ttlFromResponse ? takeAddressedFields(reply, settings.targetedCacheControl) : undefined
    if (state === null || state === undefined) return done(null, payload)
    // RFC 9110 §12.5.5: the response names the request headers the route keys on, so caches in
    // front keep one copy per value too. Hits replay it from the stored headers.
    if (settings.vary !== undefined) reply.header('vary', mergeVary(reply.getHeader('vary'), settings.varyHeaders))
    if (state.phase !== MISSED) return done(null, payload)
    // HEAD shares GET's entry but never stores (its payload is empty); it still says MISS.
    if (request.method !== 'GET') {
      if (state.revalidating !== undefined && reply.statusCode === 304) return finishRevalidation(state, reply, addressed, done)
      state.settle(undefined)
      if (state.backendDown) setStatusHeaders(reply, settings, 'BYPASS', 'fwd=bypass', state.key)
      else setStatusHeaders(reply, settings, 'MISS', state.forward + '; detail=head', state.key)
      return done(null, payload)
    }
    // RFC 5861 §4: stale-if-error: an origin error may be replaced by a recent enough entry.
    if (reply.statusCode >= 500 && state.stale !== undefined) {
      state.settle(undefined)
      state.recount('staleIfError')
      return replaceWithStale(state, reply, state.stale, done)
    }
    // RFC 9111 §4.2.4: a proxy cut off from its origin (reply-from's 502/503/504, a handler's
    // thrown 5xx) answers with what it has, unless the entry forbade serving it stale.
    if (reply.statusCode >= 500 && state.originFailed && state.staleIfFailed !== undefined) {
      state.settle(undefined)
      state.recount('staleIfError')
      return replaceWithStale(state, reply, state.staleIfFailed, done, 'origin-failed')
    }
    if (state.backendDown) {
      state.settle(undefined)
      setStatusHeaders(reply, settings, 'BYPASS', 'fwd=bypass', state.key)
      return done(null, payload)
    }
    // RFC 9111 §4.3.4: the handler confirmed our stale entry: freshen it, answer from it.
    if (state.revalidating !== undefined && reply.statusCode === 304) return finishRevalidation(state, reply, addressed, done)
    if (isStream(payload)) {
      if (settings.streamMaxBytes === 0) return refuse(state, reply, 'stream', payload, done)
      return bufferStream(payload, settings.streamMaxBytes, (body, replay) => {
        if (body === undefined) return refuse(state, reply, 'stream-too-large', replay, done)
        store(state, { reply, payload: body, body, surrogate, addressed, done })
      })
    }
    const body = bodyOf(payload)
    if (body === undefined) return refuse(state, reply, 'payload', payload, done)
    store(state, { reply, payload, body, surrogate, addressed, done })
  }
}

/** What a miss cost, in a moving average (the last ~10 count): early refreshes go by it. */
function recordMissCost (settings: RouteSettings, state: CacheRequest): void {
  if (state.requestTime === 0) return
  const ms = Date.now() - state.requestTime
  const cost = settings.missCost
  cost.ms = cost.ms === 0 ? ms : cost.ms * 0.9 + ms * 0.1
}

function store (state: CacheRequest, out: Outgoing): void {
  const { settings, request } = state
  const { reply } = out
  recordMissCost(settings, state)
  const headers = reply.getHeaders()
  const cacheControl = parseCacheControl(headers['cache-control'])
  const decision: StoreDecision = settings.ttlFromResponse
    ? responseDecision(state, reply.statusCode, headers, cacheControl, out.addressed)
    : fixedDecision(state, reply.statusCode, headers, cacheControl)
  let reason = decision.refusal
  // A compression hook that ran before ours (@fastify/compress registered first) coded the body
  // for this client: the entry keeps the identity body, which compression serves to anyone.
  let identity = out.body
  let decoded = false
  // A coded body kept as it came (no-transform): it is one representation among those the
  // client's Accept-Encoding selects, so the entry varies on that header itself.
  let keptCoding = false
  const coding = headers['content-encoding']
  if (reason === undefined && coding !== undefined && coding !== 'identity' && variesOnEncoding(headers.vary)) {
    // RFC 9110 §7.7, RFC 9111 §5.2.2.6: no-transform: the bytes (and their ETag and digests) as sent.
    if (cacheControl.has('no-transform')) keptCoding = true
    else {
      const plain = decodeContent(out.body, String(coding), settings.maxEntryBytes)
      if (typeof plain === 'string') reason = plain
      else {
        identity = plain
        decoded = true
      }
    }
  }
  if (reason === undefined && identity.length > settings.maxEntryBytes) reason = 'too-large'
  if (reason !== undefined) return refuse(state, reply, reason, out.payload, out.done)
  // What the handler read of its caller: not shared at all, or shared per value of what it read
  // (the headers it read join the response's Vary).
  const reads = judgeReads(state, reply)
  if (reads.refusal !== undefined) return refuse(state, reply, reads.refusal, out.payload, out.done)
  headers.vary = reply.getHeader('vary')

  const stored = storableHeaders(headers, settings.header, settings.perRequestHeaders)
  if (decoded) forDecodedBody(stored)
  let learned: string[] = []
  if (stored.vary !== undefined) {
    // One string, so that hits find its parsed names in varyNames' memo without joining.
    const vary = decoded ? varyWithoutEncoding(stored.vary) : Array.isArray(stored.vary) ? stored.vary.join(', ') : stored.vary
    if (vary === undefined) delete stored.vary
    else {
      stored.vary = vary
      // RFC 9111 §4.1: the response varies on these request headers too: it is stored under
      // their values, and the key's base variant points there.
      learned = learnedNames(vary, settings.varyHeaders)
    }
  }
  if (keptCoding) learned = [...learned, 'accept-encoding'].sort()
  if (reads.cookies.length > 0) {
    learned = [...learned, ...reads.cookies].sort()
    // Shared caches in front cannot vary on one cookie: the answer is the caller's alone to them.
    const cacheControl = headers['cache-control'] === undefined
      ? (settings.ttlFromResponse ? 'private' : freshnessHeader(decision.ttl, 'private, '))
      : privateOnly(String(headers['cache-control']))
    reply.header('cache-control', cacheControl)
    stored['cache-control'] = cacheControl
  }
  const variant = learned.length === 0 ? state.baseVariant : extendVariant(state.baseVariant, request, learned)
  // A validator of our own, for routes whose responses we may edit (not a proxy's).
  if (typeof stored.etag !== 'string' && !settings.ttlFromResponse) {
    stored.etag = computeEtag(identity)
    decision.flags |= FLAG_COMPUTED_ETAG
    reply.header('etag', stored.etag)
  }
  const entry = responseEntryOf(settings, reply.statusCode, stored, identity, decision, withSurrogateTags(tagsOf(request, settings), out.surrogate))
  if (stored['cache-control'] === undefined && !settings.ttlFromResponse) reply.header('cache-control', freshnessHeader(entry.ttl, settings.scope))
  if (settings.edge !== undefined) {
    const perCaller = reads.cookies.length > 0 || /(^|,)\s*private\b/i.test(String(reply.getHeader('cache-control') ?? ''))
    setEdgeHeaders(reply, stored, { edge: settings.edge, edgeTtl: settings.edgeTtl, perCaller, key: state.key, tags: entry.tags })
  }
  // Hits will send the body in the client's best coding: this answer varies on Accept-Encoding too.
  const encodable = mayEncode(settings, reply.statusCode, stored, identity, cacheControl)
  if (encodable) {
    stored.vary = varyWithEncoding(stored.vary)
    reply.header('vary', varyWithEncoding(reply.getHeader('vary')))
  }
  // An invalidation of this key (or its tags, or everything) that ran while the handler worked
  // wins: this response may predate it.
  if (settings.cache.invalidations.touches(state.mark, state.key, entry.tags)) {
    state.settle(undefined)
    setStatusHeaders(reply, settings, 'MISS', state.forward + '; detail=invalidated', state.key)
    return out.done(null, out.payload)
  }
  setStatusHeaders(reply, settings, 'MISS', state.forward + '; stored; ttl=' + entry.ttl, state.key)
  // A refresh that stores has done its work (the store itself may finish after its answer).
  if (state.refresh !== undefined) state.refresh.stored = true
  const respond = (): void => {
    if (notModified(state, stored)) {
      reply.code(304)
      return out.done(null, null)
    }
    out.done(null, out.payload)
  }
  // Its codings are made when a hit first asks for one (encode.ts), not now: most entries of a
  // miss-heavy load are never read again.
  if (encodable) entry.flags |= FLAG_ENCODE_LATER
  commitEntry({ state, entry, variant, learned }, (taken) => {
    // A shared backend that did not take it: down, or an invalidation elsewhere in the fleet won.
    if (taken === false) setStatusHeaders(reply, settings, 'MISS', state.forward + '; detail=not-stored', state.key)
    respond()
  })
}

/** An entry on its way into the cache. */
interface Commit {
  state: CacheRequest
  entry: CacheEntry
  variant: string
  /** Header names the response's own Vary added to the route's (a pointer is stored too). */
  learned: string[]
}

/** Hands the entry to this process's waiters, writes it, counts it; `after` gets what the backend said. */
function commitEntry ({ state, entry, variant, learned }: Commit, after: (taken: unknown) => void): void {
  const { settings } = state
  const { cache } = settings
  // Waiters in this process get the entry now (unless it may not be used as it is); other
  // instances once it is stored.
  if (state.flight !== '') {
    cache.flights.settle(state.flight, Date.now() < freshUntil(entry) ? { entry, variant, learned } : undefined)
    state.flight = ''
  }
  const stored = (taken: unknown): void => {
    state.settle(undefined)
    const counters = settings.counters
    if (counters !== undefined) {
      if (taken === false) counters.notStored++
      else counters.stores++
    }
    after(taken)
  }
  const write = (): unknown => learned.length === 0
    ? cache.store(state.key, variant, entry, state.fence)
    : storeWithPointer(state, variant, entry, learned)
  const storing = channels.store.hasSubscribers
    ? trace(channels.store, { cache: cache.name, route: settings.label, keyHash: settings.hashKey(state.key) }, write, (taken) => taken === false ? 'not-stored' : 'stored')
    : write()
  if (storing instanceof Promise) cache.track(storing.then(stored, () => stored(false)))
  else stored(storing)
}

/** A response that varies on learned headers: its pointer at the base variant, and itself. */
function storeWithPointer (state: CacheRequest, variant: string, entry: CacheEntry, learned: string[]): unknown {
  const { cache } = state.settings
  const pointed = cache.store(state.key, state.baseVariant, varyPointer(learned, entry), state.fence)
  const stored = cache.store(state.key, variant, entry, state.fence)
  if (!(pointed instanceof Promise) && !(stored instanceof Promise)) return stored
  return Promise.all([pointed, stored]).then(([, result]) => result)
}

function refuse (state: CacheRequest, reply: FastifyReply, reason: string, payload: unknown, done: OnSendDone): void {
  state.settle(undefined)
  const refusals = state.settings.counters?.refusals
  if (refusals !== undefined) refusals[reason] = (refusals[reason] ?? 0) + 1
  setStatusHeaders(reply, state.settings, 'MISS', state.forward + '; detail=' + reason, state.key)
  done(null, payload)
}

/**
 * The headers of a body stored decoded (its coding undone): the coding goes, and so do the
 * validator and digests of the coded bytes (RFC 9110 §8.8.3, RFC 9530 §2): a strong ETag
 * becomes weak (the content is the same, the bytes are not), digests are dropped.
 */
function forDecodedBody (stored: CacheEntry['headers']): void {
  delete stored['content-encoding']
  delete stored['content-digest']
  delete stored['repr-digest']
  delete stored['content-md5']
  const etag = stored.etag
  if (typeof etag === 'string' && etag.startsWith('"')) stored.etag = 'W/' + etag
}

/**
 * What a proxy cache reads and does not pass on, or reads and passes on: Surrogate-Control
 * (Edge Architecture 1.0: surrogates remove it) and the first valid targeted field of the
 * route's list (RFC 9213 §2.1). CDN-Cache-Control speaks to every CDN on the way, so it goes on
 * to the client as it came; a name of this cache's own (`Ember-CDN-Cache-Control`) is removed.
 */
function takeAddressedFields (reply: FastifyReply, targetedNames: readonly string[]): AddressedFields {
  const surrogateControl = takeHeader(reply, 'surrogate-control', (value) => value)
  if (targetedNames.length === 0) return { surrogateControl, targeted: undefined }
  const targeted = targetedDirectives(reply.getHeaders(), targetedNames)
  for (const name of targetedNames) if (name !== CDN_CACHE_CONTROL) reply.removeHeader(name)
  return { surrogateControl, targeted }
}

/** Reads and removes a header meant for the cache; undefined when the handler set none. */
function takeHeader<T> (reply: FastifyReply, name: string, parse: (value: string | number | string[]) => T): T | undefined {
  const value = reply.getHeader(name)
  if (value === undefined) return undefined
  reply.removeHeader(name)
  return parse(value)
}

function withSurrogateTags (tags: string[], surrogate: string[] | undefined): string[] {
  if (surrogate === undefined || surrogate.length === 0) return tags
  if (tags.length === 0) return surrogate
  return [...new Set([...tags, ...surrogate])]
}
