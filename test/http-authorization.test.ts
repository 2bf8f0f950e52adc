// Requests with credentials (RFC 9111 §3.5, issue 4): they neither read nor write the cache
// unless the route opted in (private: true, keyFn / key, or varyHeaders on authorization).
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { MemoryCache, type RouteCacheConfig } from '../lib/index'
import { countingApp, emberApp, type Scope } from './helpers/apps'

/** GET /r answers with the caller's credential and a run counter. */
async function build (t: Scope, cache: RouteCacheConfig = { mode: 'memory' }): Promise<{ app: FastifyInstance, calls: () => number }> {
  return await countingApp(t, (request, _reply, run) => String(request.headers.authorization ?? 'anonymous') + '#' + String(run), cache)
}

const as = (credential: string): { url: string, headers: Record<string, string> } => ({ url: '/r', headers: { authorization: credential } })

t.test('RFC 9111 §3.5: a request with Authorization is not answered from a stored response', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/r')
  const res = await app.inject(as('Bearer alice'))
  t.equal(res.body, 'Bearer alice#2', "the anonymous entry is not served to alice, nor alice's to anyone")
  t.equal(res.headers['x-cache'], 'BYPASS')
  t.equal(res.headers['cache-status'], 'ember; fwd=bypass; detail=authorization')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §3.5: the response to a request with Authorization is not stored', async (t) => {
  const { app, calls } = await build(t)
  await app.inject(as('Bearer alice'))
  const bob = await app.inject(as('Bearer bob'))
  t.equal(bob.body, 'Bearer bob#2')
  const anonymous = await app.inject('/r')
  t.equal(anonymous.headers['x-cache'], 'MISS', 'nothing was stored by the credentialed requests')
  t.equal(anonymous.body, 'anonymous#3')
  t.equal(anonymous.headers['cache-control'], 'max-age=60')
  t.equal(calls(), 3)
})

t.test('RFC 9111 §3.5: private: true opts the route in (the route vouches for its key)', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory', private: true })
  const first = await app.inject(as('Bearer alice'))
  const second = await app.inject(as('Bearer alice'))
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(second.headers['x-cache'], 'HIT')
  t.equal(second.body, 'Bearer alice#1')
  t.equal(second.headers['cache-control'], 'private, max-age=60')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §3.5: a keyFn opts the route in, and keeps users apart', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory', keyFn: (request) => 'me:' + String(request.headers.authorization) })
  await app.inject(as('Bearer alice'))
  const bob = await app.inject(as('Bearer bob'))
  const alice = await app.inject(as('Bearer alice'))
  t.equal(bob.body, 'Bearer bob#2')
  t.equal(alice.headers['x-cache'], 'HIT')
  t.equal(alice.body, 'Bearer alice#1')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §3.5: a key template made of URL parts does not opt the route in (it does not separate users)', async (t) => {
  const app = await emberApp(t)
  let calls = 0
  app.get('/users/:id', { config: { cache: { mode: 'memory', key: 'user:{id}' } } }, async (request) => String(request.headers.authorization) + '#' + String(++calls))
  await app.inject({ url: '/users/1', headers: { authorization: 'Bearer alice' } })
  const bob = await app.inject({ url: '/users/1', headers: { authorization: 'Bearer bob' } })
  t.equal(bob.headers['x-cache'], 'BYPASS')
  t.equal(bob.body, 'Bearer bob#2', 'bob never gets alice\'s answer')
  t.equal(calls, 2)
})

t.test('RFC 9111 §3.5: private with a key template keeps one variant per credential', async (t) => {
  const app = await emberApp(t)
  let calls = 0
  app.get('/users/:id', { config: { cache: { mode: 'memory', key: 'user:{id}', private: true } } }, async (request) => String(request.headers.authorization) + '#' + String(++calls))
  await app.inject({ url: '/users/1', headers: { authorization: 'Bearer alice' } })
  const bob = await app.inject({ url: '/users/1', headers: { authorization: 'Bearer bob' } })
  t.equal(bob.body, 'Bearer bob#2', 'a miss of its own')
  const alice = await app.inject({ url: '/users/1', headers: { authorization: 'Bearer alice' } })
  t.equal(alice.headers['x-cache'], 'HIT')
  t.equal(alice.body, 'Bearer alice#1')
  t.equal(alice.headers.vary, 'authorization, cookie', 'Vary names the headers the route keys on (the credentials: Authorization and Cookie)')
})

t.test('RFC 9111 §3.5: varyHeaders including Authorization (any case) opts in with one variant per credential', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory', varyHeaders: ['Authorization'] })
  await app.inject(as('Bearer alice'))
  const bob = await app.inject(as('Bearer bob'))
  t.equal(bob.headers['x-cache'], 'MISS')
  t.equal(bob.body, 'Bearer bob#2')
  const alice = await app.inject(as('Bearer alice'))
  t.equal(alice.headers['x-cache'], 'HIT')
  t.equal(alice.body, 'Bearer alice#1')
  t.equal(calls(), 2)
})

t.test("RFC 9111 §3.5: a cache object's varyHeaders including authorization opts its routes in", async (t) => {
  const { app, calls } = await build(t, new MemoryCache({ varyHeaders: ['authorization'] }))
  await app.inject(as('Bearer alice'))
  t.equal((await app.inject(as('Bearer alice'))).headers['x-cache'], 'HIT')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §3.5: varyHeaders without authorization do not opt in', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory', varyHeaders: ['x-tenant'] })
  await app.inject(as('Bearer alice'))
  t.equal((await app.inject(as('Bearer alice'))).headers['x-cache'], 'BYPASS')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §3.5: an empty Authorization header still counts as credentials', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/r')
  t.equal((await app.inject(as(''))).headers['x-cache'], 'BYPASS')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §3.5: a private route keeps one variant per credential, never stored in clear', async (t) => {
  const cache = new MemoryCache()
  const { app, calls } = await build(t, { cache, private: true })
  t.equal((await app.inject(as('Bearer alice'))).body, 'Bearer alice#1')
  t.equal((await app.inject(as('Bearer bob'))).body, 'Bearer bob#2', "bob is not served alice's answer")
  const again = await app.inject(as('Bearer alice'))
  t.equal(again.body, 'Bearer alice#1')
  t.equal(again.headers['x-cache'], 'HIT')
  t.equal(again.headers['cache-control'], 'private, max-age=60')
  t.equal(calls(), 2)
  const stored = [...(cache.tier as unknown as { entries: Map<string, unknown> }).entries.keys()]
  t.equal(stored.length, 2)
  t.notOk(stored.some((id) => id.includes('alice') || id.includes('bob')), 'credentials appear only as hashes in stored ids')
})
