// stale-if-error timeouts and write-through, against what a review found: each test is named
// after the bug it pins.
import t from 'tap'
import Fastify from 'fastify'
import { emberCache, MemoryCache } from '../lib/index'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

t.test('stale-if-error timeout fired after the handler had answered: stale headers on a fresh body, fresh answer not stored', async (t) => {
  const app = Fastify()
  await app.register(emberCache)
  let runs = 0
  // Another plugin's onSend that takes a while (compression of a big body, a signing hook...).
  app.addHook('onSend', async (request, _reply, payload) => {
    if (request.headers['x-slow-onsend'] !== undefined) await sleep(150)
    return payload
  })
  app.get('/x', { config: { cache: { cache: new MemoryCache(), ttl: 1, staleIfError: 30, staleIfErrorTimeout: 50 } } }, async () => ({ v: ++runs }))
  await app.ready()
  t.teardown(() => app.close())

  const first = await app.inject('/x')
  await sleep(1100)
  // The handler answers at once (well within 50 ms); only the onSend chain is slow.
  const second = await app.inject({ url: '/x', headers: { 'x-slow-onsend': '1' } })
  t.equal(second.json().v, 2, 'the handler answered in time: its body is sent')
  t.equal(second.headers['x-cache'], 'MISS', 'and it is a MISS, not STALE')
  t.not(second.headers.etag, first.headers.etag, 'the ETag belongs to the body sent, not to the stale entry')
  await sleep(200)
  const third = await app.inject('/x')
  t.equal(third.headers['x-cache'], 'HIT', 'the fresh answer was stored')
  t.equal(third.json().v, 2)
  t.equal(runs, 2)
})

t.test('stale-if-error timeout still serves stale when the handler is slow', async (t) => {
  const app = Fastify()
  await app.register(emberCache)
  let runs = 0
  app.get('/slow', { config: { cache: { cache: new MemoryCache(), ttl: 1, staleIfError: 30, staleIfErrorTimeout: 50 } } }, async () => {
    runs++
    if (runs > 1) await sleep(300)
    return { v: runs }
  })
  await app.ready()
  t.teardown(() => app.close())
  await app.inject('/slow')
  await sleep(1100)
  const res = await app.inject('/slow')
  t.equal(res.headers['x-cache'], 'STALE')
  t.equal(res.json().v, 1)
  await sleep(350)
})

t.test('writeThrough left the old variants of the GET entry in place: reads after a write were stale', async (t) => {
  const app = Fastify()
  await app.register(emberCache)
  const cache = new MemoryCache({ ttl: 60 })
  let doc = 'v1'
  // The read varies on Accept-Language (learned from its Vary); the write route configures nothing.
  app.get('/doc', { config: { cache } }, async (request, reply) => {
    reply.header('vary', 'accept-language')
    return { doc, lang: request.headers['accept-language'] ?? null }
  })
  app.put('/doc', { config: { cache: { cache, writeThrough: true } } }, async (request) => {
    doc = (request.body as { doc: string }).doc
    return { doc, lang: null }
  })
  await app.ready()
  t.teardown(() => app.close())

  const headers = { 'accept-language': 'en' }
  t.equal((await app.inject({ url: '/doc', headers })).json().doc, 'v1')
  t.equal((await app.inject({ url: '/doc', headers })).headers['x-cache'], 'HIT')
  t.equal((await app.inject({ method: 'PUT', url: '/doc', payload: { doc: 'v2' } })).statusCode, 200)
  const after = await app.inject({ url: '/doc', headers })
  t.equal(after.json().doc, 'v2', 'the read after the write sees the write')
})

t.test('writeThrough stored a credentialed PUT answer where anonymous GETs read it', async (t) => {
  const app = Fastify()
  await app.register(emberCache)
  const cache = new MemoryCache({ ttl: 60 })
  const profile = { name: 'ada', email: 'ada@example.com' }
  app.get('/profile', { config: { cache } }, async () => ({ name: profile.name }))
  app.put('/profile', { config: { cache: { cache, writeThrough: true } } }, async (request) => {
    Object.assign(profile, request.body)
    // The owner's own view: private fields included.
    return { ...profile }
  })
  await app.ready()
  t.teardown(() => app.close())

  await app.inject('/profile')
  const put = await app.inject({ method: 'PUT', url: '/profile', headers: { authorization: 'Bearer ada' }, payload: { name: 'Ada' } })
  t.equal(put.statusCode, 200)
  const anonymous = await app.inject('/profile')
  t.same(anonymous.json(), { name: 'Ada' }, 'the anonymous read gets the public view, not the owner\'s answer')
})
