// Every option, once: where it is accepted, its default, its unit and one line of doc. The
// allowed-name lists of the plugin, the routes and every cache object come from here, and so do
// the README's options tables (scripts/options-tables.js writes them; test/docs.test.ts fails
// when they and this spec disagree). Each option's value checks stay beside the code that
// reads it (validate.ts helpers), named after the option they check.

/**
 * Where an option is accepted. `cache`: every cache object; `local`: MemoryCache and
 * StaticCache; `remote`: RedisCache, MemcachedCache and StoreCache; `redis`, `memcached`,
 * `store`: that one; `mode-redis`: only in the plugin's `redis` option.
 */
export type OptionScope = 'plugin' | 'route' | 'cache' | 'local' | 'remote' | 'redis' | 'memcached' | 'store' | 'mode-redis'

/** What a number counts when it is not a plain count. */
export type OptionUnit = 's' | 'ms' | 'bytes' | 'fraction'

export interface OptionSpec {
  /** The option's name; a nested one as `parent.name`. */
  readonly name: string
  readonly scopes: readonly OptionScope[]
  /** The default, as the README shows it. */
  readonly default: string
  readonly unit?: OptionUnit
  /** One line of doc, in Markdown. */
  readonly doc: string
}

const ROUTE_AND_CACHE: readonly OptionScope[] = ['route', 'cache']
const ROUTE_CACHE_PLUGIN: readonly OptionScope[] = ['route', 'cache', 'plugin']

export const OPTION_SPEC: readonly OptionSpec[] = [
  // The plugin's own.
  { name: 'enabled', scopes: ['plugin'], default: '`true`', doc: '`false` turns every cached route into a pass-through (no lookup, no store)' },
  { name: 'defaultTtl', scopes: ['plugin'], default: '`60`', unit: 's', doc: 'freshness when neither the route nor its cache sets `ttl`' },
  { name: 'header', scopes: ['plugin'], default: "`'x-cache'`", doc: 'name of the `MISS` / `HIT` / `BYPASS` / `STALE` / `REVALIDATED` header; `false` sends none' },
  { name: 'cacheStatus', scopes: ['plugin'], default: "`'ember'`", doc: 'cache name in the RFC 9211 `Cache-Status` header; `false` sends none' },
  { name: 'debug', scopes: ['plugin'], default: '`false`', doc: 'adds the cache key to `Cache-Status` (leaks URLs: development only)' },
  { name: 'keyPrefix', scopes: ['plugin', 'cache'], default: "`''` in-process, `'ember:'` remote", doc: 'prepended to stored keys (the plugin\'s: of the caches it makes for `mode` routes); you invalidate with unprefixed keys' },
  { name: 'memory', scopes: ['plugin'], default: '`{}`', doc: 'options of the shared MemoryCache behind `{ mode: \'memory\' }` routes' },
  { name: 'static', scopes: ['plugin'], default: '`{}`', doc: 'options of the shared StaticCache behind `{ mode: \'static\' }` routes' },
  { name: 'redis', scopes: ['plugin'], default: '`fastify.redis` of @fastify/redis', doc: 'options of the shared RedisCache behind `{ mode: \'redis\' }` routes; without a connection option it uses @fastify/redis\'s client' },
  { name: 'memcached', scopes: ['plugin'], default: 'none', doc: 'options of the shared MemcachedCache behind `{ mode: \'memcached\' }` routes (required for that mode)' },
  { name: 'collapseWait', scopes: ['plugin'], default: '`5000`', unit: 'ms', doc: 'how long a collapsed request waits for the one running the handler; `0` turns collapsing (and the Redis fill lock) off' },
  { name: 'perRequestHeaders', scopes: ['plugin'], default: '`x-request-id`, `request-id`, `x-correlation-id`, `traceparent`, `tracestate`, `server-timing`', doc: 'headers set per request, never stored: a hit keeps the values its own hooks set' },
  { name: 'surrogateKeyHeader', scopes: ['plugin'], default: "`'cache-tag'`", doc: 'response header a handler may set to tag its entry (space- or comma-separated); stripped before sending; `false` turns it off' },
  { name: 'edge', scopes: ['plugin'], default: 'none', doc: 'the CDN or Varnish in front: `{ tagHeader, ttlHeader, purgers, wait }` ([docs/edge.md](docs/edge.md))' },
  { name: 'edge.tagHeader', scopes: ['plugin'], default: 'required', doc: "the header the edge reads tags from: `'xkey'` (Varnish), `'surrogate-key'` (Fastly), `'cache-tag'` (Cloudflare), or `{ name, separator, maxHeaderBytes, maxTagBytes }`" },
  { name: 'edge.ttlHeader', scopes: ['plugin'], default: "`'cdn-cache-control'`", doc: "the header carrying a route's `edgeTtl`: `'cdn-cache-control'` (RFC 9213) or `'surrogate-control'`" },
  { name: 'edge.purgers', scopes: ['plugin'], default: '`[]`', doc: 'where invalidations go: `varnishPurgers()`, `fastlyPurger()`, `cloudflarePurger()`, or `{ name, purge }` of yours' },
  { name: 'edge.wait', scopes: ['plugin'], default: '`0`', unit: 'ms', doc: 'how long a write route waits for its edge purges before it answers' },
  { name: 'readYourWrites', scopes: ['plugin'], default: '`false`', doc: 'after a write, the same caller\'s reads on any instance skip older entries: `true` or `{ window, cookie }`; needs `keyHashSecret` ([docs/fleet.md](docs/fleet.md))' },
  { name: 'readYourWrites.window', scopes: ['plugin'], default: '`10`', unit: 's', doc: "how long after a write its caller's reads skip older entries" },
  { name: 'readYourWrites.cookie', scopes: ['plugin'], default: "`'ember-ryw'`", doc: "the mark cookie's name" },
  { name: 'stats', scopes: ['plugin'], default: '`true`', doc: 'count what the cache does per route, for `fastify.emberCache.stats()`' },
  { name: 'keyHashSecret', scopes: ['plugin'], default: 'random per process', doc: 'secret of the keyed hash that stands for keys in traces; the same on every instance makes them correlate (16+ characters)' },
  { name: 'caches', scopes: ['plugin'], default: '`[]`', doc: 'cache-aside caches the app opens, closes and includes in `fastify.emberCache.invalidate()`' },
  { name: 'namespace', scopes: ['mode-redis'], default: 'none', doc: 'in the plugin\'s `redis` option: the named @fastify/redis instance to use' },

  // Which cache a route uses, and what only one route can say.
  { name: 'mode', scopes: ['route'], default: 'none', doc: "the plugin's shared cache of this mode: `'static'`, `'memory'`, `'redis'` or `'memcached'` (or `cache`)" },
  { name: 'cache', scopes: ['route'], default: 'none', doc: 'a cache object of yours, shared with other routes (or `mode`)' },
  { name: 'invalidate', scopes: ['route'], default: '`[]`', doc: "write routes: more targets after a 2xx: `'GET:/a/{id}*'` (pattern), `'widget:{id}'` (key), `'tags:a,b'`, `'soft:...'`" },
  { name: 'writeThrough', scopes: ['route'], default: '`false`', doc: 'PUT/PATCH routes: store the 2xx answer as the entry of the read route of the same URL' },
  { name: 'early', scopes: ['route'], default: '`false`', doc: 'look up in `onRequest`, so a hit skips later hooks: **public routes only** ([docs/security.md](docs/security.md#auth-and-hook-order))' },

  // Route options a cache object (and some the plugin) may set as defaults: route > cache > plugin.
  { name: 'ttl', scopes: ROUTE_AND_CACHE, default: 'the plugin\'s `defaultTtl`', unit: 's', doc: "freshness (`0`: never expires, clients revalidate), or `'from-response'`: an RFC 9111 shared cache ([docs/shared-cache.md](docs/shared-cache.md))" },
  { name: 'tags', scopes: ROUTE_AND_CACHE, default: '`[]`', doc: '`string[]` or `(request) => string[]`, stored with the entry for `invalidate({ tags })`' },
  { name: 'varyHeaders', scopes: ROUTE_AND_CACHE, default: '`[]`', doc: 'request headers that select a variant; responses name them in `Vary`' },
  { name: 'varyCookies', scopes: ROUTE_AND_CACHE, default: '`[]`', doc: 'cookies that select a variant, by name (values hashed); responses say `private`' },
  { name: 'unkeyedHeaders', scopes: ROUTE_AND_CACHE, default: '`[]`', doc: 'request headers a handler may read without them shaping its answer (logging, tracing)' },
  { name: 'callerProperties', scopes: ROUTE_AND_CACHE, default: '`[]`', doc: 'request properties holding the caller\'s identity besides `session` and `user`: a miss reading one is not stored unless keyed per caller' },
  { name: 'keyFn', scopes: ROUTE_AND_CACHE, default: 'none', doc: '`(request) => string` replacing the key; it vouches that it separates callers (responses say `private`)' },
  { name: 'key', scopes: ROUTE_AND_CACHE, default: 'none', doc: "key template: `'widget:{id}'` from params, `'{query.page}'` from the query" },
  { name: 'statusCodes', scopes: ROUTE_CACHE_PLUGIN, default: 'every 2xx but 206', doc: 'statuses that may be stored' },
  { name: 'private', scopes: ROUTE_AND_CACHE, default: '`false`', doc: 'one variant per credential (`Authorization` and `Cookie`, hashed); responses say `private`' },
  { name: 'public', scopes: ROUTE_AND_CACHE, default: '`false`', doc: "the answers are everyone's (RFC 9111 §3.5): `Cache-Control: public`, and credentialed requests use the cache" },
  { name: 'shareAcrossHosts', scopes: ROUTE_AND_CACHE, default: '`false`', doc: 'requests for different hosts and protocols share entries (one site under several names)' },
  { name: 'staleWhileRevalidate', scopes: ROUTE_AND_CACHE, default: '`0`', unit: 's', doc: 'an expired entry is served while one refresh runs (RFC 5861)' },
  { name: 'staleIfError', scopes: ROUTE_AND_CACHE, default: '`0`', unit: 's', doc: 'an expired entry replaces an origin error (RFC 5861)' },
  { name: 'staleIfErrorTimeout', scopes: ROUTE_AND_CACHE, default: '`0` (waits)', unit: 'ms', doc: 'how long the handler may take when a stale-if-error entry exists; past it, the stale entry is served' },
  { name: 'earlyRefresh', scopes: ROUTE_AND_CACHE, default: '`true` (beta 1)', doc: 'refresh entries about to expire in the background, once across the fleet (XFetch): a beta, or `false`' },
  { name: 'ttlJitter', scopes: ROUTE_AND_CACHE, default: '`0`', unit: 'fraction', doc: 'fraction (up to 0.5) of a fixed ttl taken off at random per entry, so entries stored together do not expire together' },
  { name: 'edgeTtl', scopes: ROUTE_AND_CACHE, default: 'none', unit: 's', doc: "how long the edge in front may keep these responses (needs the plugin's `edge`; never on per-caller routes)" },
  { name: 'heuristicFreshness', scopes: ROUTE_AND_CACHE, default: '`true`', doc: 'from-response routes: a response with only `Last-Modified` is fresh for 10% of its age, at most a day (RFC 9111 §4.2.2)' },
  { name: 'targetedCacheControl', scopes: ROUTE_AND_CACHE, default: "`['CDN-Cache-Control']`", doc: 'from-response routes: targeted fields obeyed, in order (RFC 9213); `false` obeys none' },
  { name: 'respectRequestDirectives', scopes: ROUTE_CACHE_PLUGIN, default: '`true`', doc: "honour the request's `Cache-Control` (`no-cache`, `max-age`...); `false` stops clients forcing refetches" },
  { name: 'streamMaxBytes', scopes: ROUTE_CACHE_PLUGIN, default: '`0`', unit: 'bytes', doc: 'stream payloads up to this size are buffered and stored; `0` leaves streams alone' },
  { name: 'compression', scopes: ROUTE_CACHE_PLUGIN, default: "`{ encodings: ['br', 'gzip'], minBytes: 1024, maxBytes: 1048576 }`", doc: 'codings stored with entries, made once ([docs/compression.md](docs/compression.md)); `false`: identity only' },
  { name: 'compression.encodings', scopes: ROUTE_CACHE_PLUGIN, default: "`['br', 'gzip']`", doc: "codings stored, preferred in this order (`'br'`, `'gzip'`, `'deflate'`)" },
  { name: 'compression.minBytes', scopes: ROUTE_CACHE_PLUGIN, default: '`1024`', unit: 'bytes', doc: 'smaller bodies are stored identity only' },
  { name: 'compression.maxBytes', scopes: ROUTE_CACHE_PLUGIN, default: '`1048576`', unit: 'bytes', doc: 'larger bodies are stored identity only' },

  // Every cache object's own.
  { name: 'name', scopes: ['cache'], default: 'kind, prefix and server', doc: 'names the cache in logs, reports, stats and `Cache-Status` details' },
  { name: 'maxEntryBytes', scopes: ['cache'], default: '5 MiB (Memcached: `maxItemBytes` less 16 KiB)', unit: 'bytes', doc: 'larger bodies are served but not stored' },
  { name: 'max', scopes: ['local'], default: '`10000`', doc: 'most entries kept (each variant counts one); least recently used go first' },
  { name: 'maxSize', scopes: ['local'], default: 'unbounded', unit: 'bytes', doc: 'most bytes kept (keys, bodies and headers, approximately)' },

  // Shared caches.
  { name: 'commandTimeout', scopes: ['remote'], default: '`200`', unit: 'ms', doc: 'how long a read or write may take before the request goes on without the cache' },
  { name: 'connectTimeout', scopes: ['remote'], default: '`2000`', unit: 'ms', doc: 'how long `onReady` waits for the first connection; the app starts anyway after it' },
  { name: 'circuitBreaker', scopes: ['remote'], default: '`{ threshold: 3, cooldownMs: 1000 }`', doc: 'when to stop asking a failing backend' },
  { name: 'circuitBreaker.threshold', scopes: ['remote'], default: '`3`', doc: 'failures in a row that open the circuit' },
  { name: 'circuitBreaker.cooldownMs', scopes: ['remote'], default: '`1000`', unit: 'ms', doc: 'how long the circuit stays open before one probe' },
  { name: 'l1', scopes: ['remote'], default: 'none', doc: 'an in-process tier in front of the shared store: `true` or `{ max, maxSize, ttl }` ([docs/fleet.md](docs/fleet.md))' },
  { name: 'l1.max', scopes: ['remote'], default: '`10000`', doc: 'most entries the in-process tier keeps' },
  { name: 'l1.maxSize', scopes: ['remote'], default: '64 MiB', unit: 'bytes', doc: 'most bytes the in-process tier keeps' },
  { name: 'l1.ttl', scopes: ['remote'], default: '`5` with a bus, `1` without', unit: 's', doc: 'how long an entry stays in the process without news from the fleet (at most 5 without a bus)' },
  { name: 'bus', scopes: ['remote'], default: 'Redis: its own server; others: none', doc: 'the coherence bus keeping every instance\'s L1 in step: `{ url, redisOptions }`, or `false`' },
  { name: 'bus.url', scopes: ['remote'], default: 'none', doc: '`redis://host:port` of the bus (Memcached and custom stores)' },
  { name: 'bus.redisOptions', scopes: ['remote'], default: '`{}`', doc: "ioredis options of the bus's two connections" },

  // RedisCache.
  { name: 'url', scopes: ['redis'], default: 'none', doc: '`redis://[:password@]host:port[/db]`' },
  { name: 'redisOptions', scopes: ['redis'], default: '`{}`', doc: 'ioredis connection options (host, port, password, tls...), merged over ours' },
  { name: 'clusterNodes', scopes: ['redis'], default: 'none', doc: 'Redis Cluster seed nodes: the cache uses an ioredis Cluster' },
  { name: 'clusterOptions', scopes: ['redis'], default: '`{}`', doc: 'ioredis Cluster options, with `clusterNodes`' },
  { name: 'client', scopes: ['redis'], default: 'none', doc: 'an ioredis 5 or 6 `Redis` or `Cluster` of yours (or @fastify/redis\'s)' },
  { name: 'closeClient', scopes: ['redis'], default: '`false`', doc: 'close the `client` you passed when the app closes' },
  { name: 'scanCount', scopes: ['redis'], default: '`500`', doc: 'keys asked per `SCAN` step of a pattern invalidation (on every master of a Cluster)' },
  { name: 'lock', scopes: ['redis'], default: '`{ ttl: 5000, wait: 5000, poll: 25 }`', doc: 'cross-instance single-flight of misses; `false` turns it off' },
  { name: 'lock.ttl', scopes: ['redis'], default: '`5000`', unit: 'ms', doc: 'how long a fill lock holds when its holder dies' },
  { name: 'lock.wait', scopes: ['redis'], default: '`5000`', unit: 'ms', doc: "how long another instance waits for the holder's entry" },
  { name: 'lock.poll', scopes: ['redis'], default: '`25`', unit: 'ms', doc: 'how often a waiting instance looks' },

  // MemcachedCache.
  { name: 'servers', scopes: ['memcached'], default: 'none', doc: "`'host1:11211,host2:11211'` or an array; keys spread by rendezvous hashing" },
  { name: 'host', scopes: ['memcached'], default: 'none', doc: 'one server, with `port` (instead of `servers`)' },
  { name: 'port', scopes: ['memcached'], default: '`11211`', doc: 'the port of `host`' },
  { name: 'poolSize', scopes: ['memcached'], default: '`1`', doc: 'memjs clients per server, used in turn' },
  { name: 'maxItemBytes', scopes: ['memcached'], default: '1 MiB', unit: 'bytes', doc: "the server's item size (`-I`): larger envelopes are not sent" },

  // StoreCache.
  { name: 'store', scopes: ['store'], default: 'required', doc: 'a `CacheStore`: `get`, `set`, `delete` and optional capabilities ([docs/backends.md](docs/backends.md#custom-stores))' }
]

/** The top-level option names accepted in `scope` (nested ones excluded). */
export function optionNames (scope: OptionScope): string[] {
  return OPTION_SPEC.filter((option) => !option.name.includes('.') && option.scopes.includes(scope)).map((option) => option.name)
}

/** The names accepted inside the object option `parent` (`lock` gives ttl, wait, poll). */
export function nestedNames (parent: string): Set<string> {
  const prefix = parent + '.'
  return new Set(OPTION_SPEC.filter((option) => option.name.startsWith(prefix)).map((option) => option.name.slice(prefix.length)))
}
