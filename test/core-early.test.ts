// `early: true`: the lookup runs in onRequest, so a hit skips the route's later hooks. Opt-in,
// for public routes only; these tests pin both what it skips and what it still honours.
import t from 'tap'
import { StaticCache } from '../lib/index'
import { emberApp } from './helpers/apps'

t.test('early: a hit is answered from onRequest; app-wide preValidation, preHandler and the handler do not run', async (t) => {
  const app = await emberApp(t)
  const ran = { onRequest: 0, preValidation: 0, preHandler: 0, handler: 0 }
  app.addHook('onRequest', async () => { ran.onRequest++ })
  // App-wide hooks cannot be seen when the route registers: they are skipped on a hit (README).
  app.addHook('preValidation', async () => { ran.preValidation++ })
  app.addHook('preHandler', async () => { ran.preHandler++ })
  app.get('/build', {
    config: { cache: { mode: 'static', early: true } }
  }, async () => { ran.handler++; return { version: '1.2.3' } })

  const miss = await app.inject('/build')
  t.equal(miss.headers['x-cache'], 'MISS')
  t.same(ran, { onRequest: 1, preValidation: 1, preHandler: 1, handler: 1 }, 'a miss runs the whole pipeline')

  const hit = await app.inject('/build')
  t.equal(hit.statusCode, 200)
  t.equal(hit.headers['x-cache'], 'HIT')
  t.same(hit.json(), { version: '1.2.3' })
  t.same(ran, { onRequest: 2, preValidation: 1, preHandler: 1, handler: 1 }, 'a hit runs app onRequest hooks, then nothing else')
})

t.test('early: the route\'s own onRequest hooks run before the lookup, so they can still reject', async (t) => {
  const app = await emberApp(t)
  let handlerRuns = 0
  app.get('/status', {
    config: { cache: { cache: new StaticCache(), early: true } },
    onRequest: async (request, reply) => {
      if (request.headers['x-api-key'] !== 'good') await reply.code(401).send({ error: 'unauthorized' })
    }
  }, async () => { handlerRuns++; return { ok: true } })

  t.equal((await app.inject({ url: '/status', headers: { 'x-api-key': 'good' } })).headers['x-cache'], 'MISS')
  t.equal((await app.inject({ url: '/status', headers: { 'x-api-key': 'good' } })).headers['x-cache'], 'HIT')
  const rejected = await app.inject('/status')
  t.equal(rejected.statusCode, 401, 'an onRequest check still guards the cached entry')
  t.not(rejected.json().ok, true)
  t.equal(handlerRuns, 1)
})

t.test('early: refused on a route with its own preParsing, preValidation or preHandler hook (a hit would skip it)', async (t) => {
  for (const hook of ['preParsing', 'preValidation', 'preHandler'] as const) {
    const app = await emberApp(t)
    const err = await (async () => {
      app.get('/x', { config: { cache: { mode: 'memory', early: true } }, [hook]: async () => {} }, async () => 'x')
      await app.ready()
    })().then(() => undefined, (error: unknown) => error)
    t.match(err, { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: new RegExp('GET /x config.cache.early": the route has its own ' + hook) }, hook + ' refused')
  }
  const app = await emberApp(t)
  app.get('/y', { config: { cache: { mode: 'memory', early: true } }, preHandler: [] }, async () => 'y')
  await app.ready()
  t.pass('an empty hook list is no hook')
})

t.test('early: a miss that a later app-wide hook rejects is not stored', async (t) => {
  const app = await emberApp(t)
  let handlerRuns = 0
  app.addHook('preHandler', async (request, reply) => {
    if (request.headers['x-api-key'] !== 'good') await reply.code(401).send({ error: 'unauthorized' })
  })
  app.get('/gated', {
    config: { cache: { mode: 'memory', early: true } }
  }, async () => { handlerRuns++; return { secret: 1 } })

  const denied = await app.inject('/gated')
  t.equal(denied.statusCode, 401)
  const allowed = await app.inject({ url: '/gated', headers: { 'x-api-key': 'good' } })
  t.equal(allowed.statusCode, 200)
  t.equal(allowed.headers['x-cache'], 'MISS', 'the 401 was not stored as the entry')
  t.equal(handlerRuns, 1)
})

t.test('early: requests with Authorization still bypass the cache (RFC 9111 §3.5)', async (t) => {
  const app = await emberApp(t)
  let handlerRuns = 0
  app.get('/public', { config: { cache: { mode: 'static', early: true } } }, async () => { handlerRuns++; return { n: handlerRuns } })
  await app.inject('/public')
  const withCredentials = await app.inject({ url: '/public', headers: { authorization: 'Bearer abc' } })
  t.equal(withCredentials.headers['x-cache'], 'BYPASS')
  t.same(withCredentials.json(), { n: 2 })
})

t.test('early: anything but a boolean fails registration naming the option', async (t) => {
  const app = await emberApp(t)
  t.throws(
    () => app.get('/x', { config: { cache: { mode: 'static', early: 'yes' as unknown as boolean } } }, async () => 'x'),
    { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /GET \/x config\.cache\.early/ }
  )
})

t.test('early: refused on routes that cache per caller, with staleIfErrorTimeout, and on write routes', async (t) => {
  const app = await emberApp(t)
  const cases: Array<[string, object, RegExp]> = [
    ['/private', { mode: 'memory', early: true, private: true }, /public routes only/],
    ['/per-credential', { mode: 'memory', early: true, varyHeaders: ['Authorization'] }, /public routes only/],
    ['/timeout', { mode: 'memory', early: true, staleIfError: 60, staleIfErrorTimeout: 200 }, /staleIfErrorTimeout/]
  ]
  for (const [url, cache, message] of cases) {
    t.throws(() => app.get(url, { config: { cache } }, async () => 'x'), { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: new RegExp(`GET ${url} config\\.cache\\.early.*` + message.source) }, url)
  }
  t.throws(
    () => app.post('/write', { config: { cache: { mode: 'memory', early: true } } }, async () => 'x'),
    { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /POST \/write config\.cache\.early.*read route/ }
  )
})
