// The shared backend suite on RedisCache against one real redis-server, plus what only a
// Redis connection has: one connection per cache object, and a client passed in stays open.
import t from 'tap'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import emberCache, { RedisCache } from '../lib/index'
import { startRedis, type RedisServer } from './helpers/servers'
import { buildApp, freshPrefix, runBackendSuite, xCache } from '../lib/test-suite'
import { entryName, redisRawTraits } from './helpers/redis-raw'
import { waitFor } from './helpers/fault-kit'

t.test('RedisCache on one server', async (t) => {
  const redis: RedisServer = await startRedis()
  t.teardown(() => redis.stop())
  // A client of our own to reach the raw storage: entries are hashes, one field per variant.
  const raw = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => raw.disconnect())
  await raw.ping()
  const redisCache = (keyPrefix: string): RedisCache => new RedisCache({ url: redis.url, keyPrefix, commandTimeout: 2_000 })

  runBackendSuite(t, 'redis', async ({ keyPrefix }) => ({ cache: redisCache(keyPrefix), cleanup: async () => {} }), {
    shared: true,
    patterns: true,
    fillLock: true,
    ...redisRawTraits(raw)
  })

  t.test('redis: a key of a foreign type where an entry belongs is a miss and is replaced', async (t) => {
    const keyPrefix = freshPrefix('redis')
    const { app, calls } = await buildApp(t, redisCache(keyPrefix))
    await raw.set(entryName(keyPrefix, 'GET:/json'), 'a plain string, not our hash')
    for (let i = 1; i <= 5; i++) {
      const res = await app.inject('/json')
      t.equal(res.statusCode, 200, `request ${i} answered`)
      t.equal(res.json().n, 1, `request ${i} body`)
      if (i === 1) t.equal(xCache(res), 'MISS', 'a miss, not a backend failure')
      else t.equal(xCache(res), 'HIT', `request ${i}: the foreign key was replaced by our entry`)
    }
    t.equal(calls('json'), 1)
    t.equal(xCache(await app.inject('/items/1')), 'MISS', 'the rest of the cache is unaffected')
    t.equal(xCache(await app.inject('/items/1')), 'HIT')
  })

  t.test('redis: a cache object shared by routes makes one connection, zero after close', async (t) => {
    // On our own server the raw client above is the only connection between tests.
    const base = redis.managed ? 1 : await redis.clientCount()
    await waitFor('earlier tests\' connections to close', async () => await redis.clientCount() === base, 3_000)
    const shared = new RedisCache({ url: redis.url, keyPrefix: freshPrefix('conn') })
    const app = Fastify()
    await app.register(emberCache, { redis: { url: redis.url, keyPrefix: freshPrefix('mode') } })
    for (const path of ['/a', '/b', '/c']) app.get(path, { config: { cache: shared } }, async () => ({ path }))
    for (const path of ['/d', '/e']) app.get(path, { config: { cache: { mode: 'redis', ttl: 5 } } }, async () => ({ path }))
    let closed = false
    t.teardown(async () => { if (!closed) await app.close() })
    await app.ready()
    for (const path of ['/a', '/b', '/c', '/d', '/e', '/a', '/d']) t.equal((await app.inject(path)).statusCode, 200)
    t.equal(xCache(await app.inject('/b')), 'HIT')
    t.equal(xCache(await app.inject('/e')), 'HIT')
    t.equal(await redis.clientCount(), base + 2, 'one connection for the shared object (3 routes) and one for mode redis (2 routes)')
    await app.close()
    closed = true
    await waitFor('connections to close', async () => await redis.clientCount() === base, 2_000)
    t.pass('no connection left after app.close()')
  })

  t.test('redis: a client passed in is not closed unless closeClient is true', async (t) => {
    const given = new Redis(redis.url)
    t.teardown(() => given.disconnect())
    const app = Fastify()
    await app.register(emberCache)
    app.get('/x', { config: { cache: new RedisCache({ client: given, keyPrefix: freshPrefix('given') }) } }, async () => ({ ok: true }))
    await app.inject('/x')
    t.equal(xCache(await app.inject('/x')), 'HIT', 'the given client is used')
    await app.close()
    t.equal(given.status, 'ready', 'still open after app.close()')
    t.equal(await given.ping(), 'PONG')

    const owned = new Redis(redis.url)
    t.teardown(() => owned.disconnect())
    const other = Fastify()
    await other.register(emberCache)
    other.get('/x', { config: { cache: new RedisCache({ client: owned, closeClient: true, keyPrefix: freshPrefix('owned') }) } }, async () => ({ ok: true }))
    await other.inject('/x')
    await other.close()
    await waitFor('the closeClient client to end', () => owned.status === 'end', 2_000)
    t.pass('closeClient: true closes it')
  })
})
