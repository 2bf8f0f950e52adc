import { nestedNames, optionNames } from './option-spec'
import type { FastifyRequest, RouteGenericInterface } from 'fastify'
import { CODINGS, DEFAULT_COMPRESSION, type Coding, type CompressionSettings } from './content-coding'
import { InvalidOptionError } from './errors'
import {
  checkBoolean, checkFunction, checkNonNegativeInteger, checkObject, checkSeconds, checkString, checkStringArray, describe, isToken, rejectUnknown
} from './validate'

// Options that make sense for every route of a cache as well as for one route: a cache object
// takes them as defaults for the routes using it (route > cache object > plugin > defaults).

/**
 * The request as the key and tag functions see it. By default params are strings and query
 * values whatever the query parser made of them; `cacheConfig<RouteGeneric>()` types them
 * with a route's own generics.
 */
export type CacheKeyRequest<RouteGeneric extends RouteGenericInterface = LooseRouteGeneric> = FastifyRequest<RouteGeneric>

/** What a route without generics of its own looks like to keyFn / tags. */
export interface LooseRouteGeneric extends RouteGenericInterface {
  Params: Record<string, string>
  Querystring: Record<string, any>
}

export interface RouteDefaults<RouteGeneric extends RouteGenericInterface = LooseRouteGeneric> {
  /**
   * Seconds of freshness; 0 = never expires. `'from-response'` takes each response's own
   * `s-maxage`, else `max-age` (RFC 9111 §5.2.2.10, §5.2.2.1), and falls back to the cache `ttl`,
   * then the plugin `defaultTtl`, when it has neither; a response that says 0 is not stored.
   * Default: cache `ttl`, then plugin `defaultTtl`.
   */
  ttl?: number | 'from-response'
  /** Tags stored with the entry, for `invalidate({ tags })`. Default: none. */
  tags?: string[] | ((request: CacheKeyRequest<RouteGeneric>) => string[])
  /**
   * Request headers that select a variant; responses name them in `Vary`. Headers named in a
   * response's own `Vary` select variants of that key too. Including `authorization` lets
   * requests with credentials use the cache (one variant per credential). Default: none.
   */
  varyHeaders?: string[]
  /**
   * Cookies that select a variant, by name: one entry per value (hashed, never stored in clear).
   * A handler that reads a cookie nobody named makes its key vary on it too. Responses say
   * `private` (shared caches in front cannot vary on one cookie). Default: none.
   */
  varyCookies?: string[]
  /**
   * Request headers the handler may read without them shaping its answer (logging, tracing):
   * reads of them are not observed. Any other header a miss reads makes the key vary on it
   * (README, "Security"). Default: none.
   */
  unkeyedHeaders?: string[]
  /**
   * Request properties that hold the caller's identity, besides `session` and `user` (which
   * are always observed): a miss whose handler reads one is not stored unless the route keys
   * per caller (`keyFn`, `private`) or is `public`. Default: none.
   */
  callerProperties?: string[]
  /**
   * Replaces the computed key. The route then vouches that its key separates callers: requests
   * with Authorization may use the cache and responses are sent `private`. Default: none.
   */
  keyFn?: (request: CacheKeyRequest<RouteGeneric>) => string
  /**
   * Key template: `'widget:{widgetId}'` fills from the route's params, `{query.page}` from the
   * query string. A placeholder that names no route param fails registration; a request
   * without a value for one is served without cache. Default: none (the URL key).
   */
  key?: string
  /** Statuses that may be stored. Default: the plugin's (every 2xx but 206). */
  statusCodes?: number[]
  /**
   * The route's answers belong to one caller: responses say `Cache-Control: private`, and
   * requests with Authorization may use the cache, one variant per credential (the
   * Authorization and Cookie headers) unless a keyFn separates callers. Default false.
   */
  private?: boolean
  /**
   * The route's answers are the same for everyone, credentials or not (RFC 9111 §3.5): responses
   * say `Cache-Control: public`, so shared caches in front (CDNs) may store them, and requests
   * with Authorization use this cache too (reads, and write-through of credentialed writes).
   * Default false: no scope is sent, or `private` on routes keyed per caller.
   */
  public?: boolean
  /**
   * Requests for different hosts or protocols (as Fastify resolves `request.host` and
   * `request.protocol`, forwarded headers included when trustProxy is on) share entries.
   * Only for one site served under several names. Default false: each host has its own.
   */
  shareAcrossHosts?: boolean
  /** Seconds an expired entry is served while one refresh runs (RFC 5861 §3). Default 0. */
  staleWhileRevalidate?: number
  /** Seconds an expired entry replaces an origin error (RFC 5861 §4). Default 0. */
  staleIfError?: number
  /**
   * Refresh a hot entry before it expires, in the background, once per entry across the fleet
   * (probabilistic early recomputation, "XFetch": Vattani, Chierichetti and Lowenstein, VLDB
   * 2015): a hit refreshes when `now + cost * beta * -ln(random) >= expiry`, `cost` being the
   * route's measured handler time. true is beta 1; a number is beta (larger: earlier); false
   * turns it off. Default true.
   */
  earlyRefresh?: boolean | number
  /**
   * A fraction (0 to 0.5) of a fixed ttl taken off at random for each stored entry, so entries
   * stored together (a deploy, a warm-up) do not expire together. Never lengthens freshness.
   * Default 0.
   */
  ttlJitter?: number
  /**
   * Milliseconds the handler may take when an entry within `staleIfError` exists; past it, the
   * stale entry is served and the late answer is dropped. 0 waits for the handler. Default 0.
   */
  staleIfErrorTimeout?: number
  /**
   * Seconds the edge in front (the plugin's `edge` option) may keep these responses, apart from
   * the browser's Cache-Control: sent as `CDN-Cache-Control: max-age=N` (or Surrogate-Control).
   * Refused on private routes and without an edge to purge.
   */
  edgeTtl?: number
  /**
   * With `ttl: 'from-response'`: a response without explicit freshness but with Last-Modified is
   * fresh for 10% of its age (at most a day), as RFC 9111 §4.2.2 allows, and as reverse proxies
   * in front of web origins do. Default true for from-response routes; false stores such a
   * response only to be revalidated (README, "A shared cache").
   */
  heuristicFreshness?: boolean
  /**
   * With `ttl: 'from-response'`: the targeted cache-control fields this cache obeys, in order
   * (RFC 9213): the first present and valid one decides freshness and storage in place of
   * Cache-Control and Expires. CDN-Cache-Control is passed on; other names (a product's own,
   * such as `Ember-CDN-Cache-Control`) are removed from the response. Default
   * `['CDN-Cache-Control']`; false obeys none.
   */
  targetedCacheControl?: string[] | false
  /** Honour request Cache-Control directives. Default: the plugin's (true). */
  respectRequestDirectives?: boolean
  /**
   * Stream payloads up to this many bytes are buffered and stored. Default: the plugin's (0);
   * with `ttl: 'from-response'`, the cache's maxEntryBytes (proxied bodies are streams).
   */
  streamMaxBytes?: number
  /**
   * Content codings computed once when a response is stored, so that hits send compressed
   * bytes without compressing (README, "Compression"). Only bodies of a compressible type
   * between `minBytes` and `maxBytes`, without Content-Encoding or `no-transform`.
   * Default `{ encodings: ['br', 'gzip'], minBytes: 1024, maxBytes: 1048576 }`; false: identity only.
   */
  compression?: boolean | CompressionOptions
}

export interface CompressionOptions {
  /** Codings to store, in the order preferred when a client weights them equally. Default ['br', 'gzip']. */
  encodings?: Coding[]
  /** Smaller bodies are stored identity only. Default 1024. */
  minBytes?: number
  /** Larger bodies are stored identity only. Default 1048576 (1 MiB). */
  maxBytes?: number
}

/** Route options a cache object may set for its routes (the spec's options of both scopes). */
const CACHE_NAMES: ReadonlySet<string> = new Set(optionNames('cache'))
export const ROUTE_DEFAULT_NAMES = optionNames('route').filter((name) => CACHE_NAMES.has(name)) as ReadonlyArray<keyof RouteDefaults<any>>

export const TTL_FROM_RESPONSE = 'from-response'

/** Validates route defaults given at `where` (a route's config.cache or a cache object). */
export function checkRouteDefaults (where: string, options: RouteDefaults<any>): void {
  const ttl = options.ttl
  if (ttl !== undefined && ttl !== TTL_FROM_RESPONSE && (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0)) {
    throw new InvalidOptionError(where + 'ttl', "expected a number of seconds >= 0 or 'from-response', got " + describe(ttl))
  }
  if (options.tags !== undefined && typeof options.tags !== 'function') checkStringArray(where + 'tags', options.tags)
  checkStringArray(where + 'varyHeaders', options.varyHeaders)
  checkTokens(where + 'varyCookies', options.varyCookies, 'cookie names')
  checkTokens(where + 'unkeyedHeaders', options.unkeyedHeaders, 'header names')
  checkStringArray(where + 'callerProperties', options.callerProperties)
  checkFunction(where + 'keyFn', options.keyFn)
  checkString(where + 'key', options.key)
  if (options.keyFn !== undefined && options.key !== undefined) throw new InvalidOptionError(where + 'key', 'give either key or keyFn, not both')
  statusSet(where + 'statusCodes', options.statusCodes)
  checkBoolean(where + 'private', options.private)
  checkBoolean(where + 'public', options.public)
  if (options.private === true && options.public === true) throw new InvalidOptionError(where + 'public', 'a response cannot be both public and private')
  checkBoolean(where + 'shareAcrossHosts', options.shareAcrossHosts)
  checkSeconds(where + 'staleWhileRevalidate', options.staleWhileRevalidate)
  if (options.earlyRefresh !== undefined && typeof options.earlyRefresh !== 'boolean' &&
    (typeof options.earlyRefresh !== 'number' || !Number.isFinite(options.earlyRefresh) || options.earlyRefresh < 0 || options.earlyRefresh > 10)) {
    throw new InvalidOptionError(where + 'earlyRefresh', 'expected a boolean or a beta from 0 to 10, got ' + describe(options.earlyRefresh))
  }
  if (options.ttlJitter !== undefined && (typeof options.ttlJitter !== 'number' || !(options.ttlJitter >= 0 && options.ttlJitter <= 0.5))) {
    throw new InvalidOptionError(where + 'ttlJitter', 'expected a fraction from 0 to 0.5, got ' + describe(options.ttlJitter))
  }
  checkSeconds(where + 'staleIfError', options.staleIfError)
  checkNonNegativeInteger(where + 'staleIfErrorTimeout', options.staleIfErrorTimeout)
  checkNonNegativeInteger(where + 'edgeTtl', options.edgeTtl)
  checkBoolean(where + 'respectRequestDirectives', options.respectRequestDirectives)
  checkBoolean(where + 'heuristicFreshness', options.heuristicFreshness)
  if (options.targetedCacheControl !== false) checkTokens(where + 'targetedCacheControl', options.targetedCacheControl, 'header names')
  checkNonNegativeInteger(where + 'streamMaxBytes', options.streamMaxBytes)
  compressionSettings(where + 'compression', options.compression)
}

/** Header and cookie names are tokens (RFC 9110 §5.6.2, RFC 6265 §4.1.1). */
function checkTokens (where: string, value: unknown, what: string): void {
  if (value === undefined) return
  if (!Array.isArray(value) || value.some((item) => !isToken(item))) {
    throw new InvalidOptionError(where, 'expected an array of ' + what + ' (tokens), got ' + describe(value))
  }
}

const COMPRESSION_OPTIONS: ReadonlySet<string> = nestedNames('compression')

/** The `compression` option, checked and completed with defaults; undefined when not given. */
export function compressionSettings (where: string, value: unknown): CompressionSettings | false | undefined {
  if (value === undefined) return undefined
  if (value === false) return false
  if (value === true) return DEFAULT_COMPRESSION
  checkObject(where, value)
  const options = value as CompressionOptions
  rejectUnknown(where + '.', options, COMPRESSION_OPTIONS)
  if (options.encodings !== undefined && (!Array.isArray(options.encodings) || options.encodings.some((coding) => !CODINGS.includes(coding)) || new Set(options.encodings).size !== options.encodings.length)) {
    throw new InvalidOptionError(where + '.encodings', 'expected distinct codings of ' + CODINGS.join(', ') + ' (or compression: false), got ' + describe(options.encodings))
  }
  checkNonNegativeInteger(where + '.minBytes', options.minBytes)
  checkNonNegativeInteger(where + '.maxBytes', options.maxBytes)
  const settings: CompressionSettings = {
    encodings: options.encodings ?? DEFAULT_COMPRESSION.encodings,
    minBytes: options.minBytes ?? DEFAULT_COMPRESSION.minBytes,
    maxBytes: options.maxBytes ?? DEFAULT_COMPRESSION.maxBytes
  }
  if (settings.maxBytes < settings.minBytes) throw new InvalidOptionError(where + '.maxBytes', `is below minBytes (${settings.minBytes})`)
  return settings
}

export function statusSet (name: string, value: unknown): Set<number> | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.length === 0 || value.some((code) => !Number.isInteger(code) || code < 100 || code > 599)) {
    throw new InvalidOptionError(name, 'expected a non-empty array of HTTP status codes, got ' + describe(value))
  }
  return new Set(value as number[])
}
