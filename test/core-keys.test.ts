// Cache keys: METHOD:path plus sorted query, HEAD on the GET entry, varyHeaders variants,
// keyFn and `key` templates, keyPrefix applied transparently.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { MemoryCache, urlKey, type EmberCachePluginOptions, type RouteCacheConfig } from '../lib/index'
import { emberApp, type Scope } from './helpers/apps'

async function build (t: Scope, cache: RouteCacheConfig, options: EmberCachePluginOptions = {}): Promise<{ app: FastifyInstance, calls: () => number }> {
  const app = await emberApp(t, options)
  let calls = 0
  app.get('/items', { config: { cache } }, async (request) => ({ n: ++calls, url: request.url }))
  app.get('/items/:id', { config: { cache } }, async (request) => ({ n: ++calls, url: request.url }))
  return { app, calls: () => calls }
}

t.test('urlKey documents the key format', async (t) => {
  t.equal(urlKey('GET', '/tasks'), 'GET:/tasks')
  t.equal(urlKey('GET', '/tasks?page=1&limit=10'), 'GET:/tasks?limit=10&page=1')
  t.equal(urlKey('GET', '/tasks?'), 'GET:/tasks', 'an empty query is no query')
  t.equal(urlKey('GET', '/tasks?b=1&&a=2'), 'GET:/tasks?a=2&b=1', 'empty parameters are dropped')
  t.equal(urlKey('GET', '/tasks?tag=b&x=1&tag=a'), 'GET:/tasks?tag=b&tag=a&x=1', 'repeated names keep their order')
})

for (const [label, makeCache] of [
  ['memory mode', () => ({ mode: 'memory' })],
  ['static mode', () => ({ mode: 'static' })],
  ['MemoryCache object', () => new MemoryCache()]
] as Array<[string, () => RouteCacheConfig]>) {
  t.test(`${label}: query parameter order does not split entries`, async (t) => {
    const { app, calls } = await build(t, makeCache())
    const first = await app.inject('/items?page=1&limit=10')
    const second = await app.inject('/items?limit=10&page=1')
    t.equal(first.headers['x-cache'], 'MISS')
    t.equal(second.headers['x-cache'], 'HIT')
    t.equal(second.body, first.body, 'the second order is served the first response')
    t.equal(calls(), 1)
  })
}

t.test('different query values and paths are different entries', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory' })
  await app.inject('/items?page=1')
  t.equal((await app.inject('/items?page=2')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/items')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/items/2')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'HIT')
  t.equal(calls(), 5)
})

t.test('repeated parameters keep their order: a different order is a different list', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory' })
  const ab = await app.inject('/items?tag=a&tag=b')
  t.equal(ab.headers['x-cache'], 'MISS')
  const ba = await app.inject('/items?tag=b&tag=a')
  t.equal(ba.headers['x-cache'], 'MISS', 'tag=b&tag=a is not tag=a&tag=b')
  t.equal(calls(), 2)
  const abMoved = await app.inject('/items?tag=a&x=1&tag=b')
  const abAgain = await app.inject('/items?x=1&tag=a&tag=b')
  t.equal(abMoved.headers['x-cache'], 'MISS')
  t.equal(abAgain.headers['x-cache'], 'HIT', 'other parameters around them still sort')
  t.equal(calls(), 3)
})

t.test('the sorted key is the one users invalidate', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory' })
  await app.inject('/items?page=1&limit=10')
  await app.emberCache.invalidate('GET:/items?limit=10&page=1')
  const after = await app.inject('/items?page=1&limit=10')
  t.equal(after.headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})

t.test('HEAD is answered from the GET entry without running the handler', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory' })
  const get = await app.inject({
    method: 'GET',
    url: '/items?b=2&a=1'
  })
  t.equal(calls(), 1)
  const head = await app.inject({ method: 'HEAD', url: '/items?a=1&b=2' })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['x-cache'], 'HIT')
  t.equal(head.body, '', 'no body on HEAD')
  t.equal(head.headers['content-type'], get.headers['content-type'])
  t.equal(head.headers['content-length'], String(Buffer.byteLength(get.body)), 'HEAD announces the GET body length')
  t.equal(head.headers.etag, get.headers.etag)
  t.equal(calls(), 1)
})

t.test('HEAD never stores: a GET after a cold HEAD is still a miss', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory' })
  const head = await app.inject({ method: 'HEAD', url: '/items' })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  t.equal(head.headers['x-cache'], 'MISS', 'a cold HEAD says MISS like every response of a cached route')
  t.equal(calls(), 1, 'a cold HEAD runs the handler')
  const get = await app.inject('/items')
  t.equal(get.headers['x-cache'], 'MISS')
  t.equal(JSON.parse(get.body).n, 2, 'the GET body is not an empty HEAD payload')
  const again = await app.inject('/items')
  t.equal(again.headers['x-cache'], 'HIT')
  t.same(JSON.parse(again.body), { n: 2, url: '/items' })
})

t.test('HEAD on a StaticCache object route shares the GET entry', async (t) => {
  const app = await emberApp(t)
  let calls = 0
  app.get('/health', { config: { cache: { mode: 'static' } } }, async () => ({ ok: true, n: ++calls }))
  await app.inject('/health')
  const head = await app.inject({ method: 'HEAD', url: '/health' })
  t.equal(head.headers['x-cache'], 'HIT')
  t.equal(calls, 1)
})

t.test('varyHeaders keep one variant per header value', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory', varyHeaders: ['X-Tenant-Id'] })
  const a1 = await app.inject({ url: '/items', headers: { 'x-tenant-id': 'a' } })
  const b1 = await app.inject({ url: '/items', headers: { 'x-tenant-id': 'b' } })
  const none1 = await app.inject({ url: '/items' })
  t.equal(a1.headers['x-cache'], 'MISS')
  t.equal(b1.headers['x-cache'], 'MISS', 'another tenant does not see tenant a')
  t.equal(none1.headers['x-cache'], 'MISS', 'no header is its own variant')
  t.equal(calls(), 3)
  const a2 = await app.inject({ url: '/items', headers: { 'x-tenant-id': 'a' } })
  const b2 = await app.inject({ url: '/items', headers: { 'x-tenant-id': 'b' } })
  t.equal(a2.headers['x-cache'], 'HIT')
  t.equal(b2.headers['x-cache'], 'HIT')
  t.equal(JSON.parse(a2.body).n, JSON.parse(a1.body).n)
  t.equal(JSON.parse(b2.body).n, JSON.parse(b1.body).n)
  t.equal(calls(), 3)
})

t.test('varyHeaders on the cache object apply to routes using it', async (t) => {
  const cache = new MemoryCache({ varyHeaders: ['accept-language'] })
  const { app, calls } = await build(t, cache)
  await app.inject({ url: '/items', headers: { 'accept-language': 'en' } })
  const fr = await app.inject({ url: '/items', headers: { 'accept-language': 'fr' } })
  t.equal(fr.headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})

t.test('invalidating a key drops every variant of it', async (t) => {
  const cache = new MemoryCache()
  const { app, calls } = await build(t, { cache, varyHeaders: ['x-tenant-id'] })
  for (const tenant of ['a', 'b', 'c']) await app.inject({ url: '/items/1', headers: { 'x-tenant-id': tenant } })
  await app.inject({ url: '/items/2', headers: { 'x-tenant-id': 'a' } })
  t.equal(calls(), 4)
  await cache.invalidate({ key: 'GET:/items/1' })
  for (const tenant of ['a', 'b', 'c']) {
    const res = await app.inject({ url: '/items/1', headers: { 'x-tenant-id': tenant } })
    t.equal(res.headers['x-cache'], 'MISS', `variant ${tenant} is gone`)
  }
  const other = await app.inject({ url: '/items/2', headers: { 'x-tenant-id': 'a' } })
  t.equal(other.headers['x-cache'], 'HIT', 'another key keeps its variants')
  t.equal(calls(), 7)
})

t.test('a pattern drops every variant of the keys it matches', async (t) => {
  const cache = new MemoryCache()
  const { app } = await build(t, { cache, varyHeaders: ['x-tenant-id'] })
  for (const tenant of ['a', 'b']) await app.inject({ url: '/items/1', headers: { 'x-tenant-id': tenant } })
  await cache.invalidate({ pattern: 'GET:/items/*' })
  for (const tenant of ['a', 'b']) {
    const res = await app.inject({ url: '/items/1', headers: { 'x-tenant-id': tenant } })
    t.equal(res.headers['x-cache'], 'MISS', `variant ${tenant} is gone`)
  }
})

t.test('keyFn replaces the computed key', async (t) => {
  const cache = new MemoryCache()
  const { app, calls } = await build(t, { cache, keyFn: (request) => 'item:' + (request.query as { id?: string }).id })
  const first = await app.inject('/items?id=7&utm=x')
  const second = await app.inject('/items?utm=y&id=7')
  t.equal(second.headers['x-cache'], 'HIT', 'tracking parameters ignored by the keyFn share an entry')
  t.equal(second.body, first.body)
  t.equal((await app.inject('/items?id=8')).headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
  await cache.invalidate('item:7')
  t.equal((await app.inject('/items?id=7')).headers['x-cache'], 'MISS', 'invalidated by the keyFn key')
  t.equal((await app.inject('/items?id=8')).headers['x-cache'], 'HIT')
  t.equal(calls(), 3)
})

t.test('a keyFn that throws serves the request without cache', async (t) => {
  const { app, calls } = await build(t, {
    mode: 'memory',
    keyFn: () => { throw new Error('bad input') }
  })
  const first = await app.inject('/items')
  const second = await app.inject('/items')
  t.equal(first.statusCode, 200)
  t.equal(first.headers['x-cache'], 'BYPASS')
  t.equal(second.headers['x-cache'], 'BYPASS')
  t.equal(calls(), 2)
})

t.test('a keyFn returning a non-string serves the request without cache', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory', keyFn: (() => 42) as unknown as () => string })
  const res = await app.inject('/items')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-cache'], 'BYPASS')
  await app.inject('/items')
  t.equal(calls(), 2)
})

t.test('key templates fill {name} from params and {query.name} from the query', async (t) => {
  const cache = new MemoryCache()
  const app = await emberApp(t)
  let calls = 0
  app.get('/widgets/:widgetId', { config: { cache: { cache, key: 'widget:{widgetId}:{query.lang}' } } }, async (request) => ({ n: ++calls, url: request.url }))
  const first = await app.inject('/widgets/5?lang=en&x=1')
  const second = await app.inject('/widgets/5?x=2&lang=en')
  t.equal(second.headers['x-cache'], 'HIT')
  t.equal(second.body, first.body)
  t.equal((await app.inject('/widgets/5?lang=fr')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/widgets/6?lang=en')).headers['x-cache'], 'MISS')
  t.equal(calls, 3)
  await cache.invalidate({ key: 'widget:5:en' })
  t.equal((await app.inject('/widgets/5?lang=en')).headers['x-cache'], 'MISS', 'the filled template is the key')
  t.equal((await app.inject('/widgets/5?lang=fr')).headers['x-cache'], 'HIT')
  await cache.invalidate({ pattern: 'widget:5:*' })
  t.equal((await app.inject('/widgets/5?lang=fr')).headers['x-cache'], 'MISS')
  t.equal(calls, 5)
})

t.test('keyPrefix is transparent: users invalidate with unprefixed keys', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory' }, { keyPrefix: 'svc-a:' })
  await app.inject('/items/1')
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'HIT')
  await app.emberCache.invalidate({ key: 'GET:/items/1' })
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
  await app.emberCache.invalidate({ pattern: 'GET:/items/*' })
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
  t.equal(calls(), 3)
})

t.test('a keyPrefix on a cache object is transparent too', async (t) => {
  const cache = new MemoryCache({ keyPrefix: 'p:' })
  const { app, calls } = await build(t, cache)
  await app.inject('/items/1')
  await cache.invalidate('GET:/items/1')
  t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})
