// Two defects found beside the per-caller reads (issue 23), over real HTTP:
// - a hijacked miss left its flight open: the next request for the key waited the whole
//   collapse wait (5 s) before running its own handler;
// - a write route on the URL of a read route keyed by a template (`key: 'k:{id}'`) invalidated
//   and wrote `GET:/k/1`, so reads kept the old value.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { MemoryCache, RedisCache, type EmberCache } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { startRedis } from './helpers/servers'

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address() as { port: number }
  return `http://127.0.0.1:${address.port}`
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

t.test('a hijacked miss releases the requests waiting for it at once, and stores nothing', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache)
  let runs = 0
  app.get('/h', { config: { cache: { mode: 'memory', ttl: 60 } } }, async (_request, reply) => {
    const run = ++runs
    if (run === 1) {
      reply.hijack()
      // The hijacked answer takes its time; whoever waited for this miss must not.
      setTimeout(() => {
        reply.raw.writeHead(200, { 'content-type': 'text/plain' })
        reply.raw.end('hijacked')
      }, 800)
      return reply
    }
    return 'run ' + run
  })
  const base = await listen(app)
  const started = Date.now()
  const first = fetch(base + '/h').then(async (res) => ({ body: await res.text(), at: Date.now() - started }))
  await sleep(50)
  const second = await fetch(base + '/h')
  const secondAt = Date.now() - started
  t.equal(await second.text(), 'run 2', 'the waiter ran its own handler')
  t.ok(secondAt < 600, `it did not wait for the hijacked answer (${secondAt} ms)`)
  t.equal((await first).body, 'hijacked')
  t.ok((await first).at >= 800, 'the hijacked answer came when its handler sent it')
  const third = await fetch(base + '/h')
  t.equal(third.headers.get('x-cache'), 'HIT', 'the waiter\'s own answer was stored')
  t.equal(await third.text(), 'run 2', 'nothing of the hijacked miss was')
})

function writeKeySuite (t: Test, label: string, make: () => EmberCache): void {
  t.test(`${label}: a write updates the entry of a read route keyed by a template`, async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(emberCache)
    const names: Record<string, string> = { 1: 'uno' }
    const cache = make()
    app.get('/k/:id', { config: { cache: { cache, ttl: 60, key: 'k:{id}' } } }, async (request) => ({ name: names[(request.params as { id: string }).id] }))
    app.put('/k/:id', { config: { cache: { cache, writeThrough: true } } }, async (request) => {
      const { id } = request.params as { id: string }
      names[id] = (request.body as { name: string }).name
      return { name: names[id] }
    })
    // Declared before its read route: write routes find theirs when the app is ready.
    app.delete('/later/:id', { config: { cache: { cache } } }, async (request) => {
      delete names[(request.params as { id: string }).id]
      return { deleted: true }
    })
    app.get('/later/:id', { config: { cache: { cache, ttl: 60, key: 'later:{id}' } } }, async (request) => ({ name: names[(request.params as { id: string }).id] ?? null }))
    const base = await listen(app)

    t.same(await (await fetch(base + '/k/1')).json(), { name: 'uno' })
    t.equal((await fetch(base + '/k/1')).headers.get('x-cache'), 'HIT')
    const put = await fetch(base + '/k/1', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'one' }) })
    t.equal(put.status, 200)
    const after = await fetch(base + '/k/1')
    t.same(await after.json(), { name: 'one' }, 'the read after the write sees it')
    t.equal(after.headers.get('x-cache'), 'HIT', 'written through, under the read route\'s key')

    names[2] = 'dos'
    t.same(await (await fetch(base + '/later/2')).json(), { name: 'dos' })
    t.equal((await fetch(base + '/later/2')).headers.get('x-cache'), 'HIT')
    t.equal((await fetch(base + '/later/2', { method: 'DELETE' })).status, 200)
    const gone = await fetch(base + '/later/2')
    t.same(await gone.json(), { name: null }, 'invalidated under the read route\'s key')
    t.equal(gone.headers.get('x-cache'), 'MISS')
  })
}

writeKeySuite(t, 'memory', () => new MemoryCache())

t.test('redis', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  writeKeySuite(t, 'redis', () => new RedisCache({ url: redis.url, keyPrefix: freshPrefix('writekeys') }))
})

t.test('a write route whose read route is keyed by a keyFn is refused when the app starts, naming both', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache)
  const cache = new MemoryCache()
  app.get('/me/:id', { config: { cache: { cache, keyFn: (request) => 'me:' + String(request.headers['x-user']) } } }, async () => 'me')
  app.put('/me/:id', { config: { cache: { cache } } }, async () => 'written')
  await t.rejects(async () => await app.ready(), /PUT \/me\/:id config\.cache.*GET \/me\/:id is keyed by a keyFn/)

  const withTargets = Fastify()
  t.teardown(() => withTargets.close())
  await withTargets.register(emberCache)
  withTargets.get('/me/:id', { config: { cache: { cache, keyFn: (request) => 'me:' + String(request.headers['x-user']), tags: ['me'] } } }, async () => 'me')
  withTargets.put('/me/:id', { config: { cache: { cache, invalidate: ['tags:me'] } } }, async () => 'written')
  await t.resolves(async () => await withTargets.ready(), 'with targets of its own, the write route is fine')
})
