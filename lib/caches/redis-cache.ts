import { checkObject } from '../validate'
import { EmberCache } from './cache'
import type { ClusterNodeLike, RedisClientLike, RedisOptionsLike } from './redis-client'
import { RedisDriver } from './redis-driver'
import { sharedParts, type RemoteCacheOptions } from './shared-tier'

export interface RedisCacheOptions extends RemoteCacheOptions {
  /** `redis://[:password@]host:port[/db]`. */
  url?: string
  /** ioredis connection options (host, port, password, tls, ...), merged over ours. */
  redisOptions?: RedisOptionsLike
  /** Redis Cluster seed nodes; the cache then uses an ioredis Cluster client. */
  clusterNodes?: ClusterNodeLike[]
  /** ioredis Cluster options, with `clusterNodes`. */
  clusterOptions?: RedisOptionsLike
  /**
   * An existing ioredis Redis or Cluster client, ioredis 5 or 6, from any copy (for example
   * `fastify.redis` from @fastify/redis: create the cache after `await app.register(fastifyRedis)`).
   * Not closed by us unless `closeClient`.
   */
  client?: RedisClientLike
  /** Close a client passed in `client` when the app closes. Default false. */
  closeClient?: boolean
  /** Keys asked per SCAN step during pattern invalidation. Default 500. */
  scanCount?: number
  /**
   * Cross-instance stampede protection: one instance runs the handler per key, the others wait
   * for its entry. false turns it off. Default { ttl: 5000, wait: 5000, poll: 25 } (ms): a
   * holder that dies frees the key after `ttl`; a waiter runs the handler itself after `wait`.
   */
  lock?: boolean | { ttl?: number, wait?: number, poll?: number }
}

/**
 * Entries in Redis (or a Redis Cluster), shared by every instance: a shared tier over the Redis
 * driver (layout and scripts in redis-driver.ts).
 */
export class RedisCache extends EmberCache {
  readonly kind = 'redis'
  /** The ioredis client (Redis or Cluster): the one passed in, or the one this cache made. */
  readonly client: RedisClientLike

  constructor (options: RedisCacheOptions) {
    checkObject('RedisCache', options)
    let driver: RedisDriver | undefined
    super(options, sharedParts('RedisCache', 'redis', options, (shared) => (driver = new RedisDriver(shared, options))))
    this.client = (driver as RedisDriver).client
  }
}
