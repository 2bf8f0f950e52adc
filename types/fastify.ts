// Fastify type augmentation: what `config.cache`, `reply.cacheInvalidate` and
// `fastify.emberCache` look like to TypeScript users of the plugin.
import type { EmberCache, InvalidationTarget } from '../lib/caches/cache'
import type { RouteCacheConfig } from '../lib/options'

/** The `fastify.emberCache` decorator. */
export interface EmberCacheDecorator {
  /** Invalidates on every cache the plugin manages (every cache used by a route). */
  invalidate: (target: InvalidationTarget) => Promise<void>
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
    cacheInvalidate: (target: InvalidationTarget) => Promise<void>
  }
  interface FastifyInstance {
    emberCache: EmberCacheDecorator
  }
}
