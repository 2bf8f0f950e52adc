// Freshness (issue 4): the Cache-Control a cached route sends, Age on hits, the handler's own
// Cache-Control, `ttl: 'from-response'`, and the per-cache body size limit.
import t from 'tap'
import { MemoryCache, StaticCache, type RouteCacheConfig } from '../lib/index'
import { countingApp as build, emberApp } from './helpers/apps'
import { useClock } from './helpers/clock'

t.test('RFC 9111 §3.5: a cached route sends Cache-Control: max-age=<ttl>, never public by default', async (t) => {
  const { app } = await build(t, () => 'body', { mode: 'memory', ttl: 30 })
  const miss = await app.inject('/r')
  t.equal(miss.headers['x-cache'], 'MISS')
  t.equal(miss.headers['cache-control'], 'max-age=30', 'public would let shared caches store answers to credentialed requests')
  t.equal(miss.headers.age, undefined, 'no Age on a response fresh from the origin')
})

t.test('RFC 9111 §4.2.3: a hit keeps the entry\'s max-age and sends Age, so max-age - Age is the freshness left', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, () => 'body', { mode: 'memory', ttl: 30 })
  await app.inject('/r')
  clock.advance(12)
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers['cache-control'], 'max-age=30', 'not 18: a cache in front subtracts Age itself')
  t.equal(hit.headers.age, '12')
  t.match(hit.headers['cache-status'], /; ttl=18$/, 'Cache-Status ttl is what is left (RFC 9211 §2.4)')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §3.5: public: true sends public (for routes that want CDN storage)', async (t) => {
  const { app } = await build(t, () => 'body', { mode: 'memory', ttl: 30, public: true })
  t.equal((await app.inject('/r')).headers['cache-control'], 'public, max-age=30')
  t.equal((await app.inject('/r')).headers['cache-control'], 'public, max-age=30')
})

t.test('RFC 9111 §5.2.2.7: private: true sends Cache-Control: private, max-age', async (t) => {
  const { app, calls } = await build(t, () => 'body', { mode: 'memory', ttl: 30, private: true })
  const miss = await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(miss.headers['cache-control'], 'private, max-age=30')
  t.equal(hit.headers['cache-control'], 'private, max-age=30')
  t.equal(hit.headers['x-cache'], 'HIT', 'the server still stores it; private is for downstream caches')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §5.2.2.4: ttl 0 (never expires here) sends no-cache so clients always revalidate', async (t) => {
  for (const cache of [new StaticCache(), { mode: 'memory', ttl: 0 }] as RouteCacheConfig[]) {
    const { app, calls } = await build(t, () => 'body', cache)
    const miss = await app.inject('/r')
    const hit = await app.inject('/r')
    t.equal(miss.headers['cache-control'], 'no-cache')
    t.equal(hit.headers['cache-control'], 'no-cache')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.equal(calls(), 1)
  }
})

t.test("RFC 9111 §5.2.2: the handler's own Cache-Control wins, on the miss and on hits", async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('cache-control', 'public, max-age=5, stale-while-revalidate=10')
    return 'body'
  }, { mode: 'memory', ttl: 60 })
  const miss = await app.inject('/r')
  clock.advance(20)
  const hit = await app.inject('/r')
  t.equal(miss.headers['cache-control'], 'public, max-age=5, stale-while-revalidate=10')
  t.equal(hit.headers['x-cache'], 'HIT', 'the route ttl still decides how long the server keeps it')
  t.equal(hit.headers['cache-control'], 'public, max-age=5, stale-while-revalidate=10')
  t.equal(hit.headers.age, '20', 'Age tells the client how old the replayed header is')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §5.1: Age is 0 on the first hit and grows with the entry', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, () => 'body', { mode: 'memory', ttl: 100 })
  await app.inject('/r')
  const first = await app.inject('/r')
  t.equal(first.headers.age, '0')
  clock.advance(7)
  const later = await app.inject('/r')
  t.equal(later.headers.age, '7')
  clock.advance(30)
  const latest = await app.inject('/r')
  t.equal(latest.headers.age, '37')
  t.equal(latest.headers['cache-control'], 'max-age=100', 'the lifetime; Age says how much of it is gone')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §4.2: an entry past its ttl is not served; the origin answers again', async (t) => {
  const clock = useClock(t)
  let n = 0
  const { app, calls } = await build(t, () => 'v' + String(++n), { mode: 'memory', ttl: 10 })
  t.equal((await app.inject('/r')).body, 'v1')
  clock.advance(11)
  const expired = await app.inject('/r')
  t.equal(expired.headers['x-cache'], 'MISS')
  t.equal(expired.body, 'v2')
  t.equal(calls(), 2)
})

t.test("RFC 9111 §5.2.2.10: ttl 'from-response' takes the TTL from s-maxage over max-age", async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('cache-control', 'public, max-age=5, s-maxage=20')
    return 'body'
  // No early refresh: one drawn near expiry (XFetch) would store a newer entry and move the boundary.
  }, { mode: 'memory', ttl: 'from-response', earlyRefresh: false })
  const miss = await app.inject('/r')
  t.match(miss.headers['cache-status'], /stored; ttl=20/)
  clock.advance(15)
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT', 'still fresh at 15 s: s-maxage, not max-age')
  t.match(hit.headers['cache-status'], /hit; ttl=5/)
  clock.advance(6)
  t.equal((await app.inject('/r')).headers['x-cache'], 'MISS', 'expired after 20 s')
  t.equal(calls(), 2)
})

t.test("RFC 9111 §5.2.2.1: ttl 'from-response' uses max-age when there is no s-maxage", async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('cache-control', 'max-age=8')
    return 'body'
  // No early refresh: one drawn near expiry (XFetch) would store a newer entry and move the boundary.
  }, { mode: 'memory', ttl: 'from-response', earlyRefresh: false })
  const miss = await app.inject('/r')
  t.match(miss.headers['cache-status'], /stored; ttl=8/)
  clock.advance(7)
  t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
  clock.advance(2)
  t.equal((await app.inject('/r')).headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})

t.test("RFC 9111 §4.2.1: ttl 'from-response' gives no freshness the response does not give (no fallback ttl)", async (t) => {
  const plain = await build(t, () => 'body', { cache: new MemoryCache({ ttl: 42 }), ttl: 'from-response' }, { defaultTtl: 17 })
  const miss = await plain.app.inject('/r')
  t.match(miss.headers['cache-status'], /detail=no-freshness/, 'no freshness and no validators: nothing worth storing')
  t.equal(miss.headers['cache-control'], undefined, 'and the response is passed on unedited')
  t.equal((await plain.app.inject('/r')).headers['x-cache'], 'MISS')
  const validated = await build(t, (request, reply) => {
    if (request.headers['if-none-match'] === '"v1"') return reply.code(304).send()
    reply.header('etag', '"v1"')
    return 'body'
  // No early refresh: one drawn near expiry (XFetch) would store a newer entry and move the boundary.
  }, { mode: 'memory', ttl: 'from-response', earlyRefresh: false })
  t.match((await validated.app.inject('/r')).headers['cache-status'], /stored/, 'with a validator it is kept, to be revalidated')
  const again = await validated.app.inject('/r')
  t.equal(again.headers['x-cache'], 'REVALIDATED', 'the next request asks the handler, which answers 304')
  t.equal(again.statusCode, 200)
  t.equal(again.body, 'body', 'the client gets the stored body')
  t.equal(validated.calls(), 2)
})

t.test("RFC 9111 §4.2: ttl 'from-response' stores a max-age=0 response stale: never served as fresh", async (t) => {
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('cache-control', 'max-age=0')
    return 'body'
  // No early refresh: one drawn near expiry (XFetch) would store a newer entry and move the boundary.
  }, { mode: 'memory', ttl: 'from-response', earlyRefresh: false })
  const first = await app.inject('/r')
  t.equal(first.headers['cache-control'], 'max-age=0')
  const second = await app.inject('/r')
  t.equal(second.headers['x-cache'], 'MISS')
  const stale = await app.inject({ url: '/r', headers: { 'cache-control': 'max-stale=60' } })
  t.equal(stale.headers['x-cache'], 'STALE', 'a client that accepts stale answers can have it (RFC 9111 §5.2.1.2)')
  t.equal(calls(), 2)
})

t.test("RFC 9111 §5.2.2.10: without 'from-response', s-maxage does not change the route ttl", async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.header('cache-control', 's-maxage=3')
    return 'body'
  }, { mode: 'memory', ttl: 50 })
  t.match((await app.inject('/r')).headers['cache-status'], /stored; ttl=50/)
})

t.test("ttl 'from-response' is validated: other strings and static caches are rejected", async (t) => {
  const cases: Array<[RouteCacheConfig, RegExp]> = [
    [{ mode: 'memory', ttl: 'from-headers' as unknown as number }, /config\.cache\.ttl.*'from-response'/],
    [{ mode: 'memory', ttl: -1 }, /config\.cache\.ttl/],
    [{ mode: 'static', ttl: 'from-response' }, /config\.cache\.ttl.*static/]
  ]
  for (const [cache, message] of cases) {
    const app = await emberApp(t)
    await t.rejects(async () => {
      app.get('/r', { config: { cache } }, async () => 'x')
      await app.ready()
    }, { code: 'FST_EMBER_CACHE_INVALID_OPTION', message })
  }
})

t.test('maxEntryBytes: a larger response is served in full but not stored', async (t) => {
  const big = 'x'.repeat(101)
  const { app, calls } = await build(t, () => big, new MemoryCache({ maxEntryBytes: 100 }))
  const first = await app.inject('/r')
  t.equal(first.statusCode, 200)
  t.equal(first.body, big)
  t.equal(first.headers['x-cache'], 'MISS')
  t.match(first.headers['cache-status'], /fwd=uri-miss; detail=too-large/)
  const second = await app.inject('/r')
  t.equal(second.headers['x-cache'], 'MISS')
  t.equal(second.body, big)
  t.equal(calls(), 2)
})

t.test('maxEntryBytes: a response of exactly the limit is stored', async (t) => {
  const exact = 'y'.repeat(100)
  const { app, calls } = await build(t, () => exact, new MemoryCache({ maxEntryBytes: 100 }))
  await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.body, exact)
  t.equal(calls(), 1)
})

t.test('maxEntryBytes is validated on the cache object', async (t) => {
  t.throws(() => new MemoryCache({ maxEntryBytes: 0 }), { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /maxEntryBytes/ })
  t.throws(() => new MemoryCache({ maxEntryBytes: 1.5 }), { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /maxEntryBytes/ })
})
