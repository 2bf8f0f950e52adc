// Issue 13, first half: requests that must never share an entry (hosts, protocols, template
// placeholders), route defaults on cache objects, and the headers caches in front read
// (Age/max-age, Vary, no public by default). Host separation runs on every backend.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { MemcachedCache, MemoryCache, RedisCache, type EmberCache, type RouteCacheConfig } from '../lib/index'
import { emberApp } from './helpers/apps'
import { freshPrefix } from '../lib/test-suite'
import { useClock } from './helpers/clock'
import { startMemcached, startRedis } from './helpers/servers'

/** The error that registering routes (and readying the app) raised: onRoute throws right away. */
async function registrationError (app: FastifyInstance, register: () => void): Promise<unknown> {
  try {
    register()
    await app.ready()
  } catch (err) {
    return err
  }
  return undefined
}

/** An app (trustProxy on, as behind a load balancer) whose GET /page answers with an absolute link built from the request. */
async function hostApp (t: Test, cache: RouteCacheConfig): Promise<{ app: FastifyInstance, calls: () => number }> {
  const app = Fastify({ trustProxy: true })
  t.teardown(() => app.close())
  await app.register(emberCache)
  let calls = 0
  app.get('/page', { config: { cache } }, async (request) => {
    calls++
    return { link: request.protocol + '://' + request.host + '/next' }
  })
  return { app, calls: () => calls }
}

function hostSuite (t: Test, label: string, make: () => Promise<EmberCache>): void {
  t.test(`${label}: requests for different hosts never share an entry`, async (t) => {
    const { app, calls } = await hostApp(t, await make())
    const a = await app.inject({ url: '/page', headers: { host: 'a.example.com' } })
    const b = await app.inject({ url: '/page', headers: { host: 'b.example.com' } })
    t.equal(a.json().link, 'http://a.example.com/next')
    t.equal(b.json().link, 'http://b.example.com/next', 'b is not answered with a\'s page')
    t.equal(b.headers['x-cache'], 'MISS')
    t.equal((await app.inject({ url: '/page', headers: { host: 'A.Example.com' } })).headers['x-cache'], 'HIT', 'host names compare case-insensitively')
    t.equal(calls(), 2)
  })

  t.test(`${label}: X-Forwarded-Host cannot plant a response for other clients (unkeyed-header poisoning)`, async (t) => {
    const { app, calls } = await hostApp(t, await make())
    const attack = await app.inject({ url: '/page', headers: { host: 'shop.example.com', 'x-forwarded-host': 'evil.example' } })
    t.equal(attack.json().link, 'http://evil.example/next', 'the attacker gets its own page')
    const victim = await app.inject({ url: '/page', headers: { host: 'shop.example.com' } })
    t.equal(victim.json().link, 'http://shop.example.com/next', 'every other client gets the real one')
    t.equal(victim.headers['x-cache'], 'MISS')
    t.equal(calls(), 2)
  })

  t.test(`${label}: different protocols never share an entry`, async (t) => {
    const { app } = await hostApp(t, await make())
    const plain = await app.inject({ url: '/page', headers: { host: 'a.example.com' } })
    const tls = await app.inject({ url: '/page', headers: { host: 'a.example.com', 'x-forwarded-proto': 'https' } })
    t.equal(plain.json().link, 'http://a.example.com/next')
    t.equal(tls.json().link, 'https://a.example.com/next')
    t.equal(tls.headers['x-cache'], 'MISS')
  })

  t.test(`${label}: invalidating the documented key drops every host's entry`, async (t) => {
    const cache = await make()
    const { app } = await hostApp(t, cache)
    for (const host of ['a.example.com', 'b.example.com']) await app.inject({ url: '/page', headers: { host } })
    await cache.invalidate('GET:/page')
    for (const host of ['a.example.com', 'b.example.com']) {
      t.equal((await app.inject({ url: '/page', headers: { host } })).headers['x-cache'], 'MISS', host)
    }
  })

  t.test(`${label}: shareAcrossHosts: true (route or cache) lets one site's names share`, async (t) => {
    const cache = await make()
    const { app, calls } = await hostApp(t, { cache, shareAcrossHosts: true })
    await app.inject({ url: '/page', headers: { host: 'www.example.com' } })
    t.equal((await app.inject({ url: '/page', headers: { host: 'example.com' } })).headers['x-cache'], 'HIT')
    t.equal(calls(), 1)
  })
}

t.test('hosts and protocols, on every backend', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())
  hostSuite(t, 'memory', async () => new MemoryCache())
  hostSuite(t, 'redis', async () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('host') }))
  hostSuite(t, 'memcached', async () => new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('host') }))
})

t.test('key templates: a placeholder that names no route param fails registration', async (t) => {
  const app = await emberApp(t)
  t.match(await registrationError(app, () => app.get('/gadgets/:gadgetId', { config: { cache: { mode: 'memory', key: 'gadget:{gadgetID}' } } }, async () => 'x')), {
    code: 'FST_EMBER_CACHE_INVALID_OPTION',
    message: /GET \/gadgets\/:gadgetId config\.cache\.key": placeholder \{gadgetID\} names no param of the route \(its params are \{gadgetId\}\)/
  })
})

t.test('key templates: a cache object key default is checked against each route using it', async (t) => {
  const app = await emberApp(t)
  const cache = new MemoryCache({ key: 'item:{id}' })
  app.get('/items/:id', { config: { cache } }, async () => 'ok')
  t.match(await registrationError(app, () => app.get('/things/:thingId', { config: { cache } }, async () => 'bad')), { message: /GET \/things\/:thingId config\.cache\.key": placeholder \{id\}/ })
})

t.test('key templates: a request without a value for a placeholder is served without cache, one warning', async (t) => {
  const warnings: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(line) } } } })
  t.teardown(() => app.close())
  await app.register(emberCache)
  let calls = 0
  app.get('/report', { config: { cache: { mode: 'memory', key: 'report:{query.month}' } } }, async (request) => ({ n: ++calls, query: request.query }))
  const withMonth = await app.inject('/report?month=5')
  t.equal(withMonth.headers['x-cache'], 'MISS')
  t.equal((await app.inject('/report?month=5')).headers['x-cache'], 'HIT', '{query.month} fills from the query')
  for (const url of ['/report', '/report?other=1', '/report?month=', '/report?month=1&month=2']) {
    const res = await app.inject(url)
    t.equal(res.headers['x-cache'], 'BYPASS', url + ': bypassed, not keyed as "report:"')
    t.match(res.headers['cache-status'], /detail=key-incomplete/)
  }
  t.equal(calls, 5, 'each of those ran the handler: none shared an entry')
  t.equal(warnings.filter((line) => line.includes('has no value for a placeholder')).length, 1, 'one warning, not one per request')
})

t.test('write targets: placeholders are checked at registration; a missing value skips that target', async (t) => {
  const app = await emberApp(t)
  const cache = new MemoryCache()
  t.match(await registrationError(app, () => app.post('/teams/:teamId', { config: { cache: { cache, invalidate: ['team:{team}'] } } }, async () => 'x')), { message: /POST \/teams\/:teamId config\.cache\.invalidate": "team:\{team\}": placeholder \{team\} names no param/ })

  const ok = await emberApp(t)
  const shared = new MemoryCache()
  ok.get('/stats', { config: { cache: shared } }, async (request) => request.url)
  ok.post('/teams/:teamId', { config: { cache: { cache: shared, invalidate: ['GET:/stats?team={query.team}', 'GET:/stats'] } } }, async () => 'x')
  await ok.inject('/stats')
  await ok.inject('/stats?team=red')
  await ok.inject({ method: 'POST', url: '/teams/1' })
  t.equal((await ok.inject('/stats?team=red')).headers['x-cache'], 'HIT', 'the target without a value was skipped, not widened')
  t.equal((await ok.inject('/stats')).headers['x-cache'], 'MISS', 'the others still ran')
})

t.test('route defaults on cache objects: keyFn, key, tags, private, statusCodes (route > cache > plugin)', async (t) => {
  const app = await emberApp(t, { statusCodes: [200] })
  const userKey = (request: { headers: Record<string, unknown> }): string => 'user:' + String(request.headers['x-user'])
  const cache = new MemoryCache({ ttl: 30, keyFn: userKey, tags: ['me'], statusCodes: [200, 404] })
  let calls = 0
  app.get('/me', { config: { cache } }, async (request) => ({ user: request.headers['x-user'], n: ++calls }))
  app.get('/missing', { config: { cache } }, async (_request, reply) => reply.code(404).send({ n: ++calls }))
  app.get('/shared', { config: { cache: { cache, key: 'shared' } } }, async () => ({ n: ++calls }))
  const ada = await app.inject({ url: '/me', headers: { 'x-user': 'ada' } })
  t.equal(ada.headers['cache-control'], 'private, max-age=30', 'a keyFn route is keyed per caller: private')
  t.equal((await app.inject({ url: '/me', headers: { 'x-user': 'bob' } })).json().user, 'bob')
  t.equal((await app.inject({ url: '/me', headers: { 'x-user': 'ada' } })).headers['x-cache'], 'HIT')
  t.ok(cache.lookup('user:ada', ':origin=http://localhost:80') !== undefined, 'stored under the cache\'s keyFn')
  await app.inject('/missing')
  t.equal((await app.inject('/missing')).headers['x-cache'], 'HIT', 'the cache\'s statusCodes beat the plugin\'s')
  await app.inject('/shared')
  t.equal((await app.inject('/shared')).headers['x-cache'], 'HIT')
  t.equal((await app.inject('/shared')).headers['cache-control'], 'max-age=30', 'the route\'s key replaces the cache\'s keyFn: not per caller')
  await cache.invalidate({ tags: 'me' })
  t.equal((await app.inject({ url: '/me', headers: { 'x-user': 'ada' } })).headers['x-cache'], 'MISS', 'the cache\'s tags were stored')
})

t.test('RFC 9111 §4.2.3: a hit at age 3 of a 60 s entry sends Age: 3 and max-age=60', async (t) => {
  const clock = useClock(t)
  const app = await emberApp(t)
  app.get('/r', { config: { cache: { mode: 'memory', ttl: 60 } } }, async () => 'r')
  await app.inject('/r')
  clock.advance(3)
  const hit = await app.inject('/r')
  t.equal(hit.headers.age, '3')
  t.equal(hit.headers['cache-control'], 'max-age=60')
})

t.test('RFC 9110 §12.5.5: a response names the request headers it was keyed on in Vary', async (t) => {
  const app = await emberApp(t)
  app.get('/tenant', { config: { cache: { mode: 'memory', varyHeaders: ['x-tenant-id'] } } }, async (_request, reply) => {
    reply.header('vary', 'Accept-Language')
    return 'x'
  })
  app.get('/private', { config: { cache: { mode: 'memory', private: true } } }, async () => 'p')
  const miss = await app.inject({ url: '/tenant', headers: { 'x-tenant-id': 'a' } })
  const hit = await app.inject({ url: '/tenant', headers: { 'x-tenant-id': 'a' } })
  t.equal(miss.headers.vary, 'Accept-Language, x-tenant-id')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers.vary, 'Accept-Language, x-tenant-id', 'hits say it too')
  t.equal((await app.inject('/private')).headers.vary, 'authorization, cookie', 'a private route keys on the credentials (Authorization and Cookie)')
})

t.test('RFC 9111 §3.5: public is never added by default; per-caller routes say private', async (t) => {
  const app = await emberApp(t)
  const cases: Array<[string, RouteCacheConfig, string]> = [
    ['/plain', { mode: 'memory' }, 'max-age=60'],
    ['/keyfn', { mode: 'memory', keyFn: () => 'k' }, 'private, max-age=60'],
    ['/private', { mode: 'memory', private: true }, 'private, max-age=60'],
    ['/auth', { mode: 'memory', varyHeaders: ['Authorization'] }, 'private, max-age=60'],
    ['/cookie', { mode: 'memory', varyHeaders: ['cookie'] }, 'private, max-age=60'],
    ['/cdn', { mode: 'memory', public: true }, 'public, max-age=60']
  ]
  for (const [path, cache] of cases) app.get(path, { config: { cache } }, async () => path)
  for (const [path, , expected] of cases) {
    t.equal((await app.inject(path)).headers['cache-control'], expected, path + ' miss')
    t.equal((await app.inject(path)).headers['cache-control'], expected, path + ' hit')
  }
  const both = await emberApp(t)
  t.match(await registrationError(both, () => both.get('/x', { config: { cache: { mode: 'memory', private: true, public: true } } }, async () => 'x')), { message: /config\.cache\.public": a response cannot be both public and private/ })
})

t.test('the plugin caches option: a cache used only for cache-aside opens with the app and closes with it', async (t) => {
  const cache = new MemoryCache()
  const app = Fastify()
  await app.register(emberCache, { caches: [cache] })
  app.get('/uses', async () => {
    await cache.set('a', 1)
    return { a: await cache.get('a') }
  })
  t.same((await app.inject('/uses')).json(), { a: 1 })
  t.same(app.emberCache.caches, [cache], 'managed: part of emberCache.invalidate and clear')
  await app.emberCache.invalidate('a')
  t.equal(await cache.get('a'), undefined)
  await app.close()
  await t.rejects(Promise.resolve().then(() => Fastify().register(emberCache, { caches: [{}] as unknown as EmberCache[] }).ready()), { message: /Invalid option "caches"/ })
})

t.test('RFC 9111 §3.5: public: true lets credentialed requests share the route\'s entries; without it they bypass', async (t) => {
  const app = await emberApp(t)
  let calls = 0
  app.get('/catalog', { config: { cache: { mode: 'memory', public: true } } }, async () => ({ n: ++calls }))
  app.get('/plain', { config: { cache: { mode: 'memory' } } }, async () => ({ n: ++calls }))
  await app.inject('/catalog')
  const withToken = await app.inject({ url: '/catalog', headers: { authorization: 'Bearer a' } })
  t.equal(withToken.headers['x-cache'], 'HIT', 'the route vouches that its answer is everyone\'s')
  t.equal(withToken.headers['cache-control'], 'public, max-age=60')
  t.equal((await app.inject({ url: '/plain', headers: { authorization: 'Bearer a' } })).headers['x-cache'], 'BYPASS')
})

t.test('RFC 9111 §3.5: a credentialed write is written through only on a public route', async (t) => {
  const app = await emberApp(t)
  const cache = new MemoryCache()
  app.get('/items/:id', { config: { cache: { cache, public: true } } }, async (request) => ({ id: (request.params as { id: string }).id, read: true }))
  app.put('/items/:id', { config: { cache: { cache, writeThrough: true, public: true } } }, async (request) => ({ id: (request.params as { id: string }).id, written: true }))
  app.put('/other/:id', { config: { cache: { cache, writeThrough: true } } }, async () => ({ written: true }))
  app.get('/other/:id', { config: { cache } }, async () => ({ read: true }))
  await app.inject({ method: 'PUT', url: '/items/1', headers: { authorization: 'Bearer w' } })
  const read = await app.inject('/items/1')
  t.equal(read.headers['x-cache'], 'HIT')
  t.same(read.json(), { id: '1', written: true })
  await app.inject({ method: 'PUT', url: '/other/1', headers: { authorization: 'Bearer w' } })
  t.equal((await app.inject('/other/1')).headers['x-cache'], 'MISS', 'not public: the credentialed answer was not shared')
})
