import { createHmac, randomBytes } from 'node:crypto'
import { tracingChannel } from 'node:diagnostics_channel'
import type { EdgeStats } from './edge/forwarder'

// What an operator can see of the cache: counters per route (kept in RouteSettings) and per
// cache (kept in the cache object), and node:diagnostics_channel TracingChannels that tracers
// subscribe to. Publishing costs one property read when nobody listens.

/**
 * Requests of one route, by how they were answered: each client request is counted once in
 * hits, misses, staleWhileRevalidate, staleIfError, staleMaxStale, collapsed or a bypass*.
 * hitsL1 and revalidated are parts of hits and misses; refreshes, stores, notStored and
 * refusals count work, not client requests.
 */
export interface RouteCounters {
  hits: number
  /** Of `hits`, answered by a remote cache's in-process tier. */
  hitsL1: number
  /** The handler ran (the cache had nothing usable) and its answer went out. */
  misses: number
  /** Stale answers within stale-while-revalidate (a background refresh was started). */
  staleWhileRevalidate: number
  /** Stale answers in place of a handler's error (5xx) or of a handler too slow (staleIfErrorTimeout). */
  staleIfError: number
  /** Stale answers a client asked for (request max-stale). */
  staleMaxStale: number
  /** Background refreshes run (stale-while-revalidate answers, early refreshes of entries about to expire): not client requests. */
  refreshes: number
  /** Of `misses`, stale entries the handler confirmed with a 304. */
  revalidated: number
  /** Requests answered with what a concurrent request fetched (in process or across instances). */
  collapsed: number
  /** The request carried credentials on a route that did not opt in. */
  bypassAuthorization: number
  /** The request said no-store. */
  bypassRequest: number
  /** The backend was down, hung or its circuit open: served without cache. */
  bypassBackendDown: number
  /** No key could be made (keyFn threw, a template placeholder without a value). */
  bypassKey: number
  stores: number
  /** Responses the backend did not take (down, or an invalidation elsewhere won the race). */
  notStored: number
  /** Responses not stored, by why (status, set-cookie, no-store, too-large, ...). */
  refusals: Record<string, number>
}

export function routeCounters (): RouteCounters {
  return {
    hits: 0,
    hitsL1: 0,
    misses: 0,
    staleWhileRevalidate: 0,
    staleIfError: 0,
    staleMaxStale: 0,
    refreshes: 0,
    revalidated: 0,
    collapsed: 0,
    bypassAuthorization: 0,
    bypassRequest: 0,
    bypassBackendDown: 0,
    bypassKey: 0,
    stores: 0,
    notStored: 0,
    refusals: {}
  }
}

/** What happened to one cache object, whatever route used it. */
export interface CacheCounters {
  invalidations: number
  /** Invalidations the backend could not take (queued). */
  invalidationsFailed: number
  backendErrors: number
  backendTimeouts: number
  /** Messages received on the coherence bus. */
  busMessages: number
  /** Messages on the bus's channel that were not ours (malformed, foreign): dropped. */
  busMessagesRejected: number
  /** Entries the backend would not hold (too large for it): not stored, the backend not blamed. */
  entriesRefused: number
}

export function cacheCounters (): CacheCounters {
  return { invalidations: 0, invalidationsFailed: 0, backendErrors: 0, backendTimeouts: 0, busMessages: 0, busMessagesRejected: 0, entriesRefused: 0 }
}

/** One cache object in `fastify.emberCache.stats()`. */
export interface CacheStats extends CacheCounters {
  name: string
  kind: string
  /** Entries held in this process (in-process caches; the L1 tier of remote ones). */
  entries?: number
  /** Approximate bytes of those entries (keys, bodies and headers). */
  bytes?: number
  /** Remote caches: whether the backend is being asked ('closed'), not ('open'), or by one probe. */
  breaker?: 'closed' | 'open' | 'probing'
  /** Remote caches: invalidations waiting for the backend (no hits are served meanwhile). */
  queuedInvalidations?: number
  /** Two-tier caches: the in-process tier. */
  l1?: { entries: number, bytes: number }
  /** Two-tier caches: the coherence bus, and how long its last messages took to arrive. */
  bus?: { healthy: boolean, delayP50Ms: number | undefined, delayP99Ms: number | undefined }
}

/** One route in `fastify.emberCache.stats()`. */
export interface RouteStats extends RouteCounters {
  route: string
  cache: string
}

/** `fastify.emberCache.stats()`: a plain snapshot, safe to serialize. */
export interface EmberCacheStats {
  caches: CacheStats[]
  routes: RouteStats[]
  /** With the plugin's `edge` option: each edge's purges. */
  edges?: EdgeStats[]
}

/** The pth percentile (0..1) of some numbers, or undefined for none. */
export function percentile (values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

/**
 * The channels tracers subscribe to (public API; README, "Operations"). Each is a
 * TracingChannel: start, end, asyncStart, asyncEnd, error. The context object carries:
 *   lookup:     { cache, route, keyHash, outcome }       outcome: hit, hit-l1, stale, miss, revalidate, bypass, collapsed
 *   store:      { cache, route, keyHash, outcome }       outcome: stored, not-stored
 *   invalidate: { cache, target, soft, outcome }         target: key, pattern, tags, clear; outcome: done, queued
 *   refresh:    { cache, route, keyHash }                a background refresh (stale-while-revalidate)
 *   edgePurge:  { edge, all, tags, soft, outcome }       a purge sent to an edge; outcome: purged, failed
 * `async` is true when asyncStart/asyncEnd follow end (the work went to a remote backend).
 * keyHash is an HMAC-SHA-256 prefix of the key (keyHasher): keys may hold user data, so the key itself is never published.
 */
export const channels = {
  lookup: tracingChannel<unknown, TraceContext>('ember-cache:lookup'),
  store: tracingChannel<unknown, TraceContext>('ember-cache:store'),
  invalidate: tracingChannel<unknown, TraceContext>('ember-cache:invalidate'),
  refresh: tracingChannel<unknown, TraceContext>('ember-cache:refresh'),
  edgePurge: tracingChannel<unknown, EdgePurgeContext>('ember-cache:edge-purge')
}

/** The edge-purge channel's context: which edge, what was purged (a count of tags, or all), and how it went. */
export interface EdgePurgeContext { edge: string, all: boolean, tags: number, soft: boolean, outcome: string }

export interface TraceContext {
  cache: string
  route?: string
  keyHash?: string
  target?: string
  soft?: boolean
  outcome?: string
  async?: boolean
  error?: unknown
}

/**
 * A short hash of a key for traces (never the key): an HMAC-SHA-256 under `secret`. Unkeyed, a
 * key made of an id (`me:3`) was found back by trying ids, in under a millisecond. Give every
 * instance of a fleet the same secret (plugin option `keyHashSecret`) and its traces correlate;
 * without one, each process draws its own.
 */
export function keyHasher (secret: string | Buffer = PROCESS_SECRET): (key: string) => string {
  return (key) => createHmac('sha256', secret).update(key).digest('hex').slice(0, 16)
}

const PROCESS_SECRET = randomBytes(32)

/**
 * Publishes one operation on a TracingChannel: start now; `finish` (sync or a promise) ends it,
 * with asyncStart/asyncEnd for a promise, error on a rejection. Only called when the channel
 * has subscribers.
 */
export function trace<T> (channel: typeof channels.lookup, context: TraceContext, run: () => T | Promise<T>, outcomeOf: (result: T) => string | undefined): T | Promise<T> {
  channel.start.publish(context)
  let result: T | Promise<T>
  try {
    result = run()
  } catch (err) {
    context.error = err
    channel.error.publish(context)
    channel.end.publish(context)
    throw err
  }
  if (!isThenable(result)) {
    context.outcome = outcomeOf(result)
    channel.end.publish(context)
    return result
  }
  context.async = true
  channel.end.publish(context)
  // A thenable that is not a Promise (inject's chain) is settled through one.
  return Promise.resolve(result).then((value) => {
    context.outcome = outcomeOf(value)
    channel.asyncStart.publish(context)
    channel.asyncEnd.publish(context)
    return value
  }, (err: unknown) => {
    context.error = err
    channel.error.publish(context)
    channel.asyncStart.publish(context)
    channel.asyncEnd.publish(context)
    throw err
  })
}

function isThenable<T> (value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/**
 * A backend error in words a person understands, beside the error itself in the log: what
 * happened, not which internal of which client library noticed.
 */
export function describeBackendError (err: unknown): string {
  const error = err as { code?: string, message?: string, name?: string } | undefined
  const code = error?.code ?? ''
  const message = error?.message ?? String(err)
  if (code === 'FST_EMBER_CACHE_BACKEND_TIMEOUT' || /timed out|timeout/i.test(message)) return 'the server did not answer in time (hung, overloaded or unreachable)'
  if (code === 'FST_EMBER_CACHE_CIRCUIT_OPEN') return 'it failed repeatedly and is not being asked for a while (circuit open)'
  if (code === 'ECONNREFUSED' || /ECONNREFUSED/.test(message)) return 'the connection was refused (nothing listening at that address?)'
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'the server name does not resolve'
  if (code === 'ECONNRESET' || code === 'EPIPE' || /closed|ECONNRESET|EPIPE/i.test(message)) return 'the server closed the connection'
  if (/enableOfflineQueue|Stream isn't writeable|not connected|Connection is closed/i.test(message)) return 'the client is disconnected and reconnecting'
  if (/NOAUTH|WRONGPASS|invalid password|auth/i.test(message)) return 'the server refused our credentials'
  if (/CLUSTERDOWN|MOVED|ASK /.test(message)) return 'the Redis cluster is down or resharding'
  if (/OOM|out of memory/i.test(message)) return 'the server is out of memory'
  return 'it answered with an error: ' + message
}
