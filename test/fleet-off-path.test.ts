// The fleet keeps its promises off the happy path (issue 25), with real redis-server and
// memcached processes and two or three instances (each its own app, cache objects and
// connections; the clock-skew writer runs in a process of its own): a foreign message on the
// bus, tags only a response names, a quiet instance during an outage, eviction, server lists
// that differ, a soft invalidation racing a hard one, skewed clocks, failing refreshes, a
// burst of pattern messages, an entry too large for Memcached, and nested key prefixes.
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { promisify } from 'node:util'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { MemcachedCache, MemoryCache, RedisCache, type EmberCache } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { logCapture, sleep, waitFor } from './helpers/fault-kit'
import { redisCommand, startMemcached, startRedis } from './helpers/servers'
import { childEnv } from './helpers/child-env'

const run = promisify(execFile)

interface Instance { app: FastifyInstance, cache: EmberCache, logs: ReturnType<typeof logCapture> }

/** An instance: an app whose /item/:id route reads `data` and stores in `cache`, tagged item:<id>. */
async function instance (t: Test, cache: EmberCache, data: { price: Record<string, number> }, options: Record<string, unknown> = {}): Promise<Instance> {
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(emberCache)
  app.get('/item/:id', { config: { cache: { cache, ttl: 300, tags: (request) => ['item:' + (request.params as { id: string }).id], ...options } } }, async (request) => {
    const id = (request.params as { id: string }).id
    return { id, price: data.price[id] ?? 0 }
  })
  await app.ready()
  return { app, cache, logs }
}

t.test('the fleet off the happy path', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())

  t.test('a message on the bus that is not ours is dropped, counted and logged once: nobody crashes', async (t) => {
    const keyPrefix = freshPrefix('foreign')
    const data = { price: { 1: 10 } }
    const a = await instance(t, new RedisCache({ url: redis.url, keyPrefix, l1: true }), data)
    await a.app.inject('/item/1')
    await sleep(20)
    // (Redis reads [z-a] as [a-z]: such a pattern is one of ours, matched as Redis matches it.)
    for (const message of ['null', '{"k":null}', '{"g":5}', '{"i":"x","a":1,"p":""}', 'not json', '{"i":"x","a":1,"k":["a"],"g":["b"]}', '[]', '"text"']) {
      await redisCommand(redis, ['PUBLISH', keyPrefix + '#bus', message])
    }
    await redisCommand(redis, ['PUBLISH', keyPrefix + '#bus', JSON.stringify({ i: 'other', a: Date.now(), k: ['GET:/item/2'] })])
    await redisCommand(redis, ['PUBLISH', keyPrefix + '#bus', JSON.stringify({ i: 'other', a: Date.now(), p: 'GET:/item/[z-a]' })])
    await sleep(100)
    const stats = a.app.emberCache.stats().caches[0]
    t.equal(stats.busMessagesRejected, 8, 'every foreign message counted')
    t.equal(stats.busMessages, 2, 'the two of ours applied')
    t.equal(a.logs.count(/not one of ours/), 1, 'one warning')
    t.equal((await a.app.inject('/item/1')).headers['x-cache'], 'HIT', 'the instance still serves')
  })

  for (const [label, makeOn] of [
    ['redis', (keyPrefix: string) => new RedisCache({ url: redis.url, keyPrefix, commandTimeout: 2_000 })],
    ['memcached', (keyPrefix: string) => new MemcachedCache({ servers: memcached.servers, keyPrefix, commandTimeout: 2_000 })]
  ] as Array<[string, (keyPrefix: string) => EmberCache]>) {
    t.test(`${label}: a tag only the response names (Cache-Tag) is fenced like a route tag`, async (t) => {
      const keyPrefix = freshPrefix('latetag')
      const make = (): EmberCache => makeOn(keyPrefix)
      const data = { price: 10 }
      let release: () => void = () => {}
      const slow = new Promise<void>((resolve) => { release = resolve })
      const appOf = async (waits: boolean): Promise<FastifyInstance> => {
        const app = Fastify()
        t.teardown(() => app.close())
        await app.register(emberCache)
        app.get('/product/1', { config: { cache: { cache: make(), ttl: 300 } } }, async (_request, reply) => {
          const price = data.price
          if (waits) await slow
          reply.header('cache-tag', 'product:1')
          return { price }
        })
        await app.ready()
        return app
      }
      const a = await appOf(true)
      const b = await appOf(false)
      const miss = a.inject('/product/1')
      await sleep(100)
      // B changes the price and invalidates the tag while A's miss holds the old one.
      data.price = 11
      await b.emberCache.invalidate({ tags: 'product:1' })
      release()
      t.same((await miss).json(), { price: 10 }, 'A answered what it read')
      await sleep(50)
      const after = await b.inject('/product/1')
      t.same(after.json(), { price: 11 }, `B never serves the replaced price (${String(after.headers['x-cache'])})`)
    })
  }

  t.test('redis: an instance quiet during an outage settles when Redis is back (a write queued elsewhere runs first)', async (t) => {
    const aof = await startRedis({ extraArgs: ['--appendonly', 'yes', '--appendfsync', 'always'] })
    t.teardown(() => aof.stop())
    const keyPrefix = freshPrefix('quiet')
    const data = { price: { 1: 10 } }
    // A reconnects (and runs its queue) 0.8 s after Redis is back; B, quiet, as fast as it can.
    const a = await instance(t, new RedisCache({ url: aof.url, keyPrefix, redisOptions: { retryStrategy: () => 800 } }), data)
    const b = await instance(t, new RedisCache({ url: aof.url, keyPrefix }), data)
    await a.app.inject('/item/1')
    await sleep(20)
    t.equal((await b.app.inject('/item/1')).headers['x-cache'], 'HIT')
    await aof.kill()
    data.price[1] = 11
    const write = await a.app.emberCache.invalidate({ tags: 'item:1' })
    t.equal(write.ok, false, 'the invalidation is queued on A')
    await sleep(300)
    await aof.restart()
    // B got no request during the outage: its first comes once its connection is back.
    await waitFor('B to reconnect', () => (b.cache as RedisCache).client.status === 'ready', 5_000, 5)
    const stale: number[] = []
    const started = Date.now()
    while (Date.now() - started < 2_500) {
      const res = await b.app.inject('/item/1')
      if (res.json().price === 10) stale.push(Date.now() - started)
      await sleep(10)
    }
    t.same(stale, [], 'B never served the entry A\'s queued invalidation removes')
    t.equal((await b.app.inject('/item/1')).json().price, 11)
  })

  t.test('redis: an eviction policy that may drop tag sets is said, once, when tags are used', async (t) => {
    for (const [policy, warned] of [['allkeys-lru', 1], ['volatile-lru', 1], ['noeviction', 0], ['volatile-ttl', 0]] as const) {
      await redisCommand(redis, ['CONFIG', 'SET', 'maxmemory-policy', policy])
      const a = await instance(t, new RedisCache({ url: redis.url, keyPrefix: freshPrefix('evict') }), { price: { 1: 1 } })
      for (let i = 0; i < 3; i++) await a.app.inject('/item/' + String(i))
      await a.app.emberCache.invalidate({ tags: 'item:1' })
      t.equal(a.logs.count(/maxmemory-policy/), warned, `${policy}: ${warned === 0 ? 'no warning' : 'one warning'}`)
      await a.app.close()
    }
    await redisCommand(redis, ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'])
  })

  t.test('memcached: server lists written in another order, or with one more server, agree where keys live', async (t) => {
    const second = await startMemcached()
    t.teardown(() => second.stop())
    const third = await startMemcached()
    t.teardown(() => third.stop())
    const keyPrefix = freshPrefix('order')
    const data = { price: {} as Record<string, number> }
    const lists = [[memcached.servers, second.servers], [second.servers, memcached.servers], [memcached.servers, second.servers, third.servers]]
    const [a, b, c] = await Promise.all(lists.map((servers) => instance(t, new MemcachedCache({ servers, keyPrefix, commandTimeout: 2_000 }), data)))
    let stale = 0
    for (let i = 0; i < 20; i++) {
      data.price[i] = 1
      for (const reader of [b, c]) await reader.app.inject('/item/' + String(i))
      await sleep(5)
      data.price[i] = 2
      // The writer with three servers invalidates: the others see it, whichever server a key is on.
      await c.app.emberCache.invalidate({ tags: 'item:' + String(i) })
      await a.app.emberCache.invalidate({ key: 'GET:/item/' + String(i) })
      for (const reader of [a, b, c]) if ((await reader.app.inject('/item/' + String(i))).json().price !== 2) stale++
    }
    t.equal(stale, 0, '0 of 60 reads after the writes are stale')
  })

  t.test('memcached: a soft invalidation never undoes a hard one it races', async (t) => {
    const keyPrefix = freshPrefix('softhard')
    const data = { price: { 1: 1 } }
    const a = await instance(t, new MemcachedCache({ servers: memcached.servers, keyPrefix, commandTimeout: 2_000 }), data, { staleWhileRevalidate: 60 })
    const b = await instance(t, new MemcachedCache({ servers: memcached.servers, keyPrefix, commandTimeout: 2_000 }), data, { staleWhileRevalidate: 60 })
    let undone = 0
    for (let trial = 0; trial < 30; trial++) {
      await a.app.emberCache.invalidate({ key: 'GET:/item/1' })
      await a.app.inject('/item/1')
      await Promise.all([a.cache.invalidate({ key: 'GET:/item/1', soft: true }), b.cache.invalidate({ key: 'GET:/item/1' })])
      const res = await b.app.inject('/item/1')
      if (res.headers['x-cache'] === 'STALE') undone++
      await sleep(20)
    }
    t.equal(undone, 0, 'the entry a hard invalidation removed was never served again (STALE) in 30 trials')
  })

  for (const [label, env] of [['redis', (prefix: string) => ({ REDIS_URL: redis.url, PREFIX: prefix })], ['memcached', (prefix: string) => ({ MEMCACHED_SERVERS: memcached.servers, PREFIX: prefix })]] as const) {
    t.test(`${label}: a writer whose clock is 30 s off cannot stretch or cut an entry's freshness`, async (t) => {
      const keyPrefix = freshPrefix('skew')
      const reader = label === 'redis' ? new RedisCache({ url: redis.url, keyPrefix }) : new MemcachedCache({ servers: memcached.servers, keyPrefix })
      t.teardown(() => reader.close())
      const writer = async (skewMs: number, key: string, ttl: number): Promise<string[]> => {
        const { stdout } = await run(process.execPath, [require.resolve('./helpers/skewed-writer.js')], { env: childEnv({ ...env(keyPrefix), SKEW_MS: String(skewMs), KEY: key, TTL_SECONDS: String(ttl) }) })
        return (JSON.parse(stdout) as { warnings: string[] }).warnings
      }
      const ahead = await writer(30_000, 'ahead', 2)
      t.match(ahead.join('\n'), /clock is (29|30|31) s ahead/, 'the writer was warned (memcached tells whole seconds)')
      t.same(await reader.get('ahead'), { written: 'skewed' }, 'fresh when written')
      await sleep(3_200)
      t.equal(await reader.get('ahead'), undefined, 'gone after its 2 s on everyone\'s clock (not after 32 s)')
      await writer(-30_000, 'behind', 60)
      t.same(await reader.get('behind'), { written: 'skewed' }, 'a writer 30 s behind still writes fresh entries')
    })
  }

  for (const [label, make] of [
    ['memory', () => new MemoryCache()],
    ['redis', () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('softfail'), commandTimeout: 2_000 })]
  ] as Array<[string, () => EmberCache]>) {
    t.test(`${label}: a softly invalidated entry lives no longer than its retention while refreshes fail, and they back off`, async (t) => {
      const cache = make()
      const app = Fastify()
      t.teardown(() => app.close())
      await app.register(emberCache)
      let calls = 0
      let failing = false
      app.get('/doc', { config: { cache: { cache, ttl: 2 } } }, async (_request, reply) => {
        calls++
        if (failing) return reply.code(503).send({ down: true })
        return { doc: 'v1' }
      })
      await app.inject('/doc')
      failing = true
      await cache.invalidate({ key: 'GET:/doc', soft: true })
      const started = Date.now()
      let lastStale = 0
      let staleAnswers = 0
      let callsWhileStale = 0
      while (Date.now() - started < 3_000) {
        const before = calls
        const res = await app.inject('/doc')
        await sleep(25)
        if (res.headers['x-cache'] !== 'STALE') continue
        lastStale = Date.now() - started
        staleAnswers++
        callsWhileStale += calls - before
      }
      t.ok(lastStale < 2_300, `served STALE at most until its retention ended (last at ${lastStale} ms; ttl 2 s)`)
      t.ok(callsWhileStale <= 4, `${staleAnswers} stale answers made ${callsWhileStale} refreshes of the failing origin (1 s, then 2 s apart)`)
    })
  }

  t.test('redis: a burst of pattern messages costs bounded work per turn of the event loop', async (t) => {
    const keyPrefix = freshPrefix('burst')
    const cache = new RedisCache({ url: redis.url, keyPrefix, l1: { max: 20_000, ttl: 120 } })
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(emberCache)
    app.get('/e/:id', { config: { cache: { cache, ttl: 300 } } }, async (request) => ({ id: (request.params as { id: string }).id }))
    await app.ready()
    for (let i = 0; i < 10_000; i++) await cache.set('v' + String(i), i)
    const l1 = app.emberCache.stats().caches[0].l1
    t.ok((l1?.entries ?? 0) >= 10_000, `L1 holds ${String(l1?.entries)} entries`)
    const delay = monitorEventLoopDelay({ resolution: 5 })
    delay.enable()
    const publisher = new RedisCache({ url: redis.url, keyPrefix, bus: false })
    t.teardown(() => publisher.close())
    await publisher.connect()
    const client = publisher.client
    const started = Date.now()
    let sent = 0
    while (Date.now() - started < 1_500) {
      const batch = []
      for (let i = 0; i < 50; i++) batch.push(client.publish(keyPrefix + '#bus', JSON.stringify({ i: 'burst', a: Date.now(), p: 'nothing:' + String(sent++) + '*' })))
      await Promise.all(batch)
      await sleep(30)
    }
    delay.disable()
    const p99 = delay.percentile(99) / 1e6
    t.ok(sent > 1_500, `${sent} pattern messages in 1.5 s`)
    t.ok(p99 < 30, `event-loop delay p99 ${p99.toFixed(1)} ms (matched one by one against every entry: 100-600 ms)`)
  })

  t.test('memcached: one entry too large for an item is that entry\'s refusal, never a cache-wide bypass', async (t) => {
    const keyPrefix = freshPrefix('big')
    const logs = logCapture()
    const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
    t.teardown(() => app.close())
    await app.register(emberCache)
    const big = new MemcachedCache({ servers: memcached.servers, keyPrefix, maxEntryBytes: 5 * 1024 * 1024 })
    const small = new MemcachedCache({ servers: memcached.servers, keyPrefix })
    app.get('/big/:n', { config: { cache: big } }, async () => 'x'.repeat(1_500_000))
    app.get('/small', { config: { cache: big } }, async () => 'small')
    app.get('/default', { config: { cache: small } }, async () => 'x'.repeat(1_500_000))
    await app.inject('/small')
    for (let burst = 0; burst < 2; burst++) {
      await Promise.all(Array.from({ length: 6 }, (_, i) => app.inject('/big/' + String(burst * 6 + i))))
      t.equal((await app.inject('/small')).headers['x-cache'], 'HIT', `after burst ${burst + 1}, another route still hits`)
    }
    const stats = app.emberCache.stats().caches.find((cache) => cache.name === big.name)
    t.equal(stats?.breaker, 'closed')
    t.equal(stats?.backendErrors, 0)
    t.equal(stats?.entriesRefused, 12, 'each refused entry counted')
    t.match((await app.inject('/default')).headers['cache-status'], /detail=too-large/, 'by default, maxEntryBytes fits a Memcached item')
    t.equal(logs.count(/failing/), 0, 'no backend incident logged')
  })

  t.test('redis: nested key prefixes: a cache owns exactly its own keys', async (t) => {
    const base = freshPrefix('nest')
    const outer = new RedisCache({ url: redis.url, keyPrefix: base })
    // No L1 on the inner cache: what it serves is what Redis holds.
    const inner = new RedisCache({ url: redis.url, keyPrefix: base + 'v2:' })
    const appOuter = await instance(t, outer, { price: { 1: 1 } })
    const appInner = await instance(t, inner, { price: { 1: 2 } })
    for (const clear of [() => outer.clear(), () => outer.invalidate({ pattern: '*' })]) {
      await appOuter.app.inject('/item/1')
      await appInner.app.inject('/item/1')
      await sleep(20)
      await clear()
      await sleep(50)
      t.equal((await appOuter.app.inject('/item/1')).headers['x-cache'], 'MISS', 'the outer cache\'s entry is gone')
      const kept = await appInner.app.inject('/item/1')
      t.equal(kept.headers['x-cache'], 'HIT', 'the inner cache\'s entry is not')
    }
    await inner.invalidate({ tags: 'item:1' })
    t.equal((await appInner.app.inject('/item/1')).headers['x-cache'], 'MISS', 'and its tag set survived')
  })
})
