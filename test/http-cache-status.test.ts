// Cache-Status (RFC 9211, issue 4) next to the short x-cache header: hit, fwd=uri-miss,
// fwd=request, fwd=bypass, stored, collapsed, ttl, and the key only when debug is on.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { type EmberCachePluginOptions, type RouteCacheConfig } from '../lib/index'
import { countingApp, type Handler, type Scope } from './helpers/apps'
import { useClock } from './helpers/clock'

async function build (t: Scope, handler: Handler = () => 'body', cache: RouteCacheConfig = { mode: 'memory', ttl: 60 }, options: EmberCachePluginOptions = {}): Promise<{ app: FastifyInstance, calls: () => number }> {
  return await countingApp(t, handler, cache, options)
}

t.test('RFC 9211 §2.2/§2.5: a stored miss says fwd=uri-miss; stored; ttl', async (t) => {
  const { app } = await build(t)
  const miss = await app.inject('/r')
  t.equal(miss.headers['cache-status'], 'ember; fwd=uri-miss; stored; ttl=60')
  t.equal(miss.headers['x-cache'], 'MISS')
})

t.test('RFC 9211 §2.1/§2.4: a hit says hit; ttl=<remaining freshness>', async (t) => {
  const clock = useClock(t)
  const { app } = await build(t)
  await app.inject('/r')
  clock.advance(25)
  const hit = await app.inject('/r')
  t.equal(hit.headers['cache-status'], 'ember; hit; ttl=35')
  t.equal(hit.headers['x-cache'], 'HIT')
})

t.test('RFC 9211 §2.2: a response that may not be stored says why in detail', async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.code(404)
    return 'nope'
  })
  const res = await app.inject('/r')
  t.equal(res.headers['cache-status'], 'ember; fwd=uri-miss; detail=status')
  t.equal(res.headers['x-cache'], 'MISS')
})

t.test('RFC 9211 §2.2: a request no-store says fwd=request', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ url: '/r', headers: { 'cache-control': 'no-store' } })
  t.equal(res.headers['cache-status'], 'ember; fwd=request')
  t.equal(res.headers['x-cache'], 'BYPASS')
})

t.test('RFC 9211 §2.2: a request that may not use the cache says fwd=bypass', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ url: '/r', headers: { authorization: 'Basic eDp5' } })
  t.equal(res.headers['cache-status'], 'ember; fwd=bypass; detail=authorization')
  t.equal(res.headers['x-cache'], 'BYPASS')
})

t.test('RFC 9211 §2.1: a stale answer says hit; fwd=stale', async (t) => {
  const clock = useClock(t)
  const { app } = await build(t, undefined, { mode: 'memory', ttl: 10, staleWhileRevalidate: 30 })
  await app.inject('/r')
  clock.advance(15)
  const res = await app.inject('/r')
  t.equal(res.headers['x-cache'], 'STALE')
  t.match(res.headers['cache-status'], /^ember; hit; fwd=stale; ttl=0$/)
})

t.test('RFC 9211 §2.6: requests that waited for a concurrent miss say hit; collapsed', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const { app, calls } = await build(t, async () => {
    await gate
    return 'shared'
  })
  const leader = app.inject('/r')
  await new Promise((resolve) => setImmediate(resolve))
  const followers = [app.inject('/r'), app.inject('/r')]
  await new Promise((resolve) => setImmediate(resolve))
  release()
  const [first, ...rest] = await Promise.all([leader, ...followers])
  t.equal(first.headers['cache-status'], 'ember; fwd=uri-miss; stored; ttl=60')
  for (const res of rest) {
    t.equal(res.body, 'shared')
    t.equal(res.headers['x-cache'], 'HIT')
    t.equal(res.headers['cache-status'], 'ember; hit; collapsed; ttl=60')
  }
  t.equal(calls(), 1)
})

t.test('RFC 9211 §2.7: the key is added only with debug: true, on misses and hits', async (t) => {
  const plain = await build(t)
  t.notMatch((await plain.app.inject('/r?b=2&a=1')).headers['cache-status'], /key=/)
  t.notMatch((await plain.app.inject('/r?b=2&a=1')).headers['cache-status'], /key=/)

  const debug = await build(t, undefined, undefined, { debug: true })
  const miss = await debug.app.inject('/r?b=2&a=1')
  t.equal(miss.headers['cache-status'], 'ember; fwd=uri-miss; stored; ttl=60; key="GET:/r?a=1&b=2"')
  const hit = await debug.app.inject('/r?a=1&b=2')
  t.equal(hit.headers['cache-status'], 'ember; hit; ttl=60; key="GET:/r?a=1&b=2"')
})

t.test('RFC 9211 §2: cacheStatus names the cache; false sends no Cache-Status', async (t) => {
  const named = await build(t, undefined, undefined, { cacheStatus: 'edge-1' })
  t.equal((await named.app.inject('/r')).headers['cache-status'], 'edge-1; fwd=uri-miss; stored; ttl=60')
  const off = await build(t, undefined, undefined, { cacheStatus: false })
  await off.app.inject('/r')
  const hit = await off.app.inject('/r')
  t.equal(hit.headers['cache-status'], undefined)
  t.equal(hit.headers['x-cache'], 'HIT', 'the short header is independent')
})

t.test('x-cache: header renames it; false sends none, Cache-Status stays', async (t) => {
  const renamed = await build(t, undefined, undefined, { header: 'X-Ember' })
  await renamed.app.inject('/r')
  const hit = await renamed.app.inject('/r')
  t.equal(hit.headers['x-ember'], 'HIT')
  t.equal(hit.headers['x-cache'], undefined)
  const off = await build(t, undefined, undefined, { header: false })
  await off.app.inject('/r')
  const quiet = await off.app.inject('/r')
  t.equal(quiet.headers['x-cache'], undefined)
  t.equal(quiet.headers['cache-status'], 'ember; hit; ttl=60')
})

t.test('cacheStatus and header are validated as header tokens', async (t) => {
  for (const options of [{ cacheStatus: 'two words' }, { header: 7 }, { debug: 'yes' }] as unknown as EmberCachePluginOptions[]) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(emberCache, options) }, {
      code: 'FST_EMBER_CACHE_INVALID_OPTION',
      message: new RegExp('"' + Object.keys(options)[0] + '"')
    })
  }
})

t.test('RFC 9211 §2.2: a request no-cache refresh says fwd=request, and stores', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/r')
  const res = await app.inject({ url: '/r', headers: { 'cache-control': 'no-cache' } })
  t.equal(res.headers['x-cache'], 'MISS')
  t.equal(res.headers['cache-status'], 'ember; fwd=request; stored; ttl=60')
  t.equal(calls(), 2)
})
