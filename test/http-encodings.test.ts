// Stored content codings (issue 17): a storable body is compressed once, when stored, and hits
// send the coding the client accepts best (RFC 9110 §12.5.3), with Content-Encoding, Vary:
// Accept-Encoding and one ETag per representation (§8.8.3), on every backend; @fastify/compress
// leaves our coded hits alone in either registration order.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { brotliDecompressSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type LightMyRequestResponse } from 'fastify'
import compress from '@fastify/compress'
import emberCache, {
  MemcachedCache, MemoryCache, RedisCache, StaticCache, StoreCache, type EmberCache, type EmberCachePluginOptions, type RouteCacheConfig
} from '../lib/index'
import { chooseCoding, codedEtag, type EncodedBody } from '../lib/content-coding'
import { fileStore } from './helpers/fs-store'
import { startMemcached, startRedis } from './helpers/servers'

const BODY = { items: Array.from({ length: 80 }, (_, i) => ({ id: i, name: 'item number ' + String(i), tags: ['a', 'b'] })) }
const JSON_BODY = JSON.stringify(BODY)

type Handler = (request: FastifyRequest, reply: FastifyReply) => unknown

interface Built { app: FastifyInstance, calls: () => number }

async function build (t: Test, cache: RouteCacheConfig, options: EmberCachePluginOptions = {}, handler: Handler = () => BODY, compressOrder?: 'first' | 'after'): Promise<Built> {
  const app = Fastify()
  t.teardown(() => app.close())
  // zlib level 1 for @fastify/compress: its gzip bytes differ from ours (level 6), so a test can tell who compressed.
  const compressOptions = { threshold: 0, zlibOptions: { level: 1 } }
  if (compressOrder === 'first') await app.register(compress, compressOptions)
  await app.register(emberCache, options)
  if (compressOrder === 'after') await app.register(compress, compressOptions)
  let calls = 0
  app.get('/r', { config: { cache } }, async (request, reply) => {
    calls++
    return await handler(request, reply)
  })
  app.patch('/r', { config: { cache: { ...cache, writeThrough: true } } }, async () => BODY)
  return { app, calls: () => calls }
}

/** Waits until the route has stored `count` entries (codings are made after the miss is answered). */
async function stored (app: FastifyInstance, count = 1): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if ((app.emberCache.stats().routes.find((route) => route.route === 'GET /r')?.stores ?? 0) >= count) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error('the entry was never stored')
}

const get = (app: FastifyInstance, acceptEncoding?: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> =>
  app.inject({ url: '/r', headers: acceptEncoding === undefined ? headers : { ...headers, 'accept-encoding': acceptEncoding } })

function decoded (res: LightMyRequestResponse): string {
  switch (res.headers['content-encoding']) {
    case 'br': return brotliDecompressSync(res.rawPayload).toString()
    case 'gzip': return gunzipSync(res.rawPayload).toString()
    case 'deflate': return inflateSync(res.rawPayload).toString()
    default: return res.body
  }
}

/** A cold miss, then each client's hit: the coding it gets, the bytes decoding to the body. */
async function roundTrips (t: Test, app: FastifyInstance, calls: () => number): Promise<void> {
  const miss = await get(app, 'br, gzip')
  t.equal(miss.headers['x-cache'], 'MISS')
  t.equal(miss.headers['content-encoding'], undefined, 'the miss is answered as it left the handler')
  t.match(miss.headers.vary, /accept-encoding/i, 'and says it varies on Accept-Encoding')
  await stored(app)
  const identity = await get(app)
  for (const [accept, coding] of [['br', 'br'], ['gzip', 'gzip'], ['deflate', 'deflate'], ['gzip, deflate, br', 'br'], [undefined, undefined], ['identity', undefined]] as const) {
    const res = await get(app, accept)
    t.equal(res.headers['x-cache'], 'HIT', `${String(accept)}: a hit`)
    t.equal(res.headers['content-encoding'], coding, `${String(accept)}: sent ${coding ?? 'identity'}`)
    t.equal(decoded(res), JSON_BODY, `${String(accept)}: decodes to the identity body`)
    t.equal(res.headers['content-length'], String(res.rawPayload.length), `${String(accept)}: Content-Length of the bytes sent`)
    t.match(res.headers.vary, /accept-encoding/i)
    t.equal(res.headers.etag, coding === undefined ? identity.headers.etag : codedEtag(String(identity.headers.etag), coding), `${String(accept)}: its own ETag`)
  }
  t.ok((await get(app, 'br')).rawPayload.length < JSON_BODY.length / 3, 'the coded body is smaller')
  t.equal(calls(), 1, 'one entry serves every coding')
}

const ALL_CODINGS = { encodings: ['br', 'gzip', 'deflate'] as Array<'br' | 'gzip' | 'deflate'> }

t.test('each coding round-trips: static, memory', async (t) => {
  for (const [name, cache] of [['static', new StaticCache({ compression: ALL_CODINGS })], ['memory', new MemoryCache({ compression: ALL_CODINGS })]] as const) {
    await t.test(name, async (t) => {
      const { app, calls } = await build(t, { cache })
      await roundTrips(t, app, calls)
    })
  }
})

t.test('each coding round-trips: redis, redis with l1, memcached, a custom store', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())
  const dir = mkdtempSync(join(tmpdir(), 'ember-enc-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const caches: Array<[string, () => EmberCache]> = [
    ['redis', () => new RedisCache({ url: redis.url, keyPrefix: 'enc1:', compression: ALL_CODINGS })],
    ['redis + l1', () => new RedisCache({ url: redis.url, keyPrefix: 'enc2:', l1: { max: 100 }, compression: ALL_CODINGS })],
    ['memcached', () => new MemcachedCache({ servers: memcached.servers, keyPrefix: 'enc3:', compression: ALL_CODINGS })],
    ['custom store', () => new StoreCache({ store: fileStore(dir), compression: ALL_CODINGS })]
  ]
  for (const [name, make] of caches) {
    await t.test(name, async (t) => {
      const { app, calls } = await build(t, { cache: make() })
      await app.ready()
      await roundTrips(t, app, calls)
      // Another instance reads the codings from the backend (no in-process copy).
      const other = await build(t, { cache: make() })
      const br = await get(other.app, 'br')
      t.equal(br.headers['x-cache'], 'HIT', 'another instance: a hit')
      t.equal(br.headers['content-encoding'], 'br', 'with the coding stored in the backend')
      t.equal(decoded(br), JSON_BODY)
    })
  }
})

t.test('Accept-Encoding negotiation (RFC 9110 §12.5.3), q-values and all', async (t) => {
  const held: EncodedBody[] = [{ coding: 'br', body: Buffer.from('b') }, { coding: 'gzip', body: Buffer.from('g') }]
  const cases: Array<[string | undefined, string | undefined]> = [
    [undefined, undefined], // no header: identity, the one coding every client reads
    ['', undefined],
    ['gzip', 'gzip'],
    ['br', 'br'],
    ['gzip, br', 'br'], // equal weights: our order
    ['br;q=0.5, gzip;q=0.8', 'gzip'],
    ['gzip;q=1, br;q=0.999', 'gzip'],
    ['GZIP', 'gzip'],
    ['x-gzip', 'gzip'],
    ['*', 'br'],
    ['*;q=0.5, gzip', 'gzip'],
    ['*;q=0', undefined], // nothing acceptable: identity anyway
    ['identity;q=0', undefined],
    ['identity;q=0, gzip;q=0.1', 'gzip'],
    ['identity, gzip;q=0.5', undefined], // the client prefers identity outright
    ['identity;q=0.5, gzip;q=0.5', 'gzip'], // ties go to a stored coding
    ['br;q=0, gzip', 'gzip'],
    ['br;q=0, gzip;q=0', undefined],
    ['deflate', undefined], // a coding we did not store
    ['gzip;q=abc', undefined], // a malformed weight makes the member unusable
    ['gzip;q=2', undefined], // not a qvalue (RFC 9110 §12.4.2): unusable
    [' gzip ; q=0.5 , br ; q=0.4 ', 'gzip']
  ]
  for (const [header, expected] of cases) t.equal(chooseCoding(header, held)?.coding, expected, `${JSON.stringify(header)} -> ${expected ?? 'identity'}`)
  t.equal(chooseCoding(['gzip;q=0.1', 'br;q=0.2'], held)?.coding, 'br', 'a header given twice is one list')
  t.equal(chooseCoding('gzip', [])?.coding, undefined, 'an entry without codings')

  // And through HTTP: identity when nothing stored is accepted, with or without the header.
  const { app } = await build(t, { mode: 'memory' })
  await get(app)
  await stored(app)
  for (const header of ['identity;q=0', 'deflate', '*;q=0', 'br;q=0, gzip;q=0']) {
    const res = await get(app, header)
    t.equal(res.headers['content-encoding'], undefined, `${header}: identity`)
    t.equal(res.body, JSON_BODY)
  }
})

for (const order of ['after', 'first'] as const) {
  t.test(`@fastify/compress registered ${order}: our stored codings go out as they are; other clients as before`, async (t) => {
    const { app, calls } = await build(t, { mode: 'memory' }, {}, () => BODY, order)
    const miss = await get(app, 'gzip')
    t.equal(miss.headers['x-cache'], 'MISS')
    t.equal(miss.headers['content-encoding'], 'gzip', 'the miss is compressed by @fastify/compress, as before')
    t.equal(decoded(miss), JSON_BODY)
    await stored(app)
    const gzip = await get(app, 'gzip')
    t.equal(gzip.headers['content-encoding'], 'gzip')
    t.same(gzip.rawPayload, gzipSync(JSON_BODY), 'the hit sends our stored gzip bytes (level 6), not a new compression (level 1)')
    const br = await get(app, 'br')
    t.equal(br.headers['content-encoding'], 'br')
    t.equal(decoded(br), JSON_BODY)
    const brAgain = await get(app, 'br')
    t.same(brAgain.rawPayload, br.rawPayload, 'the same stored bytes every time')
    t.equal((String(gzip.headers.vary).match(/accept-encoding/gi) ?? []).length, 1, 'Vary names Accept-Encoding once')
    const deflate = await get(app, 'deflate')
    t.equal(deflate.headers['x-cache'], 'HIT')
    t.equal(deflate.headers['content-encoding'], 'deflate', 'a coding we did not store is still made by @fastify/compress')
    t.equal(decoded(deflate), JSON_BODY)
    const identity = await get(app, 'identity')
    t.equal(identity.headers['content-encoding'], undefined)
    t.equal(identity.body, JSON_BODY)
    t.equal(calls(), 1)
  })
}

t.test('HEAD, 304 and Range stay right for every representation', async (t) => {
  const { app } = await build(t, { mode: 'memory' })
  await get(app)
  await stored(app)
  const br = await get(app, 'br')
  const identity = await get(app)

  const head = await app.inject({ method: 'HEAD', url: '/r', headers: { 'accept-encoding': 'br' } })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['content-encoding'], 'br')
  t.equal(head.headers['content-length'], String(br.rawPayload.length), 'HEAD: the length GET would send')
  t.equal(head.rawPayload.length, 0)

  const revalidated = await get(app, 'br', { 'if-none-match': String(br.headers.etag) })
  t.equal(revalidated.statusCode, 304, 'the br representation, revalidated')
  t.equal(revalidated.headers.etag, br.headers.etag)
  t.equal(revalidated.rawPayload.length, 0)

  const holdsIdentity = await get(app, 'gzip, br', { 'if-none-match': String(identity.headers.etag) })
  t.equal(holdsIdentity.statusCode, 304, 'a client holding the identity representation it still accepts: 304')
  t.equal(holdsIdentity.headers.etag, identity.headers.etag, 'with that representation\'s validator')
  t.equal(holdsIdentity.headers['content-encoding'], undefined)

  const cannotRead = await get(app, undefined, { 'if-none-match': String(br.headers.etag) })
  t.equal(cannotRead.statusCode, 200, 'a br validator from a client that no longer accepts br: the full identity body')
  t.equal(cannotRead.body, JSON_BODY)

  const range = await get(app, 'br, gzip', { range: 'bytes=0-9' })
  t.equal(range.statusCode, 206, 'Range is served from the identity body')
  t.equal(range.headers['content-encoding'], undefined)
  t.equal(range.body, JSON_BODY.slice(0, 10))
})

t.test('stale and collapsed answers carry the coding and Vary', async (t) => {
  const realNow = Date.now
  let offset = 0
  Date.now = () => realNow() + offset
  t.teardown(() => { Date.now = realNow })
  let release: () => void = () => {}
  let slow = false
  const { app, calls } = await build(t, { mode: 'memory', ttl: 10, staleWhileRevalidate: 60 }, {}, async () => {
    if (slow) await new Promise<void>((resolve) => { release = resolve })
    return BODY
  })
  await get(app)
  await stored(app)
  offset = 20_000
  const stale = await get(app, 'gzip')
  t.equal(stale.headers['x-cache'], 'STALE')
  t.equal(stale.headers['content-encoding'], 'gzip')
  t.match(stale.headers.vary, /accept-encoding/i)
  t.equal(decoded(stale), JSON_BODY)
  await stored(app, 2)

  // Collapsed: five br clients wait on one slow handler run, and get the coded entry.
  offset = 200_000
  slow = true
  const waiting = Array.from({ length: 5 }, () => get(app, 'br'))
  await new Promise((resolve) => setTimeout(resolve, 50))
  release()
  const answers = await Promise.all(waiting)
  t.equal(calls(), 3, 'one handler run for five requests')
  const collapsed = answers.filter((res) => res.headers['x-cache'] === 'HIT')
  t.equal(collapsed.length, 4)
  for (const res of collapsed) {
    t.equal(res.headers['content-encoding'], 'br')
    t.match(res.headers['cache-status'], /collapsed/)
    t.equal(decoded(res), JSON_BODY)
  }
})

t.test('what is not coded: small bodies, incompressible types, no-transform, coded responses, compression: false', async (t) => {
  const cases: Array<[string, Handler, RouteCacheConfig]> = [
    ['a body under minBytes', () => ({ small: true }), { mode: 'memory' }],
    ['an image', (request, reply) => reply.type('image/png').send(Buffer.alloc(5000, 1)), { mode: 'memory' }],
    ['no-transform', (request, reply) => reply.header('cache-control', 'public, max-age=60, no-transform').send(BODY), { mode: 'memory' }],
    ['compression: false on the route', () => BODY, { mode: 'memory', compression: false }],
    ['compression: false on the cache', () => BODY, { cache: new MemoryCache({ compression: false }) }],
    ['maxBytes below the body', () => BODY, { mode: 'memory', compression: { minBytes: 100, maxBytes: 1000 } }]
  ]
  for (const [name, handler, cache] of cases) {
    const { app } = await build(t, cache, {}, handler)
    const miss = await get(app, 'br')
    t.notMatch(String(miss.headers.vary), /accept-encoding/i, `${name}: no Vary: Accept-Encoding`)
    await stored(app)
    const hit = await get(app, 'br, gzip')
    t.equal(hit.headers['x-cache'], 'HIT', `${name}: a hit`)
    t.equal(hit.headers['content-encoding'], undefined, `${name}: identity`)
  }
  const off = await build(t, { mode: 'memory' }, { compression: false })
  await get(off.app)
  await stored(off.app)
  t.equal((await get(off.app, 'br')).headers['content-encoding'], undefined, 'compression: false for the plugin')
  const already = await build(t, { mode: 'memory' }, {}, (request, reply) => reply.header('content-encoding', 'gzip').type('application/json').send(gzipSync(JSON_BODY)))
  await get(already.app, 'gzip')
  await stored(already.app)
  const res = await get(already.app, 'gzip, br')
  t.equal(res.headers['content-encoding'], 'gzip', 'a handler that coded its own body: stored and sent as it is')
  t.equal(decoded(res), JSON_BODY)
})

t.test('write-through stores the codings: the read after a PATCH is a coded hit', async (t) => {
  const { app, calls } = await build(t, { mode: 'memory' })
  const patched = await app.inject({ method: 'PATCH', url: '/r' })
  t.equal(patched.statusCode, 200)
  const br = await get(app, 'br')
  t.equal(br.headers['x-cache'], 'HIT')
  t.equal(br.headers['content-encoding'], 'br')
  t.equal(decoded(br), JSON_BODY)
  t.equal(calls(), 0)
})

t.test('codings are made when a hit first asks for one, not at store (issue 30); an invalidation wins whenever it lands', async (t) => {
  const zlib = require('node:zlib') as Record<string, (...args: unknown[]) => unknown>
  let compressions = 0
  for (const name of ['brotliCompress', 'brotliCompressSync', 'gzip', 'gzipSync', 'deflate', 'deflateSync']) {
    const real = zlib[name]
    zlib[name] = (...args: unknown[]) => { compressions++; return real(...args) }
    t.teardown(() => { zlib[name] = real })
  }
  const big = { rows: Array.from({ length: 4000 }, (_, i) => ({ id: i, text: 'row ' + String(i) + ' ' + String(i * 7919 % 1000) })) }
  const { app, calls } = await build(t, { mode: 'memory', tags: ['t'] }, {}, () => big)
  for (let i = 0; i < 5; i++) t.equal((await app.inject({ url: '/r?miss=' + String(i), headers: { 'accept-encoding': 'br, gzip' } })).headers['x-cache'], 'MISS')
  t.equal(compressions, 0, 'five stored misses, nothing compressed')
  t.equal((await get(app, 'identity')).headers['content-encoding'], undefined)
  t.equal(compressions, 0, 'an identity-only request compresses nothing either')
  const first = await get(app, 'br')
  t.same([first.headers['x-cache'], first.headers['content-encoding']], ['HIT', 'br'], 'the first br hit waits for the codings and gets br')
  const made = compressions
  t.ok(made >= 1 && made <= 3, `made once (${made} calls: br, gzip)`)
  const again = await Promise.all([get(app, 'gzip'), get(app, 'br'), get(app, 'gzip')])
  t.same(again.map((res) => res.headers['content-encoding']), ['gzip', 'br', 'gzip'])
  t.equal(compressions, made, 'later hits use them')
  await app.emberCache.invalidate({ tags: ['t'] })
  const next = await get(app)
  t.equal(next.headers['x-cache'], 'MISS', 'an invalidation drops the entry, codings and all')
  t.equal(calls(), 7)
})

t.test('compression options are checked at registration', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [{ encodings: ['zstd'] }, /compression\.encodings/],
    [{ encodings: ['br', 'br'] }, /compression\.encodings/],
    [{ minBytes: -1 }, /compression\.minBytes/],
    [{ minBytes: 100, maxBytes: 10 }, /compression\.maxBytes/],
    [{ level: 9 }, /compression\.level.*unknown/],
    ['yes', /compression/]
  ]
  for (const [compression, message] of bad) {
    t.throws(() => new MemoryCache({ compression: compression as never }), message, JSON.stringify(compression))
    const app = Fastify()
    await t.rejects(async () => { await app.register(emberCache, { compression: compression as never }) }, message)
  }
})
