'use strict'

const Fastify = require('fastify')
const promClient = require('prom-client')
const { emberCache, MemoryCache, StaticCache, RedisCache, MemcachedCache, registerPrometheusMetrics, varnishPurgers } = require('fastify-ember-cache')
const { openDb } = require('./db')

/**
 * A small task tracker over SQLite, cached with every mode:
 * - static:    GET /health                       (build info; `early`, public)
 * - memory:    GET /reports/summary              ({ mode: 'memory' }, stale-while-revalidate)
 * - tasks:     GET /projects/:projectId/tasks, GET /tasks/:taskId, GET /me/tasks (per user)
 *              in Redis when REDIS_URL is set (shared by every instance), else in memory
 * - projects:  GET /projects
 *              in Memcached when MEMCACHED_SERVERS is set, else in memory
 * Writes (authenticated) keep every cache fresh: each names the tags it changed, and
 * app.emberCache.invalidate() reaches every cache the app uses. Admin routes need an admin token.
 * GET /metrics is for Prometheus (keep it on an internal port or behind your proxy's allow-list).
 */
async function build (options = {}) {
  const app = Fastify({ logger: options.logger ?? false })
  const db = openDb(options.dbFile)
  app.addHook('onClose', async () => db.close())

  const tasksCache = options.redisUrl
    ? new RedisCache({ url: options.redisUrl, keyPrefix: 'example:', ttl: 60, staleIfError: 300 })
    : new MemoryCache({ name: 'tasks', ttl: 60, max: 10_000 })
  const projectsCache = options.memcachedServers
    ? new MemcachedCache({ servers: options.memcachedServers, keyPrefix: 'example:', ttl: 300 })
    : new MemoryCache({ name: 'projects', ttl: 300 })

  // options.varnishUrl: a Varnish in front (docs/varnish/default.vcl). Responses then carry their
  // tags in xkey, public pages may stay 5 minutes at the edge, and every invalidation purges there.
  const edge = options.varnishUrl ? { tagHeader: 'xkey', purgers: [varnishPurgers({ servers: [options.varnishUrl] })] } : undefined
  const atEdge = edge ? { edgeTtl: 300 } : {}
  await app.register(emberCache, { defaultTtl: 60, ...(edge ? { edge } : {}) })

  // Auth: `Authorization: Bearer <token>`, a user from the database. The cache lookup runs after
  // these preHandlers, so a request they reject never sees a cached body.
  async function authenticate (request, reply) {
    const match = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')
    const user = match === null ? undefined : db.userByToken(match[1])
    if (user === undefined) return reply.code(401).send({ error: 'send Authorization: Bearer <token>' })
    request.user = user
  }
  async function requireAdmin (request, reply) {
    await authenticate(request, reply)
    if (reply.sent) return
    if (request.user.role !== 'admin') return reply.code(403).send({ error: 'admins only' })
  }
  /** A write changed these things: drop them from every cache the app uses. */
  const changed = (tags) => app.emberCache.invalidate({ tags })
  /** Only the task's owner, or an admin, may change it. */
  const mayChange = (user, task) => user.role === 'admin' || task.ownerId === user.id

  // One canonical spelling per id: `1`, never `01`, `1.0`, `0x1`, `+1` or `1e0`. Keys are the
  // URL as sent and tags are built from the param, so every spelling the database reads as the
  // same row would be an entry of its own that the row's writes do not reach (they stayed HIT
  // with the old data). Anything else is a 400 before any cache or handler sees it.
  const ID = { type: 'string', pattern: '^[1-9][0-9]{0,9}$' }
  const params = (name) => ({ type: 'object', properties: { [name]: ID }, required: [name] })
  const taskBody = (required) => ({
    type: 'object',
    additionalProperties: false,
    required,
    properties: { title: { type: 'string', minLength: 1, maxLength: 200 }, done: { type: 'boolean' } }
  })

  const startedAt = new Date().toISOString()
  app.get('/health', { config: { cache: { cache: new StaticCache(), early: true } } }, async () => ({ status: 'ok', version: '1.0.0', startedAt }))

  // Public data: `public` lets requests that carry a token (a logged-in client) share the entries.
  app.get('/projects', { config: { cache: { cache: projectsCache, public: true, tags: ['projects'], ...atEdge } } }, async () => db.listProjects())

  app.get('/projects/:projectId/tasks', {
    schema: { params: params('projectId') },
    config: { cache: { cache: tasksCache, public: true, tags: (request) => ['project:' + request.params.projectId], ...atEdge } }
  }, async (request, reply) => {
    if (db.getProject(Number(request.params.projectId)) === undefined) return reply.code(404).send({ error: 'no such project' })
    return db.tasksOfProject(Number(request.params.projectId))
  })

  app.get('/tasks/:taskId', {
    schema: { params: params('taskId') },
    config: { cache: { cache: tasksCache, public: true, key: 'task:{taskId}', tags: (request) => ['task:' + request.params.taskId], ...atEdge } }
  }, async (request, reply) => {
    const task = db.getTask(Number(request.params.taskId))
    if (task === undefined) return reply.code(404).send({ error: 'no such task' })
    // Surrogate key: the project's writes reach this entry too.
    reply.header('cache-tag', 'project:' + task.projectId)
    return task
  })

  // Per user: the keyFn separates users, so requests with Authorization may use the cache.
  app.get('/me/tasks', {
    preHandler: authenticate,
    config: { cache: { cache: tasksCache, keyFn: (request) => 'me:' + request.user.id, tags: (request) => ['user:' + request.user.id] } }
  }, async (request) => db.tasksOfOwner(request.user.id))

  app.get('/reports/summary', { config: { cache: { mode: 'memory', ttl: 10, staleWhileRevalidate: 60, tags: ['summary'] } } }, async () => ({
    ...db.summary(),
    generatedAt: new Date().toISOString()
  }))

  app.post('/projects', {
    preHandler: authenticate,
    schema: { body: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: { type: 'string', minLength: 1, maxLength: 200 } } } }
  }, async (request, reply) => {
    const project = db.createProject(request.body.name)
    await changed(['projects'])
    return reply.code(201).send(project)
  })

  app.post('/projects/:projectId/tasks', {
    preHandler: authenticate,
    schema: { params: params('projectId'), body: taskBody(['title']) }
  }, async (request, reply) => {
    const projectId = Number(request.params.projectId)
    if (db.getProject(projectId) === undefined) return reply.code(404).send({ error: 'no such project' })
    const task = db.createTask(projectId, request.user.id, request.body.title)
    await changed(['project:' + projectId, 'user:' + request.user.id, 'projects', 'summary'])
    return reply.code(201).send(task)
  })

  // PATCH writes its answer through as the GET entry of the task (the next read is a hit);
  // `public` says the answer is the same for everyone, so a credentialed write may store it.
  app.patch('/tasks/:taskId', {
    preHandler: authenticate,
    schema: { params: params('taskId'), body: { ...taskBody([]), minProperties: 1 } },
    config: { cache: { cache: tasksCache, public: true, key: 'task:{taskId}', writeThrough: true, tags: (request) => ['task:' + request.params.taskId] } }
  }, async (request, reply) => {
    const before = db.getTask(Number(request.params.taskId))
    if (before === undefined) return reply.code(404).send({ error: 'no such task' })
    if (!mayChange(request.user, before)) return reply.code(403).send({ error: 'only its owner or an admin may change a task' })
    const task = db.updateTask(before.id, request.body)
    await changed(['project:' + task.projectId, 'user:' + task.ownerId, 'summary'])
    return task
  })

  app.delete('/tasks/:taskId', {
    preHandler: authenticate,
    schema: { params: params('taskId') },
    config: { cache: { cache: tasksCache, key: 'task:{taskId}' } }
  }, async (request, reply) => {
    const task = db.getTask(Number(request.params.taskId))
    if (task === undefined) return reply.code(404).send({ error: 'no such task' })
    if (!mayChange(request.user, task)) return reply.code(403).send({ error: 'only its owner or an admin may delete a task' })
    db.deleteTask(task.id)
    await changed(['project:' + task.projectId, 'user:' + task.ownerId, 'projects', 'summary'])
    return reply.code(204).send()
  })

  // Operations, for admins only: purge by key, pattern or tags, or everything.
  app.post('/admin/cache/invalidate', { preHandler: requireAdmin }, async (request, reply) => {
    const { key, pattern, tags } = request.body ?? {}
    const target = key !== undefined ? { key } : pattern !== undefined ? { pattern } : tags !== undefined ? { tags } : undefined
    if (target === undefined) return reply.code(400).send({ error: 'give key, pattern or tags' })
    return app.emberCache.invalidate(target)
  })
  app.post('/admin/cache/clear', { preHandler: requireAdmin }, async () => app.emberCache.clear())
  // What each cache and route did since start: hits, misses, stale answers, bypasses, errors.
  app.get('/admin/cache/stats', { preHandler: requireAdmin }, async () => app.emberCache.stats())

  // Prometheus: the same figures, read at scrape time, in a registry of this app's own.
  const metrics = new promClient.Registry()
  registerPrometheusMetrics(promClient, app.emberCache, { registers: [metrics] })
  app.get('/metrics', async (request, reply) => reply.type(metrics.contentType).send(await metrics.metrics()))

  // How many queries reached the database: watch it stand still on hits.
  app.get('/db-stats', async () => ({ queries: db.queries }))

  return app
}

module.exports = { build }
