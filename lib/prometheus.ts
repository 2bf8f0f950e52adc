import type { EmberCacheStats } from './observe'

// Prometheus metrics from `fastify.emberCache.stats()`, read at scrape time. prom-client stays
// optional: you pass it in, so this package does not depend on it.

/**
 * What is used of prom-client (any version whose Counter and Gauge take `collect`). The config
 * is typed loosely on purpose: prom-client's own types (generic label names, its Registry
 * class) must be assignable, whatever version the app has.
 */
export interface PromClientLike {
  Counter: new (config: any) => unknown
  Gauge: new (config: any) => unknown
}

export interface PrometheusOptions {
  /** Prefix of every metric name. Default 'ember_cache_'. */
  prefix?: string
  /** prom-client registries to register in. Default: prom-client's global registry. */
  registers?: unknown[]
}

type Labels = Record<string, string>
interface Metric { reset: () => void, set?: (labels: Labels, value: number) => void, inc?: (labels: Labels, value: number) => void }

const ROUTE_OUTCOMES = [
  ['hits', 'hit'], ['misses', 'miss'], ['staleWhileRevalidate', 'stale_while_revalidate'], ['staleIfError', 'stale_if_error'],
  ['staleMaxStale', 'stale_max_stale'], ['collapsed', 'collapsed'],
  ['bypassAuthorization', 'bypass_authorization'], ['bypassRequest', 'bypass_request'],
  ['bypassBackendDown', 'bypass_backend_down'], ['bypassKey', 'bypass_key']
] as const

/**
 * Registers the cache's metrics with prom-client:
 *   <prefix>requests_total{route,cache,outcome}        what the cache did per request (hit, miss, stale_*, collapsed, bypass_*; disjoint)
 *   <prefix>l1_hits_total{route,cache}                 of the hits, those answered by the in-process tier
 *   <prefix>revalidated_total{route,cache}             of the misses, stale entries the handler confirmed with a 304
 *   <prefix>background_refreshes_total{route,cache}    refreshes run for stale-while-revalidate answers
 *   <prefix>stores_total{route,cache,result}           stored / not_stored (the backend did not take it)
 *   <prefix>store_refusals_total{route,cache,reason}   responses not stored, by reason
 *   <prefix>invalidations_total{cache,result}          done / failed (queued for retry)
 *   <prefix>backend_errors_total{cache,kind}           error / timeout
 *   <prefix>breaker_open{cache}                        1 while the circuit is open
 *   <prefix>queued_invalidations{cache}                invalidations waiting for the backend
 *   <prefix>entries{cache,tier} / <prefix>bytes{cache,tier}   held in process (tier: process, l1)
 *   <prefix>bus_healthy{cache}                         two-tier caches: 1 while the coherence bus is up
 */
export function registerPrometheusMetrics (prom: PromClientLike, emberCache: { stats: () => EmberCacheStats }, options: PrometheusOptions = {}): void {
  const prefix = options.prefix ?? 'ember_cache_'
  const registers = options.registers === undefined ? {} : { registers: options.registers }
  // One snapshot per scrape: a registry collects every metric in one turn of the event loop, and
  // a snapshot walks the caches (once per metric it cost 7.7 ms a scrape with 3,000 entries).
  let snapshot: EmberCacheStats | undefined
  const stats = (): EmberCacheStats => {
    if (snapshot === undefined) {
      snapshot = emberCache.stats()
      setImmediate(() => { snapshot = undefined })
    }
    return snapshot
  }
  const counter = (name: string, help: string, labelNames: string[], fill: (stats: EmberCacheStats, inc: (labels: Labels, value: number) => void) => void): void => {
    // eslint-disable-next-line no-new
    new prom.Counter({
      name: prefix + name,
      help,
      labelNames,
      ...registers,
      collect (this: Metric) {
        this.reset()
        fill(stats(), (labels, value) => this.inc?.(labels, value))
      }
    })
  }
  const gauge = (name: string, help: string, labelNames: string[], fill: (stats: EmberCacheStats, set: (labels: Labels, value: number) => void) => void): void => {
    // eslint-disable-next-line no-new
    new prom.Gauge({
      name: prefix + name,
      help,
      labelNames,
      ...registers,
      collect (this: Metric) {
        this.reset()
        fill(stats(), (labels, value) => this.set?.(labels, value))
      }
    })
  }

  counter('requests_total', 'Requests of cached routes, by what the cache did', ['route', 'cache', 'outcome'], (stats, inc) => {
    for (const route of stats.routes) {
      for (const [field, outcome] of ROUTE_OUTCOMES) inc({ route: route.route, cache: route.cache, outcome }, route[field])
    }
  })
  counter('l1_hits_total', 'Hits answered by the in-process tier of a remote cache', ['route', 'cache'], (stats, inc) => {
    for (const route of stats.routes) inc({ route: route.route, cache: route.cache }, route.hitsL1)
  })
  counter('revalidated_total', 'Misses where the handler confirmed the stale entry with a 304', ['route', 'cache'], (stats, inc) => {
    for (const route of stats.routes) inc({ route: route.route, cache: route.cache }, route.revalidated)
  })
  counter('background_refreshes_total', 'Background refreshes run for stale-while-revalidate answers', ['route', 'cache'], (stats, inc) => {
    for (const route of stats.routes) inc({ route: route.route, cache: route.cache }, route.refreshes)
  })
  counter('stores_total', 'Responses stored, or not taken by the backend', ['route', 'cache', 'result'], (stats, inc) => {
    for (const route of stats.routes) {
      inc({ route: route.route, cache: route.cache, result: 'stored' }, route.stores)
      inc({ route: route.route, cache: route.cache, result: 'not_stored' }, route.notStored)
    }
  })
  counter('store_refusals_total', 'Responses not stored, by reason', ['route', 'cache', 'reason'], (stats, inc) => {
    for (const route of stats.routes) {
      for (const [reason, count] of Object.entries(route.refusals)) inc({ route: route.route, cache: route.cache, reason }, count)
    }
  })
  counter('invalidations_total', 'Invalidations, and those the backend could not take', ['cache', 'result'], (stats, inc) => {
    for (const cache of stats.caches) {
      inc({ cache: cache.name, result: 'done' }, cache.invalidations - cache.invalidationsFailed)
      inc({ cache: cache.name, result: 'failed' }, cache.invalidationsFailed)
    }
  })
  counter('backend_errors_total', 'Backend commands that failed or timed out', ['cache', 'kind'], (stats, inc) => {
    for (const cache of stats.caches) {
      inc({ cache: cache.name, kind: 'error' }, cache.backendErrors)
      inc({ cache: cache.name, kind: 'timeout' }, cache.backendTimeouts)
    }
  })
  gauge('breaker_open', '1 while the circuit breaker keeps requests off the backend', ['cache'], (stats, set) => {
    for (const cache of stats.caches) if (cache.breaker !== undefined) set({ cache: cache.name }, cache.breaker === 'closed' ? 0 : 1)
  })
  gauge('queued_invalidations', 'Invalidations waiting for the backend (no hits are served meanwhile)', ['cache'], (stats, set) => {
    for (const cache of stats.caches) if (cache.queuedInvalidations !== undefined) set({ cache: cache.name }, cache.queuedInvalidations)
  })
  gauge('entries', 'Entries held in this process', ['cache', 'tier'], (stats, set) => {
    for (const cache of stats.caches) {
      if (cache.entries !== undefined) set({ cache: cache.name, tier: 'process' }, cache.entries)
      if (cache.l1 !== undefined) set({ cache: cache.name, tier: 'l1' }, cache.l1.entries)
    }
  })
  gauge('bytes', 'Approximate bytes of the entries held in this process', ['cache', 'tier'], (stats, set) => {
    for (const cache of stats.caches) {
      if (cache.bytes !== undefined) set({ cache: cache.name, tier: 'process' }, cache.bytes)
      if (cache.l1 !== undefined) set({ cache: cache.name, tier: 'l1' }, cache.l1.bytes)
    }
  })
  gauge('bus_healthy', '1 while the coherence bus of a two-tier cache is up', ['cache'], (stats, set) => {
    for (const cache of stats.caches) if (cache.bus !== undefined) set({ cache: cache.name }, cache.bus.healthy ? 1 : 0)
  })
}
