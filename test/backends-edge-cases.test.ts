// What a backend may be handed or may hand back: fractional ttls, envelopes with impossible
// fields, a passed-in client without a command timeout, a tag set changing under an
// invalidation. Each test is named after the bug it pins.
import t from 'tap'
import { responseEntry } from './helpers/entries'
import Fastify from 'fastify'
import { createServer, type Socket } from 'node:net'
import { Redis } from 'ioredis'
import { emberCache, RedisCache, MemcachedCache } from '../lib/index'
import { encodeEntry } from '../lib/entry'
import { startMemcached, startRedis } from './helpers/servers'
import { entryName } from './helpers/redis-raw'
import { INJECT_VARIANT, freshPrefix } from '../lib/test-suite'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

t.test('fractional ttl on Redis: EXPIRE rejected every store and tripped the breaker for the whole cache', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const cache = new RedisCache({ url: redis.url, keyPrefix: freshPrefix('frac'), commandTimeout: 2_000 })
  const app = Fastify()
  await app.register(emberCache)
  let runs = 0
  app.get('/half', { config: { cache: { cache, ttl: 0.5 } } }, async () => ({ n: ++runs }))
  app.get('/whole', { config: { cache: { cache, ttl: 30 } } }, async () => ({ n: ++runs }))
  await app.ready()
  t.teardown(() => app.close())

  t.equal((await app.inject('/half')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/half')).headers['x-cache'], 'HIT', 'a fractional ttl is stored')
  await sleep(1100)
  t.equal((await app.inject('/half')).headers['x-cache'], 'MISS', 'and expires (it did not become ttl 0 = forever)')
  for (let i = 0; i < 4; i++) await app.inject('/half')
  t.equal((await app.inject('/whole')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/whole')).headers['x-cache'], 'HIT', 'other routes on the cache still cache')
})

t.test('fractional ttl on Memcached became ttl 0 (never expires) in the envelope and in the server', async (t) => {
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())
  const cache = new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('frac'), commandTimeout: 2_000 })
  const app = Fastify()
  await app.register(emberCache)
  let runs = 0
  app.get('/half', { config: { cache: { cache, ttl: 0.5 } } }, async () => ({ n: ++runs }))
  await app.ready()
  t.teardown(() => app.close())
  await app.inject('/half')
  t.equal((await app.inject('/half')).headers['x-cache'], 'HIT')
  await sleep(2100)
  const later = await app.inject('/half')
  t.equal(later.headers['x-cache'], 'MISS', 'the entry expired')
  t.equal(later.json().n, 2)
})

t.test('an envelope with an impossible status crashed the request with an unhandled rejection (reply.code throws)', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const raw = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => raw.disconnect())
  const keyPrefix = freshPrefix('status')
  const cache = new RedisCache({ url: redis.url, keyPrefix, commandTimeout: 2_000, lock: false })
  const app = Fastify()
  await app.register(emberCache)
  app.get('/x', { config: { cache } }, async () => ({ ok: true }))
  await app.ready()
  t.teardown(() => app.close())
  const bogus = encodeEntry(responseEntry({ status: 0, headers: {}, body: Buffer.from('junk') }))
  await raw.hset(entryName(keyPrefix, 'GET:/x'), INJECT_VARIANT, bogus)
  const res = await Promise.race([app.inject('/x'), sleep(2_000).then(() => undefined)])
  t.ok(res !== undefined, 'the request was answered')
  t.equal(res?.statusCode, 200)
  t.same(res?.json(), { ok: true }, 'a foreign envelope is a miss')
})

t.test('a RedisCache on a client passed in had no command timeout: a hung server stalled every request', async (t) => {
  // Accepts connections and never answers: a SIGSTOPped or wedged Redis, as seen by a client.
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const port = (server.address() as { port: number }).port
  // A client as an app makes it (for example fastify.redis): ioredis defaults, offline queue on.
  const given = new Redis({ host: '127.0.0.1', port, retryStrategy: () => 1000 })
  given.on('error', () => {})
  t.teardown(() => given.disconnect())
  const app = Fastify()
  await app.register(emberCache)
  let runs = 0
  app.get('/x', { config: { cache: new RedisCache({ client: given, commandTimeout: 100, connectTimeout: 200 }) } }, async () => ({ n: ++runs }))
  app.put('/x', { config: { cache: new RedisCache({ client: given, commandTimeout: 100, connectTimeout: 200 }) } }, async () => ({ ok: true }))
  await app.ready()
  t.teardown(() => app.close())
  const started = Date.now()
  const res = await Promise.race([app.inject('/x'), sleep(3_000).then(() => undefined)])
  t.ok(res !== undefined, `the read was answered (after ${Date.now() - started} ms)`)
  t.equal(res?.statusCode, 200)
  t.equal(res?.headers['x-cache'], 'BYPASS')
  const write = await Promise.race([app.inject({ method: 'PUT', url: '/x' }), sleep(3_000).then(() => undefined)])
  t.ok(write !== undefined, 'the write was answered (its invalidation did not hang)')
  t.equal(write?.statusCode, 200)
})

t.test('redis tag invalidation deleted the whole tag set: an entry tagged while it ran escaped every later tag invalidation', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const cache = new RedisCache({ url: redis.url, keyPrefix: freshPrefix('tagrace'), commandTimeout: 2_000, lock: false })
  const app = Fastify()
  await app.register(emberCache)
  let runs = 0
  app.get('/t/:id', { config: { cache: { cache, tags: ['items'], ttl: 0 } } }, async (request) => ({ id: (request.params as { id: string }).id, n: ++runs }))
  await app.ready()
  t.teardown(() => app.close())

  await app.inject('/t/1')
  // Another request (here or on another instance) stores a tagged entry while the invalidation
  // is between reading the tag set and clearing it.
  const client = cache.client as unknown as { smembers: (key: string) => Promise<string[]> }
  const smembers = client.smembers.bind(client)
  let raced = false
  client.smembers = async (key) => {
    const members = await smembers(key)
    if (!raced) {
      raced = true
      t.equal((await app.inject('/t/2')).headers['x-cache'], 'MISS')
    }
    return members
  }
  await cache.invalidate({ tags: ['items'] })
  t.ok(raced)
  t.equal((await app.inject('/t/2')).headers['x-cache'], 'HIT', 'stored after the invalidation started: kept')
  await cache.invalidate({ tags: ['items'] })
  t.equal((await app.inject('/t/2')).headers['x-cache'], 'MISS', 'the next tag invalidation still reaches it')
})
