// Hostile requests cannot poison, stall or exhaust the cache (issue 24): each item reproduced
// as an attacker would, with a few requests and no credentials, on every backend where it
// applies and through the README's caching reverse proxy where it is about the proxy role.
import t, { type Test } from 'tap'
import { createRequire } from 'node:module'
import { gzipSync } from 'node:zlib'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import emberCache, { MemcachedCache, MemoryCache, RedisCache, type EmberCache } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { redisCommand, startMemcached, startRedis } from './helpers/servers'

const load = createRequire(__filename)
const { buildProxy } = load('../example-app/proxy.js') as { buildProxy: (options: { upstream: string, cache?: EmberCache }) => Promise<FastifyInstance> }
// The proxy recipe loads the package as its users do (the build): its caches come from there too.
const built = load('fastify-ember-cache') as typeof import('../lib/index')

type Classes = Pick<typeof import('../lib/index'), 'MemoryCache' | 'RedisCache' | 'MemcachedCache'>

interface Backend {
  label: string
  /** A cache of this backend, from `classes` (the sources by default; the build for the proxy recipe). */
  make: (options?: Record<string, unknown>, classes?: Classes) => EmberCache
}

const sources: Classes = { MemoryCache, RedisCache, MemcachedCache }
const settle = (ms = 15): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return 'http://127.0.0.1:' + String((app.server.address() as { port: number }).port)
}

async function emberApp (t: Test, options: Record<string, unknown> = {}): Promise<FastifyInstance> {
  const app = Fastify(options)
  t.teardown(() => app.close())
  await app.register(emberCache)
  return app
}

function suite (t: Test, backend: Backend): void {
  t.test(`${backend.label}: the proxy forwards what its key covers: forwarding headers restated, URL overrides dropped`, async (t) => {
    // An upstream behind a proxy, as apps are: it trusts forwarding headers and rewrites URLs.
    const upstream = Fastify({
      trustProxy: true,
      rewriteUrl: (request) => String(request.headers['x-original-url'] ?? request.url)
    })
    t.teardown(() => upstream.close())
    upstream.get('/page', async (request, reply) => {
      reply.header('cache-control', 'max-age=60')
      return { link: request.protocol + '://' + request.host + '/next', method: request.headers['x-http-method-override'] ?? request.method }
    })
    upstream.get('/admin', async (_request, reply) => reply.header('cache-control', 'max-age=60').send({ admin: 'secret' }))
    const proxy = await buildProxy({ upstream: await listen(upstream), cache: backend.make({ ttl: 'from-response' }, built) })
    t.teardown(() => proxy.close())
    const victim = { url: '/page', headers: { host: 'shop.example' } }
    const attacks = [
      { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'javascript' },
      { forwarded: 'host=evil.example;proto=https' },
      { 'x-original-url': '/admin' },
      { 'x-http-method-override': 'DELETE' },
      { 'cache-control': 'no-cache', 'x-forwarded-host': 'evil.example' }
    ]
    for (const headers of attacks) {
      await proxy.inject({ url: '/page', headers: { host: 'shop.example', ...headers } })
      await settle()
      const res = await proxy.inject(victim)
      t.same(res.json(), { link: 'http://shop.example/next', method: 'GET' }, `after ${JSON.stringify(headers)}, the victim gets the page the proxy was asked for`)
    }
  })

  t.test(`${backend.label}: Surrogate-Control without freshness leaves private and no-store in force`, async (t) => {
    // An upstream that personalizes from a cookie the proxy forwards (it is the upstream's to declare).
    const upstream = Fastify()
    t.teardown(() => upstream.close())
    let runs = 0
    upstream.get('/account', async (request, reply) => {
      runs++
      const [cc, sc] = String((request.query as { case: string }).case).split('|')
      reply.header('cache-control', cc)
      if (sc !== '') reply.header('surrogate-control', sc)
      return { account: String(request.headers.cookie) }
    })
    const proxy = await buildProxy({ upstream: await listen(upstream), cache: backend.make({ ttl: 'from-response' }, built) })
    t.teardown(() => proxy.close())
    for (const [cc, sc, stored] of [
      ['private, max-age=60', 'content="ESI/1.0"', false],
      ['no-store', 'content="ESI/1.0"', false],
      ['private, max-age=60', 'max-age=60', false],
      ['no-store', 'max-age=60', true]
    ] as const) {
      const url = '/account?case=' + encodeURIComponent(cc + '|' + sc)
      const before = runs
      await proxy.inject({ url, headers: { cookie: 'user=alice' } })
      await settle()
      const bob = await proxy.inject({ url, headers: { cookie: 'user=bob' } })
      if (stored) t.equal(runs, before + 1, `Cache-Control: ${cc} with Surrogate-Control: ${sc}: the surrogate's own freshness stores it`)
      else t.same(bob.json(), { account: 'user=bob' }, `Cache-Control: ${cc} with Surrogate-Control: ${sc}: Bob never gets Alice's account`)
    }
  })

  t.test(`${backend.label}: a background refresh carries no secret, and a forged one is just a request`, async (t) => {
    const app = await emberApp(t)
    const seen: string[][] = []
    let version = 0
    // public: the handler lists the headers it gets (reading them all), and must still be stored.
    app.get('/doc', { config: { cache: { cache: backend.make(), ttl: 1, staleWhileRevalidate: 30, public: true } } }, async (request) => {
      seen.push(Object.keys(request.raw.headers))
      return { version: ++version }
    })
    await app.inject({ url: '/doc', headers: { host: 'a.example' } })
    await settle(1100)
    const stale = await app.inject({ url: '/doc', headers: { host: 'a.example' } })
    t.equal(stale.headers['x-cache'], 'STALE')
    await settle(100)
    t.equal(seen.length, 2, 'the refresh ran')
    t.notOk(seen[1].some((name) => name.startsWith('x-ember-cache')), 'no header of ours reached the handler: ' + seen[1].join(', '))
    const fresh = await app.inject({ url: '/doc', headers: { host: 'a.example' } })
    t.same([fresh.headers['x-cache'], fresh.json()], ['HIT', { version: 2 }], 'the refresh stored under the original request\'s host')
    // A client sending what refreshes once carried: an ordinary request, its own origin kept.
    await app.inject({ url: '/doc', headers: { host: 'b.example', 'x-ember-cache-refresh': 'guess', 'x-ember-cache-origin': 'http://a.example' } })
    await settle()
    t.same((await app.inject({ url: '/doc', headers: { host: 'a.example' } })).json(), { version: 2 }, 'a forged refresh cannot pick the variant it is stored under')
  })

  t.test(`${backend.label}: user text in a key template never reaches another key`, async (t) => {
    const app = await emberApp(t)
    const cache = backend.make()
    app.get('/tasks', { config: { cache: { cache } } }, async () => ({ tasks: 'the real list' }))
    app.get('/page', { config: { cache: { cache, key: '{query.page}' } } }, async (request) => ({ page: (request.query as { page: string }).page, planted: true }))
    app.get('/widgets/:id', { config: { cache: { cache, key: 'widget:{id}' } } }, async (request) => ({ widget: (request.params as { id: string }).id }))
    app.get('/widgets/:id/owner', { config: { cache: { cache, key: 'widget:{id}:owner' } } }, async (request) => ({ owner: 'of ' + (request.params as { id: string }).id }))
    app.get('/items/:id', { config: { cache: { cache, key: 'item:{id}' } } }, async (request) => ({ item: (request.params as { id: string }).id }))
    await app.inject('/page?page=GET:/tasks')
    await app.inject('/page?page=GET:/tasks')
    await settle()
    t.same((await app.inject('/tasks')).json(), { tasks: 'the real list' }, 'a query value cannot overwrite a URL key')
    await app.inject('/widgets/5%3Aowner')
    await settle()
    t.same((await app.inject('/widgets/5/owner')).json(), { owner: 'of 5' }, 'a param with the template\'s separator cannot plant another template\'s key')
    if (backend.label !== 'memcached') {
      await app.inject('/items/1%002')
      await app.inject('/items/1')
      await settle()
      t.equal((await app.inject('/items/1%002')).headers['x-cache'], 'HIT')
      await cache.invalidate({ pattern: 'item:*' })
      t.equal((await app.inject('/items/1%002')).headers['x-cache'], 'MISS', 'a NUL in a param is escaped: a pattern finds its entry')
    }
  })

  t.test(`${backend.label}: a fragment in a request target is served without cache and plants nothing`, async (t) => {
    const app = await emberApp(t)
    let runs = 0
    app.get('/page', { config: { cache: { cache: backend.make(), ttl: 60 } } }, async (request) => ({ url: request.url, run: ++runs }))
    const base = await listen(app)
    // The raw request line an attacker sends: a fragment that spells a fill lock's name.
    const planted = await rawGet(base, '/page#fill::origin=http://127.0.0.1')
    t.match(planted, /cache-status: ember; fwd=bypass; detail=fragment/i)
    const started = Date.now()
    for (let i = 0; i < 3; i++) await fetch(base + '/page?n=' + String(i))
    t.ok(Date.now() - started < 1000, `later misses of the page are not held by anything planted (${Date.now() - started} ms)`)
    const res = await fetch(base + '/page')
    t.notMatch(await res.text(), /#/, 'the fragment\'s answer was not stored')
  })
}

/** A GET with the request target exactly as given (fetch would drop a fragment). */
async function rawGet (base: string, target: string): Promise<string> {
  const { port } = new URL(base)
  const { connect } = await import('node:net')
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`))
    let data = ''
    socket.on('data', (chunk) => { data += chunk.toString() })
    socket.on('end', () => resolve(data))
    socket.on('error', reject)
  })
}

t.test('hostile requests, on every backend', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())
  const backends: Backend[] = [
    { label: 'memory', make: (options = {}, classes = sources) => new classes.MemoryCache(options) },
    { label: 'redis', make: (options = {}, classes = sources) => new classes.RedisCache({ url: redis.url, keyPrefix: freshPrefix('hostile'), ...options }) },
    { label: 'redis+l1', make: (options = {}, classes = sources) => new classes.RedisCache({ url: redis.url, keyPrefix: freshPrefix('hostile'), l1: true, ...options }) },
    { label: 'memcached', make: (options = {}, classes = sources) => new classes.MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('hostile'), ...options }) }
  ]
  for (const backend of backends) suite(t, backend)

  t.test('redis: no request writes a name the cache keeps beside its entries (tag sets, fill locks)', async (t) => {
    const keyPrefix = freshPrefix('names')
    const app = await emberApp(t)
    const cache = new RedisCache({ url: redis.url, keyPrefix })
    app.get('/*', { config: { cache: { cache, ttl: 60, tags: ['all'] } } }, async (request) => ({ url: request.url }))
    for (const url of ['/a%23tag:all', '/x#fill:y', '/%00tag:all', '/p?q=%00fill:']) await app.inject(url)
    await settle()
    const keys = await redisCommand(redis, ['KEYS', keyPrefix + '*']) as string[]
    const internal = keys.filter((key) => key.startsWith(keyPrefix + '\u0000\u0000'))
    t.same(internal, [keyPrefix + '\u0000\u0000tag:all'], 'the only internal name is the tag set the route asked for')
    for (const key of keys.filter((key) => !internal.includes(key))) {
      t.equal(await redisCommand(redis, ['TYPE', key]), 'hash', 'every other key is an entry: ' + JSON.stringify(key))
    }
  })
})

t.test('key templates that could make one key from different values are refused at registration', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['a:{id}', 'a:{id}x', /can make the same key from different values/],
    ['{query.m}:/{query.p}', '', /METHOD:\/path/],
    ['x:{a}-{b}', '', /two placeholders with only "-" between them/],
    ['x:{a}{b}', '', /two placeholders with only nothing between them/]
  ]
  for (const [first, second, message] of cases) {
    const app = Fastify()
    await app.register(emberCache)
    const cache = new MemoryCache()
    const register = (): void => {
      app.get('/one/:id/:a/:b', { config: { cache: { cache, key: first } } }, async () => 'one')
      if (second !== '') app.get('/two/:id', { config: { cache: { cache, key: second } } }, async () => 'two')
    }
    t.throws(register, message, `${first}${second === '' ? '' : ' with ' + second}`)
    await app.close()
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache)
  const cache = new MemoryCache()
  app.get('/w/:id', { config: { cache: { cache, key: 'widget:{id}' } } }, async () => 'w')
  app.get('/w/:id/owner', { config: { cache: { cache, key: 'widget:{id}:owner' } } }, async () => 'o')
  app.get('/also/:id', { config: { cache: { cache, key: 'widget:{id}' } } }, async () => 'same resource, another URL')
  await t.resolves(async () => await app.ready(), 'set apart by a separator, or the same template: fine')
})

t.test('private: true keys per credential, cookie sessions included', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyCookie)
  await app.register(fastifySession, { secret: 'a-session-secret-of-at-least-32-chars!!', saveUninitialized: false, rolling: false, cookie: { secure: false } })
  await app.register(emberCache)
  app.post('/login/:user', async (request) => {
    request.session.set('user', (request.params as { user: string }).user)
    return 'ok'
  })
  app.get('/me', { config: { cache: { mode: 'memory', private: true } } }, async (request) => ({ me: request.session.get('user') ?? null }))
  const cookie = (res: { headers: Record<string, unknown> }): string => String(res.headers['set-cookie']).split(';')[0]
  const alice = cookie(await app.inject({ method: 'POST', url: '/login/alice' }))
  const bob = cookie(await app.inject({ method: 'POST', url: '/login/bob' }))
  await app.inject({ url: '/me', headers: { cookie: alice } })
  await settle()
  t.equal((await app.inject({ url: '/me', headers: { cookie: alice } })).headers['x-cache'], 'HIT')
  t.same((await app.inject({ url: '/me', headers: { cookie: bob } })).json(), { me: 'bob' }, 'Bob, with his own session cookie, gets his own /me')
})

t.test('the query sort decodes each name once: bounded work per request', async (t) => {
  const app = await emberApp(t)
  app.get('/cached', { config: { cache: { mode: 'memory' } } }, async () => 'ok')
  app.get('/plain', async () => 'ok')
  const query = '?' + Array.from({ length: 3200 }, (_, i) => '%3=' + String(i)).join('&')
  const time = async (url: string): Promise<number> => {
    const started = process.hrtime.bigint()
    for (let i = 0; i < 5; i++) await app.inject(url + query + '&n=' + String(i))
    return Number(process.hrtime.bigint() - started) / 5e6
  }
  await time('/cached')
  const cached = await time('/cached')
  const plain = await time('/plain')
  t.ok(cached < 20, `3,200 parameters named %3: ${cached.toFixed(1)} ms per cached request (${plain.toFixed(1)} ms uncached); it was 250`)
})

t.test('a proxy keys the target as sent: query order is the upstream\'s business', async (t) => {
  const upstream = Fastify()
  t.teardown(() => upstream.close())
  upstream.get('/text', async (request, reply) => {
    reply.header('cache-control', 'max-age=60')
    const url = new URL(request.url, 'http://x')
    let text = 'hello'
    for (const [name, value] of url.searchParams) text = name === 'upper' ? text.toUpperCase() : text.replace(/l/g, value)
    return text
  })
  const proxy = await buildProxy({ upstream: await listen(upstream) })
  t.teardown(() => proxy.close())
  t.equal((await proxy.inject('/text?upper=1&replace=x')).body, 'HELLO')
  await settle()
  t.equal((await proxy.inject('/text?replace=x&upper=1')).body, 'HEXXO', 'the other order is another request to the upstream')
})

t.test('upstream codings: no-transform bytes go out as sent; decoded bodies lose the coded validators', async (t) => {
  const body = JSON.stringify({ text: 'x'.repeat(4000) })
  const coded = gzipSync(body)
  const upstream = Fastify()
  t.teardown(() => upstream.close())
  upstream.get('/:mode', async (request, reply) => {
    const noTransform = (request.params as { mode: string }).mode === 'as-sent'
    reply.header('vary', 'accept-encoding').header('cache-control', noTransform ? 'max-age=60, no-transform' : 'max-age=60').type('application/json')
    if (String(request.headers['accept-encoding'] ?? '').includes('gzip')) {
      return reply.header('content-encoding', 'gzip').header('etag', '"v1-gz"').header('content-digest', 'sha-256=:gz:').send(coded)
    }
    return reply.header('etag', '"v1"').header('content-digest', 'sha-256=:id:').send(body)
  })
  const proxy = await buildProxy({ upstream: await listen(upstream) })
  t.teardown(() => proxy.close())
  const gz = { 'accept-encoding': 'gzip' }
  await proxy.inject({ url: '/as-sent', headers: gz })
  await settle()
  const hit = await proxy.inject({ url: '/as-sent', headers: gz })
  t.same([hit.headers['x-cache'], hit.headers['content-encoding'], hit.headers.etag, hit.headers['content-digest']], ['HIT', 'gzip', '"v1-gz"', 'sha-256=:gz:'])
  t.same(hit.rawPayload, coded, 'the upstream\'s bytes, as sent')
  const ranged = await proxy.inject({ url: '/as-sent', headers: { ...gz, range: 'bytes=0-9', 'if-range': '"v1-gz"' } })
  t.same(ranged.rawPayload, coded.subarray(0, 10), 'If-Range with that ETag gets bytes of that representation')
  const identity = await proxy.inject({ url: '/as-sent' })
  t.same([identity.headers['content-encoding'], identity.headers.etag, identity.body], [undefined, '"v1"', body], 'a client that does not accept gzip never gets it')

  await proxy.inject({ url: '/decoded', headers: gz })
  await settle()
  const plain = await proxy.inject({ url: '/decoded', headers: { 'accept-encoding': 'identity' } })
  t.equal(plain.body, body)
  t.not(plain.headers.etag, '"v1-gz"', 'the identity bytes never carry the coded bytes\' strong ETag')
  t.equal(plain.headers['content-digest'], undefined, 'nor their digest')
})
