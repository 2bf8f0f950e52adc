// What the public types say of Redis clients, structurally: they never import ioredis's own
// types, so an app that does not use Redis never type-checks ioredis (whose 6.x declarations
// fail under `skipLibCheck: false`), and a client from any copy of ioredis 5 or 6 fits.

/**
 * An ioredis client, `Redis` or `Cluster`, from ioredis 5 or 6 (for example `fastify.redis` from
 * @fastify/redis). It is checked at construction for the commands the cache uses.
 */
export interface RedisClientLike {
  /** ioredis's connection state ('wait', 'connecting', 'ready', 'end'...). */
  readonly status: string
  on: (event: string, listener: (...args: any[]) => void) => unknown
  [command: string]: any
}

/** ioredis connection options (host, port, password, tls, db, retryStrategy...), passed on as they are. */
export type RedisOptionsLike = Record<string, any>

/** A Redis Cluster seed node: `'host:port'`, a port, or `{ host, port }`. */
export type ClusterNodeLike = string | number | { host?: string, port?: number }
