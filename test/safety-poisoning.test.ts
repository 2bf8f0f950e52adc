// Cache poisoning (issue 19): the published unkeyed-input attacks, each tried against every
// mode. The handler reflects what a naive handler reflects (host, protocol, parsed query, path,
// method, body, a Vary-named header, Range and conditionals honoured the way an origin does);
// after each attack, a victim's request must be answered exactly as in an app nobody attacked.
// What one client sends never changes what another receives, unless the route varies on it.
import t, { type Test } from 'tap'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { connect } from 'node:net'
import { createRequire } from 'node:module'
import Fastify, { type FastifyInstance, type InjectOptions } from 'fastify'
import emberCache, { MemcachedCache, MemoryCache, RedisCache, type EmberCache, type RouteCacheConfig } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { startMemcached, startRedis } from './helpers/servers'

const BIG = 'x'.repeat(2000)

/** A naive origin: reflects what it reads, honours Range and If-None-Match itself, as origins do. */
async function naiveApp (t: Test, cache: EmberCache | undefined): Promise<FastifyInstance> {
  const app = Fastify({ trustProxy: true })
  t.teardown(() => app.close())
  await app.register(emberCache)
  const config: { cache?: RouteCacheConfig } = cache === undefined ? {} : { cache: { cache, ttl: 60, varyHeaders: ['x-tenant'] } }
  app.get('/page', { config }, async (request, reply) => {
    const body = JSON.stringify({
      link: request.protocol + '://' + request.host + '/next',
      query: request.query,
      method: request.method,
      fat: request.body ?? null,
      tenant: request.headers['x-tenant'] ?? null,
      lang: request.headers['x-lang'] ?? null,
      pad: BIG
    })
    reply.header('vary', 'x-lang').type('application/json')
    reply.header('etag', '"v1"')
    if (request.headers['if-none-match'] === '"v1"') return reply.code(304).send()
    const range = /^bytes=(\d+)-(\d+)$/.exec(String(request.headers.range ?? ''))
    if (range !== null) {
      return reply.code(206).header('content-range', `bytes ${range[1]}-${range[2]}/${body.length}`).send(body.slice(Number(range[1]), Number(range[2]) + 1))
    }
    return body
  })
  const itemConfig: { cache?: RouteCacheConfig } = cache === undefined ? {} : { cache: { cache, ttl: 60, key: 'item:{id}' } }
  app.get('/items/:id', { config: itemConfig }, async (request) => ({ id: (request.params as { id: string }).id, pad: BIG }))
  return app
}

interface Attack {
  name: string
  attacker: InjectOptions
  /** The attacker's request target exactly as sent on the wire (inject would drop a fragment), instead of `attacker`. */
  attackerRaw?: string
  victim: InjectOptions
}

const HOST = { host: 'shop.example.com' }
const page = (extra: Partial<InjectOptions> = {}): InjectOptions => ({ method: 'GET', url: '/page?a=1&b=2', ...extra, headers: { ...HOST, ...extra.headers } })

const ATTACKS: Attack[] = [
  { name: 'X-Forwarded-Host', attacker: page({ headers: { 'x-forwarded-host': 'evil.example' } }), victim: page() },
  { name: 'Forwarded: host=', attacker: page({ headers: { forwarded: 'host=evil.example;proto=https' } }), victim: page() },
  { name: 'X-Forwarded-Proto', attacker: page({ headers: { 'x-forwarded-proto': 'https' } }), victim: page() },
  { name: 'X-Forwarded-Scheme / X-Forwarded-Port', attacker: page({ headers: { 'x-forwarded-scheme': 'nothttps', 'x-forwarded-port': '1337' } }), victim: page() },
  { name: 'X-Original-URL', attacker: page({ headers: { 'x-original-url': '/admin' } }), victim: page() },
  { name: 'X-Rewrite-URL', attacker: page({ headers: { 'x-rewrite-url': '/admin' } }), victim: page() },
  { name: 'X-HTTP-Method-Override', attacker: page({ headers: { 'x-http-method-override': 'DELETE', 'x-method-override': 'POST' } }), victim: page() },
  { name: 'fat GET (a body on a GET)', attacker: page({ payload: JSON.stringify({ evil: true }), headers: { 'content-type': 'application/json' } }), victim: page() },
  { name: 'Range (an origin that answers 206)', attacker: page({ headers: { range: 'bytes=0-10' } }), victim: page() },
  { name: 'If-None-Match (an origin that answers 304)', attacker: page({ headers: { 'if-none-match': '"v1"' } }), victim: page() },
  { name: 'If-Modified-Since', attacker: page({ headers: { 'if-modified-since': new Date().toUTCString() } }), victim: page() },
  { name: 'parameter cloaking with ;', attacker: page({ url: '/page?a=1;b=evil&b=2' }), victim: page() },
  { name: 'duplicate parameters, other order', attacker: page({ url: '/page?b=2&a=1&a=evil' }), victim: page({ url: '/page?a=evil&b=2&a=1' }) },
  { name: 'parameter names that decode alike (%61 is a)', attacker: page({ url: '/page?a=evil&%61=1&b=2' }), victim: page({ url: '/page?%61=1&a=evil&b=2' }) },
  { name: 'a + in a name (a space once decoded)', attacker: page({ url: '/page?a+b=evil&a%20b=1' }), victim: page({ url: '/page?a%20b=1&a+b=evil' }) },
  { name: 'encoded & in a value', attacker: page({ url: '/page?a=1%26b%3Devil' }), victim: page({ url: '/page?a=1&b=evil' }) },
  { name: 'path normalisation: /./ and //', attacker: page({ url: '/./page?a=1&b=2' }), victim: page() },
  { name: 'path case and encoding: /%70age', attacker: page({ url: '/%70age?a=1&b=2' }), victim: page() },
  { name: 'a param that is a glob: /items/*', attacker: { method: 'GET', url: '/items/*', headers: HOST }, victim: { method: 'GET', url: '/items/1', headers: HOST } },
  { name: 'a param with a key separator: /items/1%3Aevil', attacker: { method: 'GET', url: '/items/1%3Aevil', headers: HOST }, victim: { method: 'GET', url: '/items/1', headers: HOST } },
  { name: 'an unkeyed header the response names in Vary (X-Lang)', attacker: page({ headers: { 'x-lang': 'evil' } }), victim: page() },
  { name: 'a varyHeaders header (X-Tenant)', attacker: page({ headers: { 'x-tenant': 'evil' } }), victim: page() },
  { name: 'Accept-Encoding nonsense', attacker: page({ headers: { 'accept-encoding': 'evil, *;q=0' } }), victim: page({ headers: { 'accept-encoding': 'gzip' } }) },
  { name: 'Cache-Control: no-cache from the attacker (forces a refetch, not a new answer)', attacker: page({ headers: { 'cache-control': 'no-cache', 'x-forwarded-host': 'evil.example' } }), victim: page() },
  { name: 'Pragma: no-cache', attacker: page({ headers: { pragma: 'no-cache', 'x-forwarded-host': 'evil.example' } }), victim: page() },
  // Issue 24.
  { name: 'forged refresh headers (the token and origin refreshes once carried)', attacker: page({ headers: { 'x-ember-cache-refresh': 'guess', 'x-ember-cache-origin': 'http://evil.example' } }), victim: page() },
  { name: 'a template value holding the template\'s separator: /items/1%3Aevil', attacker: { method: 'GET', url: '/items/1%3Aevil', headers: HOST }, victim: { method: 'GET', url: '/items/1', headers: HOST } },
  { name: 'a NUL in a keyed param: /items/1%00x', attacker: { method: 'GET', url: '/items/1%00x', headers: HOST }, victim: { method: 'GET', url: '/items/1', headers: HOST } },
  { name: 'a URL key as a template value: /items/GET:%2Fpage', attacker: { method: 'GET', url: '/items/GET:%2Fpage%3Fa=1%26b=2', headers: HOST }, victim: page() },
  { name: 'a fragment in the request target', attacker: page(), attackerRaw: '/page?a=1&b=2#evil', victim: page() },
  { name: 'a fragment spelling a fill lock', attacker: page(), attackerRaw: '/page#fill::origin=http://shop.example.com', victim: page({ url: '/page' }) }
]

/** A GET with the request target exactly as given. */
async function rawGet (app: FastifyInstance, target: string): Promise<void> {
  if (app.server.address() === null) await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  await new Promise<void>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(`GET ${target} HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n`))
    socket.on('data', () => {})
    socket.on('close', () => resolve())
    socket.on('error', reject)
  })
}

/** What a request is answered with, comparably: status, the content (decoded), the headers a client acts on. */
function answerOf (res: { statusCode: number, rawPayload: Buffer, headers: Record<string, unknown> }): unknown {
  const coding = res.headers['content-encoding']
  const body = coding === 'gzip' ? gunzipSync(res.rawPayload) : coding === 'br' ? brotliDecompressSync(res.rawPayload) : res.rawPayload
  return { status: res.statusCode, body: body.toString(), type: res.headers['content-type'], range: res.headers['content-range'] }
}

function attackSuite (t: Test, label: string, make: () => EmberCache): void {
  t.test(`${label}: ${ATTACKS.length} unkeyed-input attacks, then the victim`, async (t) => {
    for (const attack of ATTACKS) {
      const reference = await naiveApp(t, undefined)
      const expected = answerOf(await reference.inject(attack.victim))
      const app = await naiveApp(t, make())
      // The attacker goes first (and twice: once to store, once to be served what it stored).
      for (let i = 0; i < 2; i++) {
        if (attack.attackerRaw === undefined) await app.inject(attack.attacker)
        else await rawGet(app, attack.attackerRaw)
      }
      await new Promise((resolve) => setTimeout(resolve, 10))
      const first = await app.inject(attack.victim)
      const second = await app.inject(attack.victim)
      t.same(answerOf(first), expected, `${attack.name}: the victim gets what it would have got without the attack`)
      t.same(answerOf(second), expected, `${attack.name}: and so does the next one (${String(second.headers['x-cache'])})`)
      await app.close()
      await reference.close()
    }
  })
}

// The same, against the README's caching reverse proxy in front of a naive upstream: one behind
// a proxy, as apps are (trustProxy, and a rewriteUrl that honours X-Original-URL).
const load = createRequire(__filename)
const { buildProxy } = load('../example-app/proxy.js') as { buildProxy: (options: { upstream: string, cache?: EmberCache }) => Promise<FastifyInstance> }
const built = load('fastify-ember-cache') as typeof import('../lib/index')

const PROXY_ATTACKS: Attack[] = [
  { name: 'X-Forwarded-Host through the proxy', attacker: page({ headers: { 'x-forwarded-host': 'evil.example' } }), victim: page() },
  { name: 'X-Forwarded-Proto through the proxy', attacker: page({ headers: { 'x-forwarded-proto': 'javascript' } }), victim: page() },
  { name: 'Forwarded: host= through the proxy', attacker: page({ headers: { forwarded: 'host=evil.example;proto=https' } }), victim: page() },
  { name: 'X-Original-URL through the proxy', attacker: page({ headers: { 'x-original-url': '/admin' } }), victim: page() },
  { name: 'X-Rewrite-URL through the proxy', attacker: page({ headers: { 'x-rewrite-url': '/admin' } }), victim: page() },
  { name: 'X-HTTP-Method-Override through the proxy', attacker: page({ headers: { 'x-http-method-override': 'DELETE' } }), victim: page() },
  { name: 'no-cache with X-Forwarded-Host (a forced refetch) through the proxy', attacker: page({ headers: { 'cache-control': 'no-cache', 'x-forwarded-host': 'evil.example' } }), victim: page() }
]

async function naiveUpstream (t: Test): Promise<string> {
  const upstream = Fastify({ trustProxy: true, rewriteUrl: (request) => String(request.headers['x-original-url'] ?? request.headers['x-rewrite-url'] ?? request.url) })
  t.teardown(() => upstream.close())
  upstream.get('/page', async (request, reply) => {
    reply.header('cache-control', 'max-age=60').type('application/json')
    return JSON.stringify({ link: request.protocol + '://' + request.host + '/next', method: request.headers['x-http-method-override'] ?? request.method, query: request.query })
  })
  upstream.get('/admin', async (_request, reply) => reply.header('cache-control', 'max-age=60').send({ admin: 'secret' }))
  await upstream.listen({ port: 0, host: '127.0.0.1' })
  return 'http://127.0.0.1:' + String((upstream.server.address() as { port: number }).port)
}

function proxySuite (t: Test, label: string, make: () => EmberCache): void {
  t.test(`${label}: ${PROXY_ATTACKS.length} forwarded-header and URL-override attacks through the caching proxy, then the victim`, async (t) => {
    const upstream = await naiveUpstream(t)
    for (const attack of PROXY_ATTACKS) {
      const reference = await buildProxy({ upstream })
      const expected = answerOf(await reference.inject(attack.victim))
      const proxy = await buildProxy({ upstream, cache: make() })
      await proxy.inject(attack.attacker)
      await proxy.inject(attack.attacker)
      await new Promise((resolve) => setTimeout(resolve, 10))
      t.same(answerOf(await proxy.inject(attack.victim)), expected, `${attack.name}: the victim gets what it would have got without the attack`)
      await proxy.close()
      await reference.close()
    }
  })
}

t.test('cache poisoning, on every backend', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())
  attackSuite(t, 'memory', () => new MemoryCache())
  attackSuite(t, 'redis', () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('poison') }))
  attackSuite(t, 'memcached', () => new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('poison') }))
  proxySuite(t, 'memory', () => new built.MemoryCache({ ttl: 'from-response' }))
  proxySuite(t, 'redis', () => new built.RedisCache({ url: redis.url, keyPrefix: freshPrefix('poison'), ttl: 'from-response' }))
  proxySuite(t, 'redis+l1', () => new built.RedisCache({ url: redis.url, keyPrefix: freshPrefix('poison'), ttl: 'from-response', l1: true }))
  proxySuite(t, 'memcached', () => new built.MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('poison'), ttl: 'from-response' }))
})
