import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { emberCache, MemoryCache } from '../lib/index'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function appWith (setup: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(emberCache)
  setup(app)
  await app.ready()
  return app
}

t.test('stale-while-revalidate: an expired entry is served at once and refreshed exactly once', async (t) => {
  let runs = 0
  const app = await appWith((app) => {
    app.get('/swr', { config: { cache: { cache: new MemoryCache(), ttl: 1, staleWhileRevalidate: 30 } } }, async () => {
      runs++
      await sleep(100) // a slow origin: a stale answer must not wait for it
      return { version: runs }
    })
  })
  t.teardown(() => app.close())

  t.equal((await app.inject('/swr')).json().version, 1)
  await sleep(1100)
  const started = Date.now()
  const answers = await Promise.all(Array.from({ length: 10 }, () => app.inject('/swr')))
  const elapsed = Date.now() - started
  for (const answer of answers) {
    t.equal(answer.headers['x-cache'], 'STALE')
    t.equal(answer.json().version, 1)
  }
  t.ok(elapsed < 90, `stale answers did not wait for the 100 ms origin (took ${elapsed} ms)`)
  await sleep(250)
  t.equal(runs, 2, 'ten stale hits triggered one background refresh')
  const fresh = await app.inject('/swr')
  t.equal(fresh.headers['x-cache'], 'HIT')
  t.equal(fresh.json().version, 2, 'the refresh stored the new entry')
})

t.test('stale-while-revalidate refresh runs the auth hooks again, with the original headers', async (t) => {
  const authSeen: string[] = []
  let runs = 0
  const app = await appWith((app) => {
    app.addHook('onRequest', async (request, reply) => {
      const user = request.headers['x-user']
      authSeen.push(String(user))
      if (user !== 'ada') return reply.code(403).send({ error: 'forbidden' })
    })
    app.get('/guarded', { config: { cache: { cache: new MemoryCache(), ttl: 1, staleWhileRevalidate: 30 } } }, async () => ({ run: ++runs }))
  })
  t.teardown(() => app.close())
  await app.inject({ url: '/guarded', headers: { 'x-user': 'ada' } })
  await sleep(1100)
  authSeen.length = 0
  const stale = await app.inject({ url: '/guarded', headers: { 'x-user': 'ada' } })
  t.equal(stale.headers['x-cache'], 'STALE')
  await sleep(50)
  t.same(authSeen, ['ada', 'ada'], 'the client request and the background refresh both passed the auth hook')
  t.equal(runs, 2)
})

t.test('stale-if-error: a throwing handler is answered with the expired entry', async (t) => {
  let fail = false
  const app = await appWith((app) => {
    app.get('/sie', { config: { cache: { cache: new MemoryCache(), ttl: 1, staleIfError: 60 } } }, async () => {
      if (fail) throw new Error('database down')
      return { ok: true }
    })
  })
  t.teardown(() => app.close())
  await app.inject('/sie')
  await sleep(1100)
  fail = true
  const answer = await app.inject('/sie')
  t.equal(answer.statusCode, 200)
  t.equal(answer.headers['x-cache'], 'STALE')
  t.same(answer.json(), { ok: true })
  t.equal(answer.headers['content-type'], 'application/json; charset=utf-8')
})

t.test('stale-if-error: a hook that edits the stale answer\'s repeated header edits that answer only', async (t) => {
  let fail = false
  const app = await appWith((app) => {
    // onResponse runs after our onSend hook has set the stale entry's headers on the reply.
    app.addHook('onResponse', async (request, reply) => {
      const multi = reply.getHeader('x-multi')
      if (request.headers['x-mutate'] !== undefined && Array.isArray(multi)) multi.push('appended')
    })
    app.get('/sie', { config: { cache: { cache: new MemoryCache(), ttl: 1, staleIfError: 60 } } }, async (_request, reply) => {
      if (fail) throw new Error('database down')
      reply.header('x-multi', ['one', 'two'])
      return { ok: true }
    })
  })
  t.teardown(() => app.close())
  await app.inject('/sie')
  await sleep(1100)
  fail = true
  for (let i = 1; i <= 2; i++) {
    const answer = await app.inject({ url: '/sie', headers: { 'x-mutate': '1' } })
    t.equal(answer.headers['x-cache'], 'STALE')
    t.same(answer.headers['x-multi'], ['one', 'two'], `stale answer ${i} as stored`)
  }
})

t.test('stale-if-error: a 5xx answer is replaced, a 4xx is not', async (t) => {
  let status = 200
  const app = await appWith((app) => {
    app.get('/sie', { config: { cache: { cache: new MemoryCache(), ttl: 1, staleIfError: 60 } } }, async (request, reply) => {
      return reply.code(status).send({ status })
    })
  })
  t.teardown(() => app.close())
  await app.inject('/sie')
  await sleep(1100)
  status = 503
  const replaced = await app.inject('/sie')
  t.equal(replaced.statusCode, 200)
  t.same(replaced.json(), { status: 200 })
  status = 404
  const passed = await app.inject('/sie')
  t.equal(passed.statusCode, 404, 'a client error is the truth, not an outage')
})

t.test('stale-if-error: outside the window the error goes through', async (t) => {
  let fail = false
  const app = await appWith((app) => {
    app.get('/sie', { config: { cache: { cache: new MemoryCache(), ttl: 1, staleIfError: 1 } } }, async () => {
      if (fail) throw new Error('down')
      return { ok: true }
    })
  })
  t.teardown(() => app.close())
  await app.inject('/sie')
  await sleep(2100)
  fail = true
  t.equal((await app.inject('/sie')).statusCode, 500)
})

t.test('invalidation wins the race: a miss that started before it does not store its result', async (t) => {
  const cache = new MemoryCache()
  let version = 1
  let runs = 0
  const app = await appWith((app) => {
    app.get('/slow', { config: { cache: { cache, ttl: 60 } } }, async () => {
      runs++
      const seen = version
      await sleep(150)
      return { version: seen }
    })
  })
  t.teardown(() => app.close())

  const slow = app.inject('/slow')
  await sleep(30)
  version = 2
  await cache.invalidate({ key: 'GET:/slow' })
  const first = await slow
  t.equal(first.json().version, 1, 'the slow request still answers its own result')
  const next = await app.inject('/slow')
  t.equal(next.headers['x-cache'], 'MISS', 'its stale result was not stored')
  t.equal(next.json().version, 2)
  t.equal(runs, 2)
  t.equal((await app.inject('/slow')).headers['x-cache'], 'HIT')
})

t.test('wrap(): concurrent callers share one run; an invalidation during the run prevents the store', async (t) => {
  const cache = new MemoryCache({ ttl: 60 })
  let runs = 0
  const compute = async (): Promise<{ n: number }> => {
    runs++
    await sleep(50)
    return { n: runs }
  }
  const values = await Promise.all(Array.from({ length: 20 }, () => cache.wrap('k', compute)))
  t.equal(runs, 1)
  t.ok(values.every((value) => value.n === 1))
  t.same(await cache.get('k'), { n: 1 })

  const racing = cache.wrap('r', compute)
  await sleep(10)
  await cache.invalidate({ key: 'r' })
  t.same(await racing, { n: 2 })
  t.equal(await cache.has('r'), false, 'the value computed before the invalidation was not stored')
})

t.test('stale-if-error: a handler slower than staleIfErrorTimeout is answered with the expired entry', async (t) => {
  let slow = false
  let runs = 0
  const app = await appWith((app) => {
    app.get('/timeout', { config: { cache: { cache: new MemoryCache(), ttl: 1, staleIfError: 60, staleIfErrorTimeout: 100 } } }, async () => {
      runs++
      if (slow) await sleep(600)
      return { run: runs }
    })
  })
  t.teardown(() => app.close())
  await app.inject('/timeout')
  await sleep(1100)
  slow = true
  const started = Date.now()
  const answer = await app.inject('/timeout')
  const elapsed = Date.now() - started
  t.equal(answer.statusCode, 200)
  t.equal(answer.headers['x-cache'], 'STALE')
  t.same(answer.json(), { run: 1 })
  t.ok(elapsed < 400, `answered after the 100 ms timeout, not the 600 ms handler (took ${elapsed} ms)`)
  await sleep(600)
})
