// Every auth hook runs before a cached response can be served: a cached entry must never
// answer a request that onRequest / preValidation / preHandler (global or route) rejects.
import t from 'tap'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteShorthandOptions } from 'fastify'
import { MemoryCache, StaticCache, type RouteCacheConfig } from '../lib/index'
import { emberApp } from './helpers/apps'

const SECRET = { secret: 'only for authorized callers' }
// A custom credential header: requests with Authorization bypass the cache unless the route
// opts in (RFC 9111 §3.5), which is pinned at the end of this file.
const AUTHORIZED = { 'x-api-key': 'good' }

function deny (request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  if (request.headers['x-api-key'] !== 'good') return reply.code(401).send({ error: 'unauthorized' })
  return undefined
}

async function rejectAsync (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.headers['x-api-key'] !== 'good') {
    await reply.code(401).send({ error: 'unauthorized' })
  }
}

async function throwingAuth (request: FastifyRequest): Promise<void> {
  if (request.headers['x-api-key'] !== 'good') {
    const err = new Error('forbidden') as Error & { statusCode: number }
    err.statusCode = 403
    throw err
  }
}

function callbackAuth (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
  if (request.headers['x-api-key'] !== 'good') {
    reply.code(401).send({ error: 'unauthorized' })
    return
  }
  done()
}

type Placement = (app: FastifyInstance) => RouteShorthandOptions
const PLACEMENTS: Array<[string, Placement, number]> = [
  ['global onRequest (async, sends)', (app) => { app.addHook('onRequest', rejectAsync); return {} }, 401],
  ['global onRequest (callback)', (app) => { app.addHook('onRequest', callbackAuth); return {} }, 401],
  ['global preValidation (throws)', (app) => { app.addHook('preValidation', throwingAuth); return {} }, 403],
  ['global preHandler (async, sends)', (app) => { app.addHook('preHandler', rejectAsync); return {} }, 401],
  ['global preHandler (throws)', (app) => { app.addHook('preHandler', throwingAuth); return {} }, 403],
  ['route onRequest', () => ({ onRequest: rejectAsync }), 401],
  ['route preValidation', () => ({ preValidation: throwingAuth }), 403],
  ['route preHandler (function)', () => ({ preHandler: rejectAsync }), 401],
  ['route preHandler (callback)', () => ({ preHandler: callbackAuth }), 401],
  ['route preHandler (array, auth last)', () => ({ preHandler: [async () => {}, throwingAuth] }), 403],
  ['route preHandler (sync return)', () => ({ preHandler: (request, reply, done) => { if (deny(request, reply) === undefined) done() } }), 401]
]

const CACHES: Array<[string, () => RouteCacheConfig]> = [
  ['memory mode', () => ({ mode: 'memory' })],
  ['static mode', () => ({ mode: 'static' })],
  ['MemoryCache', () => new MemoryCache()],
  ['StaticCache', () => new StaticCache()]
]

for (const [where, place, expected] of PLACEMENTS) {
  for (const [label, makeCache] of CACHES) {
    t.test(`${where} rejects even when the entry is cached (${label})`, async (t) => {
      const app = await emberApp(t)
      let calls = 0
      const routeOptions = place(app)
      app.get('/secret', { ...routeOptions, config: { cache: makeCache() } }, async () => {
        calls++
        return SECRET
      })
      const primed = await app.inject({ url: '/secret', headers: AUTHORIZED })
      t.equal(primed.statusCode, 200)
      t.equal((await app.inject({ url: '/secret', headers: AUTHORIZED })).headers['x-cache'], 'HIT', 'entry is cached')

      const anonymous = await app.inject({ url: '/secret' })
      t.equal(anonymous.statusCode, expected, 'rejected')
      t.notMatch(anonymous.body, /only for authorized/, 'the cached body is not served')
      t.not(anonymous.headers['x-cache'], 'HIT')
      const wrong = await app.inject({ url: '/secret', headers: { 'x-api-key': 'bad' } })
      t.equal(wrong.statusCode, expected)
      const head = await app.inject({ method: 'HEAD', url: '/secret' })
      t.equal(head.statusCode, expected, 'HEAD is rejected too')
      t.not(head.headers['x-cache'], 'HIT')
      t.equal(calls, 1, 'the handler ran once, for the authorized miss')

      const after = await app.inject({ url: '/secret', headers: AUTHORIZED })
      t.equal(after.headers['x-cache'], 'HIT', 'a rejection does not evict or overwrite the entry')
      t.same(after.json(), SECRET)
    })
  }
}

t.test('a rejection before the lookup does not store the error response', async (t) => {
  const app = await emberApp(t, { statusCodes: [200, 401] })
  app.addHook('onRequest', rejectAsync)
  let calls = 0
  app.get('/secret', { config: { cache: { mode: 'memory' } } }, async () => {
    calls++
    return SECRET
  })
  t.equal((await app.inject('/secret')).statusCode, 401)
  const authorized = await app.inject({ url: '/secret', headers: AUTHORIZED })
  t.equal(authorized.statusCode, 200, 'the stored-401 list does not make the rejection an entry')
  t.same(authorized.json(), SECRET)
  t.equal(calls, 1)
})

t.test('global hooks added after the route still run before the lookup', async (t) => {
  const app = await emberApp(t)
  let calls = 0
  app.get('/secret', { config: { cache: { mode: 'memory' } } }, async () => {
    calls++
    return SECRET
  })
  app.addHook('preHandler', rejectAsync)
  await app.inject({ url: '/secret', headers: AUTHORIZED })
  const anonymous = await app.inject('/secret')
  t.equal(anonymous.statusCode, 401)
  t.equal(calls, 1)
})

t.test('auth in an encapsulating plugin guards cached routes inside it', async (t) => {
  const app = await emberApp(t)
  let calls = 0
  await app.register(async (scope) => {
    scope.addHook('onRequest', rejectAsync)
    scope.get('/admin/report', { config: { cache: { mode: 'memory' } } }, async () => {
      calls++
      return SECRET
    })
  })
  await app.inject({ url: '/admin/report', headers: AUTHORIZED })
  t.equal((await app.inject('/admin/report')).statusCode, 401)
  t.equal(calls, 1)
})

t.test('per-user data: varyHeaders on authorization keeps users apart after auth', async (t) => {
  const app = await emberApp(t)
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers.authorization === undefined) await reply.code(401).send()
  })
  app.get('/me', { config: { cache: { mode: 'memory', varyHeaders: ['authorization'] } } }, async (request) => ({ me: request.headers.authorization }))
  await app.inject({ url: '/me', headers: { authorization: 'alice' } })
  const bob = await app.inject({ url: '/me', headers: { authorization: 'bob' } })
  t.same(bob.json(), { me: 'bob' }, 'bob never gets alice\'s entry')
  const alice = await app.inject({ url: '/me', headers: { authorization: 'alice' } })
  t.equal(alice.headers['x-cache'], 'HIT')
  t.same(alice.json(), { me: 'alice' })
})

t.test('the user preHandlers run before ours on a hit too (they can decorate the request)', async (t) => {
  const app = await emberApp(t)
  const order: string[] = []
  app.addHook('onRequest', async () => { order.push('onRequest') })
  app.addHook('preValidation', async () => { order.push('preValidation') })
  app.addHook('preHandler', async () => { order.push('global preHandler') })
  app.get('/x', {
    config: { cache: { mode: 'memory' } },
    preHandler: async () => { order.push('route preHandler') }
  }, async () => {
    order.push('handler')
    return 'x'
  })
  await app.inject('/x')
  t.same(order, ['onRequest', 'preValidation', 'global preHandler', 'route preHandler', 'handler'])
  order.length = 0
  const hit = await app.inject('/x')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.same(order, ['onRequest', 'preValidation', 'global preHandler', 'route preHandler'], 'every hook ran, the handler did not')
})

t.test('requests with Authorization bypass a route that did not opt in (RFC 9111 §3.5)', async (t) => {
  const app = await emberApp(t)
  let calls = 0
  app.get('/shared', { config: { cache: { mode: 'memory' } } }, async (request) => ({ n: ++calls, who: request.headers.authorization ?? null }))
  await app.inject('/shared')
  t.equal((await app.inject('/shared')).headers['x-cache'], 'HIT', 'anonymous requests share the entry')
  const alice = await app.inject({ url: '/shared', headers: { authorization: 'Bearer alice' } })
  t.equal(alice.headers['x-cache'], 'BYPASS')
  t.same(alice.json(), { n: 2, who: 'Bearer alice' }, 'served by the handler, not the anonymous entry')
  const aliceAgain = await app.inject({ url: '/shared', headers: { authorization: 'Bearer alice' } })
  t.same(aliceAgain.json(), { n: 3, who: 'Bearer alice' }, 'and her response was not stored')
  const anonymous = await app.inject('/shared')
  t.same(anonymous.json(), { n: 1, who: null }, 'the anonymous entry was not replaced by a credentialed answer')
})

t.test('private: true lets Authorization requests use the cache, and auth still runs first', async (t) => {
  const app = await emberApp(t)
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers.authorization !== 'Bearer good') await reply.code(401).send({ error: 'unauthorized' })
  })
  let calls = 0
  app.get('/mine', { config: { cache: { mode: 'memory', private: true } } }, async () => {
    calls++
    return SECRET
  })
  await app.inject({ url: '/mine', headers: { authorization: 'Bearer good' } })
  const hit = await app.inject({ url: '/mine', headers: { authorization: 'Bearer good' } })
  t.equal(hit.headers['x-cache'], 'HIT')
  t.match(hit.headers['cache-control'], /^private/)
  const bad = await app.inject({ url: '/mine', headers: { authorization: 'Bearer bad' } })
  t.equal(bad.statusCode, 401)
  t.notMatch(bad.body, /only for authorized/)
  t.equal(calls, 1)
})

t.test('our hooks are appended after the route\'s own; routes without config.cache get none', async (t) => {
  const app = await emberApp(t)
  const seen = new Map<string, { preHandler: string[], onSend: string[] }>()
  const names = (hooks: unknown): string[] => (hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks]).map((hook: { name: string }) => hook.name)
  app.addHook('onRoute', (routeOptions) => {
    seen.set(routeOptions.method + ' ' + routeOptions.url, { preHandler: names(routeOptions.preHandler), onSend: names(routeOptions.onSend) })
  })
  async function userAuth (): Promise<void> {}
  async function userOnSend (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> { return payload }
  app.get('/plain', { preHandler: userAuth }, async () => 'p')
  app.get('/cached', { config: { cache: { mode: 'memory' } }, preHandler: [userAuth], onSend: userOnSend }, async () => 'c')
  app.post('/write', { config: { cache: { mode: 'memory' } }, preHandler: userAuth }, async () => 'w')
  await app.ready()
  t.same(seen.get('GET /plain'), { preHandler: ['userAuth'], onSend: [] }, 'a plain route is left exactly as declared')
  t.same(seen.get('HEAD /plain')?.preHandler, ['userAuth'])
  t.same(seen.get('GET /cached'), { preHandler: ['userAuth', 'emberCacheLookup'], onSend: ['userOnSend', 'emberCacheStore'] })
  t.same(seen.get('HEAD /cached')?.preHandler, ['userAuth', 'emberCacheLookup'], 'the automatic HEAD route is not given our hooks twice')
  t.same(seen.get('POST /write'), { preHandler: ['userAuth'], onSend: ['emberCacheWrite'] }, 'a write route only gets the write hook')
})
