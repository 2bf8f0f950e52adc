// Write routes keep reads fresh: POST/PUT/PATCH/DELETE with config.cache invalidate the GET
// entry of their own URL after a 2xx, plus declared targets; writeThrough stores the answer.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { MemoryCache, StaticCache, type RouteCacheConfig } from '../lib/index'
import { emberApp, type Scope } from './helpers/apps'

interface Store {
  app: FastifyInstance
  cache: MemoryCache
  data: Map<string, unknown>
  reads: () => number
  get: (url: string, headers?: Record<string, string>) => Promise<{ status: string | undefined, body: unknown }>
}

/** A tiny resource API on one shared MemoryCache; writes are added by each test. */
async function build (t: Scope, readCache?: (cache: MemoryCache) => RouteCacheConfig): Promise<Store> {
  const app = await emberApp(t)
  const cache = new MemoryCache()
  const data = new Map<string, unknown>([['1', { name: 'one' }], ['2', { name: 'two' }]])
  let reads = 0
  const config = readCache === undefined ? cache : readCache(cache)
  app.get('/items/:id', { config: { cache: config } }, async (request, reply) => {
    reads++
    const item = data.get((request.params as { id: string }).id)
    if (item === undefined) return reply.code(404).send({ missing: true })
    return item
  })
  app.get('/items', { config: { cache: config } }, async () => {
    reads++
    return [...data.values()]
  })
  const get = async (url: string, headers: Record<string, string> = {}): Promise<{ status: string | undefined, body: unknown }> => {
    const res = await app.inject({ url, headers })
    return { status: res.headers['x-cache'] as string | undefined, body: res.json() }
  }
  return { app, cache, data, reads: () => reads, get }
}

for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
  t.test(`${method} with config.cache invalidates the GET entry of its own URL after a 2xx`, async (t) => {
    const store = await build(t)
    const { app, cache, data } = store
    app.route({
      method,
      url: '/items/:id',
      config: { cache },
      handler: async (request, reply) => {
        const id = (request.params as { id: string }).id
        if (method === 'DELETE') data.delete(id)
        else data.set(id, request.body)
        return reply.code(method === 'POST' ? 201 : 200).send({ ok: true })
      }
    })
    await store.get('/items/1')
    await store.get('/items/2')
    t.equal((await store.get('/items/1')).status, 'HIT')
    const res = await app.inject({ method, url: '/items/1', payload: { name: 'changed' } })
    t.equal(res.statusCode, method === 'POST' ? 201 : 200)
    const after = await store.get('/items/1')
    t.equal(after.status, 'MISS', 'the next read goes to the handler')
    if (method === 'DELETE') t.same(after.body, { missing: true })
    else t.same(after.body, { name: 'changed' }, 'and sees the change')
    t.equal((await store.get('/items/2')).status, 'HIT', 'other URLs are untouched')
  })
}

t.test('the own-URL key of a write includes its sorted query', async (t) => {
  const store = await build(t)
  const { app, cache } = store
  app.post('/items', { config: { cache } }, async () => ({ ok: true }))
  await store.get('/items?b=2&a=1')
  await store.get('/items')
  await app.inject({ method: 'POST', url: '/items?a=1&b=2' })
  t.equal((await store.get('/items?b=2&a=1')).status, 'MISS')
  t.equal((await store.get('/items')).status, 'HIT', 'the query-less entry is another key')
})

t.test('a write on a { mode: memory } route clears reads of the same mode', async (t) => {
  const store = await build(t, () => ({ mode: 'memory' }))
  const { app, data } = store
  app.put('/items/:id', { config: { cache: { mode: 'memory' } } }, async (request) => {
    data.set((request.params as { id: string }).id, request.body)
    return { ok: true }
  })
  await store.get('/items/1')
  await app.inject({ method: 'PUT', url: '/items/1', payload: { name: 'new' } })
  const after = await store.get('/items/1')
  t.equal(after.status, 'MISS')
  t.same(after.body, { name: 'new' })
})

t.test('a write on a StaticCache clears the static entry', async (t) => {
  const cache = new StaticCache()
  const app = await emberApp(t)
  let version = 1
  app.get('/config', { config: { cache } }, async () => ({ version }))
  app.put('/config', { config: { cache } }, async () => ({ version: ++version }))
  await app.inject('/config')
  await app.inject({ method: 'PUT', url: '/config' })
  const after = await app.inject('/config')
  t.equal(after.headers['x-cache'], 'MISS')
  t.same(after.json(), { version: 2 })
})

t.test('RFC 9111 §4.4: nothing is invalidated when the write fails (4xx, 5xx); a 3xx is a non-error and invalidates', async (t) => {
  const store = await build(t)
  const { app, cache, data } = store
  app.put('/items/:id', { config: { cache } }, async (request, reply) => {
    const body = request.body as { fail?: string, name?: string }
    data.set((request.params as { id: string }).id, { name: body.name })
    if (body.fail === 'throw') throw new Error('write failed')
    if (body.fail === '409') return reply.code(409).send({ conflict: true })
    if (body.fail === '302') return reply.redirect('/items/1', 302)
    return { ok: true }
  })
  await store.get('/items/1')
  for (const fail of ['throw', '409']) {
    const res = await app.inject({ method: 'PUT', url: '/items/1', payload: { fail, name: 'bad-' + fail } })
    t.not(res.statusCode, 200, fail)
    const after = await store.get('/items/1')
    t.equal(after.status, 'HIT', `entry kept after ${fail}`)
    t.same(after.body, { name: 'one' })
  }
  t.equal(store.reads(), 1)
  const redirected = await app.inject({ method: 'PUT', url: '/items/1', payload: { fail: '302', name: 'moved' } })
  t.equal(redirected.statusCode, 302)
  t.equal((await store.get('/items/1')).status, 'MISS', 'a 302 to an unsafe method invalidates')
})

t.test('declared invalidate targets: patterns, keys and tags with {placeholders}', async (t) => {
  const app = await emberApp(t)
  const cache = new MemoryCache()
  const reads = new Map<string, number>()
  const read = async (request: { url: string }): Promise<unknown> => {
    reads.set(request.url, (reads.get(request.url) ?? 0) + 1)
    return { url: request.url }
  }
  app.get('/users/:userId/widgets', { config: { cache } }, read)
  app.get('/users/:userId/widgets/:widgetId', { config: { cache } }, read)
  app.get('/dashboard', { config: { cache: { cache, tags: ['x'] } } }, read)
  app.get('/profile/:userId', { config: { cache: { cache, tags: (request) => ['user:' + (request.params as { userId: string }).userId] } } }, read)
  app.get('/stats', { config: { cache } }, read)
  app.post('/users/:userId/widgets', {
    config: {
      cache: {
        cache,
        invalidate: ['GET:/users/{userId}/widgets*', 'tags:x', 'tags:user:{userId}', 'GET:/stats?team={query.team}']
      }
    }
  }, async () => ({ created: true }))

  const status = async (url: string): Promise<string | undefined> => (await app.inject(url)).headers['x-cache'] as string | undefined
  const urls = ['/users/1/widgets', '/users/1/widgets?page=2', '/users/1/widgets/9', '/users/2/widgets', '/users/2/widgets/9',
    '/dashboard', '/profile/1', '/profile/2', '/stats?team=red', '/stats?team=blue']
  for (const url of urls) await status(url)
  for (const url of urls) t.equal(await status(url), 'HIT', `${url} cached`)

  const res = await app.inject({ method: 'POST', url: '/users/1/widgets?team=red', payload: {} })
  t.equal(res.statusCode, 200)
  t.equal(await status('/users/1/widgets'), 'MISS', 'own URL')
  t.equal(await status('/users/1/widgets?page=2'), 'MISS', 'pattern filled from params')
  t.equal(await status('/users/1/widgets/9'), 'MISS', 'pattern reaches below')
  t.equal(await status('/users/2/widgets'), 'HIT', 'another user is untouched')
  t.equal(await status('/users/2/widgets/9'), 'HIT')
  t.equal(await status('/dashboard'), 'MISS', 'tags:x')
  t.equal(await status('/profile/1'), 'MISS', 'tags filled from params')
  t.equal(await status('/profile/2'), 'HIT')
  t.equal(await status('/stats?team=red'), 'MISS', 'key filled from the query')
  t.equal(await status('/stats?team=blue'), 'HIT')
})

t.test('placeholder values cannot widen a pattern: a param of * is literal', async (t) => {
  const app = await emberApp(t)
  const cache = new MemoryCache()
  app.get('/users/:userId/widgets', { config: { cache } }, async (request) => ({ url: request.url }))
  app.post('/users/:userId/touch', { config: { cache: { cache, invalidate: ['GET:/users/{userId}/widgets*'] } } }, async () => ({ ok: true }))
  await app.inject('/users/1/widgets')
  await app.inject('/users/2/widgets')
  const res = await app.inject({ method: 'POST', url: '/users/%2A/touch' })
  t.equal(res.statusCode, 200)
  t.equal((await app.inject('/users/1/widgets')).headers['x-cache'], 'HIT', 'user 1 kept')
  t.equal((await app.inject('/users/2/widgets')).headers['x-cache'], 'HIT', 'user 2 kept')
})

t.test('declared targets are not invalidated when the write fails', async (t) => {
  const app = await emberApp(t)
  const cache = new MemoryCache()
  app.get('/list', { config: { cache: { cache, tags: ['list'] } } }, async () => 'list')
  app.delete('/things/:id', { config: { cache: { cache, invalidate: ['tags:list', 'GET:/list'] } } }, async (request, reply) => reply.code(403).send('no'))
  await app.inject('/list')
  await app.inject({ method: 'DELETE', url: '/things/1' })
  t.equal((await app.inject('/list')).headers['x-cache'], 'HIT')
})

for (const method of ['PUT', 'PATCH'] as const) {
  t.test(`${method} writeThrough: the next GET is a HIT with the new body`, async (t) => {
    const store = await build(t)
    const { app, cache, data } = store
    app.route({
      method,
      url: '/items/:id',
      config: { cache: { cache, writeThrough: true } },
      handler: async (request, reply) => {
        const item = { ...(request.body as object), saved: true }
        data.set((request.params as { id: string }).id, item)
        reply.header('x-version', '2')
        return reply.code(method === 'PUT' ? 201 : 200).send(item)
      }
    })
    await store.get('/items/1')
    const write = await app.inject({ method, url: '/items/1', payload: { name: 'written' } })
    t.same(write.json(), { name: 'written', saved: true })
    const readsBefore = store.reads()
    const res = await app.inject('/items/1')
    t.equal(res.headers['x-cache'], 'HIT', 'served from what the write stored')
    t.equal(res.statusCode, 200, 'a 201 to the write is a 200 to the read')
    t.same(res.json(), { name: 'written', saved: true })
    t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
    t.equal(res.headers['x-version'], '2')
    t.equal(store.reads(), readsBefore, 'the read handler did not run')
  })
}

t.test('writeThrough keeps route tags on the written entry', async (t) => {
  const cache = new MemoryCache()
  const app = await emberApp(t)
  let reads = 0
  app.get('/doc', { config: { cache: { cache, tags: ['doc'] } } }, async () => ({ reads: ++reads }))
  app.put('/doc', { config: { cache: { cache, tags: ['doc'], writeThrough: true } } }, async () => ({ written: true }))
  await app.inject({ method: 'PUT', url: '/doc' })
  t.equal((await app.inject('/doc')).headers['x-cache'], 'HIT')
  await cache.invalidate({ tags: 'doc' })
  const after = await app.inject('/doc')
  t.equal(after.headers['x-cache'], 'MISS')
  t.same(after.json(), { reads: 1 })
})

t.test('writeThrough of an unstorable answer falls back to invalidation', async (t) => {
  const store = await build(t)
  const { app, cache, data } = store
  app.put('/items/:id', { config: { cache: { cache, writeThrough: true } } }, async (request, reply) => {
    const item = request.body as { name: string }
    data.set((request.params as { id: string }).id, item)
    reply.header('set-cookie', 'edited=1')
    return item
  })
  await store.get('/items/1')
  await app.inject({ method: 'PUT', url: '/items/1', payload: { name: 'fresh' } })
  const after = await store.get('/items/1')
  t.equal(after.status, 'MISS', 'the Set-Cookie answer was not stored')
  t.same(after.body, { name: 'fresh' }, 'and the old entry is gone')
})

t.test('writeThrough stores nothing when the write fails', async (t) => {
  const store = await build(t)
  const { app, cache } = store
  app.put('/items/:id', { config: { cache: { cache, writeThrough: true } } }, async (request, reply) => reply.code(422).send({ invalid: true }))
  await store.get('/items/1')
  await app.inject({ method: 'PUT', url: '/items/1', payload: {} })
  const after = await store.get('/items/1')
  t.equal(after.status, 'HIT')
  t.same(after.body, { name: 'one' })
})

t.test('writeThrough wins over a slower read that started before it', async (t) => {
  const cache = new MemoryCache()
  const app = await emberApp(t)
  let value = 'old'
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  let reads = 0
  app.get('/v', { config: { cache } }, async () => {
    const seen = value
    if (++reads === 1) await gate
    return { value: seen }
  })
  app.put('/v', { config: { cache: { cache, writeThrough: true } } }, async () => {
    value = 'new'
    return { value }
  })
  const slowRead = app.inject('/v')
  await new Promise((resolve) => setTimeout(resolve, 20))
  await app.inject({ method: 'PUT', url: '/v' })
  release()
  t.same((await slowRead).json(), { value: 'old' })
  const after = await app.inject('/v')
  t.equal(after.headers['x-cache'], 'HIT')
  t.same(after.json(), { value: 'new' }, 'the slow read did not overwrite the write')
})

t.test('write routes without config.cache invalidate nothing', async (t) => {
  const store = await build(t)
  const { app } = store
  app.put('/items/:id', async () => ({ ok: true }))
  await store.get('/items/1')
  await app.inject({ method: 'PUT', url: '/items/1', payload: {} })
  t.equal((await store.get('/items/1')).status, 'HIT')
})

t.test('a tags function that throws does not fail a writeThrough write', async (t) => {
  const cache = new MemoryCache()
  const app = await emberApp(t)
  const tags = (): string[] => { throw new Error('tags exploded') }
  app.get('/doc', { config: { cache: { cache, tags } } }, async () => 'read')
  app.put('/doc', { config: { cache: { cache, tags, writeThrough: true } } }, async () => 'written')
  const put = await app.inject({ method: 'PUT', url: '/doc' })
  t.equal(put.statusCode, 200, 'the write succeeded, so it answers 200')
  t.equal(put.body, 'written')
  const get = await app.inject('/doc')
  t.equal(get.headers['x-cache'], 'HIT', 'stored without tags')
  t.equal(get.body, 'written')
})
