// Compression (issue 4): with @fastify/compress registered, one identity entry serves every
// client, compressed or not, and Accept-Encoding never splits the cache.
//
// Hook order: both plugins add their onSend hook to each route from an onRoute hook, so the
// route's onSend hooks run in plugin registration order. Registered before compress, our hook
// sees the identity body and compress then encodes misses and hits alike. Registered after
// it, our hook sees the encoded body and decodes it before storing (gzip, deflate, br). Both
// orders are tested here.
import t from 'tap'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import compress from '@fastify/compress'
import emberCache, { type EmberCachePluginOptions, type RouteCacheConfig } from '../lib/index'

interface Scope { teardown: (fn: () => unknown) => void }
type Handler = (request: FastifyRequest, reply: FastifyReply) => unknown
interface Setup { compressFirst: boolean, compressOptions?: Record<string, unknown>, options?: EmberCachePluginOptions, cache?: RouteCacheConfig }

const BODY = { items: Array.from({ length: 100 }, (_, i) => ({ id: i, name: 'item number ' + String(i) })) }
const JSON_BODY = JSON.stringify(BODY)

async function build (t: Scope, setup: Setup, handler: Handler = () => BODY): Promise<{ app: FastifyInstance, calls: () => number }> {
  const app = Fastify()
  t.teardown(() => app.close())
  const compressOptions = { threshold: 0, ...setup.compressOptions }
  if (setup.compressFirst) await app.register(compress, compressOptions)
  await app.register(emberCache, setup.options ?? {})
  if (!setup.compressFirst) await app.register(compress, compressOptions)
  let calls = 0
  app.get('/r', { config: { cache: setup.cache ?? { mode: 'memory' } } }, async (request, reply) => {
    calls++
    return handler(request, reply)
  })
  return { app, calls: () => calls }
}

/** Waits until the route's entry is in the cache (codings are made after the miss is answered). */
async function storedOnce (app: FastifyInstance): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((app.emberCache.stats().routes.find((route) => route.route === 'GET /r')?.stores ?? 0) > 0) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error('the entry was never stored')
}

const get = (encoding?: string, headers: Record<string, string> = {}): { url: string, headers: Record<string, string> } =>
  ({ url: '/r', headers: encoding === undefined ? headers : { ...headers, 'accept-encoding': encoding } })

for (const compressFirst of [false, true]) {
  const order = compressFirst ? 'compress registered first' : 'compress registered after'

  t.test(`RFC 9110 §12.5.3 (${order}): gzip and identity clients are served correct bodies from one entry`, async (t) => {
    const { app, calls } = await build(t, { compressFirst })
    const gzipMiss = await app.inject(get('gzip'))
    t.equal(gzipMiss.headers['x-cache'], 'MISS')
    t.equal(gzipMiss.headers['content-encoding'], 'gzip')
    t.equal(gunzipSync(gzipMiss.rawPayload).toString(), JSON_BODY)
    t.match(gzipMiss.headers['cache-status'], /stored/)

    const identityHit = await app.inject(get('identity'))
    t.equal(identityHit.headers['x-cache'], 'HIT')
    t.equal(identityHit.headers['content-encoding'], undefined, 'the entry holds the identity body')
    t.equal(identityHit.body, JSON_BODY)
    t.equal(identityHit.headers['content-length'], String(Buffer.byteLength(JSON_BODY)))

    const noHeaderHit = await app.inject(get(undefined))
    t.equal(noHeaderHit.headers['x-cache'], 'HIT')
    t.equal(noHeaderHit.body, JSON_BODY)

    const gzipHit = await app.inject(get('gzip'))
    t.equal(gzipHit.headers['x-cache'], 'HIT')
    t.equal(gzipHit.headers['content-encoding'], 'gzip', 'compression applies to hits')
    t.match(gzipHit.headers.vary, /accept-encoding/)
    t.equal(gunzipSync(gzipHit.rawPayload).toString(), JSON_BODY)

    const brHit = await app.inject(get('br'))
    t.equal(brHit.headers['x-cache'], 'HIT')
    t.equal(brHit.headers['content-encoding'], 'br')
    t.equal(brotliDecompressSync(brHit.rawPayload).toString(), JSON_BODY)

    t.equal(gzipHit.headers.etag, String(identityHit.headers.etag).replace(/"$/, '-gzip"'), 'one validator per representation (RFC 9110 §8.8.3)')
    t.equal(brHit.headers.etag, String(identityHit.headers.etag).replace(/"$/, '-br"'))
    t.equal(calls(), 1, 'Accept-Encoding did not split the cache')
  })

  t.test(`RFC 9110 §12.5.3 (${order}): an identity miss then a gzip hit`, async (t) => {
    const { app, calls } = await build(t, { compressFirst })
    const miss = await app.inject(get('identity'))
    t.equal(miss.body, JSON_BODY)
    const hit = await app.inject(get('gzip, deflate'))
    t.equal(hit.headers['x-cache'], 'HIT')
    t.equal(hit.headers['content-encoding'], 'gzip')
    t.equal(gunzipSync(hit.rawPayload).toString(), JSON_BODY)
    t.equal(calls(), 1)
  })

  t.test(`RFC 9111 §4.1 (${order}): a handler Vary is learned, Accept-Encoding added by compress is not`, async (t) => {
    const { app, calls } = await build(t, { compressFirst }, (request, reply) => {
      reply.header('vary', 'x-lang')
      return { lang: request.headers['x-lang'], pad: 'x'.repeat(200) }
    })
    await app.inject(get('gzip', { 'x-lang': 'fr' }))
    const frIdentity = await app.inject(get('identity', { 'x-lang': 'fr' }))
    t.equal(frIdentity.headers['x-cache'], 'HIT')
    t.equal(frIdentity.json().lang, 'fr')
    t.equal(frIdentity.headers.vary, 'x-lang', 'stored without accept-encoding')
    const enGzip = await app.inject(get('gzip', { 'x-lang': 'en' }))
    t.equal(enGzip.headers['x-cache'], 'MISS')
    t.equal(JSON.parse(gunzipSync(enGzip.rawPayload).toString()).lang, 'en')
    t.equal(calls(), 2)
  })

  t.test(`RFC 9110 §13.1.2 (${order}): If-None-Match on a fresh gzip miss answers 304 with no body`, async (t) => {
    const probe = await build(t, { compressFirst })
    const etag = String((await probe.app.inject(get('identity'))).headers.etag)
    const { app } = await build(t, { compressFirst })
    const res = await app.inject(get('gzip', { 'if-none-match': etag }))
    t.equal(res.statusCode, 304)
    t.equal(res.rawPayload.length, 0)
    const hit = await app.inject(get('gzip', { 'if-none-match': etag }))
    t.equal(hit.statusCode, 304)
    t.equal(hit.rawPayload.length, 0)
  })
}

t.test('compress registered first, stream path (syncThreshold 0): stored decoded when streamMaxBytes allows', async (t) => {
  const { app, calls } = await build(t, { compressFirst: true, compressOptions: { syncThreshold: 0 }, options: { streamMaxBytes: 1 << 20 } })
  const miss = await app.inject(get('gzip'))
  t.equal(miss.headers['content-encoding'], 'gzip')
  t.equal(gunzipSync(miss.rawPayload).toString(), JSON_BODY)
  t.match(miss.headers['cache-status'], /stored/)
  const hit = await app.inject(get('identity'))
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.body, JSON_BODY)
  t.equal(calls(), 1)
})

t.test('compress registered first, stream path without streamMaxBytes: served, not stored', async (t) => {
  const { app, calls } = await build(t, { compressFirst: true, compressOptions: { syncThreshold: 0 } })
  const miss = await app.inject(get('gzip'))
  t.equal(gunzipSync(miss.rawPayload).toString(), JSON_BODY)
  t.match(miss.headers['cache-status'], /detail=stream/)
  const identity = await app.inject(get('identity'))
  t.equal(identity.headers['x-cache'], 'MISS', 'the uncompressed response is the first one stored')
  t.equal(identity.body, JSON_BODY)
  const gzipHit = await app.inject(get('gzip'))
  t.equal(gzipHit.headers['x-cache'], 'HIT')
  t.equal(gunzipSync(gzipHit.rawPayload).toString(), JSON_BODY)
  t.equal(calls(), 2)
})

t.test('maxEntryBytes applies to the decoded body when compress ran first', async (t) => {
  const { MemoryCache } = await import('../lib/index')
  const { app, calls } = await build(t, { compressFirst: true, cache: new MemoryCache({ maxEntryBytes: 1000 }) })
  const miss = await app.inject(get('gzip'))
  t.ok(miss.rawPayload.length < 1000, 'the gzip body fits')
  t.equal(gunzipSync(miss.rawPayload).toString(), JSON_BODY)
  t.match(miss.headers['cache-status'], /detail=too-large/)
  t.equal((await app.inject(get('gzip'))).headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})

t.test('a handler that encodes its own body without Vary: Accept-Encoding is stored as sent', async (t) => {
  const { gzipSync } = await import('node:zlib')
  const encoded = gzipSync('precompressed')
  const { app, calls } = await build(t, { compressFirst: false }, (request, reply) => {
    reply.header('content-encoding', 'gzip').type('text/plain')
    return encoded
  })
  await app.inject(get('gzip'))
  const hit = await app.inject(get('gzip'))
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers['content-encoding'], 'gzip')
  t.equal(gunzipSync(hit.rawPayload).toString(), 'precompressed')
  t.equal(calls(), 1)
})

t.test('a negotiated Content-Encoding that does not decode is served, not stored', async (t) => {
  const { app, calls } = await build(t, { compressFirst: false }, (request, reply) => {
    reply.header('content-encoding', 'gzip').header('vary', 'Accept-Encoding').type('application/octet-stream')
    return Buffer.from('not gzip at all')
  })
  const res = await app.inject(get('gzip'))
  t.equal(res.rawPayload.toString(), 'not gzip at all')
  t.match(res.headers['cache-status'], /detail=content-encoding/)
  t.equal((await app.inject(get('gzip'))).headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})

t.test('RFC 5861 §4 (compress registered first): a stale-if-error answer is not labelled with the error body coding', async (t) => {
  const realNow = Date.now
  let offset = 0
  Date.now = () => realNow() + offset
  t.teardown(() => { Date.now = realNow })
  let fail = false
  const { app, calls } = await build(t, { compressFirst: true, cache: { mode: 'memory', ttl: 10, staleIfError: 60 } }, (request, reply) => {
    if (!fail) return BODY
    reply.code(503)
    return { error: 'x'.repeat(2000) }
  })
  await app.inject(get('identity'))
  await storedOnce(app)
  fail = true
  offset = 20_000
  const res = await app.inject(get('gzip'))
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-cache'], 'STALE')
  t.equal(res.headers['content-encoding'], 'gzip', "the entry's stored gzip body, not the error body's coding")
  t.equal(gunzipSync(res.rawPayload).toString(), JSON_BODY)
  const identity = await app.inject(get('identity'))
  t.equal(identity.headers['content-encoding'], undefined, 'an identity client gets the stored identity body')
  t.equal(identity.body, JSON_BODY)
  t.equal(calls(), 3)
})
