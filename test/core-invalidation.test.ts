// Invalidation by key, pattern and tags: on cache objects, through reply.cacheInvalidate
// (route cache, or every managed cache) and fastify.emberCache.invalidate.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { MemoryCache, StaticCache, type InvalidationTarget, type RouteCacheConfig } from '../lib/index'
import { emberApp, type Scope } from './helpers/apps'

interface App {
  app: FastifyInstance
  calls: Map<string, number>
  /** x-cache of GET url. */
  status: (url: string, headers?: Record<string, string>) => Promise<string | undefined>
}

async function build (t: Scope, routes: Record<string, RouteCacheConfig>): Promise<App> {
  const app = await emberApp(t)
  const calls = new Map<string, number>()
  for (const [url, cache] of Object.entries(routes)) {
    app.get(url, { config: { cache } }, async (request) => {
      const n = (calls.get(request.url) ?? 0) + 1
      calls.set(request.url, n)
      return { url: request.url, n }
    })
  }
  const status = async (url: string, headers: Record<string, string> = {}): Promise<string | undefined> =>
    (await app.inject({ url, headers })).headers['x-cache'] as string | undefined
  return { app, calls, status }
}

for (const [label, make] of [
  ['MemoryCache', () => new MemoryCache()],
  ['StaticCache', () => new StaticCache()]
] as Array<[string, () => MemoryCache | StaticCache]>) {
  t.test(`${label}: invalidate by key`, async (t) => {
    const cache = make()
    const { status, calls } = await build(t, { '/tasks': cache, '/tasks/:id': cache })
    await status('/tasks')
    await status('/tasks/1')
    await status('/tasks/2')
    await cache.invalidate({ key: 'GET:/tasks/1' })
    t.equal(await status('/tasks/1'), 'MISS')
    t.equal(await status('/tasks/2'), 'HIT')
    t.equal(await status('/tasks'), 'HIT')
    await cache.invalidate('GET:/tasks')
    t.equal(await status('/tasks'), 'MISS', 'a bare string is a key')
    t.equal(calls.get('/tasks'), 2)
  })

  t.test(`${label}: invalidate several keys at once`, async (t) => {
    const cache = make()
    const { status } = await build(t, { '/tasks/:id': cache })
    for (const id of [1, 2, 3]) await status('/tasks/' + id)
    await cache.invalidate({ key: ['GET:/tasks/1', 'GET:/tasks/2'] })
    t.equal(await status('/tasks/1'), 'MISS')
    t.equal(await status('/tasks/2'), 'MISS')
    t.equal(await status('/tasks/3'), 'HIT')
    await cache.invalidate({ keys: ['GET:/tasks/3'] })
    t.equal(await status('/tasks/3'), 'MISS')
  })

  t.test(`${label}: invalidate by pattern`, async (t) => {
    const cache = make()
    const { status } = await build(t, { '/tasks': cache, '/tasks/:id': cache, '/users': cache })
    for (const url of ['/tasks', '/tasks?page=2', '/tasks/1', '/users']) await status(url)
    await cache.invalidate({ pattern: 'GET:/tasks*' })
    t.equal(await status('/tasks'), 'MISS')
    t.equal(await status('/tasks?page=2'), 'MISS')
    t.equal(await status('/tasks/1'), 'MISS')
    t.equal(await status('/users'), 'HIT', 'keys outside the pattern stay')
    await cache.invalidate({ pattern: 'GET:/tasks/?' })
    t.equal(await status('/tasks/1'), 'MISS', '? matches one character')
    t.equal(await status('/tasks'), 'HIT')
  })

  t.test(`${label}: invalidate by tags (array)`, async (t) => {
    const cache = make()
    const { status } = await build(t, {
      '/a': { cache, tags: ['tasks', 'list'] },
      '/b': { cache, tags: ['tasks'] },
      '/c': { cache, tags: ['users'] },
      '/d': cache
    })
    for (const url of ['/a', '/b', '/c', '/d']) await status(url)
    await cache.invalidate({ tags: ['tasks'] })
    t.equal(await status('/a'), 'MISS')
    t.equal(await status('/b'), 'MISS')
    t.equal(await status('/c'), 'HIT')
    t.equal(await status('/d'), 'HIT', 'untagged entries stay')
    await cache.invalidate({ tags: 'users' })
    t.equal(await status('/c'), 'MISS', 'a single tag string works')
    t.equal(await status('/a'), 'HIT', 'entries stored again after invalidation are tagged again')
    await cache.invalidate({ tags: ['list', 'nothing-has-this'] })
    t.equal(await status('/a'), 'MISS')
    t.equal(await status('/b'), 'HIT')
  })
}

t.test('tags computed per request by a function', async (t) => {
  const cache = new MemoryCache()
  const { status } = await build(t, {
    '/users/:userId/tasks': { cache, tags: (request) => ['user:' + (request.params as { userId: string }).userId, 'tasks'] }
  })
  await status('/users/1/tasks')
  await status('/users/2/tasks')
  await cache.invalidate({ tags: 'user:1' })
  t.equal(await status('/users/1/tasks'), 'MISS')
  t.equal(await status('/users/2/tasks'), 'HIT')
  await cache.invalidate({ tags: 'tasks' })
  t.equal(await status('/users/1/tasks'), 'MISS')
  t.equal(await status('/users/2/tasks'), 'MISS')
})

t.test('a tags function that throws stores the entry without tags', async (t) => {
  const cache = new MemoryCache()
  const { status } = await build(t, { '/x': { cache, tags: () => { throw new Error('no') } } })
  t.equal(await status('/x'), 'MISS')
  t.equal(await status('/x'), 'HIT')
})

t.test('tags on the mode cache form: { mode, tags }', async (t) => {
  const { app, status } = await build(t, { '/x': { mode: 'memory', tags: ['x'] }, '/y': { mode: 'memory', tags: ['y'] } })
  await status('/x')
  await status('/y')
  await app.emberCache.invalidate({ tags: ['x'] })
  t.equal(await status('/x'), 'MISS')
  t.equal(await status('/y'), 'HIT')
})

t.test('fastify.emberCache.invalidate reaches every managed cache', async (t) => {
  const one = new MemoryCache()
  const two = new StaticCache()
  const { app, status } = await build(t, { '/one': one, '/two': two, '/three': { mode: 'memory' }, '/four': { mode: 'static' } })
  for (const url of ['/one', '/two', '/three', '/four']) await status(url)
  t.equal(app.emberCache.caches.length, 4)
  t.ok(app.emberCache.caches.includes(one))
  t.ok(app.emberCache.caches.includes(two))
  await app.emberCache.invalidate({ pattern: 'GET:/*' })
  for (const url of ['/one', '/two', '/three', '/four']) t.equal(await status(url), 'MISS', url)
  await app.emberCache.invalidate('GET:/two')
  t.equal(await status('/two'), 'MISS')
  t.equal(await status('/one'), 'HIT')
})

t.test('invalid targets reject with FST_EMBER_CACHE_INVALID_TARGET', async (t) => {
  const cache = new MemoryCache()
  const { app } = await build(t, { '/x': cache })
  for (const target of [{}, { key: '' }, { key: 5 }, { pattern: '' }, { tags: [1] }, { nope: 'x' }, null, 42, '']) {
    await t.rejects(cache.invalidate(target as unknown as InvalidationTarget), { code: 'FST_EMBER_CACHE_INVALID_TARGET' }, JSON.stringify(target))
  }
  await t.rejects(app.emberCache.invalidate({ bogus: true } as unknown as InvalidationTarget), { code: 'FST_EMBER_CACHE_INVALID_TARGET' })
})

t.test('reply.cacheInvalidate on a route without config.cache reaches every managed cache', async (t) => {
  const one = new MemoryCache()
  const two = new MemoryCache()
  const { app, status } = await build(t, { '/one': one, '/two': two, '/three': { mode: 'static' } })
  app.post('/admin/flush', async (request, reply) => {
    await reply.cacheInvalidate(request.body as InvalidationTarget)
    return { ok: true }
  })
  for (const url of ['/one', '/two', '/three']) await status(url)
  const res = await app.inject({ method: 'POST', url: '/admin/flush', payload: { key: 'GET:/two' } })
  t.equal(res.statusCode, 200)
  t.equal(await status('/two'), 'MISS')
  t.equal(await status('/one'), 'HIT')
  await app.inject({ method: 'POST', url: '/admin/flush', payload: { pattern: 'GET:/*' } })
  for (const url of ['/one', '/two', '/three']) t.equal(await status(url), 'MISS', url)
})

t.test('reply.cacheInvalidate on a cached route only touches that route\'s cache', async (t) => {
  const mine = new MemoryCache()
  const other = new MemoryCache()
  const { app, status } = await build(t, { '/mine': mine, '/other': other })
  app.post('/mine/reset', { config: { cache: mine } }, async (request, reply) => {
    await reply.cacheInvalidate({ pattern: 'GET:/*' })
    return { ok: true }
  })
  await status('/mine')
  await status('/other')
  const res = await app.inject({ method: 'POST', url: '/mine/reset' })
  t.equal(res.statusCode, 200)
  t.equal(await status('/mine'), 'MISS')
  t.equal(await status('/other'), 'HIT', 'another cache is left alone')
})

t.test('reply.cacheInvalidate in a cached GET handler uses the route cache', async (t) => {
  const mine = new MemoryCache()
  const other = new MemoryCache()
  const { app, status } = await build(t, { '/list': mine, '/elsewhere': other })
  let resets = 0
  app.get('/reset', { config: { cache: { cache: mine, statusCodes: [299] } } }, async (request, reply) => {
    resets++
    await reply.cacheInvalidate('GET:/list')
    await reply.cacheInvalidate('GET:/elsewhere')
    return 'done'
  })
  await status('/list')
  await status('/elsewhere')
  await app.inject('/reset')
  t.equal(resets, 1)
  t.equal(await status('/list'), 'MISS')
  t.equal(await status('/elsewhere'), 'HIT')
})

t.test('reply.cacheInvalidate rejects a bad target so the handler can see its mistake', async (t) => {
  const { app } = await build(t, { '/x': { mode: 'memory' } })
  app.post('/bad', async (request, reply) => {
    await reply.cacheInvalidate({ wrong: 1 } as unknown as InvalidationTarget)
    return 'unreachable'
  })
  const res = await app.inject({ method: 'POST', url: '/bad' })
  t.equal(res.statusCode, 500)
  t.equal(res.json().code, 'FST_EMBER_CACHE_INVALID_TARGET')
})

t.test('an invalidation during a slow miss wins: the older response is not stored', async (t) => {
  const cache = new MemoryCache()
  const app = await emberApp(t)
  let version = 1
  let calls = 0
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  app.get('/v', { config: { cache } }, async () => {
    calls++
    const seen = version
    if (calls === 1) await gate
    return { version: seen }
  })
  const slow = app.inject('/v')
  await new Promise((resolve) => setTimeout(resolve, 20))
  version = 2
  await cache.invalidate('GET:/v')
  release()
  t.same((await slow).json(), { version: 1 })
  const next = await app.inject('/v')
  t.equal(next.headers['x-cache'], 'MISS', 'the pre-invalidation response was not stored')
  t.same(next.json(), { version: 2 })
  t.equal((await app.inject('/v')).headers['x-cache'], 'HIT')
})
