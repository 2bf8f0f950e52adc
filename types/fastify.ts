// Fastify type augmentation: what `config.cache`, `reply.cacheInvalidate` and
// `fastify.emberCache` look like to TypeScript users of the plugin.
import type { EmberCache, InvalidationReport, InvalidationTarget } from '../lib/caches/cache'
import type { RouteCacheConfig } from '../lib/options'
import type { EmberCacheStats } from '../lib/observe'

/** The `fastify.emberCache` decorator. */
export interface EmberCacheDecorator {
  /**
   * Invalidates on every cache the plugin manages (every cache used by a route, and the
   * `caches` option's), all of them even when some fail; the report says what each did.
   */
  invalidate: (target: InvalidationTarget) => Promise<InvalidationReport>
  /** Clears every managed cache (each under its own prefix only); the report says what each did. */
  clear: () => Promise<InvalidationReport>
  /**
   * What the caches did, per cache (backend errors, breaker, entries and bytes in process...)
   * and per route (hits by tier, misses, stale answers by kind, bypasses by reason, collapsed,
   * stores, refusals by reason). A plain snapshot, safe to serialize.
   */
  stats: () => EmberCacheStats
  /** Every cache the plugin manages. */
  readonly caches: EmberCache[]
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Opt this route into caching: a cache object, `{ mode, ...options }` or `{ cache, ...overrides }`. */
    cache?: RouteCacheConfig
  }
  interface FastifyReply {
    /** Invalidates on the route's cache, or on every managed cache when the route has none. */
    cacheInvalidate: (target: InvalidationTarget) => Promise<InvalidationReport>
  }
  interface FastifyInstance {
    emberCache: EmberCacheDecorator
  }
}
