import type { FastifyRequest } from 'fastify'
import { EmberCache } from './caches/cache'
import type { LocalCacheOptions, StaticCacheOptions } from './caches/local-cache'
import type { RedisCacheOptions } from './caches/redis-cache'
import type { MemcachedCacheOptions } from './caches/memcached-cache'
import { compileTemplate, urlKey, type KeyBuilder, type VariantHeaders } from './cache-key'
import { InvalidOptionError } from './errors'
import {
  checkBoolean, checkFunction, checkNonNegativeInteger, checkObject, checkSeconds,
  checkString, checkStringArray, describe, lowerCaseHeaders, rejectUnknown
} from './validate'

export type CacheMode = 'static' | 'memory' | 'redis' | 'memcached'
const MODES: ReadonlySet<string> = new Set(['static', 'memory', 'redis', 'memcached'])

/** Plugin options, given to `app.register(emberCache, options)`. */
export interface EmberCachePluginOptions {
  /** false turns every cached route into a pass-through (no lookup, no store). Default true. */
  enabled?: boolean
  /** Seconds of freshness when neither the route nor its cache sets `ttl`. Default 60. */
  defaultTtl?: number
  /** Name of the hit/miss header (MISS, HIT, BYPASS, STALE); false sends none. Default 'x-cache'. */
  header?: string | false
  /** Response statuses that may be stored. Default: every 2xx but 206. */
  statusCodes?: number[]
  /** Prefix for the caches the plugin creates for `mode` routes. Default '' (in-process), 'ember:' (remote). */
  keyPrefix?: string
  /** Options of the shared MemoryCache behind `{ mode: 'memory' }` routes. */
  memory?: LocalCacheOptions
  /** Options of the shared StaticCache behind `{ mode: 'static' }` routes. */
  static?: StaticCacheOptions
  /** Connection options of the shared RedisCache behind `{ mode: 'redis' }` routes. */
  redis?: RedisCacheOptions
  /** Connection options of the shared MemcachedCache behind `{ mode: 'memcached' }` routes. */
  memcached?: MemcachedCacheOptions
  /** Honour request Cache-Control (no-cache, no-store, max-age, max-stale, only-if-cached). Default true. */
  respectRequestDirectives?: boolean
  /** Cache name in the RFC 9211 Cache-Status header; false sends none. Default 'ember'. */
  cacheStatus?: string | false
  /** Adds the cache key to Cache-Status (useful in development, leaks URLs to clients). Default false. */
  debug?: boolean
  /** Milliseconds a collapsed request waits for the request running the handler; 0 turns collapsing off. Default 5000. */
  collapseWait?: number
  /** Stream payloads up to this many bytes are buffered and stored; 0 leaves streams alone. Default 0. */
  streamMaxBytes?: number
  /**
   * Response header a handler may set to tag its response (surrogate keys): tags separated by
   * spaces or commas, merged into the entry's `tags` for `invalidate({ tags })`. The header is
   * removed before the response is sent and never stored. false turns this off. Default 'cache-tag'.
   */
  surrogateKeyHeader?: string | false
  /**
   * Headers set per request (request ids, tracing, timing): never stored, so a hit keeps the
   * values this request's own hooks set instead of replaying the first request's. Default
   * ['x-request-id', 'request-id', 'x-correlation-id', 'traceparent', 'tracestate', 'server-timing'].
   */
  perRequestHeaders?: string[]
}

/** Route options: `config: { cache: { ... } }`. */
export interface RouteCacheOptions {
  /** Use the plugin's shared cache of this mode. */
  mode?: CacheMode
  /** Use this cache object (shared with other routes). */
  cache?: EmberCache
  /**
   * Seconds of freshness; 0 = never expires. `'from-response'` takes each response's own
   * `s-maxage`, else `max-age` (RFC 9111 §5.2.2.10, §5.2.2.1), and falls back to the cache `ttl`,
   * then the plugin `defaultTtl`, when it has neither; a response that says 0 is not stored.
   * Default: cache `ttl`, then plugin `defaultTtl`.
   */
  ttl?: number | 'from-response'
  /** Tags stored with the entry, for `invalidate({ tags })`. */
  tags?: string[] | ((request: FastifyRequest) => string[])
  /**
   * Request headers that select a variant. Headers named in a response's own `Vary` are added
   * automatically (except Accept-Encoding: the identity body is stored and compressed per
   * response). Including `authorization` lets requests with credentials use the cache.
   * Default: the cache's `varyHeaders`.
   */
  varyHeaders?: string[]
  /** Replaces the computed key. */
  keyFn?: (request: FastifyRequest) => string
  /** Key template filled from params, then query: `'widget:{widgetId}'`. */
  key?: string
  /** Statuses that may be stored. Default: the plugin's. */
  statusCodes?: number[]
  /** Write routes: more targets to invalidate after a 2xx. `{name}` fills from params/query; `*` = pattern; `tags:a,b` = tags. */
  invalidate?: string[]
  /** PUT/PATCH routes: store the 2xx response as the GET entry of the same URL. Default false. */
  writeThrough?: boolean
  /**
   * Send `Cache-Control: private` instead of public. Also lets requests that carry
   * `Authorization` use the cache (RFC 9111 §3.5), which they otherwise bypass: the route then
   * vouches that its key (or varyHeaders) separates users. Default false.
   */
  private?: boolean
  /** Seconds an expired entry is served while one refresh runs. Default: cache, then 0. */
  staleWhileRevalidate?: number
  /** Seconds an expired entry replaces an origin error. Default: cache, then 0. */
  staleIfError?: number
  /**
   * Milliseconds the handler may take when an entry within `staleIfError` exists; past it, the
   * stale entry is served and the late answer is dropped. 0 waits for the handler. Default 0.
   */
  staleIfErrorTimeout?: number
  /** Honour request Cache-Control directives on this route. Default: the plugin's. */
  respectRequestDirectives?: boolean
  /** Stream payloads up to this many bytes are stored. Default: the plugin's. */
  streamMaxBytes?: number
  /**
   * Look up in `onRequest` instead of `preHandler`: a hit skips every later hook of the route
   * (preParsing, preValidation, preHandler) and validation. Only for public routes whose
   * answer is the same for everyone (health, build info, static config): an auth check in
   * one of those later hooks does NOT run on a hit. App-wide onRequest hooks and the route's
   * own onRequest hooks still run first; requests with Authorization still bypass the cache
   * unless the route opted in. Default false.
   */
  early?: boolean
}

export type RouteCacheConfig = EmberCache | RouteCacheOptions

/** Plugin options after validation and defaults. */
export interface ResolvedPluginOptions {
  enabled: boolean
  defaultTtl: number
  header: string | false
  statusCodes: Set<number>
  keyPrefix: string | undefined
  memory: LocalCacheOptions | undefined
  static: StaticCacheOptions | undefined
  redis: RedisCacheOptions | undefined
  memcached: MemcachedCacheOptions | undefined
  respectRequestDirectives: boolean
  cacheStatus: string | false
  debug: boolean
  collapseWait: number
  streamMaxBytes: number
  surrogateKeyHeader: string | false
  perRequestHeaders: ReadonlySet<string>
  /**
   * Request headers learned from responses' Vary, per route config object and URL, so that a
   * GET route and its automatic HEAD route (two RouteSettings) learn together.
   */
  learnedVary: WeakMap<object, Map<string, VariantHeaders>>
}

/** Everything a cached route needs per request, computed once at route registration. */
export interface RouteSettings {
  cache: EmberCache
  isStatic: boolean
  /** Freshness in seconds; with `ttlFromResponse`, the fallback when the response sets none. */
  ttl: number
  /** `ttl: 'from-response'`: take the TTL from the response's s-maxage / max-age. */
  ttlFromResponse: boolean
  tags: string[] | ((request: FastifyRequest) => string[]) | undefined
  /** The configured variant headers (route, else cache). */
  varyHeaders: string[]
  /** Configured variant headers plus those learned from responses' Vary: what lookups use. */
  variantHeaders: VariantHeaders
  /** RFC 9111 §3.5: requests with Authorization may use the cache (the route opted in). */
  allowsAuthorization: boolean
  /** The request's key; for write routes, the key of the GET entry of the same URL. */
  keyOf: KeyBuilder
  statusCodes: Set<number>
  invalidate: string[]
  writeThrough: boolean
  isPrivate: boolean
  staleWhileRevalidate: number
  staleIfError: number
  staleIfErrorTimeout: number
  maxEntryBytes: number
  streamMaxBytes: number
  respectRequestDirectives: boolean
  /** Look up in onRequest (route option `early`). */
  early: boolean
  header: string | false
  cacheStatus: string | false
  debug: boolean
  collapseWait: number
  surrogateKeyHeader: string | false
  perRequestHeaders: ReadonlySet<string>
}

const PLUGIN_OPTIONS: ReadonlySet<string> = new Set([
  'enabled', 'defaultTtl', 'header', 'statusCodes', 'keyPrefix', 'memory', 'static', 'redis', 'memcached',
  'respectRequestDirectives', 'cacheStatus', 'debug', 'collapseWait', 'streamMaxBytes', 'surrogateKeyHeader', 'perRequestHeaders'
])
const ROUTE_OPTIONS: ReadonlySet<string> = new Set([
  'mode', 'cache', 'ttl', 'tags', 'varyHeaders', 'keyFn', 'key', 'statusCodes', 'invalidate', 'writeThrough',
  'private', 'staleWhileRevalidate', 'staleIfError', 'staleIfErrorTimeout', 'respectRequestDirectives', 'streamMaxBytes',
  'early'
])
// RFC 9110 §15.3.7: a 206 holds part of a representation; storing it as the whole would be wrong.
const DEFAULT_STATUS_CODES = [200, 201, 202, 203, 204, 205, 207, 208, 226]
const DEFAULT_TTL = 60
const DEFAULT_PER_REQUEST_HEADERS = ['x-request-id', 'request-id', 'x-correlation-id', 'traceparent', 'tracestate', 'server-timing']
const DEFAULT_COLLAPSE_WAIT = 5000
const DEFAULT_SURROGATE_KEY_HEADER = 'cache-tag'
const TTL_FROM_RESPONSE = 'from-response'

export function resolvePluginOptions (options: EmberCachePluginOptions | undefined): ResolvedPluginOptions {
  checkObject('options', options)
  const opts = options ?? {}
  rejectUnknown('', opts, PLUGIN_OPTIONS)
  checkBoolean('enabled', opts.enabled)
  checkSeconds('defaultTtl', opts.defaultTtl)
  checkHeaderName('header', opts.header)
  checkString('keyPrefix', opts.keyPrefix)
  for (const name of ['memory', 'static', 'redis', 'memcached'] as const) checkObject(name, opts[name])
  checkBoolean('respectRequestDirectives', opts.respectRequestDirectives)
  checkHeaderName('cacheStatus', opts.cacheStatus)
  checkBoolean('debug', opts.debug)
  checkNonNegativeInteger('collapseWait', opts.collapseWait)
  checkNonNegativeInteger('streamMaxBytes', opts.streamMaxBytes)
  checkHeaderName('surrogateKeyHeader', opts.surrogateKeyHeader)
  return {
    enabled: opts.enabled ?? true,
    defaultTtl: opts.defaultTtl ?? DEFAULT_TTL,
    header: opts.header === undefined ? 'x-cache' : opts.header === false ? false : opts.header.toLowerCase(),
    statusCodes: statusSet('statusCodes', opts.statusCodes) ?? new Set(DEFAULT_STATUS_CODES),
    keyPrefix: opts.keyPrefix,
    memory: opts.memory,
    static: opts.static,
    redis: opts.redis,
    memcached: opts.memcached,
    respectRequestDirectives: opts.respectRequestDirectives ?? true,
    cacheStatus: opts.cacheStatus ?? 'ember',
    debug: opts.debug ?? false,
    collapseWait: opts.collapseWait ?? DEFAULT_COLLAPSE_WAIT,
    streamMaxBytes: opts.streamMaxBytes ?? 0,
    surrogateKeyHeader: opts.surrogateKeyHeader === undefined
      ? DEFAULT_SURROGATE_KEY_HEADER
      : opts.surrogateKeyHeader === false ? false : opts.surrogateKeyHeader.toLowerCase(),
    perRequestHeaders: new Set(lowerCaseHeaders('perRequestHeaders', opts.perRequestHeaders) ?? DEFAULT_PER_REQUEST_HEADERS),
    learnedVary: new WeakMap()
  }
}

/**
 * Merges one route's `config.cache` with its cache object and the plugin options
 * (route > cache object > plugin > defaults). `cacheForMode` returns the plugin's shared cache.
 */
export function resolveRouteOptions (
  config: unknown,
  routeLabel: string,
  plugin: ResolvedPluginOptions,
  cacheForMode: (mode: CacheMode, where: string) => EmberCache
): RouteSettings {
  const where = routeLabel + ' config.cache'
  const route: RouteCacheOptions = config instanceof EmberCache ? { cache: config } : checkRouteObject(where, config)
  rejectUnknown(where + '.', route, ROUTE_OPTIONS)

  let cache: EmberCache
  if (route.cache !== undefined) {
    if (!(route.cache instanceof EmberCache)) {
      throw new InvalidOptionError(where + '.cache', 'expected a cache object (MemoryCache, StaticCache, RedisCache, MemcachedCache), got ' + describe(route.cache))
    }
    if (route.mode !== undefined) throw new InvalidOptionError(where + '.mode', 'give either mode or cache, not both')
    cache = route.cache
  } else {
    if (route.mode === undefined || !MODES.has(route.mode)) {
      throw new InvalidOptionError(where + '.mode', 'expected one of static, memory, redis, memcached (or a cache object), got ' + describe(route.mode))
    }
    cache = cacheForMode(route.mode, where + '.mode')
  }

  const ttlFromResponse = route.ttl === TTL_FROM_RESPONSE
  if (!ttlFromResponse && route.ttl !== undefined && (typeof route.ttl !== 'number' || !Number.isFinite(route.ttl) || route.ttl < 0)) {
    throw new InvalidOptionError(where + '.ttl', "expected a number of seconds >= 0 or 'from-response', got " + describe(route.ttl))
  }
  const isStatic = cache.kind === 'static'
  if (isStatic && route.ttl !== undefined && route.ttl !== 0) {
    throw new InvalidOptionError(where + '.ttl', 'static caches never expire; use mode memory for a TTL')
  }
  if (route.tags !== undefined && typeof route.tags !== 'function') checkStringArray(where + '.tags', route.tags)
  checkFunction(where + '.keyFn', route.keyFn)
  checkString(where + '.key', route.key)
  if (route.keyFn !== undefined && route.key !== undefined) throw new InvalidOptionError(where + '.key', 'give either key or keyFn, not both')
  checkStringArray(where + '.invalidate', route.invalidate)
  checkBoolean(where + '.writeThrough', route.writeThrough)
  checkBoolean(where + '.private', route.private)
  checkSeconds(where + '.staleWhileRevalidate', route.staleWhileRevalidate)
  checkSeconds(where + '.staleIfError', route.staleIfError)
  checkNonNegativeInteger(where + '.staleIfErrorTimeout', route.staleIfErrorTimeout)
  checkBoolean(where + '.respectRequestDirectives', route.respectRequestDirectives)
  checkNonNegativeInteger(where + '.streamMaxBytes', route.streamMaxBytes)
  checkBoolean(where + '.early', route.early)

  let varyHeaders = lowerCaseHeaders(where + '.varyHeaders', route.varyHeaders) ?? cache.varyHeaders ?? []
  // A private route keyed by URL alone would hand one user's answer to another: without a
  // keyFn/key of its own, it keeps one variant per credential.
  if (route.private === true && route.keyFn === undefined && route.key === undefined && !varyHeaders.includes('authorization')) {
    varyHeaders = [...varyHeaders, 'authorization']
  }

  if (route.early === true) checkEarly(where, route, varyHeaders)

  return {
    cache,
    isStatic,
    ttl: isStatic ? 0 : (ttlFromResponse ? undefined : route.ttl as number | undefined) ?? cache.ttl ?? plugin.defaultTtl,
    ttlFromResponse,
    tags: route.tags,
    varyHeaders,
    variantHeaders: sharedVariantHeaders(plugin, config as object, routeLabel, varyHeaders),
    allowsAuthorization: route.private === true || route.keyFn !== undefined || route.key !== undefined || varyHeaders.includes('authorization'),
    keyOf: keyBuilder(route),
    statusCodes: statusSet(where + '.statusCodes', route.statusCodes) ?? plugin.statusCodes,
    invalidate: route.invalidate ?? [],
    writeThrough: route.writeThrough ?? false,
    isPrivate: route.private ?? false,
    staleWhileRevalidate: route.staleWhileRevalidate ?? cache.staleWhileRevalidate ?? 0,
    staleIfError: route.staleIfError ?? cache.staleIfError ?? 0,
    staleIfErrorTimeout: route.staleIfErrorTimeout ?? 0,
    maxEntryBytes: cache.maxEntryBytes,
    streamMaxBytes: route.streamMaxBytes ?? plugin.streamMaxBytes,
    respectRequestDirectives: route.respectRequestDirectives ?? plugin.respectRequestDirectives,
    early: route.early ?? false,
    header: plugin.header,
    cacheStatus: plugin.cacheStatus,
    debug: plugin.debug,
    collapseWait: plugin.collapseWait,
    surrogateKeyHeader: plugin.surrogateKeyHeader,
    perRequestHeaders: plugin.perRequestHeaders
  }
}

/**
 * One learned-Vary list per route config object and URL. Fastify gives the automatic HEAD
 * route the same config object as its GET route, so both look up the same variants.
 */
function sharedVariantHeaders (plugin: ResolvedPluginOptions, config: object, routeLabel: string, configured: string[]): VariantHeaders {
  let byUrl = plugin.learnedVary.get(config)
  if (byUrl === undefined) {
    byUrl = new Map()
    plugin.learnedVary.set(config, byUrl)
  }
  // The label is "METHODS url"; GET and HEAD differ only in the methods part.
  const url = routeLabel.slice(routeLabel.indexOf(' ') + 1)
  let headers = byUrl.get(url)
  if (headers === undefined) {
    headers = { names: configured }
    byUrl.set(url, headers)
  }
  return headers
}

/**
 * `early` answers before preValidation/preHandler auth runs, so it is refused where the route
 * says its answers belong to one caller, and where a timer would start counting before the
 * handler (staleIfErrorTimeout would then fire during the route's own hooks).
 */
function checkEarly (where: string, route: RouteCacheOptions, varyHeaders: string[]): void {
  if (route.private === true || varyHeaders.includes('authorization')) {
    throw new InvalidOptionError(where + '.early', 'serves hits before preValidation/preHandler auth runs, so it is for public routes only; this route caches per caller (private or varyHeaders: authorization)')
  }
  if ((route.staleIfErrorTimeout ?? 0) > 0) {
    throw new InvalidOptionError(where + '.early', 'cannot be combined with staleIfErrorTimeout: the timeout would count the route\'s own hooks, not only the handler')
  }
}

function checkRouteObject (where: string, config: unknown): RouteCacheOptions {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new InvalidOptionError(where, 'expected a cache object or { mode | cache, ...options }, got ' + describe(config))
  }
  return config as RouteCacheOptions
}

/** The key of the GET entry a request reads or writes: HEAD and write methods map to GET. */
function keyBuilder (route: RouteCacheOptions): KeyBuilder {
  const keyFn = route.keyFn
  if (keyFn !== undefined) {
    return (request) => {
      const key = keyFn(request)
      if (typeof key !== 'string' || key.length === 0) throw new InvalidOptionError('keyFn', 'must return a non-empty string, returned ' + describe(key))
      return key
    }
  }
  if (route.key !== undefined) return compileTemplate(route.key)
  return (request) => urlKey('GET', request.url)
}

function statusSet (name: string, value: unknown): Set<number> | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.length === 0 || value.some((code) => !Number.isInteger(code) || code < 100 || code > 599)) {
    throw new InvalidOptionError(name, 'expected a non-empty array of HTTP status codes, got ' + describe(value))
  }
  return new Set(value as number[])
}

function checkHeaderName (name: string, value: unknown): void {
  if (value === undefined || value === false) return
  if (typeof value !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value)) {
    throw new InvalidOptionError(name, 'expected a header token or false, got ' + describe(value))
  }
}
