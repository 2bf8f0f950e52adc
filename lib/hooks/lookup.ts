import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { MissingPlaceholderError } from '../cache-key'
import { BYPASS, type LookupResult } from '../caches/cache'
import { ENTRY_RESPONSE, freshUntil, type CacheEntry } from '../entry'
import { FLAG_KEEP_STALE, FLAG_MUST_REVALIDATE, FLAG_NO_CACHE } from '../http-freshness'
import { deltaSeconds, parseCacheControl, type Directives } from '../http-semantics'
import type { RouteSettings } from '../options'
import { setStatusHeaders } from '../replay'
import { channels } from '../observe'
import { baseVariant } from '../variant'
import { predatesWrite, writeMarkOf, type ReadYourWrites } from '../read-your-writes'
import { joinOrLead } from './collapse'
import { startMiss } from './miss'
import { refreshOf, type Refresher } from './refresh'
import { BYPASSED, CacheRequest, setState, unexpected, type CountedOutcome } from './request-state'
import { hasOriginValidators, startRevalidation } from './revalidate'
import { serveEntry } from './serve'
import { entryFitsVariant, readEntry } from './variants'

// The lookup hook: preHandler (after every auth hook) or, with `early`, onRequest. It answers
// from a usable entry, or lets the request through to the handler as a miss. Everything that
// does not depend on the request was computed in RouteSettings.

const EMPTY_DIRECTIVES: Directives = new Map()
/** The least delta of an early refresh, as a share of the entry's ttl (see refreshEarly). */
const REFRESH_AHEAD = 0.05

/** The hook that answers from the cache, or lets the request through as a miss. */
export function buildLookupHook (settings: RouteSettings, refresh: Refresher) {
  const { respectRequestDirectives, allowsAuthorization } = settings
  // One warning per route for requests a key template cannot key, not one per request.
  let warnedMissing = false

  return function emberCacheLookup (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    let directives = EMPTY_DIRECTIVES
    const requestCacheControl = request.headers['cache-control']
    if (respectRequestDirectives && requestCacheControl !== undefined) directives = parseCacheControl(requestCacheControl)
    const state = new CacheRequest(settings, request, directives)
    setState(request, state)
    if (channels.lookup.hasSubscribers) {
      state.trace = { cache: settings.cache.name, route: settings.label }
      channels.lookup.start.publish(state.trace)
    }
    // RFC 9111 §3.5: a shared cache keeps out of credentialed requests unless the route opted in.
    // A from-response route lets the response decide whether it may be stored (public, s-maxage,
    // must-revalidate), but never answers a credentialed request from the cache.
    const credentialed = !allowsAuthorization && request.headers.authorization !== undefined
    if (credentialed && !settings.ttlFromResponse) return bypass(state, reply, done, 'fwd=bypass; detail=authorization', 'bypassAuthorization')
    // RFC 9110 §7.1: a fragment is no part of a request target; a client that sends one anyway
    // (`/page#...`) is not one to share an answer with, or to let near a key.
    if (request.url.includes('#')) return bypass(state, reply, done, 'fwd=bypass; detail=fragment', 'bypassKey')
    try {
      state.key = settings.keyOf(request)
    } catch (err) {
      if (err instanceof MissingPlaceholderError) {
        if (!warnedMissing) {
          warnedMissing = true
          request.log.warn({ placeholder: err.placeholder }, 'ember-cache: the key template has no value for a placeholder in this request; serving without cache')
        }
        return bypass(state, reply, done, 'fwd=bypass; detail=key-incomplete', 'bypassKey')
      }
      // A keyFn that throws on odd input must not fail the request or poison the cache.
      request.log.warn({ err, route: settings.label }, 'ember-cache: key could not be computed; serving without cache')
      return bypass(state, reply, done, 'fwd=bypass', 'bypassKey')
    }
    if (state.trace !== undefined) state.trace.keyHash = settings.hashKey(state.key)
    // A refresh runs through inject (no TLS, another socket): it keeps the original request's origin.
    const refreshing = refreshOf(request)
    const isRefresh = refreshing !== undefined
    state.refresh = refreshing
    state.baseVariant = baseVariant(request, settings.variants, refreshing?.origin)
    state.variant = state.baseVariant

    // RFC 9111 §5.2.1.5: no-store: do not use or store a response for this request.
    if (directives.has('no-store')) return bypass(state, reply, done, 'fwd=request', 'bypassRequest')
    if (credentialed || isRefresh) {
      state.credentialed = credentialed
      state.refreshing = isRefresh
      state.forward = isRefresh ? 'fwd=stale' : 'fwd=request'
      return startMiss(state, reply, done)
    }
    // RFC 9111 §5.2.1.4: no-cache: do not answer from the cache without asking the origin. The
    // entry is read anyway: with validators, the origin can confirm it instead of resending it.
    const revalidateOnly = directives.has('no-cache')
    if (revalidateOnly) state.forward = 'fwd=request'
    const result = readEntry(state)
    if (!(result instanceof Promise)) {
      // A remote cache answers synchronously only from its in-process tier.
      state.fromL1 = !settings.cache.inProcess
      return onLookup(state, reply, result, refresh, done, revalidateOnly)
    }
    if (state.trace !== undefined && state.trace.outcome === undefined) {
      state.trace.async = true
      channels.lookup.end.publish(state.trace)
    }
    result.then(
      (found) => onLookup(state, reply, found, refresh, done, revalidateOnly),
      done
    ).catch((err: unknown) => unexpected(state, reply, done, err))
  }
}

function onLookup (
  state: CacheRequest, reply: FastifyReply, found: LookupResult, refresh: Refresher, done: HookHandlerDoneFunction, revalidateOnly: boolean
): void {
  if (found === BYPASS) {
    state.backendDown = true
    return startMiss(state, reply, done)
  }
  if (found === undefined || found.kind !== ENTRY_RESPONSE || !entryFitsVariant(found, state.variant)) {
    return revalidateOnly ? startMiss(state, reply, done) : joinOrLead(state, reply, done)
  }
  if (revalidateOnly) {
    if (hasOriginValidators(found)) startRevalidation(state, found)
    return startMiss(state, reply, done)
  }
  // The caller wrote since this entry was stored: it must not get it back (readYourWrites).
  if (state.settings.readYourWrites !== undefined && writtenSince(state, found)) {
    state.forward = 'fwd=request; detail=read-your-writes'
    return startMiss(state, reply, done)
  }
  const { directives } = state
  const now = Date.now()
  const expiresAt = freshUntil(found)
  let fresh = now < expiresAt
  if (fresh && directives !== EMPTY_DIRECTIVES) {
    const age = now - found.storedAt + found.initialAge * 1000
    // RFC 9111 §5.2.1.1: max-age=N: the client accepts nothing older than N seconds.
    const maxAge = deltaSeconds(directives, 'max-age')
    if (maxAge !== undefined && age > maxAge * 1000) fresh = false
    // RFC 9111 §5.2.1.3: min-fresh=N: the client wants N more seconds of freshness.
    const minFresh = deltaSeconds(directives, 'min-fresh')
    if (minFresh !== undefined && expiresAt - now < minFresh * 1000) fresh = false
    // Fresh for us but not for this client: not a stale entry, so no stale-* rule applies.
    if (!fresh) return revalidateOrLead(state, reply, found, done)
  }
  if (fresh) {
    if (state.settings.earlyRefresh > 0) refreshEarly(state, found, expiresAt - now, refresh)
    state.decided('hits', state.fromL1 ? 'hit-l1' : 'hit')
    if (state.fromL1 && state.settings.counters !== undefined) state.settings.counters.hitsL1++
    return serveEntry(state, reply, found, 'HIT', state.fromL1 ? 'hit; detail=l1' : 'hit')
  }
  // RFC 9111 §5.2.2.2, §5.2.2.4: must-revalidate and no-cache entries are never used stale.
  const mayServeStale = (found.flags & (FLAG_MUST_REVALIDATE | FLAG_NO_CACHE)) === 0
  if (mayServeStale) {
    // RFC 5861 §3: within stale-while-revalidate, answer now and refresh in the background.
    if (now < expiresAt + found.staleWhileRevalidate * 1000) {
      state.decided('staleWhileRevalidate', 'stale')
      refresh(state)
      return serveEntry(state, reply, found, 'STALE', 'hit; fwd=stale')
    }
    // RFC 9111 §5.2.1.2: max-stale[=N]: the client accepts an entry stale by up to N seconds.
    if (directives.has('max-stale')) {
      const maxStale = deltaSeconds(directives, 'max-stale')
      if (maxStale === undefined || now - expiresAt <= maxStale * 1000) {
        state.decided('staleMaxStale', 'stale')
        return serveEntry(state, reply, found, 'STALE', 'hit; fwd=stale')
      }
    }
    if (now < expiresAt + found.staleIfError * 1000) state.stale = found
    else if ((found.flags & FLAG_KEEP_STALE) !== 0 && state.settings.ttlFromResponse) state.staleIfFailed = found
  }
  revalidateOrLead(state, reply, found, done)
}

/** True when the request carries a valid mark of a write made after the entry was stored. */
function writtenSince (state: CacheRequest, entry: CacheEntry): boolean {
  const { settings } = state
  const now = settings.cache.serverNow()
  const writtenAt = writeMarkOf(state.request, settings.readYourWrites as ReadYourWrites, now, settings.hashKey)
  return writtenAt !== undefined && predatesWrite(entry, writtenAt, now - Date.now())
}

/**
 * XFetch (Vattani, Chierichetti and Lowenstein, VLDB 2015): a hit on an entry about to expire
 * refreshes it in the background with probability rising as expiry nears, `delta * beta *
 * -ln(random) >= remaining`, so a hot entry is replaced before anyone finds it expired and a
 * cold one almost never is. Once per stored entry across the fleet (the refresher claims it).
 * delta is the route's measured miss cost, and at least REFRESH_AHEAD of the entry's ttl: with
 * the cost alone (a few ms), only keys read hundreds of times a second were caught in time (the
 * 100th hottest of a Zipf(1.1) fleet workload still missed at each expiry).
 */
function refreshEarly (state: CacheRequest, entry: CacheEntry, remainingMs: number, refresh: Refresher): void {
  const { settings } = state
  const window = Math.max(settings.missCost.ms, entry.ttl * 1000 * REFRESH_AHEAD) * settings.earlyRefresh
  // -ln(random) exceeds 20 once in 500 million draws: further from expiry, nothing is drawn.
  if (window === 0 || entry.ttl === 0 || remainingMs > window * 20) return
  if (window * -Math.log(Math.random()) < remainingMs) return
  refresh(state, 'early:' + String(entry.storedAt))
}

/** RFC 9111 §4.3.1: an entry with the origin's validators is revalidated rather than fetched again. */
function revalidateOrLead (state: CacheRequest, reply: FastifyReply, entry: CacheEntry, done: HookHandlerDoneFunction): void {
  if (hasOriginValidators(entry)) startRevalidation(state, entry)
  joinOrLead(state, reply, done)
}

function bypass (state: CacheRequest, reply: FastifyReply, done: HookHandlerDoneFunction, detail: string, counter: CountedOutcome): void {
  state.phase = BYPASSED
  state.decided(counter, 'bypass')
  setStatusHeaders(reply, state.settings, 'BYPASS', detail, undefined)
  done()
}
