// A response is shared only when everything that shaped it is in its key (issue 23): what a
// miss's handler reads of its caller (headers, cookies, the session, the user, the address) is
// observed, and decides whether its answer is stored, and for whom. Driven with the real
// plugins apps run (@fastify/session, @fastify/secure-session, @fastify/cookie, @fastify/jwt),
// on every backend; each test asserts that no caller ever gets an answer made for another.
import t, { type Test } from 'tap'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import fastifySecureSession from '@fastify/secure-session'
import fastifyJwt from '@fastify/jwt'
import emberCache, { MemcachedCache, MemoryCache, RedisCache, type EmberCache, type RouteCacheOptions } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { startMemcached, startRedis } from './helpers/servers'

declare module 'fastify' {
  interface Session { user?: string }
}

interface Backend { label: string, make: () => EmberCache }

/** Log lines of an app, parsed. */
function logSink (): { stream: Writable, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line))
      done()
    }
  })
  return { stream, lines }
}

async function appWith (t: Test, options: FastifyServerOptions = {}): Promise<{ app: FastifyInstance, logs: Array<Record<string, unknown>> }> {
  const sink = logSink()
  const app = Fastify({ logger: { level: 'info', stream: sink.stream }, ...options })
  t.teardown(() => app.close())
  return { app, logs: sink.lines }
}

const SECRET = 'a-session-secret-of-at-least-32-chars!!'
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 15))
const cookieOf = (res: { headers: Record<string, unknown> }): string => String(res.headers['set-cookie']).split(';')[0]
const warnings = (logs: Array<Record<string, unknown>>, text: string): number => logs.filter((line) => line.level === 40 && String(line.msg).includes(text)).length

function suite (t: Test, backend: Backend): void {
  const route = (options: Omit<RouteCacheOptions, 'cache' | 'mode'> = {}): { config: { cache: RouteCacheOptions } } =>
    ({ config: { cache: { cache: backend.make(), ttl: 60, ...options } } })

  t.test(`${backend.label}: @fastify/session, rolling false: nobody gets another's dashboard`, async (t) => {
    const { app, logs } = await appWith(t)
    await app.register(fastifyCookie)
    await app.register(fastifySession, { secret: SECRET, rolling: false, saveUninitialized: false, cookie: { secure: false } })
    await app.register(emberCache)
    let runs = 0
    app.post('/login/:user', async (request) => {
      request.session.user = (request.params as { user: string }).user
      return { ok: true }
    })
    app.get('/dashboard', route(), async (request) => {
      runs++
      return { hello: request.session.user ?? 'guest' }
    })
    const alice = cookieOf(await app.inject({ method: 'POST', url: '/login/alice' }))
    const bob = cookieOf(await app.inject({ method: 'POST', url: '/login/bob' }))
    const first = await app.inject({ url: '/dashboard', headers: { cookie: alice } })
    t.same(first.json(), { hello: 'alice' })
    t.match(first.headers['cache-status'], /detail=read-session/, 'Cache-Status says why it was not stored')
    await settle()
    for (const [who, cookie, expected] of [['bob', bob, 'bob'], ['guest', undefined, 'guest'], ['alice again', alice, 'alice'], ['bob again', bob, 'bob']] as const) {
      const res = await app.inject({ url: '/dashboard', headers: cookie === undefined ? {} : { cookie } })
      t.same(res.json(), { hello: expected }, `${who} gets their own dashboard`)
      t.equal(res.headers['x-cache'], 'MISS', `${who}: never a hit made for someone else`)
    }
    t.equal(runs, 5, 'every request ran the handler')
    t.equal(warnings(logs, 'GET /dashboard read request.session during a miss; its answer was not stored'), 1, 'one warning for the route and input')
    const stats = app.emberCache.stats().routes.find((r) => r.route === 'GET /dashboard')
    t.equal(stats?.refusals['read-session'], 5, 'stats count each refusal by its reason')
  })

  t.test(`${backend.label}: @fastify/session, rolling true: still safe (and not by accident)`, async (t) => {
    const { app } = await appWith(t)
    await app.register(fastifyCookie)
    await app.register(fastifySession, { secret: SECRET, cookie: { secure: false } })
    await app.register(emberCache)
    app.post('/login/:user', async (request) => {
      request.session.user = (request.params as { user: string }).user
      return { ok: true }
    })
    app.get('/dashboard', route(), async (request) => ({ hello: request.session.user ?? 'guest' }))
    const alice = cookieOf(await app.inject({ method: 'POST', url: '/login/alice' }))
    const bob = cookieOf(await app.inject({ method: 'POST', url: '/login/bob' }))
    t.same((await app.inject({ url: '/dashboard', headers: { cookie: alice } })).json(), { hello: 'alice' })
    await settle()
    t.same((await app.inject({ url: '/dashboard', headers: { cookie: bob } })).json(), { hello: 'bob' })
    t.same((await app.inject({ url: '/dashboard' })).json(), { hello: 'guest' })
  })

  t.test(`${backend.label}: @fastify/secure-session: Alice's inbox never reaches Bob`, async (t) => {
    const { app } = await appWith(t)
    await app.register(fastifySecureSession, { key: Buffer.alloc(32, 7), cookie: { path: '/' } })
    await app.register(emberCache)
    app.post('/login/:user', async (request) => {
      request.session.set('user', (request.params as { user: string }).user)
      return { ok: true }
    })
    app.get('/inbox', route(), async (request) => ({ inbox: request.session.get('user') ?? null }))
    const alice = cookieOf(await app.inject({ method: 'POST', url: '/login/alice' }))
    const bob = cookieOf(await app.inject({ method: 'POST', url: '/login/bob' }))
    t.same((await app.inject({ url: '/inbox', headers: { cookie: alice } })).json(), { inbox: 'alice' })
    await settle()
    const forBob = await app.inject({ url: '/inbox', headers: { cookie: bob } })
    t.same(forBob.json(), { inbox: 'bob' }, 'Bob gets his own inbox')
    t.match(forBob.headers['cache-status'], /detail=read-session/)
    t.same((await app.inject({ url: '/inbox' })).json(), { inbox: null })
  })

  t.test(`${backend.label}: @fastify/cookie: a cookie read by name keys the entry on its value`, async (t) => {
    const { app, logs } = await appWith(t)
    await app.register(fastifyCookie)
    await app.register(emberCache)
    let runs = 0
    app.get('/page', route(), async (request, reply) => {
      runs++
      reply.header('cache-control', 'public, max-age=60, s-maxage=600')
      return { theme: request.cookies.theme ?? 'light' }
    })
    const dark = await app.inject({ url: '/page', headers: { cookie: 'theme=dark; _ga=GA1.1' } })
    t.same(dark.json(), { theme: 'dark' })
    t.equal(dark.headers['cache-control'], 'private, max-age=60', 'shared caches in front are kept out: they cannot vary on one cookie')
    await settle()
    const none = await app.inject({ url: '/page' })
    t.same(none.json(), { theme: 'light' }, 'a visitor without the cookie does not get the dark page')
    const light = await app.inject({ url: '/page', headers: { cookie: 'theme=light' } })
    t.same(light.json(), { theme: 'light' })
    await settle()
    const darkAgain = await app.inject({ url: '/page', headers: { cookie: '_ga=other; theme=dark' } })
    t.same(darkAgain.json(), { theme: 'dark' })
    t.equal(darkAgain.headers['x-cache'], 'HIT', 'another dark visitor hits (other cookies do not matter)')
    t.equal(darkAgain.headers['cache-control'], 'private, max-age=60')
    const lightAgain = await app.inject({ url: '/page', headers: { cookie: 'theme=light; x=1' } })
    t.same(lightAgain.json(), { theme: 'light' })
    t.equal(lightAgain.headers['x-cache'], 'HIT')
    const twoThemes = await app.inject({ url: '/page', headers: { cookie: 'theme=dark; theme=light' } })
    t.same(twoThemes.json(), { theme: 'dark' }, 'a repeated cookie is its own variant')
    t.equal(twoThemes.headers['x-cache'], 'MISS')
    t.equal(runs, 4)
    t.equal(logs.filter((line) => String(line.msg).includes('read cookie theme during a miss')).length, 1, 'said once, at info level')
  })

  t.test(`${backend.label}: varyCookies keys on a cookie from the start`, async (t) => {
    const { app } = await appWith(t)
    await app.register(fastifyCookie)
    await app.register(emberCache)
    app.get('/page', route({ varyCookies: ['theme'] }), async (request) => ({ theme: request.cookies.theme ?? 'light' }))
    const dark = await app.inject({ url: '/page', headers: { cookie: 'theme=dark' } })
    t.equal(dark.headers['cache-control'], 'private, max-age=60')
    await settle()
    t.same((await app.inject({ url: '/page' })).json(), { theme: 'light' })
    await settle()
    const again = await app.inject({ url: '/page', headers: { cookie: 'a=b; theme=dark' } })
    t.same(again.json(), { theme: 'dark' })
    t.equal(again.headers['x-cache'], 'HIT')
  })

  t.test(`${backend.label}: a header read by name makes the entry vary on it`, async (t) => {
    const { app } = await appWith(t)
    await app.register(emberCache)
    let runs = 0
    app.get('/hello', route(), async (request) => {
      runs++
      return { greeting: String(request.headers['accept-language']).startsWith('fr') ? 'bonjour' : 'hello' }
    })
    const fr = await app.inject({ url: '/hello', headers: { 'accept-language': 'fr-FR' } })
    t.same(fr.json(), { greeting: 'bonjour' })
    t.match(fr.headers.vary, /accept-language/, 'downstream caches are told in Vary')
    await settle()
    const en = await app.inject({ url: '/hello', headers: { 'accept-language': 'en-US' } })
    t.same(en.json(), { greeting: 'hello' }, 'an English visitor does not get French')
    await settle()
    const frAgain = await app.inject({ url: '/hello', headers: { 'accept-language': 'fr-FR' } })
    t.same(frAgain.json(), { greeting: 'bonjour' })
    t.equal(frAgain.headers['x-cache'], 'HIT')
    const none = await app.inject({ url: '/hello' })
    t.same(none.json(), { greeting: 'hello' })
    t.equal(runs, 3)
  })

  t.test(`${backend.label}: enumerating the headers reads them all: not stored`, async (t) => {
    const { app } = await appWith(t)
    await app.register(emberCache)
    app.get('/echo', route(), async (request) => ({ headers: Object.keys(request.headers).length }))
    const first = await app.inject({ url: '/echo', headers: { 'x-a': '1' } })
    t.match(first.headers['cache-status'], /detail=read-all-headers/)
    await settle()
    const second = await app.inject({ url: '/echo' })
    t.equal(second.headers['x-cache'], 'MISS')
    t.not(second.json().headers, first.json().headers)
  })

  t.test(`${backend.label}: the caller's address: not stored, unless a keyFn keys on it`, async (t) => {
    const { app } = await appWith(t)
    await app.register(emberCache)
    app.get('/where', route(), async (request) => ({ ip: request.ip }))
    app.get('/where-socket', route(), async (request) => ({ ip: request.raw.socket.remoteAddress }))
    app.get('/keyed', route({ keyFn: (request) => 'where:' + request.ip }), async (request) => ({ ip: request.ip }))
    const a = await app.inject({ url: '/where', remoteAddress: '10.0.0.1' })
    t.match(a.headers['cache-status'], /detail=read-ip/)
    await settle()
    t.same((await app.inject({ url: '/where', remoteAddress: '10.0.0.2' })).json(), { ip: '10.0.0.2' })
    t.match((await app.inject({ url: '/where-socket', remoteAddress: '10.0.0.1' })).headers['cache-status'], /detail=read-ip/, 'the socket address too')
    await settle()
    t.same((await app.inject({ url: '/where-socket', remoteAddress: '10.0.0.3' })).json(), { ip: '10.0.0.3' })
    await app.inject({ url: '/keyed', remoteAddress: '10.0.0.1' })
    await settle()
    const hit = await app.inject({ url: '/keyed', remoteAddress: '10.0.0.1' })
    t.equal(hit.headers['x-cache'], 'HIT', 'keyed on the address: stored')
    t.same((await app.inject({ url: '/keyed', remoteAddress: '10.0.0.9' })).json(), { ip: '10.0.0.9' })
  })

  t.test(`${backend.label}: @fastify/jwt: request.user from a cookie is not shared; private keys per credential`, async (t) => {
    const { app } = await appWith(t)
    await app.register(fastifyCookie)
    await app.register(fastifyJwt, { secret: SECRET, cookie: { cookieName: 'token', signed: false } })
    app.addHook('onRequest', async (request) => {
      try { await request.jwtVerify() } catch {}
    })
    await app.register(emberCache)
    app.get('/me', route(), async (request) => ({ me: (request.user as { name?: string } | null)?.name ?? null }))
    app.get('/me-private', route({ private: true }), async (request) => ({ me: (request.user as { name?: string } | null)?.name ?? null }))
    const alice = app.jwt.sign({ name: 'alice' })
    const bob = app.jwt.sign({ name: 'bob' })
    const first = await app.inject({ url: '/me', headers: { cookie: 'token=' + alice } })
    t.same(first.json(), { me: 'alice' })
    t.match(first.headers['cache-status'], /detail=read-user/)
    await settle()
    t.same((await app.inject({ url: '/me', headers: { cookie: 'token=' + bob } })).json(), { me: 'bob' })
    t.same((await app.inject({ url: '/me' })).json(), { me: null })
    for (const carry of [(token: string) => ({ authorization: 'Bearer ' + token }), (token: string) => ({ cookie: 'token=' + token })]) {
      await app.inject({ url: '/me-private', headers: carry(alice) })
      await settle()
      const again = await app.inject({ url: '/me-private', headers: carry(alice) })
      t.same(again.json(), { me: 'alice' })
      t.equal(again.headers['x-cache'], 'HIT', 'a private route stores per credential')
      t.equal(again.headers['cache-control'], 'private, max-age=60')
      const other = await app.inject({ url: '/me-private', headers: carry(bob) })
      t.same(other.json(), { me: 'bob' }, 'Bob never gets Alice\'s')
    }
  })

  t.test(`${backend.label}: a handler that reads nothing per caller hits, whatever cookies come`, async (t) => {
    const { app } = await appWith(t)
    await app.register(fastifyCookie)
    await app.register(fastifySession, { secret: SECRET, saveUninitialized: false, cookie: { secure: false } })
    await app.register(emberCache)
    let runs = 0
    app.get('/catalog', route(), async () => {
      runs++
      return { items: [1, 2, 3] }
    })
    await app.inject({ url: '/catalog', headers: { cookie: '_ga=GA1.2.1' } })
    await settle()
    for (let i = 0; i < 5; i++) {
      const res = await app.inject({ url: '/catalog', headers: { cookie: `_ga=GA1.2.${i}; _gid=${i}` } })
      t.equal(res.headers['x-cache'], 'HIT')
    }
    t.equal(runs, 1)
  })

  t.test(`${backend.label}: public: true says the answer is everyone's; early routes are observed too`, async (t) => {
    const { app } = await appWith(t)
    await app.register(fastifyCookie)
    await app.register(emberCache)
    app.get('/public', route({ public: true }), async (request) => ({ lang: request.headers['accept-language'] ?? null }))
    app.get('/early', route({ early: true }), async (request) => ({ theme: request.cookies.theme ?? null }))
    await app.inject({ url: '/public', headers: { 'accept-language': 'fr' } })
    await settle()
    const hit = await app.inject({ url: '/public', headers: { 'accept-language': 'en' } })
    t.equal(hit.headers['x-cache'], 'HIT', 'public: the route vouched')
    t.equal(hit.headers.vary, undefined)
    await app.inject({ url: '/early', headers: { cookie: 'theme=dark' } })
    await settle()
    t.same((await app.inject({ url: '/early' })).json(), { theme: null }, 'early: the miss is observed through every hook')
  })
}

t.test('per-caller reads, on every backend', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())
  const backends: Backend[] = [
    { label: 'memory', make: () => new MemoryCache() },
    { label: 'redis', make: () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('reads') }) },
    { label: 'redis+l1', make: () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('reads'), l1: true }) },
    { label: 'memcached', make: () => new MemcachedCache({ servers: memcached.servers, keyPrefix: freshPrefix('reads') }) }
  ]
  for (const backend of backends) suite(t, backend)
})

t.test('the rest of the rule, in process', async (t) => {
  t.test('trustProxy: host and protocol are in the key, so reading them is no address read', async (t) => {
    const { app } = await appWith(t, { trustProxy: true })
    await app.register(emberCache)
    let runs = 0
    app.get('/links', { config: { cache: { mode: 'memory' } } }, async (request) => {
      runs++
      return { self: request.protocol + '://' + request.hostname + '/links' }
    })
    await app.inject({ url: '/links', headers: { 'x-forwarded-host': 'a.example', 'x-forwarded-proto': 'https' } })
    await settle()
    const hit = await app.inject({ url: '/links', headers: { 'x-forwarded-host': 'a.example', 'x-forwarded-proto': 'https' } })
    t.equal(hit.headers['x-cache'], 'HIT')
    const other = await app.inject({ url: '/links', headers: { 'x-forwarded-host': 'b.example' } })
    t.same(other.json(), { self: 'http://b.example/links' }, 'another host has its own entry')
    t.equal(runs, 2)
  })

  t.test('rawHeaders is every header; unkeyedHeaders are not observed; callerProperties are', async (t) => {
    const { app } = await appWith(t)
    app.decorateRequest('tenant', null)
    app.addHook('onRequest', async (request) => { (request as unknown as { tenant: string }).tenant = String(request.headers['x-tenant']) })
    await app.register(emberCache)
    app.get('/raw', { config: { cache: { mode: 'memory' } } }, async (request) => ({ n: request.raw.rawHeaders.length }))
    app.get('/traced', { config: { cache: { mode: 'memory', unkeyedHeaders: ['X-Request-Id'] } } }, async (request) => {
      request.log.info({ id: request.headers['x-request-id'] }, 'traced')
      return { ok: true }
    })
    app.get('/tenant', { config: { cache: { mode: 'memory', callerProperties: ['tenant'] } } }, async (request) => ({ tenant: (request as unknown as { tenant: string }).tenant }))
    t.match((await app.inject({ url: '/raw' })).headers['cache-status'], /detail=read-all-headers/)
    await app.inject({ url: '/traced', headers: { 'x-request-id': '1' } })
    await settle()
    const traced = await app.inject({ url: '/traced', headers: { 'x-request-id': '2' } })
    t.equal(traced.headers['x-cache'], 'HIT', 'a header declared unkeyed does not make the entry vary')
    t.equal(traced.headers.vary, undefined)
    const tenant = await app.inject({ url: '/tenant', headers: { 'x-tenant': 'a' } })
    t.match(tenant.headers['cache-status'], /detail=read-tenant/)
    await settle()
    t.same((await app.inject({ url: '/tenant', headers: { 'x-tenant': 'b' } })).json(), { tenant: 'b' })
  })

  t.test('from-response: a header read before forwarding counts; copying them all to forward does not', async (t) => {
    const { app } = await appWith(t)
    await app.register(emberCache)
    let runs = 0
    app.get('/proxied', { config: { cache: { mode: 'memory', ttl: 'from-response' } } }, async (request, reply) => {
      runs++
      const tenant = request.headers['x-tenant'] ?? 'none'
      const forwarded = { ...request.headers }
      reply.header('cache-control', 'max-age=60')
      return { tenant, forwarded: Object.keys(forwarded).length > 0, lang: forwarded['accept-language'] ?? null }
    })
    await app.inject({ url: '/proxied', headers: { 'x-tenant': 'a', 'accept-language': 'fr' } })
    await settle()
    const hit = await app.inject({ url: '/proxied', headers: { 'x-tenant': 'a', 'accept-language': 'en' } })
    t.equal(hit.headers['x-cache'], 'HIT', 'what was only forwarded is the upstream\'s to declare (it did not)')
    t.match(hit.headers.vary, /x-tenant/)
    const other = await app.inject({ url: '/proxied', headers: { 'x-tenant': 'b' } })
    t.equal(other.json().tenant, 'b', 'the header read by name keys the entry')
    t.equal(runs, 2)
  })

  t.test('writeThrough: an answer shaped by the writer\'s session is not written through, only invalidated', async (t) => {
    const { app } = await appWith(t)
    await app.register(fastifyCookie)
    await app.register(fastifySession, { secret: SECRET, saveUninitialized: false, rolling: false, cookie: { secure: false } })
    await app.register(emberCache)
    let doc = 'v1'
    app.post('/login/:user', async (request) => {
      request.session.user = (request.params as { user: string }).user
      return { ok: true }
    })
    app.get('/doc', { config: { cache: { mode: 'memory' } } }, async () => ({ doc }))
    app.put('/doc', { config: { cache: { mode: 'memory', writeThrough: true } } }, async (request) => {
      doc = (request.body as { doc: string }).doc
      return { doc, editedBy: request.session.user }
    })
    const alice = cookieOf(await app.inject({ method: 'POST', url: '/login/alice' }))
    await app.inject('/doc')
    await app.inject({ method: 'PUT', url: '/doc', headers: { cookie: alice }, payload: { doc: 'v2' } })
    const after = await app.inject('/doc')
    t.same(after.json(), { doc: 'v2' }, 'the read gets the read route\'s answer, not the writer\'s')
    t.equal(after.headers['x-cache'], 'MISS', 'invalidated, not written through')
  })
})
