// In-process single-flight: concurrent misses on one key run the handler once; responses
// that cannot be shared release the waiters to run on their own.
import t from 'tap'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import emberCache, { MemoryCache, StaticCache, type EmberCachePluginOptions, type RouteCacheConfig } from '../lib/index'
import { countingApp, emberApp, type Handler, type Scope } from './helpers/apps'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function build (t: Scope, handler: Handler, cache: RouteCacheConfig = { mode: 'memory' }, options: EmberCachePluginOptions = {}): Promise<{ app: FastifyInstance, calls: () => number }> {
  return await countingApp(t, handler, cache, options, '/slow')
}

function burst (app: FastifyInstance, n: number, url = '/slow', headers: Record<string, string> = {}): Promise<LightMyRequestResponse[]> {
  return Promise.all(Array.from({ length: n }, () => app.inject({ url, headers })))
}

function countBy (responses: LightMyRequestResponse[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const res of responses) {
    const status = String(res.headers['x-cache'])
    counts[status] = (counts[status] ?? 0) + 1
  }
  return counts
}

for (const [label, make] of [
  ['memory mode', () => ({ mode: 'memory' })],
  ['static mode', () => ({ mode: 'static' })],
  ['MemoryCache', () => new MemoryCache()],
  ['StaticCache', () => new StaticCache()]
] as Array<[string, () => RouteCacheConfig]>) {
  t.test(`${label}: 50 concurrent misses on a cold key run a 50 ms handler once`, async (t) => {
    const { app, calls } = await build(t, async (request, reply, run) => {
      await sleep(50)
      reply.header('x-run', String(run))
      return { run, at: Date.now() }
    }, make())
    const responses = await burst(app, 50)
    t.equal(calls(), 1)
    t.same(countBy(responses), { MISS: 1, HIT: 49 })
    const body = responses[0].body
    for (const res of responses) {
      t.equal(res.statusCode, 200)
      t.equal(res.body, body)
      t.equal(res.headers['x-run'], '1')
      t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
    }
    t.equal((await app.inject('/slow')).headers['x-cache'], 'HIT', 'and the entry is stored')
    t.equal(calls(), 1)
  })
}

t.test('binary bodies are shared with waiters byte for byte', async (t) => {
  const bytes = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7) % 256))
  const { app, calls } = await build(t, async (request, reply) => {
    await sleep(30)
    return reply.type('application/octet-stream').send(bytes)
  })
  const responses = await burst(app, 10)
  t.equal(calls(), 1)
  for (const res of responses) t.ok(res.rawPayload.equals(bytes))
})

t.test('an uncacheable leader (Set-Cookie) releases the waiters to run on their own', async (t) => {
  const { app, calls } = await build(t, async (request, reply, run) => {
    await sleep(50)
    reply.header('set-cookie', 'session=' + run)
    return { run }
  })
  const responses = await burst(app, 50)
  t.equal(calls(), 50, 'every request ran the handler')
  const runs = new Set(responses.map((res) => res.json().run))
  t.equal(runs.size, 50, 'each got its own response')
  for (const res of responses) {
    t.equal(res.headers['x-cache'], 'MISS')
    t.equal(res.headers['set-cookie'], 'session=' + String(res.json().run), 'each cookie belongs to its own response')
  }
})

t.test('a failing leader releases the waiters; a waiter that succeeds stores', async (t) => {
  const { app, calls } = await build(t, async (request, reply, run) => {
    await sleep(30)
    if (run === 1) throw new Error('first run fails')
    return { run }
  })
  const responses = await burst(app, 10)
  t.equal(responses.filter((res) => res.statusCode === 500).length, 1, 'only the leader failed')
  t.equal(responses.filter((res) => res.statusCode === 200).length, 9, 'waiters were not given the error')
  t.ok(calls() >= 2, 'waiters ran the handler themselves')
  const after = await app.inject('/slow')
  t.equal(after.headers['x-cache'], 'HIT')
  t.equal(after.statusCode, 200)
})

t.test('a non-2xx leader does not become every waiter\'s answer', async (t) => {
  const { app, calls } = await build(t, async (request, reply, run) => {
    await sleep(30)
    if (run === 1) return reply.code(503).send({ busy: true })
    return { run }
  })
  const responses = await burst(app, 5)
  t.equal(responses.filter((res) => res.statusCode === 503).length, 1)
  t.equal(calls(), 5)
})

t.test('different keys and different variants do not collapse', async (t) => {
  const { app, calls } = await build(t, async (request, reply, run) => {
    await sleep(30)
    return { run }
  }, { mode: 'memory', varyHeaders: ['x-tenant'] })
  await Promise.all([
    ...Array.from({ length: 5 }, (_, i) => app.inject({ url: '/slow?page=' + i })),
    app.inject({ url: '/slow', headers: { 'x-tenant': 'a' } }),
    app.inject({ url: '/slow', headers: { 'x-tenant': 'b' } })
  ])
  t.equal(calls(), 7)
})

t.test('collapsed waiters of one variant get that variant only', async (t) => {
  const { app, calls } = await build(t, async (request) => {
    await sleep(30)
    return { tenant: request.headers['x-tenant'] }
  }, { mode: 'memory', varyHeaders: ['x-tenant'] })
  const [a, b] = await Promise.all([burst(app, 10, '/slow', { 'x-tenant': 'a' }), burst(app, 10, '/slow', { 'x-tenant': 'b' })])
  t.equal(calls(), 2)
  for (const res of a) t.same(res.json(), { tenant: 'a' })
  for (const res of b) t.same(res.json(), { tenant: 'b' })
})

t.test('HEAD during a GET flight waits for it and is answered from the entry', async (t) => {
  const { app, calls } = await build(t, async () => {
    await sleep(50)
    return 'body'
  })
  const get = app.inject('/slow')
  await sleep(5)
  const heads = await Promise.all(Array.from({ length: 5 }, () => app.inject({ method: 'HEAD', url: '/slow' })))
  t.equal((await get).body, 'body')
  t.equal(calls(), 1)
  for (const head of heads) {
    t.equal(head.statusCode, 200)
    t.equal(head.headers['x-cache'], 'HIT')
    t.equal(head.body, '')
  }
})

t.test('a cold HEAD does not make GETs wait on it', async (t) => {
  const { app, calls } = await build(t, async () => {
    await sleep(50)
    return 'body'
  })
  const head = app.inject({ method: 'HEAD', url: '/slow' })
  await sleep(5)
  const gets = await burst(app, 5)
  await head
  t.equal(calls(), 2, 'one HEAD run, one GET run for the five GETs')
  t.same(countBy(gets), { MISS: 1, HIT: 4 })
})

t.test('waiters stop waiting after collapseWait and run on their own', async (t) => {
  const { app, calls } = await build(t, async (request, reply, run) => {
    await sleep(run === 1 ? 400 : 10)
    return { run }
  }, { mode: 'memory' }, { collapseWait: 50 })
  const leader = app.inject('/slow')
  await sleep(5)
  const started = Date.now()
  const waiters = await burst(app, 3)
  const waited = Date.now() - started
  t.ok(waited < 350, `waiters did not wait for the 400 ms leader (${waited} ms)`)
  for (const res of waiters) t.equal(res.statusCode, 200)
  t.equal((await leader).json().run, 1)
  t.ok(calls() >= 2)
})

t.test('a hijacked leader stalls its key at most once (collapseWait), not for good', async (t) => {
  const cache = new MemoryCache()
  const { app, calls } = await build(t, async (request, reply, run) => {
    if (run === 1) {
      reply.hijack()
      reply.raw.end('raw')
      return reply
    }
    return { run }
  }, cache, { collapseWait: 300 })
  const raw = await app.inject('/slow')
  t.equal(raw.body, 'raw')
  const first = await app.inject('/slow')
  t.equal(first.statusCode, 200, 'the request after it is answered (after at most collapseWait)')
  t.equal(first.headers['x-cache'], 'MISS')
  await cache.invalidate('GET:/slow')
  const started = Date.now()
  const second = await app.inject('/slow')
  const took = Date.now() - started
  t.equal(second.headers['x-cache'], 'MISS')
  t.ok(took < 250, `a later miss is not held by the abandoned flight (${took} ms)`)
  t.equal(calls(), 3)
})

t.test('a request aborted by the client does not leave the key stalled', async (t) => {
  const app = Fastify({ handlerTimeout: undefined } as never)
  t.teardown(() => app.close())
  await app.register(emberCache, { collapseWait: 300 })
  let calls = 0
  app.get('/slow', { config: { cache: { mode: 'memory' } } }, async (request, reply) => {
    calls++
    if (calls === 1) {
      reply.raw.destroy()
      return reply
    }
    return { calls }
  })
  await app.inject('/slow').catch(() => {})
  const started = Date.now()
  const res = await app.inject('/slow')
  const took = Date.now() - started
  t.equal(res.statusCode, 200)
  t.ok(took < 250, `not held by the abandoned flight (${took} ms)`)
})

t.test('collapseWait: 0 turns collapsing off: every concurrent miss runs the handler', async (t) => {
  const app = await emberApp(t, { collapseWait: 0 })
  let runs = 0
  app.get('/nocollapse', { config: { cache: new MemoryCache() } }, async () => {
    runs++
    await new Promise((resolve) => setTimeout(resolve, 30))
    return { runs }
  })
  const answers = await Promise.all(Array.from({ length: 5 }, () => app.inject('/nocollapse')))
  t.equal(runs, 5)
  t.ok(answers.every((answer) => answer.statusCode === 200 && answer.headers['x-cache'] === 'MISS'))
  t.equal((await app.inject('/nocollapse')).headers['x-cache'], 'HIT')
})
