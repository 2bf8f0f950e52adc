// Bad input and abuse (issue 19): hostile URLs and header values on every backend, and user
// text that tries to widen a pattern invalidation. Nothing crashes, nothing is shared that
// should not be, keys stay within backend limits (test/safety-flood.test.ts: the floods).
import t, { type Test } from 'tap'
import { connect } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { MemcachedCache, MemoryCache, RedisCache, type EmberCache } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { logCapture } from './helpers/fault-kit'
import { startMemcached, startRedis, type MemcachedServer } from './helpers/servers'

/** Stores to a remote backend finish after the response: give them a moment, as a next client would. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 15))

const KB8 = 'q'.repeat(8 * 1024)
const MANY = Array.from({ length: 2000 }, (_, i) => `p${i}=${i}`).join('&')
const DUPLICATES = Array.from({ length: 300 }, (_, i) => `a=${i % 7}`).join('&')

/** URLs a client may send; each must be answered as its own request, and hit the second time. */
const HOSTILE_URLS = [
  '/echo?q=*', '/echo?q=?', '/echo?q=%3F', '/echo?q=[a-z]', '/echo?q=%5Ba-z%5D', '/echo?q={}', '/echo?q=%7B%7D',
  '/echo?q=%00', '/echo?%00=1', '/echo?q=%0d%0aSet-Cookie:%20x=1', '/echo?q=%E2%9C%93', '/echo?q=%F0%9F%92%A5', '/echo?q=%FF%FE',
  '/echo?q=\\', '/echo?q=%5C*', '/echo?q=a b', '/echo?*=1', '/echo?[=1', '/echo?q=1&q=*',
  '/echo?q=' + KB8, '/echo?' + MANY, '/echo?' + DUPLICATES, '/echo/%2A', '/echo/%5B1%5D', '/echo/%E2%9C%93', '/echo/x%00y'
]

/** Header values a route keyed on x-tenant may receive. */
const HOSTILE_TENANTS: Array<string | string[]> = ['*', 't[1]', 'x'.repeat(8000), ['a', 'b'], ['a, b'], 'a\tb', '\u00e9']

async function echoApp (t: Test, cache: EmberCache, log: ReturnType<typeof logCapture>): Promise<{ app: FastifyInstance, runs: () => number }> {
  const app = Fastify({ logger: { level: 'warn', stream: log.stream }, maxParamLength: 500 })
  t.teardown(() => app.close())
  await app.register(emberCache)
  let runs = 0
  const handler = async (request: { url: string, headers: Record<string, unknown> }): Promise<unknown> => ({ run: ++runs, url: request.url, tenant: request.headers['x-tenant'] ?? null })
  app.get('/echo', { config: { cache: { cache, ttl: 60 } } }, handler)
  app.get('/echo/:id', { config: { cache: { cache, ttl: 60 } } }, handler)
  app.get('/tenant', { config: { cache: { cache, ttl: 60, varyHeaders: ['x-tenant'] } } }, handler)
  await app.ready()
  return { app, runs: () => runs }
}

/** Every key memcached holds (lru_crawler metadump: lines end in a bare LF, the dump in END CRLF), URL-decoded as it prints them. */
async function memcachedKeys (memcached: MemcachedServer): Promise<string[]> {
  const [host, port] = memcached.servers.split(',')[0].split(':')
  const dump = await new Promise<string>((resolve, reject) => {
    let text = ''
    const socket = connect(Number(port), host, () => socket.write('lru_crawler metadump all\r\n'))
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('metadump: no END within 5 s')) }, 5_000)
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1')
      if (text.endsWith('END\r\n') || text.startsWith('ERROR')) { clearTimeout(timer); socket.destroy(); resolve(text) }
    })
    socket.on('error', reject)
  })
  return [...dump.matchAll(/^key=(\S+)/gm)].map((match) => decodeURIComponent(match[1]))
}

function hostileSuite (t: Test, label: string, make: () => EmberCache, memcached?: MemcachedServer): void {
  t.test(`${label}: hostile URLs and header values are answered, each as its own request`, async (t) => {
    const log = logCapture()
    const { app, runs } = await echoApp(t, make(), log)
    const answers = new Map<string, string>()
    for (const url of HOSTILE_URLS) {
      const first = await app.inject(url)
      await settle()
      const second = await app.inject(url)
      t.equal(first.statusCode, 200, `${url.slice(0, 40)}: answered`)
      t.equal(second.headers['x-cache'], 'HIT', `${url.slice(0, 40)}: and stored`)
      t.equal(second.json().url, first.json().url, `${url.slice(0, 40)}: the hit is its own answer`)
      answers.set(url, first.json().url)
    }
    t.equal(runs(), HOSTILE_URLS.length, 'one handler run per distinct URL: no two shared an entry')
    for (const tenant of HOSTILE_TENANTS) {
      const first = await app.inject({ url: '/tenant', headers: { 'x-tenant': tenant } })
      await settle()
      const second = await app.inject({ url: '/tenant', headers: { 'x-tenant': tenant } })
      t.equal(first.statusCode, 200)
      t.equal(second.headers['x-cache'], 'HIT', `x-tenant ${JSON.stringify(tenant).slice(0, 30)}: stored`)
      t.same(second.json().tenant, first.json().tenant)
    }
    t.equal(runs(), HOSTILE_URLS.length + HOSTILE_TENANTS.length - 1, 'one run per tenant value (["a", "b"] and ["a, b"] are one header value)')
    t.same(log.lines.filter((line) => line.level >= 40).map((line) => line.msg), [], 'no warning: the backend took every key')
    if (memcached !== undefined) {
      const keys = await memcachedKeys(memcached)
      t.ok(keys.length >= HOSTILE_URLS.length, `memcached holds the entries (${keys.length} keys)`)
      t.same(keys.filter((key) => Buffer.byteLength(key) > 250 || [...key].some((c) => c.charCodeAt(0) <= 0x20 || c.charCodeAt(0) === 0x7f)), [], 'every memcached key is at most 250 bytes, without spaces or control characters')
    }
  })
}

t.test('hostile URLs and header values, on every backend', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())
  hostileSuite(t, 'memory', () => new MemoryCache())
  hostileSuite(t, 'redis', () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('abuse') }))
  hostileSuite(t, 'redis + l1', () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('abuse'), l1: true }))
  hostileSuite(t, 'memcached', () => new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('abuse') }), memcached)
})

t.test('user text in a pattern target never widens it: glob characters in params and query are literal', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  for (const [label, make] of [['memory', () => new MemoryCache()], ['redis', () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('widen') })]] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(emberCache)
    const cache = make()
    app.get('/users/:userId/widgets', { config: { cache } }, async (request) => ({ url: request.url }))
    app.post('/users/:userId/touch', { config: { cache: { cache, invalidate: ['GET:/users/{userId}/widgets*', 'GET:/teams/{query.team}*'] } } }, async () => ({ ok: true }))
    app.get('/teams/:team', { config: { cache } }, async (request) => ({ url: request.url }))
    await app.ready()
    const kept = ['/users/1/widgets', '/users/2/widgets?page=3', '/teams/red', '/teams/blue']
    for (const url of kept) await app.inject(url)
    for (const hostile of ['*', '%2A', '%3F', '[12]', '%5B12%5D', '%5C', '1*', '%5B%5E9%5D']) {
      const res = await app.inject({ method: 'POST', url: `/users/${hostile}/touch?team=${hostile}` })
      t.equal(res.statusCode, 200)
      for (const url of kept) t.equal((await app.inject(url)).headers['x-cache'], 'HIT', `${label}: a write for ${decodeURIComponent(hostile)} kept ${url}`)
    }
    // The literal target still works: user "*" has its own entry, and only it goes.
    await app.inject('/users/%2A/widgets')
    await app.inject({ method: 'POST', url: '/users/%2A/touch' })
    t.equal((await app.inject('/users/%2A/widgets')).headers['x-cache'], 'MISS', `${label}: the literal user * was invalidated`)
    t.equal((await app.inject('/users/1/widgets')).headers['x-cache'], 'HIT')
  }
})
