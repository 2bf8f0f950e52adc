'use strict'

const Fastify = require('fastify')
const { emberCache, MemoryCache, StaticCache, RedisCache } = require('fastify-ember-cache')
const { createDb } = require('./db')

/**
 * The example API. Every mode in one app:
 * - static:  GET /health (never changes while the process lives)
 * - memory:  GET /tasks, GET /tasks/:id (shared MemoryCache, tags, key template)
 * - { mode: 'memory' }: GET /reports
 * - per-user: GET /me/tasks (after an auth hook, one entry per user)
 * - writes:  POST/PUT/DELETE /tasks keep reads fresh declaratively
 * - redis:   GET /tasks-shared when REDIS_URL is set (shared by every instance)
 */
async function build (options = {}) {
  const app = Fastify({ logger: options.logger ?? false })
  const db = createDb()
  app.decorate('db', db)

  await app.register(emberCache, { defaultTtl: 60 })

  const taskCache = new MemoryCache({ ttl: 30, max: 10_000 })

  // Auth runs before any cached answer: the cache lookup sits after every preHandler.
  const requireUser = async (request, reply) => {
    const user = request.headers['x-user']
    if (typeof user !== 'string' || user.length === 0) {
      return reply.code(401).send({ error: 'set an x-user header' })
    }
    request.user = user
  }

  app.get('/health', { config: { cache: new StaticCache() } }, async () => {
    return { status: 'ok', startedAt: new Date().toISOString() }
  })

  app.get('/tasks', { config: { cache: { cache: taskCache, tags: ['tasks'] } } }, async () => {
    return db.list()
  })

  app.get('/tasks/:id', {
    config: { cache: { cache: taskCache, key: 'task:{id}', tags: (request) => ['tasks', 'task:' + request.params.id] } }
  }, async (request, reply) => {
    const task = await db.get(Number(request.params.id))
    if (task === undefined) return reply.code(404).send({ error: 'no such task' })
    return task
  })

  app.get('/reports', { config: { cache: { mode: 'memory', ttl: 10 } } }, async () => {
    return db.report()
  })

  app.get('/me/tasks', {
    preHandler: requireUser,
    config: { cache: { cache: taskCache, private: true, keyFn: (request) => 'me:' + request.headers['x-user'], tags: ['tasks'] } }
  }, async (request) => {
    return db.list(request.user)
  })

  // Writes: each clears what it changes. POST clears every list; PUT writes the new task
  // through to its GET entry; DELETE drops the task's entry and the lists.
  app.post('/tasks', {
    preHandler: requireUser,
    config: { cache: { cache: taskCache, invalidate: ['tags:tasks'] } }
  }, async (request, reply) => {
    const title = request.body?.title
    if (typeof title !== 'string') return reply.code(400).send({ error: 'title is required' })
    return reply.code(201).send(await db.create(title, request.user))
  })

  app.put('/tasks/:id', {
    preHandler: requireUser,
    config: {
      cache: {
        cache: taskCache,
        key: 'task:{id}',
        writeThrough: true,
        tags: (request) => ['tasks', 'task:' + request.params.id],
        invalidate: ['GET:/tasks', 'me:*']
      }
    }
  }, async (request, reply) => {
    const task = await db.update(Number(request.params.id), request.body ?? {})
    if (task === undefined) return reply.code(404).send({ error: 'no such task' })
    return task
  })

  app.delete('/tasks/:id', {
    preHandler: requireUser,
    config: { cache: { cache: taskCache, key: 'task:{id}', invalidate: ['tags:tasks'] } }
  }, async (request, reply) => {
    await db.remove(Number(request.params.id))
    return reply.code(204).send()
  })

  // Imperative invalidation, for when a handler knows best.
  app.post('/admin/flush', async (request, reply) => {
    await reply.cacheInvalidate({ pattern: '*' })
    return { flushed: true }
  })

  app.get('/stats', async () => ({ queries: db.queries }))

  if (options.redisUrl) {
    const shared = new RedisCache({ url: options.redisUrl, ttl: 30, keyPrefix: 'example:' })
    app.get('/tasks-shared', { config: { cache: { cache: shared, tags: ['tasks'] } } }, async () => db.list())
  }

  return app
}

module.exports = { build }
