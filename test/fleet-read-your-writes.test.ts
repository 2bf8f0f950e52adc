// Issue 30: read your own writes, fleet-wide. A client writes on instance A and reads on B,
// whose L1 hears of the write late (its bus connection runs through a proxy that holds
// messages back 300 ms, as after an incident). Without the option B answers with its old
// copy; with it, the writer's reads skip every entry stored before its write.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { RedisCache } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { delayProxy } from './helpers/delay-proxy'
import { startRedis, type RedisServer } from './helpers/servers'

/** One instance: GET /doc/:id (Redis + L1, tag doc:id) and PUT /doc/:id (invalidates the tag); data in `versions`. */
async function instance (t: Test, cache: RedisCache, versions: Map<string, number>, readYourWrites: boolean): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache, { readYourWrites, keyHashSecret: 'shared by the fleet, 16+ chars' })
  app.get<{ Params: { id: string } }>('/doc/:id', { config: { cache: { cache, ttl: 60, tags: (request) => ['doc:' + (request.params as { id: string }).id] } } },
    async (request) => ({ version: versions.get(request.params.id) ?? 0 }))
  app.put<{ Params: { id: string } }>('/doc/:id', { config: { cache: { cache, invalidate: ['tags:doc:{id}'] } } }, async (request) => {
    const version = (versions.get(request.params.id) ?? 0) + 1
    versions.set(request.params.id, version)
    return { version }
  })
  await app.ready()
  return app
}

async function fleet (t: Test, redis: RedisServer, readYourWrites: boolean): Promise<{ a: FastifyInstance, b: FastifyInstance }> {
  const keyPrefix = freshPrefix('ryw')
  const versions = new Map<string, number>()
  const slowBus = await delayProxy(redis.port)
  t.teardown(() => slowBus.close())
  slowBus.toClientMs = 300
  const a = await instance(t, new RedisCache({ url: redis.url, keyPrefix, l1: { ttl: 30 } }), versions, readYourWrites)
  const b = await instance(t, new RedisCache({ url: redis.url, keyPrefix, l1: { ttl: 30 }, bus: { url: slowBus.url } }), versions, readYourWrites)
  return { a, b }
}

/** Writes on A and reads on B right after, `rounds` times; counts reads older than the write. */
async function writeThenRead (a: FastifyInstance, b: FastifyInstance, rounds: number, keys: number): Promise<{ old: number, cookies: number, misses: number }> {
  let old = 0
  let cookies = 0
  let misses = 0
  for (let i = 0; i < rounds; i++) {
    const path = '/doc/' + String(i % keys)
    await b.inject(path)
    await b.inject(path)
    const write = await a.inject({ method: 'PUT', url: path })
    const written = (JSON.parse(write.body) as { version: number }).version
    const setCookie = write.headers['set-cookie']
    const cookie = typeof setCookie === 'string' ? setCookie.split(';')[0] : undefined
    if (cookie !== undefined) cookies++
    const read = await b.inject({ url: path, headers: cookie === undefined ? {} : { cookie: 'theme=dark; ' + cookie } })
    if ((JSON.parse(read.body) as { version: number }).version < written) old++
    if (read.headers['x-cache'] === 'MISS') misses++
  }
  return { old, cookies, misses }
}

t.test('read your own writes across instances', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())

  t.test('without the option, a read on B right after a write on A gets B\'s old copy', async (t) => {
    const { a, b } = await fleet(t, redis, false)
    const result = await writeThenRead(a, b, 20, 5)
    t.ok(result.old > 0, `${result.old} old reads of 20: the problem is real`)
    t.equal(result.cookies, 0, 'no cookie is given')
  })

  t.test('with readYourWrites: 1,000 writes on A, each read on B at once: none old', async (t) => {
    const { a, b } = await fleet(t, redis, true)
    const result = await writeThenRead(a, b, 1_000, 50)
    t.equal(result.old, 0, 'no read got an entry from before its write')
    t.equal(result.cookies, 1_000)
    t.equal(result.misses, 1_000, 'what it costs: the writer\'s first read of a key it wrote runs the handler')
    // Someone who did not write keeps the fleet's entries.
    const path = '/doc/7'
    await b.inject(path)
    t.equal((await b.inject(path)).headers['x-cache'], 'HIT', 'other callers are not affected')
  })

  t.test('a forged, tampered, expired or future mark is ignored', async (t) => {
    const { a, b } = await fleet(t, redis, true)
    await b.inject('/doc/1')
    const write = await a.inject({ method: 'PUT', url: '/doc/2' })
    const cookie = String(write.headers['set-cookie']).split(';')[0]
    t.match(String(write.headers['set-cookie']), /^ember-ryw=\d+\.[\w-]+; Max-Age=10; Path=\/; HttpOnly; SameSite=Lax$/)
    const [name, value] = cookie.split('=')
    const [time, signature] = value.split('.')
    for (const forged of [
      `${name}=${Date.now() + 1_000}.${signature}`,
      `${name}=${time}.AAAA${signature.slice(4)}`,
      `${name}=${Date.now() + 60_000}`,
      `${name}=not-a-time.${signature}`,
      `x${name}=${value}`
    ]) {
      t.equal((await b.inject({ url: '/doc/1', headers: { cookie: forged } })).headers['x-cache'], 'HIT', `ignored: ${forged.slice(0, 40)}`)
    }
    t.equal((await b.inject({ url: '/doc/1', headers: { cookie } })).headers['x-cache'], 'MISS', 'the genuine mark: the entry predates the write')
  })
})

t.test('readYourWrites options are checked at registration', async (t) => {
  for (const [bad, message] of [[{ window: -1 }, /readYourWrites\.window/], [{ cookie: 'a b' }, /readYourWrites\.cookie/], [{ other: 1 }, /readYourWrites\.other/], ['yes', /readYourWrites/]] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(emberCache, { readYourWrites: bad as never, keyHashSecret: 'shared by the fleet, 16+ chars' }) }, { code: 'FST_EMBER_CACHE_INVALID_OPTION', message })
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(emberCache, { readYourWrites: true }) }, { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /readYourWrites.*keyHashSecret/ },
    'without a shared secret another instance could not verify a mark: refused')
})
