import { optionNames } from '../option-spec'
import { InvalidOptionError } from '../errors'
import { EmberCache, type CacheOptions, type CacheParts } from './cache'
import { LocalEntries } from './local-entries'

export interface LocalCacheOptions extends CacheOptions {
  /** Most entries kept (variants count one each); least recently used go first. Default 10 000. */
  max?: number
  /** Most bytes kept (keys, bodies and headers, approximately). Default: unbounded. */
  maxSize?: number
}

/** In-process LRU with TTL: the embedded default, no server needed. */
export class MemoryCache extends EmberCache {
  readonly kind = 'memory'
  constructor (options?: LocalCacheOptions) {
    super(options, localParts('MemoryCache', options))
  }
}

export type StaticCacheOptions = Omit<LocalCacheOptions, 'ttl' | 'staleWhileRevalidate' | 'staleIfError'>

/**
 * For responses that never change (build info, static config): stored on the first cacheable
 * response and served from memory until invalidated or evicted. Entries never expire; `max`
 * bounds a route with many URLs.
 */
export class StaticCache extends EmberCache {
  readonly kind = 'static'
  constructor (options?: StaticCacheOptions) {
    const checked = staticOptions(options)
    super(checked, localParts('StaticCache', checked))
  }
}

/** An in-process cache's parts: its entries in this process. */
function localParts (where: string, options: LocalCacheOptions | undefined): CacheParts {
  return { where, allowed: optionNames('local'), defaultPrefix: '', tier: () => new LocalEntries(where, options) }
}

function staticOptions (options: StaticCacheOptions | undefined): LocalCacheOptions | undefined {
  if (options === undefined) return { ttl: 0 }
  if (options === null || typeof options !== 'object' || Array.isArray(options)) return options
  for (const name of ['ttl', 'staleWhileRevalidate', 'staleIfError']) {
    // A TTL on a static cache is a contradiction: say so rather than ignore it.
    if (name in options) throw new InvalidOptionError('StaticCache.' + name, 'static entries never expire; use MemoryCache for a TTL')
  }
  return { ...options, ttl: 0 }
}
