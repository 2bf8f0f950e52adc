// Lifecycle: every cache a route uses is found at start-up, connected once in onReady and
// closed once in onClose; app.close() leaves nothing running.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import Fastify from 'fastify'
import type { FastifyBaseLogger } from 'fastify'
import emberCache, { MemoryCache, StaticCache } from '../lib/index'
import { childEnv } from './helpers/child-env'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Counts what the plugin asks of a cache. */
class SpyCache extends MemoryCache {
  opens = 0
  shutdowns = 0
  connects = 0
  closes = 0

  override async connect (log?: FastifyBaseLogger): Promise<void> {
    this.connects++
    await super.connect(log)
  }

  override async close (): Promise<void> {
    this.closes++
    await super.close()
  }

  constructor () {
    super()
    // The backend opens and shuts down in the cache's tier: counted there.
    const tier = this.tier
    const open = tier.open.bind(tier)
    const shutdown = tier.shutdown.bind(tier)
    tier.open = async () => {
      this.opens++
      await open()
    }
    tier.shutdown = async () => {
      this.shutdowns++
      await shutdown()
    }
  }
}

t.test('a cache object shared by routes is connected once and closed once', async (t) => {
  const cache = new SpyCache()
  const app = Fastify()
  await app.register(emberCache)
  app.get('/a', { config: { cache } }, async () => 'a')
  app.get('/b', { config: { cache: { cache, ttl: 5 } } }, async () => 'b')
  app.put('/a', { config: { cache } }, async () => 'written')
  app.delete('/b', { config: { cache: { cache, invalidate: ['GET:/a'] } } }, async () => 'gone')
  t.equal(cache.connects, 0, 'nothing is connected before ready')
  await app.ready()
  t.equal(cache.connects, 1)
  t.equal(cache.opens, 1)
  await app.inject('/a')
  await app.inject('/b')
  await app.inject({ method: 'HEAD', url: '/a' })
  t.equal(cache.opens, 1, 'requests do not reconnect')
  t.equal(cache.closes, 0)
  await app.close()
  t.equal(cache.closes, 1)
  t.equal(cache.shutdowns, 1)
  t.equal(cache.connects, 1)
})

t.test('caches of routes in encapsulated plugins are managed too', async (t) => {
  const inner = new SpyCache()
  const outer = new SpyCache()
  const app = Fastify()
  await app.register(emberCache)
  app.get('/outer', { config: { cache: outer } }, async () => 'o')
  await app.register(async (child) => {
    child.get('/inner', { config: { cache: inner } }, async () => 'i')
  }, { prefix: '/child' })
  await app.ready()
  t.equal(inner.connects, 1)
  t.equal(outer.connects, 1)
  t.equal(app.emberCache.caches.length, 2)
  const res = await app.inject('/child/inner')
  t.equal(res.headers['x-cache'], 'MISS')
  t.equal((await app.inject('/child/inner')).headers['x-cache'], 'HIT')
  await app.close()
  t.equal(inner.shutdowns, 1)
  t.equal(outer.shutdowns, 1)
})

t.test('a cache used by no route is neither connected nor closed', async (t) => {
  const unused = new SpyCache()
  const app = Fastify()
  await app.register(emberCache)
  app.get('/plain', async () => 'p')
  await app.ready()
  await app.close()
  t.equal(unused.connects, 0)
  t.equal(unused.closes, 0)
})

t.test('a cache shared by two apps opens once and shuts down with its last user', async (t) => {
  const cache = new SpyCache()
  const one = Fastify()
  const two = Fastify()
  for (const app of [one, two]) {
    await app.register(emberCache)
    app.get('/x', { config: { cache } }, async () => 'x')
    await app.ready()
  }
  t.equal(cache.connects, 2)
  t.equal(cache.opens, 1)
  await one.inject('/x')
  t.equal((await two.inject('/x')).headers['x-cache'], 'HIT', 'the apps share entries')
  await one.close()
  t.equal(cache.shutdowns, 0, 'still in use by the second app')
  t.equal((await two.inject('/x')).headers['x-cache'], 'HIT', 'and still serving it')
  await two.close()
  t.equal(cache.shutdowns, 1)
})

t.test('mode caches are created once, connected at ready and emptied at close', async (t) => {
  const app = Fastify()
  await app.register(emberCache)
  app.get('/m', { config: { cache: { mode: 'memory' } } }, async () => 'm')
  app.get('/s', { config: { cache: { mode: 'static' } } }, async () => 's')
  app.get('/m2', { config: { cache: { mode: 'memory', ttl: 1 } } }, async () => 'm2')
  await app.ready()
  const caches = app.emberCache.caches as Array<MemoryCache | StaticCache>
  t.equal(caches.length, 2)
  for (const url of ['/m', '/s', '/m2']) await app.inject(url)
  t.equal(caches.reduce((sum, cache) => sum + (cache.stats().entries ?? 0), 0), 3)
  await app.close()
  t.equal(caches.reduce((sum, cache) => sum + (cache.stats().entries ?? 0), 0), 0, 'entries are released on close')
})

t.test('a failed start neither connects nor shuts down caches, and close still resolves', async (t) => {
  const cache = new SpyCache()
  const app = Fastify()
  await app.register(emberCache)
  app.get('/ok', { config: { cache } }, async () => 'ok')
  app.register(async () => { throw new Error('another plugin fails') })
  await t.rejects(async () => { await app.ready() }, /another plugin fails/)
  await app.close()
  t.equal(cache.opens, 0, 'a failed start connects nothing')
  t.equal(cache.shutdowns, 0, 'and close does not shut down what was never opened')
})

function timers (): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
}

t.test('app.close() leaves no timers behind', async (t) => {
  await sleep(20)
  const before = timers()
  const app = Fastify()
  await app.register(emberCache, { collapseWait: 10_000 })
  const cache = new MemoryCache({ ttl: 30 })
  app.get('/slow', { config: { cache } }, async () => {
    await sleep(30)
    return 'slow'
  })
  app.get('/static', { config: { cache: { mode: 'static' } } }, async () => 'static')
  app.get('/cookie', { config: { cache: { mode: 'memory', ttl: 1 } } }, async (request, reply) => {
    await sleep(20)
    reply.header('set-cookie', 'a=b')
    return 'c'
  })
  await app.ready()
  await Promise.all(Array.from({ length: 20 }, () => app.inject('/slow')))
  await Promise.all(Array.from({ length: 20 }, () => app.inject('/cookie')))
  await app.inject('/static')
  await cache.wrap('v', async () => { await sleep(10); return 1 }, { ttl: 30 })
  await cache.set('w', 2, { ttl: 30 })
  await app.close()
  await sleep(20)
  t.equal(timers(), before, 'no collapse-wait, TTL or refresh timers outlive the app')
})

// Loading ioredis slows every request of the process (bench/README.md): only a RedisCache may
// load it. A fresh process, since this test file's own imports may have loaded it already; it
// loads the built dist/ (`npm test` builds first).
t.test('a memory-only app never loads ioredis; the first RedisCache does', async (t) => {
  const script = `
    const fastify = require('fastify')
    const { emberCache, RedisCache } = require(${JSON.stringify(require.resolve('../dist/lib/index.js'))})
    const loaded = () => Object.keys(require.cache).some((file) => file.includes('/node_modules/ioredis/'))
    ;(async () => {
      const app = fastify()
      await app.register(emberCache)
      app.get('/m', { config: { cache: { mode: 'memory' } } }, async () => ({ m: 1 }))
      app.get('/s', { config: { cache: { mode: 'static' } } }, async () => ({ s: 1 }))
      const statuses = [(await app.inject('/m')).statusCode, (await app.inject('/s')).statusCode]
      const beforeRedis = loaded()
      const cache = new RedisCache({ url: 'redis://127.0.0.1:1' })
      const afterRedis = loaded()
      cache.client.disconnect()
      await app.close()
      console.log(JSON.stringify({ statuses, beforeRedis, afterRedis }))
    })()`
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: __dirname, encoding: 'utf8', env: childEnv() }).trim().split('\n').pop() as string)
  t.same(out.statuses, [200, 200], 'both cached routes answered')
  t.equal(out.beforeRedis, false, 'ioredis not loaded by the plugin, its memory and static routes')
  t.equal(out.afterRedis, true, 'loaded by the first RedisCache')
})
