'use strict'

// Every configuration the bench measures, in the order each round runs them.
//   script     bench/servers/<script>, one process per configuration
//   unique     every request carries a new query string (a new cache key)
//   needs      backend servers run.js must start first
//   origin     'once': the handler must not run while measuring (a hit); 'every': it runs per request
//   xCache     the x-cache header expected on the second probe request
//   env        extra environment for the server process
//   vs         the anchor this configuration is judged against (besides plain)

const CONFIGS = [
  { name: 'plain', script: 'plain.js', origin: 'every', what: 'plain route serializing the object (reference)' },
  { name: 'plain-buffer', script: 'plain-buffer.js', origin: 'every', what: 'plain route sending a prebuilt Buffer (ceiling)' },
  { name: 'node-http', script: 'node-http.js', origin: 'every', what: 'bare node:http sending the Buffer (ceiling)' },
  { name: 'ember-static', script: 'ember-static.js', origin: 'once', xCache: 'HIT', vs: 'lru-hook', what: 'ours: static hit' },
  { name: 'ember-memory', script: 'ember-memory.js', origin: 'once', xCache: 'HIT', vs: 'lru-hook', what: 'ours: memory hit' },
  { name: 'ember-memory-nostats', script: 'ember-memory.js', origin: 'once', xCache: 'HIT', env: { STATS: '0' }, what: 'ours: memory hit, stats: false' },
  { name: 'enc-identity', script: 'ember-compress.js', body: 'large', acceptEncoding: 'identity', origin: 'once', xCache: 'HIT', env: { BODY: 'large' }, what: 'ours + @fastify/compress, ~4 KB body, stored codings: identity client hit' },
  { name: 'enc-gzip', script: 'ember-compress.js', body: 'large', acceptEncoding: 'gzip', origin: 'once', xCache: 'HIT', env: { BODY: 'large' }, what: 'same, gzip client hit (stored gzip)' },
  { name: 'enc-br', script: 'ember-compress.js', body: 'large', acceptEncoding: 'br', origin: 'once', xCache: 'HIT', env: { BODY: 'large' }, what: 'same, br client hit (stored br)' },
  { name: 'noenc-identity', script: 'ember-compress.js', body: 'large', acceptEncoding: 'identity', origin: 'once', xCache: 'HIT', env: { BODY: 'large', ENCODINGS: '0' }, what: 'ours (compression: false) + @fastify/compress, ~4 KB body: identity client hit' },
  { name: 'noenc-gzip', script: 'ember-compress.js', body: 'large', acceptEncoding: 'gzip', origin: 'once', xCache: 'HIT', env: { BODY: 'large', ENCODINGS: '0' }, what: 'same, gzip client hit (compressed per hit by @fastify/compress)' },
  { name: 'noenc-br', script: 'ember-compress.js', body: 'large', acceptEncoding: 'br', origin: 'once', xCache: 'HIT', env: { BODY: 'large', ENCODINGS: '0' }, what: 'same, br client hit (compressed per hit by @fastify/compress)' },
  { name: 'enc-gzip-miss', script: 'ember-compress.js', body: 'large', acceptEncoding: 'gzip', unique: true, origin: 'every', xCache: 'MISS', env: { BODY: 'large' }, what: 'ours + @fastify/compress, stored codings: gzip client miss + store (codings made after the answer), new key per request' },
  { name: 'noenc-gzip-miss', script: 'ember-compress.js', body: 'large', acceptEncoding: 'gzip', unique: true, origin: 'every', xCache: 'MISS', env: { BODY: 'large', ENCODINGS: '0' }, what: 'same with compression: false' },
  { name: 'ember-early', script: 'ember-early.js', origin: 'once', xCache: 'HIT', vs: 'lru-onrequest', what: 'ours: static hit, early: true (lookup in onRequest)' },
  { name: 'ember-redis', script: 'ember-redis.js', needs: ['redis'], origin: 'once', xCache: 'HIT', vs: 'ioredis-hook-autopipeline', what: 'ours: Redis hit' },
  { name: 'ember-redis-l1', script: 'ember-redis.js', needs: ['redis'], origin: 'once', xCache: 'HIT', env: { L1: '1' }, vs: 'ember-memory', what: 'ours: Redis with an in-process tier (l1), hit' },
  { name: 'ember-redis-miss', script: 'ember-redis.js', needs: ['redis'], unique: true, origin: 'every', xCache: 'MISS', what: 'ours: Redis miss + store, new key per request' },
  { name: 'ember-redis-nocomp', script: 'ember-redis.js', needs: ['redis'], origin: 'once', xCache: 'HIT', env: { COMPRESSION: '0' }, what: 'ours: Redis hit with compression: false (the work of a build before stored codings)' },
  { name: 'ember-redis-base', script: 'ember-redis.js', needs: ['redis'], origin: 'once', xCache: 'HIT', env: { EMBER_DIST: process.env.BENCH_BASE_DIST ?? '' }, what: 'the Redis hit on the BENCH_BASE_DIST build' },
  { name: 'ember-redis-miss-base', script: 'ember-redis.js', needs: ['redis'], unique: true, origin: 'every', xCache: 'MISS', env: { EMBER_DIST: process.env.BENCH_BASE_DIST ?? '' }, what: 'the Redis miss on the BENCH_BASE_DIST build' },
  { name: 'ember-redis-l1-miss', script: 'ember-redis.js', needs: ['redis'], unique: true, origin: 'every', xCache: 'MISS', env: { L1: '1' }, vs: 'ember-redis-miss', what: 'ours: Redis with l1, miss + store (and the bus message), new key per request' },
  { name: 'ember-memcached', script: 'ember-memcached.js', needs: ['memcached'], origin: 'once', xCache: 'HIT', vs: 'memjs-hook', what: 'ours: Memcached hit' },
  { name: 'plain-miss', script: 'plain.js', unique: true, origin: 'every', what: 'plain route, new query string per request' },
  { name: 'ember-miss', script: 'ember-memory.js', unique: true, origin: 'every', xCache: 'MISS', vs: 'plain-miss', what: 'ours: memory miss + store, new key per request' },
  { name: 'ember-miss-public', script: 'ember-memory.js', unique: true, origin: 'every', xCache: 'MISS', env: { PUBLIC: '1' }, what: 'ours: memory miss + store on a public: true route (per-caller reads not observed)' },
  // BENCH_BASE_DIST=<an earlier commit's dist/lib/index.js>: the same server on that build (bench/README.md, "Before and after").
  { name: 'ember-memory-base', script: 'ember-memory.js', origin: 'once', xCache: 'HIT', env: { EMBER_DIST: process.env.BENCH_BASE_DIST ?? '' }, what: 'the memory hit on the BENCH_BASE_DIST build' },
  { name: 'ember-miss-base', script: 'ember-memory.js', unique: true, origin: 'every', xCache: 'MISS', env: { EMBER_DIST: process.env.BENCH_BASE_DIST ?? '' }, what: 'the memory miss on the BENCH_BASE_DIST build' },
  { name: 'ember-uncached-base', script: 'ember-uncached.js', origin: 'every', env: { EMBER_DIST: process.env.BENCH_BASE_DIST ?? '' }, what: 'the uncached route on the BENCH_BASE_DIST build' },
  { name: 'ember-miss-2', script: 'ember-memory.js', unique: true, origin: 'every', xCache: 'MISS', what: 'ours: memory miss again (an A/A control of the bench itself)' },
  { name: 'lru-hook-miss', script: 'lru-hook.js', unique: true, origin: 'every', vs: 'plain-miss', what: 'hand-written lru-cache hook, new key per request (its miss + store)' },
  { name: 'lru-hook-http-miss', script: 'lru-hook-http.js', unique: true, origin: 'every', xCache: 'MISS', vs: 'plain-miss', what: 'hand-written lru-cache hook with our headers (ETag at store time), new key per request: the equal-work anchor of our miss' },
  { name: 'ember-uncached', script: 'ember-uncached.js', origin: 'every', vs: 'plain', what: 'route without config.cache, plugin registered' },
  { name: 'lcache', script: 'lcache.js', origin: 'once', what: 'fastify-lcache hit' },
  { name: 'async-cache-dedupe', script: 'async-cache-dedupe.js', origin: 'once', what: 'async-cache-dedupe around the handler (hit, still serializes)' },
  { name: 'lru-hook', script: 'lru-hook.js', origin: 'once', what: 'hand-written lru-cache preHandler hit' },
  { name: 'lru-hook-http', script: 'lru-hook-http.js', origin: 'once', xCache: 'HIT', what: 'same, sending our hit headers (ETag, Cache-Control, Age, x-cache, Cache-Status)' },
  { name: 'lru-onrequest', script: 'lru-onrequest.js', origin: 'once', what: 'hand-written lru-cache onRequest hit (early anchor)' },
  { name: 'ioredis-hook', script: 'ioredis-hook.js', needs: ['redis'], origin: 'once', what: 'hand-written ioredis GET preHandler hit' },
  { name: 'ioredis-hook-autopipeline', script: 'ioredis-hook.js', needs: ['redis'], origin: 'once', env: { AUTO_PIPELINING: '1' }, what: 'same, enableAutoPipelining' },
  { name: 'ioredis-hook-http', script: 'ioredis-hook.js', needs: ['redis'], origin: 'once', xCache: 'HIT', env: { AUTO_PIPELINING: '1', HIT_HEADERS: '1' }, what: 'same, auto-pipelined, sending our hit headers (ETag, Cache-Control, Age, x-cache, Cache-Status)' },
  { name: 'memjs-hook', script: 'memjs-hook.js', needs: ['memcached'], origin: 'once', what: 'hand-written memjs GET preHandler hit' },
  { name: 'memjs-hook-http', script: 'memjs-hook.js', needs: ['memcached'], origin: 'once', xCache: 'HIT', env: { HIT_HEADERS: '1' }, what: 'same, sending our hit headers' }
]

const REFERENCE = 'plain'

// Targets: [config, measured against, lowest acceptable ratio of median req/s, who set it].
const TARGETS = [
  ['ember-static', 'plain', 1.2],
  ['ember-memory', 'plain', 1.2],
  ['ember-static', 'lru-hook', 0.97],
  ['ember-memory', 'lru-hook', 0.97],
  // Ours: the same bar against a hand-written hook that sends the same HTTP headers we must.
  ['ember-static', 'lru-hook-http', 0.97, 'us (equal headers)'],
  ['ember-memory', 'lru-hook-http', 0.97, 'us (equal headers)'],
  ['ember-static', 'lcache', 1.15],
  ['ember-memory', 'lcache', 1.15],
  ['ember-static', 'async-cache-dedupe', 1.4],
  ['ember-memory', 'async-cache-dedupe', 1.4],
  ['ember-redis', 'ioredis-hook', 0.95],
  ['ember-redis', 'ioredis-hook-autopipeline', 0.95],
  ['ember-redis', 'ioredis-hook-http', 0.95, 'us (equal headers)'],
  ['ember-memcached', 'memjs-hook', 0.95],
  ['ember-memcached', 'memjs-hook-http', 0.95, 'us (equal headers)'],
  ['ember-uncached', 'plain', 0.98],
  ['ember-miss', 'plain-miss', 0.9],
  // Ours: the same bar against a hand-written hook that stores every miss doing the same work.
  ['ember-miss', 'lru-hook-http-miss', 0.9, 'us (equal work)'],
  // Issue 15: the in-process tier of a shared cache.
  ['ember-redis-l1', 'ember-memory', 0.95, 'issue 15'],
  ['ember-redis-l1', 'ember-redis', 1.6, 'issue 15'],
  ['ember-redis-l1-miss', 'ember-redis-miss', 0.95, 'issue 15'],
  ['ember-memory', 'ember-memory-nostats', 0.98, 'issue 18'],
  // Issue 23: observing a miss's per-caller reads costs at most 5% of the miss (req/s ratio >= 1/1.05).
  ['ember-miss', 'ember-miss-public', 0.952, 'issue 23'],
  // Issue 17: a coded hit costs at most 1.1x an identity hit (req/s ratio >= 1/1.1).
  ['enc-gzip', 'enc-identity', 0.91, 'issue 17'],
  ['enc-br', 'enc-identity', 0.91, 'issue 17'],
  ['enc-gzip', 'noenc-gzip', 1.5, 'issue 17'],
  ['enc-br', 'noenc-br', 1.5, 'issue 17'],
  ['enc-identity', 'noenc-identity', 0.95, 'issue 17'],
  ['enc-gzip-miss', 'noenc-gzip-miss', 0.9, 'issue 17']
]

module.exports = { CONFIGS, REFERENCE, TARGETS }
