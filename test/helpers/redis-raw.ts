// Raw access to what RedisCache stores, for the backend suite on a single server and on a
// cluster alike: an entry is a hash with one field per variant ('' for cache-aside values).

import type { Cluster, Redis } from 'ioredis'
import type { BackendTraits } from '../../lib/test-suite'

/** Where RedisCache keeps the entry of `key`: its prefix, a NUL, the key (redis-cache.ts). */
export function entryName (keyPrefix: string, key: string): string {
  return keyPrefix + '\u0000' + key
}

/** writeRaw / backendTtl for RedisCache, through a client of the test's own. */
export function redisRawTraits (raw: Redis | Cluster): Required<Pick<BackendTraits, 'writeRaw' | 'backendTtl'>> {
  return {
    writeRaw: async (keyPrefix, key, variant, bytes) => { await raw.hset(entryName(keyPrefix, key), variant, bytes) },
    backendTtl: async (keyPrefix, key) => {
      const ttl = await raw.ttl(entryName(keyPrefix, key))
      return ttl === -2 ? undefined : ttl
    }
  }
}
