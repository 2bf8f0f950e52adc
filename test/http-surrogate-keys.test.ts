// Surrogate keys (issue 4): a handler tags its response with a header (Cache-Tag by default),
// the tags join the entry's tags for invalidate({ tags }), and clients never see the header.
import t from 'tap'
import Fastify from 'fastify'
import emberCache, { MemoryCache } from '../lib/index'
import { countingApp as build, emberApp, type Handler } from './helpers/apps'

const tagged = (value: string, header = 'cache-tag'): Handler => (request, reply) => {
  reply.header(header, value)
  return 'body'
}

t.test('Surrogate keys: Cache-Tag tags are stored with the entry and the header is not sent', async (t) => {
  const cache = new MemoryCache()
  const { app, calls } = await build(t, tagged('product-1 catalog'), cache)
  const miss = await app.inject('/r')
  t.equal(miss.headers['cache-tag'], undefined, 'stripped from the miss')
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers['cache-tag'], undefined, 'never stored, so never replayed')
  await cache.invalidate({ tags: ['catalog'] })
  t.equal((await app.inject('/r')).headers['x-cache'], 'MISS', 'invalidated by a header tag')
  t.equal(calls(), 2)
})

t.test('Surrogate keys: tags may be separated by commas and spaces', async (t) => {
  for (const tag of ['a', 'b', 'c', 'd']) {
    const cache = new MemoryCache()
    const { app } = await build(t, tagged(' a, b ,c   d,,'), cache)
    await app.inject('/r')
    await cache.invalidate({ tags: [tag] })
    t.equal((await app.inject('/r')).headers['x-cache'], 'MISS', tag)
  }
})

t.test('Surrogate keys: header tags are merged with the route tags', async (t) => {
  for (const tag of ['route-tag', 'header-tag']) {
    const cache = new MemoryCache()
    const { app } = await build(t, tagged('header-tag route-tag'), { cache, tags: ['route-tag'] })
    await app.inject('/r')
    t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
    await cache.invalidate({ tags: [tag] })
    t.equal((await app.inject('/r')).headers['x-cache'], 'MISS', tag)
  }
})

t.test('Surrogate keys: reply.cacheInvalidate({ tags }) in another route drops an entry tagged by header', async (t) => {
  const app = await emberApp(t)
  let calls = 0
  app.get('/r', { config: { cache: { mode: 'memory' } } }, async (request, reply) => {
    calls++
    reply.header('cache-tag', 'orders')
    return 'v' + String(calls)
  })
  app.post('/flush', async (request, reply) => {
    await reply.cacheInvalidate({ tags: 'orders' })
    return 'ok'
  })
  await app.inject('/r')
  await app.inject({ method: 'POST', url: '/flush' })
  t.equal((await app.inject('/r')).body, 'v2')
})

t.test('Surrogate keys: surrogateKeyHeader names another header (Surrogate-Key)', async (t) => {
  const cache = new MemoryCache()
  const { app } = await build(t, (request, reply) => {
    reply.header('surrogate-key', 'fastly-style')
    reply.header('cache-tag', 'left-alone')
    return 'body'
  }, cache, { surrogateKeyHeader: 'Surrogate-Key' })
  const miss = await app.inject('/r')
  t.equal(miss.headers['surrogate-key'], undefined)
  t.equal(miss.headers['cache-tag'], 'left-alone', 'not ours any more: passed through')
  await cache.invalidate({ tags: ['fastly-style'] })
  t.equal((await app.inject('/r')).headers['x-cache'], 'MISS')
})

t.test('Surrogate keys: surrogateKeyHeader: false sends the header through and ignores it', async (t) => {
  const cache = new MemoryCache()
  const { app } = await build(t, tagged('x'), cache, { surrogateKeyHeader: false })
  const miss = await app.inject('/r')
  t.equal(miss.headers['cache-tag'], 'x')
  t.equal((await app.inject('/r')).headers['cache-tag'], 'x', 'stored and replayed like any header')
  await cache.invalidate({ tags: ['x'] })
  t.equal((await app.inject('/r')).headers['x-cache'], 'HIT', 'not a tag')
})

t.test('Surrogate keys: the header is stripped from responses that are not stored', async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.header('cache-tag', 'secret-internal-tag')
    reply.code(request.headers['x-fail'] !== undefined ? 500 : 200)
    return 'body'
  }, { mode: 'memory' })
  const error = await app.inject({ url: '/r', headers: { 'x-fail': '1' } })
  t.equal(error.statusCode, 500)
  t.equal(error.headers['cache-tag'], undefined, 'a refused response')
  const bypass = await app.inject({ url: '/r', headers: { authorization: 'Bearer x' } })
  t.equal(bypass.headers['x-cache'], 'BYPASS')
  t.equal(bypass.headers['cache-tag'], undefined, 'a bypassed request')
  const noStore = await app.inject({ url: '/r', headers: { 'cache-control': 'no-store' } })
  t.equal(noStore.headers['cache-tag'], undefined, 'a request no-store')
  const head = await app.inject({ method: 'HEAD', url: '/r' })
  t.equal(head.headers['cache-tag'], undefined, 'a HEAD miss')
})

t.test('surrogateKeyHeader is validated', async (t) => {
  for (const value of [42, '', 'bad header', true]) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(emberCache, { surrogateKeyHeader: value as unknown as string }) }, {
      code: 'FST_EMBER_CACHE_INVALID_OPTION',
      message: /"surrogateKeyHeader": expected a header token or false/
    }, String(value))
  }
})
