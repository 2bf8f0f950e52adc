import type { RouteGenericInterface } from 'fastify'
import { EmberCache } from './caches/cache'
import type { LocalCacheOptions, StaticCacheOptions } from './caches/local-cache'
import { checkNamespace, type ModeRedisOptions } from './mode-caches'
import { CDN_CACHE_CONTROL } from './targeted-cache-control'
import type { EdgeOptions, EdgeSettings } from './edge/settings'
import { readYourWritesSettings, type ReadYourWrites, type ReadYourWritesOptions } from './read-your-writes'
import type { MemcachedCacheOptions } from './caches/memcached-cache'
import { compileTemplate, targetKey, urlKey, type KeyBuilder } from './cache-key'
import { InvalidOptionError } from './errors'
import { optionNames } from './option-spec'
import {
  TTL_FROM_RESPONSE, checkRouteDefaults, compressionSettings, statusSet,
  type CacheKeyRequest, type CompressionOptions, type LooseRouteGeneric, type RouteDefaults
} from './route-defaults'
import { DEFAULT_COMPRESSION, type CompressionSettings } from './content-coding'
import {
  checkBoolean, checkNonNegativeInteger, checkObject, checkSeconds,
  checkString, checkStringArray, describe, isToken, lowerCaseHeaders, rejectUnknown
} from './validate'
import { keyHasher, routeCounters, type RouteCounters } from './observe'
import { COOKIE_NAME_PREFIX, type VariantPlan } from './variant'
import { CACHE_ANSWERED_HEADERS, type ObservePlan } from './hooks/read-observer'

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
  /**
   * Options of the shared RedisCache behind `{ mode: 'redis' }` routes. Without url,
   * redisOptions, clusterNodes or client, those routes use the client of @fastify/redis
   * (`fastify.redis`, or `fastify.redis[namespace]`), which stays the app's to close.
   */
  redis?: ModeRedisOptions
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
  /**
   * The CDN or Varnish in front of the app: stored responses carry their tags in the header it
   * reads, routes may give it a TTL of its own (`edgeTtl`), and every invalidation is forwarded
   * to its purge API (README, "Behind a CDN or Varnish").
   */
  edge?: EdgeOptions
  /**
   * Read your own writes, fleet-wide: after a write route answers, the same caller's reads on
   * any instance never get an entry stored before the write (a signed cookie carries the
   * write's time). true, or `{ window: seconds (10), cookie: name ('ember-ryw') }`. Default off.
   */
  readYourWrites?: boolean | ReadYourWritesOptions
  /**
   * Content codings stored with entries, for every route that does not set its own (route >
   * cache object > plugin). Default `{ encodings: ['br', 'gzip'], minBytes: 1024, maxBytes: 1048576 }`;
   * false stores identity only (README, "Compression").
   */
  compression?: boolean | CompressionOptions
  /**
   * Count what the cache does per route (hits, misses, stale answers, bypasses, stores...) for
   * `fastify.emberCache.stats()`. Default true.
   */
  stats?: boolean
  /**
   * The secret of the keyed hash that stands for keys in traces (diagnostics_channel,
   * OpenTelemetry): give every instance the same one and their traces correlate. At least 16
   * characters. Default: a random secret per process.
   */
  keyHashSecret?: string
  /**
   * Caches used outside routes (cache-aside only) that the app should open in `onReady`,
   * close in `onClose` and include in `fastify.emberCache.invalidate()`. Caches used by a route
   * are managed anyway. Default [].
   */
  caches?: EmberCache[]
}

/**
 * Route options: `config: { cache: { ... } }`. Every option that is not about one route only
 * (all but mode, cache, invalidate, writeThrough and early) may also be given to the cache
 * object as a default for its routes. The functions' request is typed with `RouteGeneric`
 * when the options come from `cacheConfig<RouteGeneric>()`.
 */
export interface RouteCacheOptions<RouteGeneric extends RouteGenericInterface = LooseRouteGeneric> extends RouteDefaults<RouteGeneric> {
  /** Use the plugin's shared cache of this mode. */
  mode?: CacheMode
  /** Use this cache object (shared with other routes). */
  cache?: EmberCache
  /** Write routes: more targets to invalidate after a 2xx. `{name}` fills from params, `{query.name}` from the query; `*` = pattern; `tags:a,b` = tags. */
  invalidate?: string[]
  /** PUT/PATCH routes: store the 2xx response as the GET entry of the same URL. Default false. */
  writeThrough?: boolean
  /**
   * Look up in `onRequest` instead of `preHandler`: a hit skips every later hook (preParsing,
   * preValidation, preHandler) and validation. Only for public routes whose answer is the same
   * for everyone (health, build info, static config). Refused on routes with their own
   * preParsing/preValidation/preHandler hooks; app-wide hooks of those kinds do NOT run on a
   * hit. App-wide and route onRequest hooks still run first. Default false.
   */
  early?: boolean
}

export type RouteCacheConfig = EmberCache | RouteCacheOptions

/**
 * Route options, checked strictly. Fastify infers a route's `config` type from the literal you
 * write, so a typo such as `tll` inside `config: { cache: { ... } }` is not a type error unless
 * the route has explicit generics; passed through this function it is ("'tll' does not exist in
 * type 'RouteCacheOptions'"). With a route generic, keyFn / tags see the route's own types:
 * `cacheConfig<{ Params: { id: string } }>({ mode: 'memory', tags: (request) => ['task:' + request.params.id] })`.
 * Returns its argument.
 */
export function cacheConfig<RouteGeneric extends RouteGenericInterface = LooseRouteGeneric> (options: RouteCacheOptions<RouteGeneric>): RouteCacheConfig {
  return options as RouteCacheOptions
}

/** Plugin options after validation and defaults. */
export interface ResolvedPluginOptions {
  enabled: boolean
  defaultTtl: number
  header: string | false
  statusCodes: Set<number>
  statusCodesGiven: boolean
  keyPrefix: string | undefined
  memory: LocalCacheOptions | undefined
  static: StaticCacheOptions | undefined
  redis: ModeRedisOptions | undefined
  memcached: MemcachedCacheOptions | undefined
  respectRequestDirectives: boolean
  cacheStatus: string | false
  debug: boolean
  collapseWait: number
  streamMaxBytes: number
  streamMaxBytesGiven: boolean
  surrogateKeyHeader: string | false
  perRequestHeaders: ReadonlySet<string>
  caches: EmberCache[]
  stats: boolean
  compression: CompressionSettings | false
  hashKey: (key: string) => string
  /** The edge in front (built by the plugin, which has the logger). */
  edge?: EdgeSettings
  readYourWrites: ReadYourWrites | undefined
}

/** Everything a cached route needs per request, computed once at route registration. */
export interface RouteSettings {
  cache: EmberCache
  isStatic: boolean
  /** Freshness in seconds; with `ttlFromResponse`, the fallback when the response sets none. */
  ttl: number
  /**
   * `ttl: 'from-response'`: a shared cache as RFC 9111 describes it: freshness, age and
   * storability from the response's own headers, which are passed through unedited.
   */
  ttlFromResponse: boolean
  /** Heuristic freshness (RFC 9111 §4.2.2) for from-response routes. */
  heuristicFreshness: boolean
  /** The targeted cache-control fields a from-response route obeys, lower case, in order (RFC 9213). */
  targetedCacheControl: readonly string[]
  /** Our token in Surrogate-Control targets, also sent upstream in Surrogate-Capability. */
  surrogateToken: string
  /** statusCodes were given (route, cache or plugin): they decide, not RFC 9111's defaults. */
  statusCodesGiven: boolean
  tags: string[] | ((request: CacheKeyRequest<any>) => string[]) | undefined
  /** The configured variant headers (route, else cache; authorization added for private routes). */
  varyHeaders: string[]
  /** What the route's variants are made of: origin, configured headers and cookies. */
  variants: VariantPlan
  /** What a miss's handler reads of its caller is observed with this plan; undefined on public routes. */
  observe: ObservePlan | undefined
  /**
   * How the route keys per caller, which decides whether an answer shaped by the caller's
   * identity may be stored: 'keyFn' (the route's own key), or the credential headers among the
   * route's variant headers (authorization, cookie: a private route has both), [] for none.
   */
  callerKey: 'keyFn' | readonly string[]
  /** Inputs a warning was logged for already ("read request.session"): one warning per route and input. */
  warned: Set<string>
  /** The configured variant headers as a Vary value for responses, or undefined for none. */
  vary: string | undefined
  /** RFC 9111 §3.5: requests with Authorization may use the cache (the route opted in). */
  allowsAuthorization: boolean
  /** The request's key; for write routes, the key of the GET entry of the same URL. May throw MissingPlaceholderError. */
  keyOf: KeyBuilder
  /** The route's params (for the placeholders of write targets). */
  routeParams: ReadonlySet<string>
  /** The route's path as registered (`/k/:id`): a write route finds its read route by it. */
  path: string
  /** The route itself gives key or keyFn (not only its cache object). */
  keyGiven: boolean
  /** The key template the route's entries are keyed by (route or cache object), if any. */
  keyTemplate: string | undefined
  /** Content codings to store with entries of this route; undefined: identity only. */
  compression: CompressionSettings | undefined
  /** "METHODS url", for stats and traces. */
  label: string
  /** A key's hash for traces (HMAC under the plugin's keyHashSecret). */
  hashKey: (key: string) => string
  /** What the cache did for this route's requests (stats()); undefined with `stats: false`. */
  counters: RouteCounters | undefined
  statusCodes: Set<number>
  invalidate: string[]
  writeThrough: boolean
  /** Cache-Control scope sent with our freshness: '' (none), 'public, ' or 'private, '. */
  scope: string
  staleWhileRevalidate: number
  /** XFetch's beta for early refreshes; 0: none. */
  earlyRefresh: number
  /** The fraction of a fixed ttl taken off at random per stored entry. */
  ttlJitter: number
  /** What a miss costs this route: a moving average of its handler times, in ms (early refresh reads it). */
  missCost: { ms: number }
  staleIfError: number
  staleIfErrorTimeout: number
  /** The plugin's edge, when one is in front. */
  edge: EdgeSettings | undefined
  /** The plugin's read-your-writes cookie, when on. */
  readYourWrites: ReadYourWrites | undefined
  /** Seconds the edge may keep this route's responses (sent in edge.ttlHeader). */
  edgeTtl: number | undefined
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

const PLUGIN_OPTIONS: ReadonlySet<string> = new Set(optionNames('plugin'))
const ROUTE_OPTIONS: ReadonlySet<string> = new Set(optionNames('route'))
// RFC 9110 §15.3.7: a 206 holds part of a representation; storing it as the whole would be wrong.
const DEFAULT_STATUS_CODES = [200, 201, 202, 203, 204, 205, 207, 208, 226]
const DEFAULT_TTL = 60
const DEFAULT_PER_REQUEST_HEADERS = ['x-request-id', 'request-id', 'x-correlation-id', 'traceparent', 'tracestate', 'server-timing']
const DEFAULT_COLLAPSE_WAIT = 5000
const DEFAULT_SURROGATE_KEY_HEADER = 'cache-tag'

export function resolvePluginOptions (options: EmberCachePluginOptions | undefined): ResolvedPluginOptions {
  checkObject('options', options)
  const opts = options ?? {}
  rejectUnknown('', opts, PLUGIN_OPTIONS)
  checkBoolean('enabled', opts.enabled)
  checkSeconds('defaultTtl', opts.defaultTtl)
  checkHeaderName('header', opts.header)
  checkString('keyPrefix', opts.keyPrefix)
  for (const name of ['memory', 'static', 'redis', 'memcached'] as const) checkObject(name, opts[name])
  checkNamespace(opts.redis)
  checkBoolean('respectRequestDirectives', opts.respectRequestDirectives)
  checkHeaderName('cacheStatus', opts.cacheStatus)
  checkBoolean('debug', opts.debug)
  checkNonNegativeInteger('collapseWait', opts.collapseWait)
  checkNonNegativeInteger('streamMaxBytes', opts.streamMaxBytes)
  checkHeaderName('surrogateKeyHeader', opts.surrogateKeyHeader)
  checkBoolean('stats', opts.stats)
  if (opts.keyHashSecret !== undefined && (typeof opts.keyHashSecret !== 'string' || opts.keyHashSecret.length < 16)) {
    throw new InvalidOptionError('keyHashSecret', 'expected a string of at least 16 characters, got ' + describe(opts.keyHashSecret))
  }
  const compression = compressionSettings('compression', opts.compression)
  if (opts.caches !== undefined && (!Array.isArray(opts.caches) || opts.caches.some((cache) => !(cache instanceof EmberCache)))) {
    throw new InvalidOptionError('caches', 'expected an array of cache objects (MemoryCache, StaticCache, RedisCache, MemcachedCache), got ' + describe(opts.caches))
  }
  return {
    enabled: opts.enabled ?? true,
    defaultTtl: opts.defaultTtl ?? DEFAULT_TTL,
    header: opts.header === undefined ? 'x-cache' : opts.header === false ? false : opts.header.toLowerCase(),
    statusCodes: statusSet('statusCodes', opts.statusCodes) ?? new Set(DEFAULT_STATUS_CODES),
    statusCodesGiven: opts.statusCodes !== undefined,
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
    streamMaxBytesGiven: opts.streamMaxBytes !== undefined,
    surrogateKeyHeader: opts.surrogateKeyHeader === undefined
      ? DEFAULT_SURROGATE_KEY_HEADER
      : opts.surrogateKeyHeader === false ? false : opts.surrogateKeyHeader.toLowerCase(),
    perRequestHeaders: new Set(lowerCaseHeaders('perRequestHeaders', opts.perRequestHeaders) ?? DEFAULT_PER_REQUEST_HEADERS),
    caches: opts.caches ?? [],
    stats: opts.stats ?? true,
    compression: compression ?? DEFAULT_COMPRESSION,
    hashKey: keyHasher(opts.keyHashSecret),
    readYourWrites: readYourWritesSettings(opts.readYourWrites, opts.keyHashSecret !== undefined)
  }
}

/** The route being registered, as the onRoute hook sees it. */
export interface RouteInfo {
  /** "METHODS url", for error messages. */
  label: string
  /** The route's param names. */
  params: ReadonlySet<string>
  /** The route's path as registered. */
  path: string
}

/**
 * Merges one route's `config.cache` with its cache object and the plugin options
 * (route > cache object > plugin > defaults). `cacheForMode` returns the plugin's shared cache.
 */
export function resolveRouteOptions (
  config: unknown,
  routeInfo: RouteInfo,
  plugin: ResolvedPluginOptions,
  cacheForMode: (mode: CacheMode, where: string) => EmberCache
): RouteSettings {
  const where = routeInfo.label + ' config.cache'
  const route: RouteCacheOptions<any> = config instanceof EmberCache ? { cache: config } : checkRouteObject(where, config)
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
  checkRouteDefaults(where + '.', route)
  checkStringArray(where + '.invalidate', route.invalidate)
  checkBoolean(where + '.writeThrough', route.writeThrough)
  checkBoolean(where + '.early', route.early)

  // route > cache object: what the route does not say, its cache's defaults say.
  const defaults = cache.defaults
  const pick = <K extends keyof RouteDefaults<any>>(name: K): RouteDefaults<any>[K] => route[name] ?? defaults[name]
  // key and keyFn replace each other: the route's pair wins as a whole over the cache's.
  const keySource = route.key !== undefined || route.keyFn !== undefined ? route : defaults

  const ttlOption = pick('ttl')
  const ttlFromResponse = ttlOption === TTL_FROM_RESPONSE
  const isStatic = cache.kind === 'static'
  if (isStatic && route.ttl !== undefined && route.ttl !== 0) {
    throw new InvalidOptionError(where + '.ttl', 'static caches never expire; use mode memory for a TTL')
  }
  const isPrivate = pick('private') ?? false
  const isPublic = pick('public') ?? false
  if (isPrivate && isPublic) throw new InvalidOptionError(where + '.public', 'a response cannot be both public and private (one of them comes from the cache object)')
  const hasKeyFn = keySource.keyFn !== undefined

  let varyHeaders = lowerCaseHeaders(where + '.varyHeaders', route.varyHeaders) ?? defaults.varyHeaders ?? []
  // A private route keyed by URL (or a URL template) would hand one user's answer to another:
  // without a keyFn that separates callers, it keeps one variant per credential, whether the
  // credential travels in Authorization or in a (session) cookie.
  if (isPrivate && !hasKeyFn) {
    for (const name of ['authorization', 'cookie']) if (!varyHeaders.includes(name)) varyHeaders = [...varyHeaders, name]
  }
  const varyCookies = pick('varyCookies') ?? []
  // Routes keyed per caller: their answers must not be stored by shared caches in front.
  const perCaller = isPrivate || hasKeyFn || varyHeaders.includes('authorization') || varyHeaders.includes('cookie') || varyCookies.length > 0

  const early = route.early ?? false
  if (early) checkEarly(where, isPrivate, varyHeaders, pick('staleIfErrorTimeout') ?? 0)

  const ttl = isStatic ? 0 : (typeof ttlOption === 'number' ? ttlOption : undefined) ?? cache.ttl ?? plugin.defaultTtl
  // A retention the backend cannot hold fails every store: refused here, naming the option.
  cache.checkRetention(where + '.ttl', ttl + Math.max(pick('staleWhileRevalidate') ?? 0, pick('staleIfError') ?? 0))
  return {
    cache,
    isStatic,
    ttl,
    ttlFromResponse,
    heuristicFreshness: pick('heuristicFreshness') ?? ttlFromResponse,
    targetedCacheControl: targetedFields(ttlFromResponse, pick('targetedCacheControl')),
    surrogateToken: plugin.cacheStatus === false ? 'ember' : plugin.cacheStatus,
    statusCodesGiven: pick('statusCodes') !== undefined || plugin.statusCodesGiven,
    tags: pick('tags'),
    varyHeaders,
    variants: { origin: !(pick('shareAcrossHosts') ?? false), names: [...varyHeaders, ...varyCookies.map((name) => COOKIE_NAME_PREFIX + name)] },
    observe: isPublic ? undefined : observePlan(varyHeaders, varyCookies, pick('unkeyedHeaders'), pick('callerProperties'), ttlFromResponse),
    callerKey: hasKeyFn ? 'keyFn' : varyHeaders.filter((name) => name === 'authorization' || name === 'cookie'),
    warned: new Set(),
    vary: varyHeaders.length === 0 ? undefined : varyHeaders.join(', '),
    // RFC 9111 §3.5: public (the route vouches its answers are everyone's) lets credentialed
    // requests use the entries too, as do the per-caller keys.
    allowsAuthorization: isPublic || isPrivate || hasKeyFn || varyHeaders.includes('authorization'),
    keyOf: keyBuilder(keySource, routeInfo.params, where, ttlFromResponse),
    routeParams: routeInfo.params,
    path: routeInfo.path,
    keyGiven: route.key !== undefined || route.keyFn !== undefined,
    keyTemplate: keySource.keyFn === undefined ? keySource.key : undefined,
    label: routeInfo.label,
    compression: routeCompression(where + '.compression', route.compression, defaults.compression, plugin.compression),
    counters: plugin.stats ? routeCounters() : undefined,
    hashKey: plugin.hashKey,
    statusCodes: statusSet(where + '.statusCodes', pick('statusCodes')) ?? plugin.statusCodes,
    invalidate: route.invalidate ?? [],
    writeThrough: route.writeThrough ?? false,
    scope: isPublic ? 'public, ' : perCaller ? 'private, ' : '',
    staleWhileRevalidate: pick('staleWhileRevalidate') ?? 0,
    earlyRefresh: betaOf(pick('earlyRefresh')),
    ttlJitter: pick('ttlJitter') ?? 0,
    missCost: { ms: 0 },
    staleIfError: pick('staleIfError') ?? 0,
    staleIfErrorTimeout: pick('staleIfErrorTimeout') ?? 0,
    edge: plugin.edge,
    readYourWrites: plugin.readYourWrites,
    edgeTtl: edgeTtlOf(where, pick('edgeTtl'), plugin.edge, !isPublic && perCaller),
    maxEntryBytes: cache.maxEntryBytes,
    // Proxied bodies are streams: a from-response route stores them up to maxEntryBytes by default.
    streamMaxBytes: pick('streamMaxBytes') ?? (ttlFromResponse && !plugin.streamMaxBytesGiven ? cache.maxEntryBytes : plugin.streamMaxBytes),
    respectRequestDirectives: pick('respectRequestDirectives') ?? plugin.respectRequestDirectives,
    early,
    header: plugin.header,
    cacheStatus: plugin.cacheStatus,
    debug: plugin.debug,
    collapseWait: plugin.collapseWait,
    surrogateKeyHeader: plugin.surrogateKeyHeader,
    perRequestHeaders: plugin.perRequestHeaders
  }
}

/** earlyRefresh as XFetch's beta: on (1) unless turned off. */
function betaOf (earlyRefresh: boolean | number | undefined): number {
  if (earlyRefresh === undefined || earlyRefresh === true) return 1
  return earlyRefresh === false ? 0 : earlyRefresh
}

/**
 * A route's edge TTL: only with an edge that can be told to purge. A route whose answers are
 * per caller never gets one, wherever the default came from (its cache's edgeTtl included).
 */
function edgeTtlOf (where: string, edgeTtl: number | undefined, edge: EdgeSettings | undefined, perCaller: boolean): number | undefined {
  if (edgeTtl === undefined) return undefined
  if (edge === undefined) throw new InvalidOptionError(where + '.edgeTtl', 'needs the plugin\'s edge option: an edge copy is kept only where an invalidation can purge it')
  return perCaller ? undefined : edgeTtl
}

/** A from-response route's targeted fields (RFC 9213), lower case: CDN-Cache-Control unless told. */
function targetedFields (ttlFromResponse: boolean, given: string[] | false | undefined): readonly string[] {
  if (!ttlFromResponse || given === false) return []
  return given === undefined ? [CDN_CACHE_CONTROL] : given.map((name) => name.toLowerCase())
}

/**
 * `early` answers before preValidation/preHandler auth runs, so it is refused where the route
 * says its answers belong to one caller, and where a timer would start counting before the
 * handler (staleIfErrorTimeout would then fire during the route's own hooks).
 */
function checkEarly (where: string, isPrivate: boolean, varyHeaders: string[], staleIfErrorTimeout: number): void {
  if (isPrivate || varyHeaders.includes('authorization')) {
    throw new InvalidOptionError(where + '.early', 'serves hits before preValidation/preHandler auth runs, so it is for public routes only; this route caches per caller (private or varyHeaders: authorization)')
  }
  if (staleIfErrorTimeout > 0) {
    throw new InvalidOptionError(where + '.early', 'cannot be combined with staleIfErrorTimeout: the timeout would count the route\'s own hooks, not only the handler')
  }
}

/**
 * What a miss observes (README, "Security"): every header but those in the key, those the cache
 * answers itself, and those declared unkeyed; every cookie but those in the key; the session,
 * the user and the named caller properties.
 */
function observePlan (varyHeaders: string[], varyCookies: string[], unkeyedHeaders: string[] | undefined, callerProperties: string[] | undefined, forwarding: boolean): ObservePlan {
  return {
    forwarding,
    unobservedHeaders: new Set([...CACHE_ANSWERED_HEADERS, ...varyHeaders, ...(unkeyedHeaders ?? []).map((name) => name.toLowerCase())]),
    keyedCookies: new Set(varyCookies),
    identities: [...new Set(['session', 'user', ...(callerProperties ?? [])])]
  }
}

function checkRouteObject (where: string, config: unknown): RouteCacheOptions {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new InvalidOptionError(where, 'expected a cache object or { mode | cache, ...options }, got ' + describe(config))
  }
  return config as RouteCacheOptions
}

/**
 * The key of the GET entry a request reads or writes: HEAD and write methods map to GET. A
 * from-response route (a proxy) keys the target as sent: its upstream may apply the query's
 * parameters in order.
 */
function keyBuilder (source: RouteDefaults<any>, params: ReadonlySet<string>, where: string, asSent: boolean): KeyBuilder {
  const keyFn = source.keyFn
  if (keyFn !== undefined) {
    return (request) => {
      const key = keyFn(request)
      // A NUL would reach the names the cache keeps beside entries (tag sets, locks): refused.
      if (typeof key !== 'string' || key.length === 0 || key.includes('\u0000')) throw new InvalidOptionError('keyFn', 'must return a non-empty string without NUL, returned ' + describe(key))
      return key
    }
  }
  if (source.key !== undefined) return compileTemplate(source.key, params, (message) => new InvalidOptionError(where + '.key', message))
  return asSent ? (request) => targetKey('GET', request.url) : (request) => urlKey('GET', request.url)
}

function checkHeaderName (name: string, value: unknown): void {
  if (value === undefined || value === false) return
  if (!isToken(value)) {
    throw new InvalidOptionError(name, 'expected a header token or false, got ' + describe(value))
  }
}

/** route > cache object > plugin; `false` anywhere along the way (first found) turns it off. */
function routeCompression (where: string, route: unknown, cache: unknown, plugin: CompressionSettings | false): CompressionSettings | undefined {
  const chosen = route !== undefined ? compressionSettings(where, route) : cache !== undefined ? compressionSettings(where, cache) : plugin
  return chosen === false || chosen === undefined || chosen.encodings.length === 0 ? undefined : chosen
}
