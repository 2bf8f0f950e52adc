import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction, InjectOptions } from 'fastify'
import { Readable } from 'node:stream'
import { learnVariantHeaders, variantHas, variantOf } from './cache-key'
import { BYPASS, type LookupResult } from './caches/cache'
import { ENTRY_RESPONSE, NO_TAGS, freshUntil, type CacheEntry } from './entry'
import {
  computeEtag, decodeContent, deltaSeconds, freshnessHeader, ifNoneMatchHits, notModifiedSince, parseCacheControl,
  refusalReason, responseTtl, storableHeaders, surrogateTags, variesOnEncoding, varyNames, varyWithoutEncoding,
  type Directives
} from './http-semantics'
import type { RouteSettings } from './options'
import { ageSeconds, setHeaderCopies, setReplayHeaders, setStatusHeaders } from './replay'

// The per-route hooks: lookup in preHandler (after every auth hook), store in onSend.
// Everything that does not depend on the request was computed in RouteSettings.

export const kState = Symbol('ember-cache.state')
export const REFRESH_HEADER = 'x-ember-cache-refresh'

/** What the lookup left for onSend, on a request that went to the handler. */
interface MissState {
  key: string
  variant: string
  /** cache.epoch when the lookup started: a changed epoch means an invalidation won the race. */
  epoch: number
  /** The flight this request leads (other requests wait for its entry), or '' when none. */
  flight: string
  /** The cross-instance fill lock this request holds, or '' when none. */
  lockToken: string
  /** The backend failed: answer BYPASS and do not store. */
  bypass: boolean
  /** The request said no-store: do not store. */
  noStore: boolean
  /** An expired entry that may still replace an origin error (stale-if-error). */
  stale: CacheEntry | undefined
  /** RFC 9211 fwd= reason: uri-miss, request (the client's no-cache), stale (a background refresh). */
  forward: string
  /** Serves `stale` when the handler takes longer than staleIfErrorTimeout. */
  timer: NodeJS.Timeout | undefined
}

/** Marks a request answered from the cache, so onSend leaves it alone. */
const SERVED = Object.freeze({ served: true })
type RequestState = MissState | typeof SERVED | null

type StateBag = Record<typeof kState, RequestState>
const EMPTY_DIRECTIVES: Directives = new Map()

/** Runs a request again in the background to refresh an entry (stale-while-revalidate). */
export type Refresher = (request: FastifyRequest, settings: RouteSettings, flight: string) => void

/** The preHandler that answers from the cache, or lets the request through as a miss. */
export function buildLookupHook (settings: RouteSettings, refresh: Refresher, refreshToken: string) {
  const { cache, variantHeaders, respectRequestDirectives, allowsAuthorization } = settings

  return function emberCacheLookup (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    // RFC 9111 §3.5: a shared cache keeps out of credentialed requests unless the route opted in.
    if (!allowsAuthorization && request.headers.authorization !== undefined) return bypass(request, reply, settings, done, 'fwd=bypass; detail=authorization')
    let key: string
    try {
      key = settings.keyOf(request)
    } catch (err) {
      // A keyFn that throws on odd input must not fail the request or poison the cache.
      request.log.warn({ err }, 'ember-cache: key could not be computed; serving without cache')
      return bypass(request, reply, settings, done)
    }
    const varyNames = variantHeaders.names
    const variant = varyNames.length > 0 ? variantOf(request, varyNames) : ''

    let directives = EMPTY_DIRECTIVES
    const requestCacheControl = request.headers['cache-control']
    if (respectRequestDirectives && requestCacheControl !== undefined) directives = parseCacheControl(requestCacheControl)
    const isRefresh = request.headers[REFRESH_HEADER] === refreshToken
    // RFC 9111 §5.2.1.5: no-store: do not use or store a response for this request.
    if (directives.has('no-store')) return bypass(request, reply, settings, done, 'fwd=request')
    // RFC 9111 §5.2.1.4: no-cache: do not answer from the cache without asking the origin.
    if (isRefresh || directives.has('no-cache')) return miss(request, reply, settings, key, variant, undefined, false, done, '', '', isRefresh ? 'fwd=stale' : 'fwd=request')

    const isHead = request.method === 'HEAD'
    const result = cache.lookup(key, variant)
    if (cache.inProcess) {
      onLookup(request, reply, settings, key, variant, result as LookupResult, directives, refresh, isHead, done)
    } else {
      (result as Promise<LookupResult>).then(
        (found) => onLookup(request, reply, settings, key, variant, found, directives, refresh, isHead, done),
        done
      ).catch((err: unknown) => unexpected(request, reply, done, err))
    }
  }
}

function onLookup (
  request: FastifyRequest, reply: FastifyReply, settings: RouteSettings, key: string, variant: string,
  found: LookupResult, directives: Directives, refresh: Refresher, isHead: boolean, done: HookHandlerDoneFunction
): void {
  if (found === BYPASS) return miss(request, reply, settings, key, variant, undefined, true, done)
  if (found !== undefined && found.kind === ENTRY_RESPONSE && matchesVariant(settings, found, variant)) {
    const now = Date.now()
    const expiresAt = freshUntil(found)
    let fresh = now < expiresAt
    if (fresh && directives !== EMPTY_DIRECTIVES) {
      // RFC 9111 §5.2.1.1: max-age=N: the client accepts nothing older than N seconds.
      const maxAge = deltaSeconds(directives, 'max-age')
      if (maxAge !== undefined && now - found.storedAt > maxAge * 1000) fresh = false
      // RFC 9111 §5.2.1.3: min-fresh=N: the client wants N more seconds of freshness.
      const minFresh = deltaSeconds(directives, 'min-fresh')
      if (minFresh !== undefined && expiresAt - now < minFresh * 1000) fresh = false
      // Fresh for us but not for this client: not a stale entry, so no stale-* rule applies.
      if (!fresh) return joinOrLead(request, reply, settings, key, variant, undefined, directives, isHead, done)
    }
    if (fresh) return serveEntry(request, reply, settings, found, 'HIT', 'hit', now, key)
    // RFC 5861 §3: within stale-while-revalidate, answer now and refresh in the background.
    if (now < expiresAt + found.staleWhileRevalidate * 1000) {
      refresh(request, settings, key + '\u0000' + variant)
      return serveEntry(request, reply, settings, found, 'STALE', 'hit; fwd=stale', now, key)
    }
    // RFC 9111 §5.2.1.2: max-stale[=N]: the client accepts an entry stale by up to N seconds.
    if (directives.has('max-stale')) {
      const maxStale = deltaSeconds(directives, 'max-stale')
      if (maxStale === undefined || now - expiresAt <= maxStale * 1000) {
        return serveEntry(request, reply, settings, found, 'STALE', 'hit; fwd=stale', now, key)
      }
    }
    const stale = now < expiresAt + found.staleIfError * 1000 ? found : undefined
    return joinOrLead(request, reply, settings, key, variant, stale, directives, isHead, done)
  }
  joinOrLead(request, reply, settings, key, variant, undefined, directives, isHead, done)
}

function joinOrLead (
  request: FastifyRequest, reply: FastifyReply, settings: RouteSettings, key: string, variant: string,
  stale: CacheEntry | undefined, directives: Directives, isHead: boolean, done: HookHandlerDoneFunction
): void {
  // RFC 9111 §5.2.1.7: only-if-cached with nothing usable stored answers 504.
  if (directives.has('only-if-cached')) {
    setStatusHeaders(reply, settings, 'MISS', 'fwd=miss', key)
    reply.code(504).send({ statusCode: 504, error: 'Gateway Timeout', message: 'Not in cache (only-if-cached)' })
    return
  }
  const flight = key + '\u0000' + variant
  const { cache } = settings
  // collapseWait 0: every miss runs its own handler, nobody waits for anybody.
  if (settings.collapseWait === 0) return miss(request, reply, settings, key, variant, stale, false, done)
  const waiting = cache.flights.wait(flight, settings.collapseWait)
  if (waiting === undefined) {
    // A HEAD request never stores (its payload is empty), so it must not make GETs wait on it.
    if (isHead) return miss(request, reply, settings, key, variant, stale, false, done)
    cache.flights.lead(flight)
    const lock = cache.fillLock
    if (lock === undefined) return miss(request, reply, settings, key, variant, stale, false, done, flight)
    // The lock is fail-open: a lock command that fails means we run the handler ourselves.
    const runOurs = (): void => miss(request, reply, settings, key, variant, stale, false, done, flight)
    lock.acquire(key, variant).then(async (token) => {
      if (token !== undefined) {
        // Read again under the lock: an instance that stored and released between our first
        // read and our lock must not make us run the handler a second time.
        const stored = await cache.lookup(key, variant)
        if (stored !== BYPASS && stored !== undefined && stored.kind === ENTRY_RESPONSE && Date.now() < freshUntil(stored) && matchesVariant(settings, stored, variant)) {
          lock.release(key, variant, token)
          cache.flights.settle(flight, stored)
          return serveEntry(request, reply, settings, stored, 'HIT', 'hit; collapsed', Date.now(), key)
        }
        return miss(request, reply, settings, key, variant, stale, false, done, flight, token)
      }
      // Another instance runs the handler: wait for what it stores.
      return lock.waitForEntry(key, variant).then((entry) => {
        if (entry === undefined || !matchesVariant(settings, entry, variant)) return runOurs()
        cache.flights.settle(flight, entry)
        serveEntry(request, reply, settings, entry, 'HIT', 'hit; collapsed', Date.now(), key)
      }, runOurs)
    }, runOurs).catch((err: unknown) => unexpected(request, reply, done, err))
    return
  }
  waiting.then((shared) => {
    // The leader's response could not be shared (not cacheable, failed, too slow): run ours.
    if (shared === undefined || !matchesVariant(settings, shared, variant)) return miss(request, reply, settings, key, variant, stale, false, done)
    serveEntry(request, reply, settings, shared, 'HIT', 'hit; collapsed', Date.now(), key)
  }, done).catch((err: unknown) => unexpected(request, reply, done, err))
}

/**
 * A bug of ours (or a throwing user hook) inside a promise callback: answer the request with
 * the error rather than leave it hanging, and never answer twice.
 */
function unexpected (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction, err: unknown): void {
  request.log.error({ err }, 'ember-cache: unexpected error in cache lookup')
  if (!reply.sent && (request as unknown as StateBag)[kState] !== SERVED) done(err as Error)
}

function miss (
  request: FastifyRequest, reply: FastifyReply, settings: RouteSettings, key: string, variant: string,
  stale: CacheEntry | undefined, backendDown: boolean, done: HookHandlerDoneFunction, flight = '', lockToken = '',
  forward = 'fwd=uri-miss'
): void {
  const state: MissState = {
    key, variant, epoch: settings.cache.epoch, flight, lockToken, bypass: backendDown, noStore: false, stale, timer: undefined, forward
  }
  ;(request as unknown as StateBag)[kState] = state
  if (stale !== undefined && settings.staleIfErrorTimeout > 0) {
    // RFC 5861 §4 counts an origin that does not answer in time as an error too. "Answered" is
    // the handler's send, not the end of the response: onSend hooks may still be running then,
    // and serving stale on top of them mixed two responses. Only requests with a timer pay this.
    const send = reply.send
    reply.send = function (payload?: unknown) {
      clearTimeout(state.timer)
      reply.send = send
      return send.call(reply, payload)
    }
    state.timer = setTimeout(() => {
      if (reply.sent) return
      reply.send = send
      settle(settings, state, undefined)
      serveEntry(request, reply, settings, stale, 'STALE', 'hit; fwd=stale; detail=origin-timeout', Date.now(), key)
    }, settings.staleIfErrorTimeout)
  }
  done()
}

function bypass (request: FastifyRequest, reply: FastifyReply, settings: RouteSettings, done: HookHandlerDoneFunction, detail = 'fwd=bypass'): void {
  (request as unknown as StateBag)[kState] = null
  setStatusHeaders(reply, settings, 'BYPASS', detail, undefined)
  done()
}

/** Answers from an entry: stored bytes, stored headers, freshness computed now. */
function serveEntry (
  request: FastifyRequest, reply: FastifyReply, settings: RouteSettings, entry: CacheEntry,
  shortStatus: string, cacheStatus: string, now: number, key: string
): void {
  (request as unknown as StateBag)[kState] = SERVED
  reply.code(entry.status)
  setReplayHeaders(reply, settings, entry, now, shortStatus, cacheStatus, key)
  if (notModified(request, entry.headers)) {
    reply.code(304).send()
    return
  }
  reply.send(entry.body)
}

/**
 * RFC 9111 §4.1: a stored response answers only requests that match it on every header its
 * Vary names. The lookup variant holds the values of the route's variant headers, so the entry
 * matches when each of its Vary names is among them. Otherwise (stored before this process
 * learned that Vary, or by another writer) it is a miss, and the names are learned so that the
 * next lookups include them.
 */
function matchesVariant (settings: RouteSettings, entry: CacheEntry, variant: string): boolean {
  const vary = entry.headers.vary
  if (vary === undefined) return true
  const names = varyNames(vary)
  for (let i = 0; i < names.length; i++) {
    if (!variantHas(variant, names[i])) {
      learnVariantHeaders(settings.variantHeaders, names)
      return false
    }
  }
  return true
}

/** RFC 9110 §13.2.2: If-None-Match takes precedence; If-Modified-Since only without it. */
function notModified (request: FastifyRequest, headers: Record<string, unknown>): boolean {
  const ifNoneMatch = request.headers['if-none-match']
  if (ifNoneMatch !== undefined) return typeof headers.etag === 'string' && ifNoneMatchHits(ifNoneMatch, headers.etag)
  const ifModifiedSince = request.headers['if-modified-since']
  return ifModifiedSince !== undefined && notModifiedSince(ifModifiedSince, headers['last-modified'] as string | undefined)
}

/** The onSend hook of a GET route: store a cacheable miss, answer stale on origin errors. */
export function buildStoreHook (settings: RouteSettings) {
  const { cache, surrogateKeyHeader } = settings
  return function emberCacheStore (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void): void {
    const state = (request as unknown as StateBag)[kState]
    if (state === SERVED) return done(null, payload)
    // The surrogate-key header is for us, never for clients, whatever happens to the response.
    const surrogate = surrogateKeyHeader === false ? undefined : takeSurrogateTags(reply, surrogateKeyHeader)
    if (state === null || state === undefined) return done(null, payload)
    const missState = state as MissState
    // HEAD shares GET's entry but never stores (its payload is empty); it still says MISS.
    if (request.method !== 'GET') {
      settle(settings, missState, undefined)
      setStatusHeaders(reply, settings, missState.bypass ? 'BYPASS' : 'MISS', missState.bypass ? 'fwd=bypass' : missState.forward + '; detail=head', missState.key)
      return done(null, payload)
    }
    const statusCode = reply.statusCode

    // RFC 5861 §4: stale-if-error: an origin error may be replaced by a recent enough entry.
    if (statusCode >= 500 && missState.stale !== undefined) {
      settle(settings, missState, undefined)
      return replaceWithStale(reply, settings, missState.stale, missState.key, done)
    }
    if (missState.bypass) {
      settle(settings, missState, undefined)
      setStatusHeaders(reply, settings, 'BYPASS', 'fwd=bypass', missState.key)
      return done(null, payload)
    }
    if (isStream(payload)) {
      if (settings.streamMaxBytes === 0) return refuse(reply, settings, missState, 'stream', payload, done)
      return bufferStream(payload, settings.streamMaxBytes, (body, replay) => {
        if (body === undefined) return refuse(reply, settings, missState, 'stream-too-large', replay, done)
        finishStore(request, reply, settings, missState, body, body, surrogate, done)
      })
    }
    const body = bodyOf(payload)
    if (body === undefined) return refuse(reply, settings, missState, 'payload', payload, done)
    finishStore(request, reply, settings, missState, body, payload, surrogate, done)
  }

  function finishStore (
    request: FastifyRequest, reply: FastifyReply, settings: RouteSettings, state: MissState, body: Buffer,
    payload: unknown, surrogate: string[] | undefined, done: (err: Error | null, payload?: unknown) => void
  ): void {
    const headers = reply.getHeaders()
    const responseDirectives = parseCacheControl(headers['cache-control'])
    let reason = refusalReason(reply.statusCode, settings.statusCodes, headers, responseDirectives)
    // A compression hook that ran before ours (@fastify/compress registered first) coded the body
    // for this client: the entry keeps the identity body, which compression serves to anyone.
    let identity = body
    let decoded = false
    const coding = headers['content-encoding']
    if (reason === undefined && coding !== undefined && coding !== 'identity' && variesOnEncoding(headers.vary)) {
      const plain = decodeContent(body, String(coding), settings.maxEntryBytes)
      if (typeof plain === 'string') reason = plain
      else {
        identity = plain
        decoded = true
      }
    }
    if (reason === undefined && identity.length > settings.maxEntryBytes) reason = 'too-large'
    if (reason === undefined && state.noStore) reason = 'request-no-store'
    let ttl = settings.ttl
    if (reason === undefined && settings.ttlFromResponse) {
      const fromResponse = responseTtl(responseDirectives)
      // ttl 0 means "never expires" here, the opposite of what max-age=0 asks for.
      if (fromResponse === 0) reason = 'zero-freshness'
      else if (fromResponse !== undefined) ttl = fromResponse
    }
    if (reason !== undefined) return refuse(reply, settings, state, reason, payload, done)

    const stored = storableHeaders(headers, settings.header, settings.perRequestHeaders)
    if (decoded) delete stored['content-encoding']
    if (stored.vary !== undefined) {
      // One string, so that hits find its parsed names in varyNames' memo without joining.
      const vary = decoded ? varyWithoutEncoding(stored.vary) : Array.isArray(stored.vary) ? stored.vary.join(', ') : stored.vary
      if (vary === undefined) delete stored.vary
      else {
        stored.vary = vary
        // RFC 9111 §4.1: the response varies on these request headers; from now on the route's
        // variants include them (Accept-Encoding excepted, see varyNames).
        learnVariantHeaders(settings.variantHeaders, varyNames(vary))
      }
    }
    const variantNames = settings.variantHeaders.names
    const variant = variantNames.length === 0 ? '' : variantOf(request, variantNames)
    if (typeof stored.etag !== 'string') {
      stored.etag = computeEtag(identity)
      reply.header('etag', stored.etag)
    }
    const entry = responseEntryOf(settings, reply.statusCode, stored, identity, ttl, withSurrogateTags(tagsOf(request, settings), surrogate))
    if (headers['cache-control'] === undefined) reply.header('cache-control', freshnessHeader(entry.ttl, entry.ttl, settings.isPrivate))
    // An invalidation that ran while the handler worked wins: this response may predate it.
    if (state.epoch !== cache.epoch) {
      settle(settings, state, undefined)
      setStatusHeaders(reply, settings, 'MISS', state.forward + '; detail=invalidated', state.key)
      return done(null, payload)
    }
    // Waiters in this process get the entry now; other instances once it is stored.
    if (state.flight !== '') cache.flights.settle(state.flight, entry)
    setStatusHeaders(reply, settings, 'MISS', state.forward + '; stored; ttl=' + entry.ttl, state.key)
    const after = (): void => {
      if (state.lockToken !== '') cache.fillLock?.release(state.key, state.variant, state.lockToken)
      if (notModified(request, stored)) {
        reply.code(304)
        return done(null, null)
      }
      done(null, payload)
    }
    const storing = cache.store(state.key, variant, entry)
    if (storing === undefined) after()
    else storing.then(after, after)
  }
}

function refuse (reply: FastifyReply, settings: RouteSettings, state: MissState, reason: string, payload: unknown, done: (err: Error | null, payload?: unknown) => void): void {
  settle(settings, state, undefined)
  setStatusHeaders(reply, settings, 'MISS', state.forward + '; detail=' + reason, state.key)
  done(null, payload)
}

function replaceWithStale (reply: FastifyReply, settings: RouteSettings, entry: CacheEntry, key: string, done: (err: Error | null, payload?: unknown) => void): void {
  reply.code(entry.status)
  reply.removeHeader('content-type')
  // A compression hook that ran before ours coded the error body; the entry's body is identity.
  reply.removeHeader('content-encoding')
  setHeaderCopies(reply, entry.headers)
  reply.header('age', ageSeconds(entry, Date.now()))
  setStatusHeaders(reply, settings, 'STALE', 'hit; fwd=stale; detail=stale-if-error', key)
  done(null, entry.body)
}

/** Ends this request's flight: waiters get the entry, or undefined to run the handler themselves. */
function settle (settings: RouteSettings, state: MissState, entry: CacheEntry | undefined): void {
  if (state.flight !== '') settings.cache.flights.settle(state.flight, entry)
  if (state.lockToken !== '') settings.cache.fillLock?.release(state.key, state.variant, state.lockToken)
}

/** Reads and removes the surrogate-key header; undefined when the handler set none. */
function takeSurrogateTags (reply: FastifyReply, name: string): string[] | undefined {
  const value = reply.getHeader(name)
  if (value === undefined) return undefined
  reply.removeHeader(name)
  return surrogateTags(value)
}

function withSurrogateTags (tags: string[], surrogate: string[] | undefined): string[] {
  if (surrogate === undefined || surrogate.length === 0) return tags
  if (tags.length === 0) return surrogate
  return [...new Set([...tags, ...surrogate])]
}

/** A response entry with the route's freshness and stale windows: what GET stores and PUT writes through. */
export function responseEntryOf (settings: RouteSettings, status: number, headers: CacheEntry['headers'], body: Buffer, ttl: number, tags: string[]): CacheEntry {
  return {
    kind: ENTRY_RESPONSE,
    status,
    headers,
    body,
    storedAt: Date.now(),
    ttl,
    staleWhileRevalidate: settings.staleWhileRevalidate,
    staleIfError: settings.staleIfError,
    tags,
    tagVersions: NO_TAGS
  }
}

/** The entry's tags; a tags function that throws or returns junk stores no tags, never fails the request. */
export function tagsOf (request: FastifyRequest, settings: RouteSettings): string[] {
  const tags = settings.tags
  if (tags === undefined) return NO_TAGS
  if (typeof tags !== 'function') return tags
  try {
    const computed = tags(request)
    return Array.isArray(computed) ? computed.filter((tag) => typeof tag === 'string' && tag.length > 0) : NO_TAGS
  } catch (err) {
    request.log.warn({ err }, 'ember-cache: tags function threw; storing without tags')
    return NO_TAGS
  }
}

function bodyOf (payload: unknown): Buffer | undefined {
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8')
  if (Buffer.isBuffer(payload)) return payload
  if (payload === null || payload === undefined) return Buffer.alloc(0)
  return undefined
}

function isStream (payload: unknown): payload is NodeJS.ReadableStream {
  return payload !== null && typeof payload === 'object' && typeof (payload as { pipe?: unknown }).pipe === 'function'
}

/**
 * Reads a stream up to `limit` bytes. Within the limit, hands back the whole body; past it,
 * hands back a stream that replays what was read and then the rest, so nothing is lost.
 */
function bufferStream (stream: NodeJS.ReadableStream, limit: number, then: (body: Buffer | undefined, replay: unknown) => void): void {
  const chunks: Buffer[] = []
  let size = 0
  let finished = false
  const onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    chunks.push(bytes)
    size += bytes.length
    if (size > limit) {
      finish()
      stream.pause()
      then(undefined, Readable.from(replay()))
    }
  }
  async function * replay (): AsyncGenerator<Buffer> {
    yield * chunks
    for await (const chunk of stream as AsyncIterable<Buffer>) yield chunk
  }
  const onEnd = (): void => {
    finish()
    then(Buffer.concat(chunks), undefined)
  }
  const onError = (err: Error): void => {
    finish()
    then(undefined, Readable.from((async function * () { yield * chunks; throw err })()))
  }
  function finish (): void {
    if (finished) return
    finished = true
    stream.removeListener('data', onData)
    stream.removeListener('end', onEnd)
    stream.removeListener('error', onError)
  }
  stream.on('data', onData)
  stream.on('end', onEnd)
  stream.on('error', onError)
}

/** Builds the refresher used by stale-while-revalidate: one background request per key. */
export function buildRefresher (inject: (options: InjectOptions) => Promise<unknown>, refreshToken: string): Refresher {
  const running = new Set<string>()
  return (request, settings, flight) => {
    const id = settings.cache.kind + '\u0000' + flight
    if (running.has(id)) return
    running.add(id)
    // The route runs again from the top with the original headers, so auth hooks run again.
    const headers = { ...request.headers, [REFRESH_HEADER]: refreshToken }
    delete headers['if-none-match']
    delete headers['if-modified-since']
    inject({ method: 'GET', url: request.url, headers: headers as unknown as Record<string, string> })
      .catch((err: unknown) => request.log.warn({ err }, 'ember-cache: background refresh failed'))
      .finally(() => running.delete(id))
  }
}
