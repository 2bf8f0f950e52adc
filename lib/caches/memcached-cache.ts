import { checkObject } from '../validate'
import { EmberCache } from './cache'
import { MemcachedStore, withItemDefaults } from './memcached-store'
import { sharedParts, type RemoteCacheOptions } from './shared-tier'
import { VersionedDriver } from './versioned-driver'

export { placeKey } from './memcached-store'

export interface MemcachedCacheOptions extends RemoteCacheOptions {
  /** `'host1:11211,host2:11211'` or an array of `host:port`. Keys are spread across them. */
  servers?: string | string[]
  /** Single-server form, with `port`. */
  host?: string
  /** Single-server form, with `host`. Default 11211. */
  port?: number
  /** Clients per server (each with its own connection) used in turn. Default 1. */
  poolSize?: number
  /**
   * The largest item the servers hold, in bytes (memcached's `-I`). Larger entries are not
   * stored (counted in stats as entriesRefused; the backend is not blamed). Default 1 MiB, and
   * `maxEntryBytes` defaults to it less 16 KiB for the envelope and key.
   */
  maxItemBytes?: number
}

/**
 * Entries in Memcached, shared by every instance: a shared tier over the version scheme
 * (versioned-driver.ts) on Memcached's servers (memcached-store.ts: placement, keys, CAS).
 * Pattern invalidation is refused with a typed error.
 */
export class MemcachedCache extends EmberCache {
  readonly kind = 'memcached'

  constructor (options: MemcachedCacheOptions) {
    checkObject('MemcachedCache', options)
    const given = withItemDefaults(options)
    super(given, sharedParts('MemcachedCache', 'memcached', given, (shared) => new VersionedDriver(shared, new MemcachedStore(shared, given))))
  }
}
