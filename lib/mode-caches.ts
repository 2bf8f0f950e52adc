import type { FastifyInstance } from 'fastify'
import type { EmberCache } from './caches/cache'
import { MemoryCache, StaticCache } from './caches/local-cache'
import { RedisCache, type RedisCacheOptions } from './caches/redis-cache'
import { MemcachedCache } from './caches/memcached-cache'
import { InvalidOptionError } from './errors'
import type { CacheMode, ResolvedPluginOptions } from './options'
import { describe } from './validate'

/** Plugin option `redis`: a RedisCache's options, or the @fastify/redis instance to use. */
export type ModeRedisOptions = RedisCacheOptions & {
  /**
   * With @fastify/redis registered with a `namespace`: the named instance to use
   * (`fastify.redis[namespace]`). Without url, redisOptions, clusterNodes or client, the
   * `{ mode: 'redis' }` routes use `fastify.redis`; that client is the app's, never closed by us.
   */
  namespace?: string
}

const CONNECTION_OPTIONS = ['url', 'redisOptions', 'clusterNodes', 'client'] as const

/**
 * The caches behind `{ mode }` routes: one per mode, made when a route first asks for it (so an
 * app that never uses Redis never loads ioredis).
 */
export class ModeCaches {
  private readonly made = new Map<CacheMode, EmberCache>()

  constructor (private readonly fastify: FastifyInstance, private readonly opts: ResolvedPluginOptions) {}

  get (mode: CacheMode, where: string): EmberCache {
    let cache = this.made.get(mode)
    if (cache === undefined) {
      cache = this.create(mode, where)
      this.made.set(mode, cache)
    }
    return cache
  }

  private create (mode: CacheMode, where: string): EmberCache {
    const opts = this.opts
    const keyPrefix = opts.keyPrefix === undefined ? {} : { keyPrefix: opts.keyPrefix }
    switch (mode) {
      case 'static': return new StaticCache({ ...keyPrefix, ...opts.static })
      case 'memory': return new MemoryCache({ ...keyPrefix, ...opts.memory })
      case 'redis': return new RedisCache({ ...keyPrefix, ...this.redisOptions(where) })
      case 'memcached':
        if (opts.memcached === undefined) throw new InvalidOptionError(where, "mode 'memcached' needs the plugin option memcached: { servers } (or a MemcachedCache object on the route)")
        return new MemcachedCache({ ...keyPrefix, ...opts.memcached })
    }
  }

  /** The plugin's `redis` option, or the client @fastify/redis decorated the app with. */
  private redisOptions (where: string): RedisCacheOptions {
    const { namespace, ...rest } = this.opts.redis ?? {}
    const connects = CONNECTION_OPTIONS.some((name) => name in rest)
    if (connects) {
      if (namespace !== undefined) throw new InvalidOptionError('redis.namespace', 'names an @fastify/redis instance; it cannot be given with ' + CONNECTION_OPTIONS.filter((name) => name in rest).join(', '))
      return rest
    }
    const decorated = (this.fastify as unknown as { redis?: Record<string, unknown> }).redis
    if (decorated === undefined || decorated === null) {
      throw new InvalidOptionError(where, "mode 'redis' needs a Redis: register @fastify/redis before this route (its fastify.redis is used and left for it to close), or give the plugin option redis: { url }, or a RedisCache object on the route")
    }
    if (namespace !== undefined) {
      const named = decorated[namespace]
      if (named === undefined) throw new InvalidOptionError('redis.namespace', 'fastify.redis has no instance named ' + JSON.stringify(namespace) + ' (it has ' + namesOf(decorated) + ')')
      return { ...rest, client: named as RedisCacheOptions['client'] }
    }
    if (typeof decorated.status !== 'string') {
      // @fastify/redis registered only with namespaces: fastify.redis is an object of clients.
      throw new InvalidOptionError('redis.namespace', 'fastify.redis holds named instances (' + namesOf(decorated) + '): choose one with the plugin option redis: { namespace }')
    }
    return { ...rest, client: decorated as RedisCacheOptions['client'] }
  }
}

function namesOf (decorated: object): string {
  const names = Object.keys(decorated)
  return names.length === 0 ? 'none' : names.map((name) => JSON.stringify(name)).join(', ')
}

/** The option's own check at registration: a namespace is a non-empty string. */
export function checkNamespace (redis: ModeRedisOptions | undefined): void {
  if (redis?.namespace !== undefined && (typeof redis.namespace !== 'string' || redis.namespace === '')) {
    throw new InvalidOptionError('redis.namespace', 'expected the name of an @fastify/redis instance, got ' + describe(redis.namespace))
  }
}
