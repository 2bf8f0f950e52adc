// The plugin beside the clients and plugins real apps already have (issue 27): ioredis 5 and 6
// clients from any copy, @fastify/redis 7 (ioredis 5) and 9 (ioredis 6) as the Redis of
// `{ mode: 'redis' }` routes, routes the plugin never saw reported, and a refused connection
// named as refused.
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import fastifyRedis9 from '@fastify/redis'
import { Redis as Redis6, Cluster as Cluster6 } from 'ioredis'
import emberCache, { RedisCache, type RedisCacheOptions } from '../lib/index'
import { freePort, redisCommand, startRedis, type RedisServer } from './helpers/servers'
import { logCapture } from './helpers/fault-kit'
import { entryName } from './helpers/redis-raw'

// Loaded untyped: their declarations of `fastify.redis` (ioredis 5's and 6's) cannot both
// augment FastifyInstance in one program, as they never meet in one app.
const fastifyRedis7 = require('fastify-redis-7') as FastifyPluginAsync<Record<string, unknown>>
const { Redis: Redis5, Cluster: Cluster5 } = require('ioredis-5') as typeof import('ioredis')

const PLUGINS = [
  { name: '@fastify/redis 7 (ioredis 5)', plugin: fastifyRedis7 },
  { name: '@fastify/redis 9 (ioredis 6)', plugin: fastifyRedis9 as unknown as FastifyPluginAsync<Record<string, unknown>> }
]

t.test('beside @fastify/redis and ioredis 5 and 6', async (t) => {
  const redis: RedisServer = await startRedis()
  t.teardown(() => redis.stop())
  let prefixes = 0
  const freshPrefix = (): string => `fit${process.pid}-${++prefixes}:`

  for (const { name, plugin } of PLUGINS) {
    t.test(`${name}: { mode: 'redis' } with no redis option uses fastify.redis, and leaves it open`, async (t) => {
      const keyPrefix = freshPrefix()
      const app = Fastify()
      await app.register(plugin, { url: redis.url })
      await app.register(emberCache, { keyPrefix })
      let runs = 0
      app.get('/r', { config: { cache: { mode: 'redis', ttl: 60 } } }, async () => ({ runs: ++runs }))
      t.equal((await app.inject('/r')).headers['x-cache'], 'MISS')
      const hit = await app.inject('/r')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.same(hit.json(), { runs: 1 }, 'the handler ran once')
      t.equal(await redisCommand(redis, ['EXISTS', entryName(keyPrefix, 'GET:/r')]), 1, 'the entry is in Redis, under the plugin keyPrefix')
      const client = (app as unknown as { redis: { status: string } }).redis
      const [cache] = app.emberCache.caches
      t.ok(cache instanceof RedisCache && (cache.client as unknown) === client, 'the cache holds fastify.redis itself')
      await cache.close()
      t.equal(client.status, 'ready', 'closing our cache does not close the app\'s client')
      await app.close()
    })

    t.test(`${name}: a named instance (redis: { namespace })`, async (t) => {
      const keyPrefix = freshPrefix()
      const app = Fastify()
      t.teardown(() => app.close())
      await app.register(plugin, { url: redis.url, namespace: 'sessions' })
      await app.register(plugin, { url: redis.url, namespace: 'cache' })
      await app.register(emberCache, { keyPrefix, redis: { namespace: 'cache', commandTimeout: 500 } })
      app.get('/n', { config: { cache: { mode: 'redis', ttl: 60 } } }, async () => 'n')
      await app.ready()
      const named = (app as unknown as { redis: Record<string, unknown> }).redis
      t.equal((app.emberCache.caches[0] as RedisCache).client, named.cache, 'the instance named "cache"')
      t.equal((await app.inject('/n')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/n')).headers['x-cache'], 'HIT')
    })

    t.test(`${name}: namespaces the app does not have, or does not choose between, are named`, async (t) => {
      const app = Fastify()
      t.teardown(() => app.close())
      await app.register(plugin, { url: redis.url, namespace: 'sessions' })
      await app.register(emberCache, { redis: { namespace: 'cache' } })
      t.throws(() => app.get('/x', { config: { cache: { mode: 'redis' } } }, async () => 'x'),
        { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /"redis\.namespace".*no instance named "cache" \(it has "sessions"\)/ })
      const other = Fastify()
      t.teardown(() => other.close())
      await other.register(plugin, { url: redis.url, namespace: 'sessions' })
      await other.register(emberCache)
      t.throws(() => other.get('/x', { config: { cache: { mode: 'redis' } } }, async () => 'x'),
        { message: /fastify\.redis holds named instances \("sessions"\): choose one with the plugin option redis: \{ namespace \}/ })
    })

    t.test(`${name}: client: fastify.redis, and client: undefined before the plugin loaded`, async (t) => {
      const keyPrefix = freshPrefix()
      const app = Fastify()
      t.teardown(() => app.close())
      // The mistake: the cache is made before @fastify/redis has run, so fastify.redis is undefined.
      const hasty = Fastify()
      hasty.register(plugin, { url: redis.url })
      const early = (hasty as unknown as { redis?: unknown }).redis
      t.throws(() => new RedisCache({ client: early as any }), {
        code: 'FST_EMBER_CACHE_INVALID_OPTION',
        message: /"RedisCache\.client": is undefined: when it comes from a plugin \(fastify\.redis from @fastify\/redis\), create the cache after `await app\.register\(\.\.\.\)`/
      })
      await hasty.close()
      await app.register(plugin, { url: redis.url })
      const cache = new RedisCache({ client: (app as unknown as { redis: any }).redis, keyPrefix })
      await app.register(emberCache)
      app.get('/c', { config: { cache: { cache, ttl: 60 } } }, async () => 'c')
      t.equal((await app.inject('/c')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/c')).headers['x-cache'], 'HIT')
    })
  }

  t.test('{ mode: \'redis\' } with neither @fastify/redis nor a redis option says what to do', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(emberCache)
    t.throws(() => app.get('/x', { config: { cache: { mode: 'redis' } } }, async () => 'x'), {
      message: /"GET \/x config\.cache\.mode": mode 'redis' needs a Redis: register @fastify\/redis before this route .* or give the plugin option redis: \{ url \}/
    })
    const both = Fastify()
    t.teardown(() => both.close())
    await both.register(emberCache, { redis: { url: redis.url, namespace: 'cache' } })
    t.throws(() => both.get('/x', { config: { cache: { mode: 'redis' } } }, async () => 'x'), { message: /"redis\.namespace": names an @fastify\/redis instance; it cannot be given with url/ })
    await t.rejects(async () => await Fastify().register(emberCache, { redis: { namespace: '' } }).ready(), { message: /"redis\.namespace": expected the name of an @fastify\/redis instance, got string ""/ })
  })

  for (const [name, Redis, Cluster] of [['ioredis 5', Redis5, Cluster5], ['ioredis 6', Redis6, Cluster6]] as const) {
    t.test(`${name}: Redis and Cluster clients are taken by what they can do`, async (t) => {
      const keyPrefix = freshPrefix()
      const client = new Redis(redis.url, { maxRetriesPerRequest: 1 })
      t.teardown(() => client.disconnect())
      const cache = new RedisCache({ client: client as any, keyPrefix })
      const app = Fastify()
      t.teardown(() => app.close())
      await app.register(emberCache)
      app.get('/k', { config: { cache: { cache, ttl: 60, tags: ['k'] } } }, async () => 'k')
      t.equal((await app.inject('/k')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/k')).headers['x-cache'], 'HIT')
      t.equal((await app.emberCache.invalidate({ tags: ['k'] })).ok, true)
      t.equal((await app.inject('/k')).headers['x-cache'], 'MISS')
      const cluster = new Cluster([{ host: '127.0.0.1', port: await freePort() }], { lazyConnect: true })
      t.teardown(() => cluster.disconnect())
      t.doesNotThrow(() => new RedisCache({ client: cluster as any }), 'a Cluster client of the same copy is accepted')
      t.throws(() => new RedisCache({ client: { status: 'ready', get: () => {} } as any }), { message: /"RedisCache\.client": expected an ioredis \(5 or 6\) Redis or Cluster client \(lacks hgetBuffer, / })
    })

    t.test(`${name}: nothing listening is reported as a refused connection`, async (t) => {
      const port = await freePort()
      for (const [what, client] of [
        ['Redis', new Redis(`redis://127.0.0.1:${port}`, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 200 })],
        ['Cluster', new Cluster([`127.0.0.1:${port}`], { lazyConnect: true, enableOfflineQueue: false, clusterRetryStrategy: () => 200 })]
      ] as const) {
        const logs = logCapture()
        const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
        const cache = new RedisCache({ client: client as any, closeClient: true, connectTimeout: 1_000 })
        await app.register(emberCache, { caches: [cache] })
        await app.ready()
        const warning = logs.lines.find((line) => /unreachable at start-up/.test(line.msg))
        t.equal(warning?.reason, 'the connection was refused (nothing listening at that address?)', `${what}: the start-up warning says refused`)
        await app.close()
      }
    })

    t.test(`${name}: a server gone away is reported as refusing, when the circuit opens`, async (t) => {
      const server = await startRedis()
      t.teardown(() => server.stop())
      const client = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 })
      const logs = logCapture()
      const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
      t.teardown(() => app.close())
      await app.register(emberCache, { caches: [new RedisCache({ client: client as any, closeClient: true, keyPrefix: freshPrefix() })] })
      app.get('/g', { config: { cache: { cache: app.emberCache.caches[0], ttl: 60 } } }, async () => 'g')
      t.equal((await app.inject('/g')).headers['x-cache'], 'MISS')
      await server.stop()
      await new Promise((resolve) => setTimeout(resolve, 300)) // a reconnect or two
      for (let i = 0; i < 5; i++) t.equal((await app.inject('/g')).statusCode, 200, 'served without cache')
      t.equal(logs.lines.find((line) => /backend failing/.test(line.msg))?.reason, 'the connection was refused (nothing listening at that address?)')
    })
  }

  t.test('our own Redis and Cluster clients name a refused connection too', async (t) => {
    const port = await freePort()
    for (const [what, options] of [['url', { url: `redis://127.0.0.1:${port}` }], ['clusterNodes', { clusterNodes: [{ host: '127.0.0.1', port }] }]] as Array<[string, RedisCacheOptions]>) {
      const logs = logCapture()
      const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
      await app.register(emberCache, { caches: [new RedisCache({ ...options, connectTimeout: 1_000 })] })
      await app.ready()
      t.equal(logs.lines.find((line) => /unreachable at start-up/.test(line.msg))?.reason, 'the connection was refused (nothing listening at that address?)', what)
      await app.close()
    }
  })
})

t.test('routes the plugin never saw are reported, once each', async (t) => {
  async function appWith (declare: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, warnings: () => string[] }> {
    const logs = logCapture()
    const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
    t.teardown(() => app.close())
    declare(app)
    await app.ready()
    return { app, warnings: () => logs.lines.filter((line) => /never saw it/.test(line.msg)).map((line) => String(line.route)) }
  }

  t.test('a register that is not awaited, and a route declared before the plugin', async (t) => {
    const { app, warnings } = await appWith((app) => {
      app.get('/before', { config: { cache: { mode: 'memory' } } }, async () => 'b')
      app.register(emberCache) // not awaited: the routes below are declared before it loads
      app.get('/after', { config: { cache: { mode: 'memory' } } }, async () => 'a')
      app.post('/after', { config: { cache: { invalidate: ['/after'] } } }, async () => 'w')
      app.get('/plain', async () => 'p')
      app.register(async (child) => { child.get('/child', { config: { cache: { mode: 'memory' } } }, async () => 'c') })
    })
    for (let i = 0; i < 2; i++) {
      for (const url of ['/before', '/after', '/plain', '/child']) {
        await app.inject(url)
        await app.inject({ method: 'HEAD', url })
      }
      await app.inject({ method: 'POST', url: '/after' })
    }
    t.same(warnings().sort(), ['GET /after', 'GET /before', 'POST /after'], 'each unseen route once (GET and its HEAD as one); seen and uncached routes never')
    t.equal((await app.inject('/child')).headers['x-cache'], 'HIT', 'the route declared in a child plugin was seen: it loads after the plugin')
    t.equal((await app.inject('/after')).headers['x-cache'], undefined, 'the unseen route sends no x-cache')
  })

  t.test('an awaited register warns of nothing', async (t) => {
    const logs = logCapture()
    const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
    t.teardown(() => app.close())
    await app.register(emberCache)
    app.get('/r', { config: { cache: { mode: 'memory' } } }, async () => 'r')
    t.equal((await app.inject('/r')).headers['x-cache'], 'MISS')
    t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
    t.same(logs.lines, [], 'no log line at warn')
  })
})
