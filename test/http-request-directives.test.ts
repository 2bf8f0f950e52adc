// Request Cache-Control directives (RFC 9111 §5.2.1, issue 4): honoured by default, ignored with
// respectRequestDirectives: false (plugin or route) so that clients cannot make the origin work.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { type EmberCachePluginOptions, type RouteCacheConfig } from '../lib/index'
import { countingApp, emberApp, type Scope } from './helpers/apps'
import { useClock } from './helpers/clock'

/** One cached GET /r route answering v1, v2, ... so each origin run is visible in the body. */
async function build (t: Scope, cache: RouteCacheConfig = { mode: 'memory', ttl: 60 }, options: EmberCachePluginOptions = {}): Promise<{ app: FastifyInstance, calls: () => number }> {
  return await countingApp(t, (_request, _reply, run) => 'v' + String(run), cache, options)
}

const cc = (value: string): { url: string, headers: Record<string, string> } => ({ url: '/r', headers: { 'cache-control': value } })

t.test('RFC 9111 §5.2.1.4: request no-cache goes to the origin and refreshes the stored entry', async (t) => {
  const { app, calls } = await build(t)
  t.equal((await app.inject('/r')).body, 'v1')
  const forced = await app.inject(cc('no-cache'))
  t.equal(forced.body, 'v2', 'the fresh entry was not used')
  t.equal(forced.headers['x-cache'], 'MISS')
  t.match(forced.headers['cache-status'], /stored/)
  const after = await app.inject('/r')
  t.equal(after.headers['x-cache'], 'HIT')
  t.equal(after.body, 'v2', 'the entry was replaced')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §5.2: request no-cache is found case-insensitively inside a directive list', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/r')
  const forced = await app.inject(cc('max-stale=100, NO-CACHE'))
  t.equal(forced.body, 'v2', 'directive names are case-insensitive')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §5.2.1.5: request no-store does not use a stored entry', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/r')
  const res = await app.inject(cc('no-store'))
  t.equal(res.body, 'v2')
  t.equal(res.headers['x-cache'], 'BYPASS')
  t.equal(res.headers['cache-status'], 'ember; fwd=request')
  t.equal((await app.inject('/r')).body, 'v1', 'the stored entry is untouched')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §5.2.1.5: request no-store does not store the response', async (t) => {
  const { app, calls } = await build(t)
  const res = await app.inject(cc('no-store'))
  t.equal(res.body, 'v1')
  t.equal(res.headers['x-cache'], 'BYPASS')
  const next = await app.inject('/r')
  t.equal(next.headers['x-cache'], 'MISS', 'nothing was stored')
  t.equal(next.body, 'v2')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §5.2.1.1: request max-age=N treats an older entry as a miss', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t)
  await app.inject('/r')
  clock.advance(10)
  const tooOld = await app.inject(cc('max-age=5'))
  t.equal(tooOld.headers['x-cache'], 'MISS')
  t.equal(tooOld.body, 'v2')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §5.2.1.1: request max-age=N accepts an entry younger than N', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t)
  await app.inject('/r')
  clock.advance(10)
  const young = await app.inject(cc('max-age=30'))
  t.equal(young.headers['x-cache'], 'HIT')
  t.equal(young.body, 'v1')
  t.equal(young.headers.age, '10')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §5.2.1.1: request max-age=0 always reaches the origin', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t)
  await app.inject('/r')
  clock.advance(1)
  t.equal((await app.inject(cc('max-age=0'))).body, 'v2')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §1.2.2: a request max-age that is not delta-seconds is ignored', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t)
  await app.inject('/r')
  clock.advance(10)
  t.equal((await app.inject(cc('max-age=abc'))).headers['x-cache'], 'HIT')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §5.2.1.2: request max-stale=N accepts an entry stale by up to N seconds', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, { mode: 'memory', ttl: 10 })
  await app.inject('/r')
  clock.advance(15)
  const stale = await app.inject(cc('max-stale=10'))
  t.equal(stale.headers['x-cache'], 'STALE')
  t.equal(stale.body, 'v1')
  t.equal(stale.headers.age, '15')
  t.match(stale.headers['cache-status'], /^ember; hit; fwd=stale/)
  t.equal(calls(), 1)
})

t.test('RFC 9111 §5.2.1.2: request max-stale=N refuses an entry stale by more than N seconds', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, { mode: 'memory', ttl: 10 })
  await app.inject('/r')
  clock.advance(15)
  const res = await app.inject(cc('max-stale=2'))
  t.equal(res.headers['x-cache'], 'MISS')
  t.equal(res.body, 'v2')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §5.2.1.2: request max-stale without a value accepts any staleness', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, { mode: 'memory', ttl: 10 })
  await app.inject('/r')
  clock.advance(5000)
  const res = await app.inject(cc('max-stale'))
  t.equal(res.headers['x-cache'], 'STALE')
  t.equal(res.body, 'v1')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §5.2.1.7: only-if-cached with nothing stored answers 504 without running the handler', async (t) => {
  const { app, calls } = await build(t)
  const res = await app.inject(cc('only-if-cached'))
  t.equal(res.statusCode, 504)
  t.equal(res.headers['x-cache'], 'MISS')
  t.match(res.headers['cache-status'], /fwd=miss/)
  t.equal(calls(), 0)
})

t.test('RFC 9111 §5.2.1.7: only-if-cached with a fresh entry answers from the cache', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/r')
  const res = await app.inject(cc('only-if-cached'))
  t.equal(res.statusCode, 200)
  t.equal(res.body, 'v1')
  t.equal(res.headers['x-cache'], 'HIT')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §5.2.1.7: only-if-cached with only an expired entry answers 504', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, { mode: 'memory', ttl: 10 })
  await app.inject('/r')
  clock.advance(11)
  const res = await app.inject(cc('only-if-cached'))
  t.equal(res.statusCode, 504)
  t.equal(calls(), 1)
})

t.test('RFC 9111 §5.2.1: respectRequestDirectives: false (plugin) ignores every request directive', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, { mode: 'memory', ttl: 10 }, { respectRequestDirectives: false })
  await app.inject('/r')
  for (const directive of ['no-cache', 'no-store', 'max-age=0']) {
    const res = await app.inject(cc(directive))
    t.equal(res.headers['x-cache'], 'HIT', directive + ' is ignored')
    t.equal(res.body, 'v1')
  }
  clock.advance(11)
  const expired = await app.inject(cc('max-stale'))
  t.equal(expired.headers['x-cache'], 'MISS', 'max-stale cannot extend freshness either')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §5.2.1.7: respectRequestDirectives: false ignores only-if-cached (the origin answers)', async (t) => {
  const { app, calls } = await build(t, undefined, { respectRequestDirectives: false })
  const res = await app.inject(cc('only-if-cached'))
  t.equal(res.statusCode, 200)
  t.equal(res.body, 'v1')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §5.2.1: respectRequestDirectives: false on a route overrides the plugin default', async (t) => {
  const app = await emberApp(t)
  let strict = 0
  let lenient = 0
  app.get('/strict', { config: { cache: { mode: 'memory', respectRequestDirectives: false } } }, async () => 's' + String(++strict))
  app.get('/lenient', { config: { cache: { mode: 'memory' } } }, async () => 'l' + String(++lenient))
  await app.inject('/strict')
  await app.inject('/lenient')
  const a = await app.inject({ url: '/strict', headers: { 'cache-control': 'no-cache' } })
  const b = await app.inject({ url: '/lenient', headers: { 'cache-control': 'no-cache' } })
  t.equal(a.headers['x-cache'], 'HIT')
  t.equal(a.body, 's1')
  t.equal(b.headers['x-cache'], 'MISS')
  t.equal(b.body, 'l2')
  t.equal(strict, 1)
  t.equal(lenient, 2)
})

t.test('RFC 9111 §5.2.1: respectRequestDirectives: true on a route overrides a plugin false', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory', respectRequestDirectives: true }, { respectRequestDirectives: false })
  await app.inject('/r')
  const res = await app.inject(cc('no-store'))
  t.equal(res.headers['x-cache'], 'BYPASS')
  t.equal(res.body, 'v2')
  t.equal(calls(), 2)
})

t.test('respectRequestDirectives is validated at plugin and route level', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(emberCache, { respectRequestDirectives: 'yes' as unknown as boolean }) }, {
    code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /respectRequestDirectives/
  })
  const routeApp = await emberApp(t)
  await t.rejects(async () => {
    routeApp.get('/r', { config: { cache: { mode: 'memory', respectRequestDirectives: 1 as unknown as boolean } } }, async () => 'x')
    await routeApp.ready()
  }, { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /GET \/r config\.cache\.respectRequestDirectives/ })
})

t.test('RFC 9111 §5.2.1.1: an entry too old for request max-age is not served stale either (regression)', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, { mode: 'memory', ttl: 60, staleWhileRevalidate: 30 })
  await app.inject('/r')
  clock.advance(10)
  const res = await app.inject(cc('max-age=5'))
  t.equal(res.headers['x-cache'], 'MISS', 'was answered STALE from a still-fresh entry')
  t.equal(res.body, 'v2')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §5.2.1.3: request min-fresh=N refuses an entry fresh for less than N more seconds', async (t) => {
  const clock = useClock(t)
  const { app, calls } = await build(t, { mode: 'memory', ttl: 30 })
  await app.inject('/r')
  clock.advance(20)
  const enough = await app.inject(cc('min-fresh=5'))
  t.equal(enough.headers['x-cache'], 'HIT', '10 s left >= 5')
  const notEnough = await app.inject(cc('min-fresh=15'))
  t.equal(notEnough.headers['x-cache'], 'MISS', '10 s left < 15')
  t.equal(notEnough.body, 'v2')
  t.equal(calls(), 2)
})
