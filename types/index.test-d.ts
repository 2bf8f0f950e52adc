import Fastify, { type FastifyReply } from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import emberCache, {
  emberCache as named, MemoryCache, StaticCache, RedisCache, MemcachedCache, PatternNotSupportedError,
  registerPrometheusMetrics, traceWithOpenTelemetry,
  type EmberCachePluginOptions, type RouteCacheOptions, type InvalidationReport, type EmberCacheStats
} from '..'

const app = Fastify()
expectType<typeof emberCache>(named)
app.register(emberCache, { defaultTtl: 60, header: 'x-cache', enabled: true })
app.register(emberCache, { redis: { url: 'redis://127.0.0.1:6379' }, memcached: { servers: '127.0.0.1:11211' } })
expectError(app.register(emberCache, { defaultTtl: '60' }))
expectError(app.register(emberCache, { nope: true }))

const memory = new MemoryCache({ ttl: 30, max: 10_000, maxSize: 1 << 20, varyHeaders: ['x-tenant-id'] })
expectType<StaticCache>(new StaticCache({ max: 100 }))
expectError(new StaticCache({ ttl: 5 }))
expectType<RedisCache>(new RedisCache({ url: 'redis://127.0.0.1:6379', ttl: 30, keyPrefix: 'api:', commandTimeout: 100 }))
expectType<MemcachedCache>(new MemcachedCache({ servers: 'a:11211,b:11211', ttl: 60, poolSize: 2 }))
expectError(new MemoryCache({ ttl: 'long' }))

app.get('/a', { config: { cache: memory } }, async () => 'a')
app.get('/b', { config: { cache: { mode: 'memory', ttl: 30 } } }, async () => 'b')
app.get('/c', { config: { cache: { cache: memory, ttl: 5, tags: ['me'], varyHeaders: ['x-user'] } } }, async () => 'c')
app.get('/d', { config: { cache: { cache: memory, keyFn: (request) => request.url, tags: (request) => [request.url] } } }, async () => 'd')
expectError(app.get('/e', { config: { cache: { mode: 'disk' } } }, async () => 'e'))
app.put('/f/:id', { config: { cache: { cache: memory, key: 'f:{id}', writeThrough: true, invalidate: ['tags:f'] } } }, async () => 'f')

app.get('/g', async (request, reply) => {
  expectType<(target: Parameters<FastifyReply['cacheInvalidate']>[0]) => Promise<InvalidationReport>>(reply.cacheInvalidate)
  await reply.cacheInvalidate({ key: 'GET:/a' })
  await reply.cacheInvalidate({ pattern: 'GET:/a*' })
  await reply.cacheInvalidate({ tags: ['me'] })
  await reply.cacheInvalidate('GET:/a')
  expectError(reply.cacheInvalidate({ wrong: 1 }))
  return 'g'
})

expectType<Promise<InvalidationReport>>(app.emberCache.invalidate({ tags: 'x' }))
expectType<Promise<number | undefined>>(memory.get<number>('n'))
expectType<Promise<string>>(memory.wrap('k', async () => 'v', { ttl: 5 }))
expectAssignable<EmberCachePluginOptions>({ statusCodes: [200, 404] })
expectAssignable<RouteCacheOptions>({ mode: 'static' })
expectType<string>(new PatternNotSupportedError('x').code)
app.register(emberCache, { surrogateKeyHeader: 'surrogate-key', cacheStatus: false, collapseWait: 100 })
app.get('/h', { config: { cache: { cache: memory, ttl: 'from-response', staleIfError: 60, staleIfErrorTimeout: 200 } } }, async () => 'h')
app.get('/build-info', { config: { cache: { mode: 'static', early: true } } }, async () => ({ version: '1' }))
expectError(app.get('/early-bad', { config: { cache: { mode: 'static', early: 'yes' } } }, async () => 'x'))
expectError(app.get('/i', { config: { cache: { cache: memory, ttl: 'forever' } } }, async () => 'i'))
expectType<RedisCache>(new RedisCache({ clusterNodes: [{ host: '127.0.0.1', port: 7000 }], lock: { ttl: 2000, wait: 2000, poll: 10 } }))

// Issue 13: route defaults on cache objects (keyFn, key, private, public, ...), typed.
expectType<MemoryCache>(new MemoryCache({ ttl: 30, keyFn: (request) => 'user:' + String(request.headers['x-user']), private: true }))
expectType<RedisCache>(new RedisCache({ url: 'redis://127.0.0.1:6379', keyFn: (request) => request.url, tags: ['t'], statusCodes: [200], shareAcrossHosts: true }))
expectType<MemcachedCache>(new MemcachedCache({ servers: 'a:11211', key: 'k:{id}', public: true }))
expectError(new MemoryCache({ keyFn: 'nope' }))
app.get('/pub', { config: { cache: { mode: 'memory', public: true, shareAcrossHosts: true } } }, async () => 'p')
expectType<Promise<InvalidationReport>>(app.emberCache.clear())
expectType<EmberCacheStats>(app.emberCache.stats())
expectType<number>(app.emberCache.stats().routes[0].staleIfError)
expectType<'closed' | 'open' | 'probing' | undefined>(app.emberCache.stats().caches[0].breaker)
app.register(emberCache, { stats: false })
expectError(app.register(emberCache, { stats: 'no' }))
expectType<void>(registerPrometheusMetrics({ Counter: class {}, Gauge: class {} } as any, app.emberCache))
expectType<() => void>(traceWithOpenTelemetry({ startSpan: () => ({ setAttribute () {}, recordException () {}, setStatus () {}, end () {} }) }))
expectType<Promise<void>>(memory.clear())
app.register(emberCache, { caches: [memory] })
