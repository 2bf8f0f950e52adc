// The example app is part of the README's set-up: it must keep working as documented. Driven
// over real HTTP (listening on 127.0.0.1, fetch), embedded and with Redis and Memcached as its
// shared caches across two instances. It loads the package by name (the built dist/).
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { redisCommand, startMemcached, startRedis } from './helpers/servers'
import { childEnv } from './helpers/child-env'

const { build } = createRequire(__filename)('../example-app/app.js') as {
  build: (options?: { redisUrl?: string, memcachedServers?: string, dbFile?: string }) => Promise<FastifyInstance>
}

interface Answer { status: number, cache: string | null, body: any }

/**
 * An instance listening on a free loopback port, closed when `t` ends. Requests carry the Host a
 * load balancer would pass on (the public name), the same for every instance: entries are kept
 * per host, and each instance's own port would otherwise make a host of its own.
 */
async function listening (t: Test, options: Parameters<typeof build>[0] = {}): Promise<(path: string, init?: { method?: string, token?: string, body?: unknown }) => Promise<Answer>> {
  const app = await build(options)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return (path, init = {}) => new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: 'tasks.example.com' }
    if (init.token !== undefined) headers.authorization = 'Bearer ' + init.token
    const payload = init.body === undefined ? undefined : JSON.stringify(init.body)
    if (payload !== undefined) headers['content-type'] = 'application/json'
    const req = request({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      const json = /json/.test(res.headers['content-type'] ?? '')
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cache: (res.headers['x-cache'] as string | undefined) ?? null, body: text === '' ? undefined : json ? JSON.parse(text) : text }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

t.test('example app, embedded: reads are cached, writes keep them fresh, auth runs before the cache', async (t) => {
  const get = await listening(t)
  const queries = async (): Promise<number> => (await get('/db-stats')).body.queries

  const first = await get('/projects/1/tasks')
  const second = await get('/projects/1/tasks')
  t.equal(first.cache, 'MISS')
  t.equal(second.cache, 'HIT')
  t.same(second.body, first.body)
  t.equal(first.body.length, 3, 'seeded from SQLite')
  const before = await queries()
  await get('/projects/1/tasks')
  t.equal(await queries(), before, 'a hit does not query the database')

  t.equal((await get('/me/tasks')).status, 401, 'no token, no cached answer')
  t.equal((await get('/me/tasks', { token: 'wrong' })).status, 401)
  const linus = await get('/me/tasks', { token: 'linus-token' })
  const grace = await get('/me/tasks', { token: 'grace-token' })
  t.ok(linus.body.every((task: { ownerId: number }) => task.ownerId === 2) && grace.body.every((task: { ownerId: number }) => task.ownerId === 3), 'each user gets their own tasks')
  t.equal((await get('/me/tasks', { token: 'linus-token' })).cache, 'HIT', 'per user, cached')

  const created = await get('/projects/1/tasks', { method: 'POST', token: 'linus-token', body: { title: 'from the test' } })
  t.equal(created.status, 201)
  const after = await get('/projects/1/tasks')
  t.equal(after.cache, 'MISS', 'the POST invalidated tag project:1')
  t.ok(after.body.some((task: { title: string }) => task.title === 'from the test'))
  t.equal((await get('/me/tasks', { token: 'linus-token' })).cache, 'MISS', 'and tag user:2')
  t.equal((await get('/projects')).body[0].tasks, 4, 'and the project counts')

  t.equal((await get('/tasks/1')).cache, 'MISS')
  const patched = await get('/tasks/1', { method: 'PATCH', token: 'ada-token', body: { done: true } })
  t.equal(patched.status, 200)
  const read = await get('/tasks/1')
  t.equal(read.cache, 'HIT', 'the PATCH wrote its answer through')
  t.equal(read.body.done, true)

  t.equal((await get('/admin/cache/clear', { method: 'POST' })).status, 401, 'admin routes need a token')
  t.equal((await get('/admin/cache/clear', { method: 'POST', token: 'linus-token' })).status, 403, 'an admin token')
  const purge = await get('/admin/cache/invalidate', { method: 'POST', token: 'ada-token', body: { tags: ['projects'] } })
  t.equal(purge.status, 200)
  t.equal(purge.body.ok, true)
  t.equal((await get('/projects')).cache, 'MISS', 'purged')
  t.equal((await get('/health')).status, 200)
  t.equal((await get('/health')).cache, 'HIT')
})

/** The value of one sample in Prometheus text output, e.g. metric('ember_cache_requests_total', { route: 'GET /x', outcome: 'hit' }). */
function sample (text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue
    const labelText = line.slice(name.length + 1, line.lastIndexOf('}'))
    if (Object.entries(labels).every(([label, value]) => labelText.includes(`${label}="${value}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return undefined
}

t.test('example app: /metrics for Prometheus and the admin stats route count what the cache did', async (t) => {
  const get = await listening(t)
  await get('/projects/1/tasks')
  await get('/projects/1/tasks')
  await get('/projects/1/tasks')
  await get('/tasks/1')
  await get('/me/tasks', { token: 'linus-token' })

  const scrape = await get('/metrics')
  t.equal(scrape.status, 200)
  const text = scrape.body as string
  t.match(text, /# TYPE ember_cache_requests_total counter/)
  t.equal(sample(text, 'ember_cache_requests_total', { route: 'GET /projects/:projectId/tasks', cache: 'tasks', outcome: 'hit' }), 2, 'two hits of the task list')
  t.equal(sample(text, 'ember_cache_requests_total', { route: 'GET /projects/:projectId/tasks', cache: 'tasks', outcome: 'miss' }), 1, 'one miss')
  t.equal(sample(text, 'ember_cache_requests_total', { route: 'GET /tasks/:taskId', outcome: 'miss' }), 1)
  t.equal(sample(text, 'ember_cache_stores_total', { route: 'GET /projects/:projectId/tasks', result: 'stored' }), 1)
  t.equal(sample(text, 'ember_cache_entries', { cache: 'tasks', tier: 'process' }), 3, 'three entries in the tasks cache')
  t.ok((sample(text, 'ember_cache_bytes', { cache: 'tasks', tier: 'process' }) ?? 0) > 100, 'and their bytes')

  t.equal((await get('/admin/cache/stats')).status, 401, 'the stats route needs a token')
  t.equal((await get('/admin/cache/stats', { token: 'linus-token' })).status, 403, 'an admin one')
  const stats = await get('/admin/cache/stats', { token: 'ada-token' })
  t.equal(stats.status, 200)
  const route = stats.body.routes.find((r: { route: string }) => r.route === 'GET /me/tasks')
  t.match(route, { cache: 'tasks', misses: 1, hits: 0, stores: 1 })
  t.ok(stats.body.caches.some((c: { name: string, entries: number }) => c.name === 'tasks' && c.entries === 3))
})

t.test('example app with REDIS_URL and MEMCACHED_SERVERS: two instances, one database, shared caches', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())
  const dir = mkdtempSync(join(tmpdir(), 'ember-example-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await redis.flushAll()
  await memcached.flushAll()
  const options = { redisUrl: redis.url, memcachedServers: memcached.servers, dbFile: join(dir, 'tasks.db') }
  const a = await listening(t, options)
  const b = await listening(t, options)

  t.equal((await a('/projects/2/tasks')).cache, 'MISS')
  t.equal((await b('/projects/2/tasks')).cache, 'HIT', 'instance B reads what A stored in Redis')
  t.equal((await a('/projects')).cache, 'MISS')
  t.equal((await b('/projects')).cache, 'HIT', 'and what A stored in Memcached')

  await a('/projects/2/tasks', { method: 'POST', token: 'grace-token', body: { title: 'shared write' } })
  const fresh = await b('/projects/2/tasks')
  t.equal(fresh.cache, 'MISS', 'a write on A is seen by B at once')
  t.ok(fresh.body.some((task: { title: string }) => task.title === 'shared write'))
  const projects = await b('/projects')
  t.equal(projects.cache, 'MISS', 'the Memcached entry too')
  t.equal(projects.body[1].tasks, 3)
})

t.test('example app: `node example-app/server.js` serves on the port it prints', async (t) => {
  const child = spawn(process.execPath, [resolve(__dirname, '../example-app/server.js')], { env: childEnv({ PORT: '0', REDIS_URL: '', MEMCACHED_SERVERS: '' }), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGTERM') })
  let output = ''
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no address printed: ' + output)), 10_000)
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /example on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match[1])
      }
    })
  })
  const first = await fetch(base + '/projects/1/tasks')
  const second = await fetch(base + '/projects/1/tasks')
  t.equal(first.headers.get('x-cache'), 'MISS')
  t.equal(second.headers.get('x-cache'), 'HIT')
})

t.test('example app: one canonical id per resource, validated bodies, ownership (issue 26)', async (t) => {
  const get = await listening(t)
  await get('/projects/1/tasks')
  for (const spelling of ['01', '1.0', '0x1', '+1', '1e0', '1%0a', '-1', '0']) {
    const res = await get('/projects/' + spelling + '/tasks')
    t.equal(res.status, 400, `/projects/${spelling}/tasks is not another name of project 1`)
  }
  const created = await get('/projects/1/tasks', { method: 'POST', token: 'linus-token', body: { title: 'New one' } })
  t.equal(created.status, 201)
  const list = await get('/projects/1/tasks')
  t.ok(list.body.some((task: { title: string }) => task.title === 'New one'), 'the project\'s list has the new task')
  for (const [body, why] of [[{ title: {} }, 'an object title'], [{ title: '' }, 'an empty title'], [{ done: 'maybe' }, 'done that is not a boolean'], [{}, 'nothing to change']] as const) {
    const res = await get('/tasks/2', { method: 'PATCH', token: 'linus-token', body })
    t.equal(res.status, 400, `PATCH with ${why}: 400, not a database error`)
  }
  const done = await get('/tasks/2', { method: 'PATCH', token: 'linus-token', body: { done: false } })
  t.same([done.status, done.body.done], [200, false])
  t.equal((await get('/tasks/1', { method: 'PATCH', token: 'linus-token', body: { title: 'mine now' } })).status, 403, 'a member cannot change another\'s task')
  t.equal((await get('/tasks/1', { method: 'DELETE', token: 'grace-token' })).status, 403, 'nor delete it')
  t.equal((await get('/tasks/1', { method: 'PATCH', token: 'ada-token', body: { title: 'by the admin' } })).status, 200, 'an admin may')
})

t.test('example app on Redis: 1,000 anonymous 404s leave nothing unbounded behind (issue 26)', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const get = await listening(t, { redisUrl: redis.url })
  for (let i = 0; i < 1_000; i++) t.equal((await get('/tasks/' + String(100_000 + i))).status, 404)
  const keys = await redisCommand(redis, ['KEYS', '*']) as string[]
  let unbounded = 0
  let longest = 0
  for (const key of keys) {
    const ttl = Number(await redisCommand(redis, ['TTL', key]))
    if (ttl === -1) unbounded++
    longest = Math.max(longest, ttl)
  }
  t.equal(unbounded, 0, `no key without an expiry (${keys.length} keys)`)
  t.ok(longest <= 600, `every key a miss left expires within 10 minutes (longest ${longest} s)`)
  t.ok(keys.length <= 1_010, `${keys.length} keys: at most one fence per missing task, no tag sets`)
})
