// Operations and the API keep their word (issue 26): what a pattern can do, names without
// credentials, bounded compression work, keyed hashes in traces, one snapshot per scrape,
// wrap() never wedged, targets that say one thing, and values a backend cannot hold refused
// up front. Real redis-server and memcached processes.
import t, { type Test } from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import Fastify, { type FastifyInstance } from 'fastify'
import promClient from 'prom-client'
import emberCache, {
  InvalidOptionError, InvalidTargetError, InvalidationFailedError, MemcachedCache, MemoryCache, RedisCache, registerPrometheusMetrics, type EmberCache
} from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { logCapture, sleep } from './helpers/fault-kit'
import { startMemcached, startRedis } from './helpers/servers'

async function appWith (t: Test, register: (app: FastifyInstance) => void, options: Record<string, unknown> = {}, logs?: ReturnType<typeof logCapture>): Promise<FastifyInstance> {
  const app = Fastify(logs === undefined ? {} : { logger: { level: 'info', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(emberCache, options)
  register(app)
  await app.ready()
  return app
}

t.test('operations and the API', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())
  const backends: Array<[string, () => EmberCache]> = [
    ['memory', () => new MemoryCache()],
    ['redis', () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('contract') })],
    ['memcached', () => new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('contract') })]
  ]

  t.test('a glob any backend accepts never throws anywhere; an unusable pattern is refused before anything runs', async (t) => {
    for (const [label, make] of backends.slice(0, 2)) {
      const cache = make()
      let release: () => void = () => {}
      const app = await appWith(t, (app) => {
        app.get('/k/:id', { config: { cache } }, async () => {
          await new Promise<void>((resolve) => { release = resolve })
          return 'slow'
        })
      })
      const inFlight = app.inject('/k/1')
      await sleep(30)
      t.same((await app.emberCache.invalidate({ pattern: 'GET:/k/[z-a]' })).ok, true, `${label}: a reversed range is a range, as Redis reads it`)
      release()
      t.equal((await inFlight).statusCode, 200, `${label}: a miss in flight is answered`)
      await t.rejects(app.emberCache.invalidate({ pattern: '' }), InvalidTargetError, `${label}: an empty pattern is refused, not queued`)
      await t.rejects(app.emberCache.invalidate({ pattern: 'a\u0000b' }), InvalidTargetError)
    }
  })

  t.test('names, logs, stats and metrics never carry credentials', async (t) => {
    const logs = logCapture()
    const memcachedCache = new MemcachedCache({ servers: 'user:s3cret@' + memcached.servers, keyPrefix: freshPrefix('cred'), connectTimeout: 300, commandTimeout: 100 })
    const redisCache = new RedisCache({ url: 'redis://:s3cret@' + redis.url.slice('redis://'.length), keyPrefix: freshPrefix('cred'), connectTimeout: 300 })
    const registry = new promClient.Registry()
    const app = await appWith(t, (app) => {
      app.get('/m', { config: { cache: memcachedCache } }, async () => 'm')
      app.get('/r', { config: { cache: redisCache } }, async () => 'r')
      registerPrometheusMetrics(promClient, app.emberCache, { registers: [registry] })
    }, {}, logs)
    for (let i = 0; i < 4; i++) await Promise.all([app.inject('/m'), app.inject('/r')])
    const everything = JSON.stringify(logs.lines) + JSON.stringify(app.emberCache.stats()) + await registry.metrics() + memcachedCache.name + redisCache.name
    t.notMatch(everything, /s3cret/, 'the password appears nowhere')
    t.match(memcachedCache.name, /^memcached:.*@127\.0\.0\.1:\d+$/)
  })

  t.test('compression per miss is bounded: dense bodies are not compressed, large ones off the loop, long Accept-Encoding cut short', async (t) => {
    // Random bytes labelled JSON: nothing compresses them (a JSON of already-compressed data, say).
    const dense = (await import('node:crypto')).randomBytes(200 * 1024)
    const large = JSON.stringify({ items: Array.from({ length: 4000 }, (_, i) => ({ id: i, name: 'item number ' + String(i), tags: ['a', 'b'] })) })
    const app = await appWith(t, (app) => {
      app.get('/dense', { config: { cache: { mode: 'memory' } } }, async (_request, reply) => reply.type('application/json').send(dense))
      app.get('/large/:n', { config: { cache: { mode: 'memory' } } }, async (_request, reply) => reply.type('application/json').send(large))
      app.get('/small', { config: { cache: { mode: 'memory' } } }, async () => ({ text: 'x'.repeat(2000) }))
    })
    await app.inject('/dense')
    await sleep(100)
    const hit = await app.inject({ url: '/dense', headers: { 'accept-encoding': 'gzip' } })
    t.same([hit.headers['x-cache'], hit.headers['content-encoding']], ['HIT', undefined], 'an incompressible body is stored identity only (not compressed to be thrown away)')
    const delay = monitorEventLoopDelay({ resolution: 1 })
    delay.enable()
    for (let i = 0; i < 5; i++) await app.inject('/large/' + String(i))
    await sleep(200)
    delay.disable()
    t.ok(delay.max / 1e6 < 40, `five ${Math.round(large.length / 1024)} KB misses compressed without stalling the loop (max delay ${(delay.max / 1e6).toFixed(1)} ms)`)
    await app.inject('/small')
    await sleep(50)
    const time = async (acceptEncoding: string): Promise<number> => {
      const started = process.hrtime.bigint()
      for (let i = 0; i < 200; i++) await app.inject({ url: '/small', headers: { 'accept-encoding': acceptEncoding + (i % 2 === 0 ? '' : ', x' + String(i)) } })
      return Number(process.hrtime.bigint() - started) / 200e3
    }
    const normal = await time('gzip, br')
    const hostile = await time(Array.from({ length: 1300 }, (_, i) => 'c' + String(i) + ';q=0.5').join(', '))
    t.ok(hostile < normal * 3, `a 14 KB Accept-Encoding of 1,300 members: ${hostile.toFixed(0)} µs a hit, against ${normal.toFixed(0)} µs (it was 9x)`)
  })

  t.test('trace key hashes are keyed: unguessable without the secret, equal across instances that share it', async (t) => {
    const seen: string[] = []
    const onLookup = (message: unknown): void => {
      const hash = (message as { keyHash?: string }).keyHash
      if (hash !== undefined) seen.push(hash)
    }
    subscribe('tracing:ember-cache:lookup:end', onLookup)
    t.teardown(() => unsubscribe('tracing:ember-cache:lookup:end', onLookup))
    const route = (app: FastifyInstance): void => { app.get('/me', { config: { cache: { mode: 'memory' } } }, async () => 'me') }
    const a = await appWith(t, route, { keyHashSecret: 'a fleet secret, 16+ chars' })
    const b = await appWith(t, route, { keyHashSecret: 'a fleet secret, 16+ chars' })
    const c = await appWith(t, route, { keyHashSecret: 'another secret, 16+ chars' })
    for (const app of [a, b, c]) await app.inject('/me')
    const { createHash } = await import('node:crypto')
    t.equal(seen[0], seen[1], 'one secret, one hash')
    t.not(seen[0], seen[2], 'another secret, another hash')
    t.not(seen[0], createHash('sha256').update('GET:/me').digest('hex').slice(0, 16), 'not a plain SHA-256 of the key')
    await t.rejects(async () => await Fastify().register(emberCache, { keyHashSecret: 'short' }).ready(), InvalidOptionError)
  })

  t.test('a /metrics scrape takes one snapshot of the caches', async (t) => {
    const registry = new promClient.Registry()
    const app = await appWith(t, (app) => { app.get('/x', { config: { cache: { mode: 'memory' } } }, async () => 'x') })
    let snapshots = 0
    const real = app.emberCache.stats
    registerPrometheusMetrics(promClient, { stats: () => { snapshots++; return real() } }, { registers: [registry] })
    await registry.metrics()
    t.equal(snapshots, 1)
    await sleep(5)
    await registry.metrics()
    t.equal(snapshots, 2, 'and a new one for the next')
  })

  for (const [label, make] of backends) {
    t.test(`${label}: wrap() waits a bounded time for a run that never settles, then runs its own`, async (t) => {
      const cache = make()
      t.teardown(() => cache.close())
      cache.wrap('k', () => new Promise(() => {})).catch(() => {})
      await sleep(20)
      const started = Date.now()
      t.equal(await cache.wrap('k', () => 42, { wait: 200 }), 42)
      t.ok(Date.now() - started < 1_000, `answered after ${Date.now() - started} ms`)
      t.equal(await cache.wrap('k', () => 43), 42, 'and stored its value')
    })
  }

  t.test('an invalidation target says one thing', async (t) => {
    const cache = new MemoryCache()
    for (const target of [{ key: 'k', tags: ['t'] }, { tags: ['t'], pattern: 'x*' }, { key: 'k', tag: 't' }, { keys: ['a'], soft: 1 }]) {
      await t.rejects(cache.invalidate(target as never), InvalidTargetError, JSON.stringify(target))
    }
  })

  t.test('values a backend cannot hold are refused up front; set() and delete() say what they did', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(emberCache)
    const cache = new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('limits') })
    t.throws(() => app.get('/forever', { config: { cache: { cache, ttl: 5e9 } } }, async () => 'x'), /config\.cache\.ttl.*at most/, 'a ttl Memcached cannot hold fails registration')
    await t.rejects(cache.set('k', 1, { ttl: 5e9 }), InvalidOptionError)
    for (const tags of [[1], [''], 'tag', ['a\u0000b']]) await t.rejects(cache.set('k', 1, { tags } as never), InvalidTargetError, JSON.stringify(tags))
    t.equal(await cache.set('k', 1), true, 'stored')
    const down = new RedisCache({ url: 'redis://127.0.0.1:1', keyPrefix: freshPrefix('down'), connectTimeout: 100, commandTimeout: 100 })
    t.teardown(() => down.close())
    t.equal(await down.set('k', 1), false, 'set() during an outage resolves false (fail-open, as a route store)')
    await t.rejects(down.delete('k'), InvalidationFailedError, 'delete() during an outage rejects: it is queued')
  })
})
