// Options: precedence route > cache object > plugin > defaults, and bad options failing at
// registration / ready() with FST_EMBER_CACHE_INVALID_OPTION naming the option.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { InvalidOptionError, MemoryCache, StaticCache, type EmberCachePluginOptions, type RouteCacheConfig } from '../lib/index'
import { emberApp, type Scope } from './helpers/apps'

async function cacheControlOf (t: Scope, cache: RouteCacheConfig, options: EmberCachePluginOptions = {}): Promise<{ miss: string, hit: string, xcache: string }> {
  const app = await emberApp(t, options)
  app.get('/r', { config: { cache } }, async () => 'ok')
  const miss = await app.inject('/r')
  const hit = await app.inject('/r')
  return { miss: miss.headers['cache-control'] as string, hit: hit.headers['cache-control'] as string, xcache: hit.headers['x-cache'] as string }
}

t.test('ttl precedence: route > cache object > plugin > default', async (t) => {
  t.equal((await cacheControlOf(t, { mode: 'memory' })).miss, 'max-age=60', 'default 60')
  t.equal((await cacheControlOf(t, { mode: 'memory' }, { defaultTtl: 20 })).miss, 'max-age=20', 'plugin defaultTtl')
  t.equal((await cacheControlOf(t, new MemoryCache())).miss, 'max-age=60', 'a cache object without ttl takes the default')
  t.equal((await cacheControlOf(t, new MemoryCache(), { defaultTtl: 20 })).miss, 'max-age=20', 'a cache object without ttl takes the plugin ttl')
  t.equal((await cacheControlOf(t, new MemoryCache({ ttl: 10 }), { defaultTtl: 20 })).miss, 'max-age=10', 'cache object ttl beats plugin')
  t.equal((await cacheControlOf(t, { cache: new MemoryCache({ ttl: 10 }), ttl: 5 }, { defaultTtl: 20 })).miss, 'max-age=5', 'route ttl beats cache object')
  t.equal((await cacheControlOf(t, { mode: 'memory' }, { defaultTtl: 20, memory: { ttl: 15 } })).miss, 'max-age=15', 'plugin memory options are the mode cache object')
  t.equal((await cacheControlOf(t, { mode: 'memory', ttl: 3 }, { defaultTtl: 20, memory: { ttl: 15 } })).miss, 'max-age=3', 'route beats the mode cache')
  t.equal((await cacheControlOf(t, { mode: 'memory', ttl: 0 }, { defaultTtl: 20 })).miss, 'no-cache', 'ttl 0 (forever) is a valid route override')
  t.equal((await cacheControlOf(t, { mode: 'memory', ttl: 0.5 })).miss, 'max-age=1', 'max-age is whole seconds (RFC 9111 §1.2.2)')
})

t.test('hits keep the entry\'s max-age (the Age header says how much of it is gone)', async (t) => {
  const result = await cacheControlOf(t, { mode: 'memory', ttl: 30 })
  t.equal(result.xcache, 'HIT')
  t.equal(result.hit, 'max-age=30')
})

t.test('static entries never expire: no-cache for clients, forever on the server', async (t) => {
  const result = await cacheControlOf(t, { mode: 'static' }, { defaultTtl: 20 })
  t.equal(result.miss, 'no-cache', 'the plugin ttl does not apply to static')
  t.equal(result.xcache, 'HIT')
  t.equal((await cacheControlOf(t, new StaticCache(), { defaultTtl: 1 })).miss, 'no-cache')
})

t.test('private: true sends Cache-Control: private and still stores on the server', async (t) => {
  const result = await cacheControlOf(t, { mode: 'memory', ttl: 10, private: true })
  t.equal(result.miss, 'private, max-age=10')
  t.equal(result.xcache, 'HIT')
})

t.test('ttl precedence is observable as expiry, not only as a header', async (t) => {
  const app = await emberApp(t, { defaultTtl: 60 })
  let short = 0
  let long = 0
  const cache = new MemoryCache({ ttl: 60 })
  app.get('/short', { config: { cache: { cache, ttl: 1 } } }, async () => ({ n: ++short }))
  app.get('/long', { config: { cache } }, async () => ({ n: ++long }))
  await app.inject('/short')
  await app.inject('/long')
  t.equal((await app.inject('/short')).headers['x-cache'], 'HIT')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const shortAfter = await app.inject('/short')
  t.equal(shortAfter.headers['x-cache'], 'MISS', 'the route ttl of 1 s expired')
  t.same(shortAfter.json(), { n: 2 })
  t.equal((await app.inject('/long')).headers['x-cache'], 'HIT', 'the cache ttl of 60 s did not')
  t.equal(long, 1)
})

t.test('varyHeaders precedence: route replaces the cache object list', async (t) => {
  const app = await emberApp(t)
  const cache = new MemoryCache({ varyHeaders: ['x-a'] })
  let calls = 0
  app.get('/inherit', { config: { cache } }, async () => ++calls)
  app.get('/override', { config: { cache: { cache, varyHeaders: ['x-b'] } } }, async () => ++calls)
  app.get('/none', { config: { cache: { cache, varyHeaders: [] } } }, async () => ++calls)
  const status = async (url: string, headers: Record<string, string>): Promise<unknown> => (await app.inject({ url, headers })).headers['x-cache']
  await status('/inherit', { 'x-a': '1' })
  t.equal(await status('/inherit', { 'x-a': '2' }), 'MISS', 'inherits x-a')
  await status('/override', { 'x-a': '1', 'x-b': '1' })
  t.equal(await status('/override', { 'x-a': '2', 'x-b': '1' }), 'HIT', 'x-a no longer varies')
  t.equal(await status('/override', { 'x-b': '2' }), 'MISS', 'x-b does')
  await status('/none', { 'x-a': '1' })
  t.equal(await status('/none', { 'x-a': '2' }), 'HIT', 'an empty route list turns variants off')
})

// ---------------------------------------------------------------------------------------------
// Bad options.

interface CodedError extends Error { code?: string }

/** Runs a setup and returns the error it fails with, at registration or at ready(). */
async function failure (setup: (app: FastifyInstance) => void | Promise<void>, options?: unknown): Promise<CodedError | undefined> {
  const app = Fastify()
  try {
    await app.register(emberCache, options as EmberCachePluginOptions)
    await setup(app)
    await app.ready()
  } catch (err) {
    return err as CodedError
  } finally {
    await app.close().catch(() => {})
  }
  return undefined
}

function assertInvalid (t: Asserts, err: CodedError | undefined, option: string | RegExp, label: string): void {
  t.ok(err, `${label}: fails`)
  if (err === undefined) return
  t.equal(err.code, 'FST_EMBER_CACHE_INVALID_OPTION', `${label}: coded`)
  t.ok(err instanceof InvalidOptionError, `${label}: an InvalidOptionError`)
  t.match(err.message, option, `${label}: names the option (${err.message})`)
}
type Asserts = Pick<typeof t, 'ok' | 'equal' | 'match'>

const route = (cache: unknown) => (app: FastifyInstance) => {
  app.get('/x', { config: { cache: cache as RouteCacheConfig } }, async () => 'x')
}

t.test('bad plugin options fail at registration', async (t) => {
  const cases: Array<[string, unknown, string | RegExp]> = [
    ['negative defaultTtl', { defaultTtl: -1 }, /"defaultTtl"/],
    ['non-numeric defaultTtl', { defaultTtl: '60' }, /"defaultTtl"/],
    ['NaN defaultTtl', { defaultTtl: NaN }, /"defaultTtl"/],
    ['infinite defaultTtl', { defaultTtl: Infinity }, /"defaultTtl"/],
    ['unknown option', { ttl: 60 }, /"ttl".*unknown option/],
    ['misspelled option', { enable: true }, /"enable"/],
    ['enabled not boolean', { enabled: 'yes' }, /"enabled"/],
    ['header not a token', { header: 'x cache' }, /"header"/],
    ['header true', { header: true }, /"header"/],
    ['statusCodes empty', { statusCodes: [] }, /"statusCodes"/],
    ['statusCodes not codes', { statusCodes: [200, 'x'] }, /"statusCodes"/],
    ['statusCodes out of range', { statusCodes: [99] }, /"statusCodes"/],
    ['keyPrefix not string', { keyPrefix: 5 }, /"keyPrefix"/],
    ['memory not object', { memory: 'big' }, /"memory"/],
    ['options not object', 'fast', /"options"/],
    ['streamMaxBytes negative', { streamMaxBytes: -1 }, /"streamMaxBytes"/],
    ['collapseWait not integer', { collapseWait: 1.5 }, /"collapseWait"/],
    ['stats not boolean', { stats: 'yes' }, /"stats".*boolean/]
  ]
  for (const [label, options, option] of cases) {
    assertInvalid(t, await failure(() => {}, options), option, label)
  }
})

t.test('bad plugin options also fail ready() when register is not awaited', async (t) => {
  const app = Fastify()
  app.register(emberCache, { defaultTtl: -5 })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /defaultTtl/ })
  await app.close().catch(() => {})
})

t.test('bad mode-cache options in the plugin fail at registration', async (t) => {
  assertInvalid(t, await failure(() => {}, { memory: { ttl: -1 } }), /ttl/, 'memory.ttl negative, no route yet')
  assertInvalid(t, await failure(() => {}, { memory: { maxx: 5 } }), /maxx/, 'memory unknown option, no route yet')
  assertInvalid(t, await failure(() => {}, { static: { ttl: 5 } }), /ttl/, 'static with ttl, no route yet')
  assertInvalid(t, await failure(route({ mode: 'memory' }), { memory: { max: -1 } }), /max/, 'memory.max negative')
})

t.test('bad route options fail at registration, naming the route and option', async (t) => {
  const cases: Array<[string, unknown, string | RegExp]> = [
    ['negative ttl', { mode: 'memory', ttl: -1 }, /GET \/x config\.cache\.ttl/],
    ['non-numeric ttl', { mode: 'memory', ttl: '30' }, /config\.cache\.ttl/],
    ['unknown mode', { mode: 'disk' }, /config\.cache\.mode.*disk/],
    ['missing mode', { ttl: 5 }, /config\.cache\.mode/],
    ['varyHeaders a string', { mode: 'memory', varyHeaders: 'x-tenant-id' }, /config\.cache\.varyHeaders/],
    ['varyHeaders with a number', { mode: 'memory', varyHeaders: ['x-a', 3] }, /config\.cache\.varyHeaders/],
    ['keyFn not a function', { mode: 'memory', keyFn: 'byId' }, /config\.cache\.keyFn/],
    ['key not a string', { mode: 'memory', key: 5 }, /config\.cache\.key/],
    ['key and keyFn', { mode: 'memory', key: 'a', keyFn: () => 'b' }, /config\.cache\.key/],
    ['unknown route option', { mode: 'memory', tll: 5 }, /config\.cache\.tll.*unknown option/],
    ['ttl on static mode', { mode: 'static', ttl: 5 }, /config\.cache\.ttl/],
    ['ttl on a StaticCache object', { cache: new StaticCache(), ttl: 5 }, /config\.cache\.ttl/],
    ['mode and cache', { mode: 'memory', cache: new MemoryCache() }, /config\.cache\.mode/],
    ['cache not a cache object', { cache: { get () {} } }, /config\.cache\.cache/],
    ['a string config', 'memory', /config\.cache/],
    ['tags not an array', { mode: 'memory', tags: 'x' }, /config\.cache\.tags/],
    ['statusCodes not codes', { mode: 'memory', statusCodes: ['200'] }, /statusCodes/],
    ['writeThrough on GET', { mode: 'memory', writeThrough: true }, /config\.cache\.writeThrough/],
    ['invalidate on GET', { mode: 'memory', invalidate: ['GET:/y'] }, /config\.cache\.invalidate/],
    ['private not boolean', { mode: 'memory', private: 1 }, /config\.cache\.private/]
  ]
  for (const [label, cache, option] of cases) {
    assertInvalid(t, await failure(route(cache)), option, label)
  }
})

t.test('bad route options in an encapsulated plugin fail ready()', async (t) => {
  const err = await failure((app) => {
    app.register(async (child) => {
      child.get('/child', { config: { cache: { mode: 'memory', ttl: -3 } } }, async () => 'x')
    })
  })
  assertInvalid(t, err, /GET \/child config\.cache\.ttl/, 'child route')
})

t.test('write-route option errors', async (t) => {
  assertInvalid(t, await failure((app) => {
    app.post('/x', { config: { cache: { mode: 'memory', writeThrough: true } } }, async () => 'x')
  }), /POST \/x config\.cache\.writeThrough/, 'writeThrough on POST')
  assertInvalid(t, await failure((app) => {
    app.delete('/x', { config: { cache: { mode: 'memory', writeThrough: true } } }, async () => 'x')
  }), /DELETE \/x config\.cache\.writeThrough/, 'writeThrough on DELETE')
  assertInvalid(t, await failure((app) => {
    app.post('/x', { config: { cache: { mode: 'memory', invalidate: 'GET:/x' as unknown as string[] } } }, async () => 'x')
  }), /config\.cache\.invalidate/, 'invalidate not an array')
  assertInvalid(t, await failure((app) => {
    app.route({ method: ['GET', 'POST'], url: '/x', config: { cache: { mode: 'memory' } }, handler: async () => 'x' })
  }), /GET,POST \/x config\.cache/, 'mixed read and write methods')
  t.equal(await failure((app) => {
    app.route({ method: ['PUT', 'PATCH'], url: '/x', config: { cache: { mode: 'memory', writeThrough: true } }, handler: async () => 'x' })
  }), undefined, 'PUT + PATCH write through together is fine')
  t.equal(await failure((app) => {
    app.route({ method: ['GET', 'HEAD'], url: '/x', config: { cache: { mode: 'memory' } }, handler: async () => 'x' })
  }), undefined, 'GET + HEAD are both reads')
})

t.test('cache object constructors validate their options', async (t) => {
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['MemoryCache negative ttl', () => new MemoryCache({ ttl: -1 }), /MemoryCache\.ttl/],
    ['MemoryCache non-numeric ttl', () => new MemoryCache({ ttl: '5' as unknown as number }), /MemoryCache\.ttl/],
    ['MemoryCache unknown option', () => new MemoryCache({ size: 5 } as unknown as object), /MemoryCache\.size/],
    ['MemoryCache max 0', () => new MemoryCache({ max: 0 }), /MemoryCache\.max/],
    ['MemoryCache maxSize fraction', () => new MemoryCache({ maxSize: 1.5 }), /MemoryCache\.maxSize/],
    ['MemoryCache varyHeaders string', () => new MemoryCache({ varyHeaders: 'x' as unknown as string[] }), /MemoryCache\.varyHeaders/],
    ['StaticCache ttl', () => new StaticCache({ ttl: 5 } as unknown as object), /StaticCache\.ttl/],
    ['StaticCache staleWhileRevalidate', () => new StaticCache({ staleWhileRevalidate: 5 } as unknown as object), /StaticCache\.staleWhileRevalidate/]
  ]
  for (const [label, make, option] of cases) {
    let err: CodedError | undefined
    try {
      make()
    } catch (e) {
      err = e as CodedError
    }
    assertInvalid(t, err, option, label)
  }
})

t.test('valid options register without error', async (t) => {
  t.equal(await failure(route({ mode: 'memory', ttl: 0.5, varyHeaders: [], tags: [], statusCodes: [200] }), {
    enabled: true,
    defaultTtl: 0,
    header: false,
    statusCodes: [200, 404],
    keyPrefix: '',
    memory: { max: 10, maxSize: 1000 },
    static: { max: 5 },
    streamMaxBytes: 0
  }), undefined)
})

t.test('MemcachedCache keyPrefix must itself be a short, safe Memcached key', async (t) => {
  const { MemcachedCache } = await import('../lib/index')
  for (const keyPrefix of ['has space:', 'x'.repeat(101), 'tab\t:']) {
    t.throws(() => new MemcachedCache({ servers: '127.0.0.1:11211', keyPrefix }), { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /MemcachedCache\.keyPrefix/ })
  }
  t.doesNotThrow(() => new MemcachedCache({ servers: '127.0.0.1:11211', keyPrefix: 'api:v1:' }))
})
