// What is stored and how it is replayed: status, body bytes, headers (minus hop-by-hop and
// Set-Cookie), the x-cache header, what must never be stored, streams, serialization.
import t from 'tap'
import { Readable } from 'node:stream'
import { randomBytes } from 'node:crypto'
import { MemoryCache, StaticCache, type RouteCacheConfig } from '../lib/index'
import { countingApp as build, emberApp } from './helpers/apps'
import { INJECT_VARIANT } from '../lib/test-suite'

const CONFIGS: Array<[string, () => RouteCacheConfig]> = [
  ['{ mode: memory }', () => ({ mode: 'memory' })],
  ['{ mode: static }', () => ({ mode: 'static' })],
  ['MemoryCache', () => new MemoryCache({ ttl: 30 })],
  ['StaticCache', () => new StaticCache()],
  ['{ cache: MemoryCache, ttl }', () => ({ cache: new MemoryCache(), ttl: 5 })]
]

for (const [label, makeCache] of CONFIGS) {
  t.test(`${label}: status, body and content-type are replayed on a hit`, async (t) => {
    const { app, calls } = await build(t, (request, reply) => {
      reply.code(203)
      return { hello: 'wörld', n: calls() }
    }, makeCache())
    const miss = await app.inject('/r')
    const hit = await app.inject('/r')
    t.equal(miss.statusCode, 203)
    t.equal(miss.headers['x-cache'], 'MISS')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.equal(hit.statusCode, 203)
    t.equal(hit.body, miss.body)
    t.same(hit.json(), { hello: 'wörld', n: 1 })
    t.equal(hit.headers['content-type'], 'application/json; charset=utf-8')
    t.equal(hit.headers['content-length'], String(miss.rawPayload.length))
    t.equal(calls(), 1)
  })

  t.test(`${label}: binary bodies are replayed byte for byte`, async (t) => {
    const every = Buffer.alloc(256)
    for (let i = 0; i < 256; i++) every[i] = i
    const bytes = Buffer.concat([every, randomBytes(4096), Buffer.from([0xff, 0xfe, 0x00, 0xc3])])
    const { app, calls } = await build(t, (request, reply) => {
      reply.type('application/octet-stream')
      return bytes
    }, makeCache())
    const miss = await app.inject('/r')
    const hit = await app.inject('/r')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.ok(miss.rawPayload.equals(bytes), 'the miss is intact')
    t.ok(hit.rawPayload.equals(bytes), 'the hit is the same bytes')
    t.equal(hit.headers['content-type'], 'application/octet-stream')
    t.equal(hit.headers['content-length'], String(bytes.length))
    t.equal(calls(), 1)
  })
}

t.test('a 204 is replayed with no body', async (t) => {
  const { app, calls } = await build(t, (request, reply) => reply.code(204).send())
  await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.statusCode, 204)
  t.equal(hit.body, '')
  t.equal(calls(), 1)
})

t.test('text bodies keep their content-type and charset', async (t) => {
  const html = '<p>héllo ✓ 日本</p>'
  const { app } = await build(t, (request, reply) => reply.type('text/html; charset=utf-8').send(html))
  await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers['content-type'], 'text/html; charset=utf-8')
  t.equal(hit.body, html)
  t.ok(hit.rawPayload.equals(Buffer.from(html, 'utf8')))
})

t.test('custom headers are replayed, multi-valued ones included', async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.header('x-custom', 'abc')
    reply.header('X-Mixed-Case', 'Value')
    reply.header('link', ['</a>; rel=preload', '</b>; rel=preload'])
    reply.header('last-modified', 'Wed, 21 Oct 2015 07:28:00 GMT')
    reply.header('etag', '"v1"')
    reply.header('content-language', 'fr')
    return { ok: true }
  })
  const miss = await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers['x-custom'], 'abc')
  t.equal(hit.headers['x-mixed-case'], 'Value')
  t.same(hit.headers.link, ['</a>; rel=preload', '</b>; rel=preload'])
  t.equal(hit.headers['last-modified'], 'Wed, 21 Oct 2015 07:28:00 GMT')
  t.equal(hit.headers.etag, '"v1"', 'the handler ETag is kept, not recomputed')
  t.equal(hit.headers['content-language'], 'fr')
  t.equal(miss.headers.etag, '"v1"')
})

t.test('hop-by-hop headers are never replayed', async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.header('keep-alive', 'timeout=5')
    reply.header('proxy-authenticate', 'Basic realm="x"')
    reply.header('upgrade', 'h2c')
    reply.header('te', 'trailers')
    reply.header('connection', 'close')
    reply.header('x-kept', 'yes')
    return 'body'
  })
  const miss = await app.inject('/r')
  t.equal(miss.headers['keep-alive'], 'timeout=5', 'the origin response itself is untouched')
  t.equal(miss.headers.connection, 'close')
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.body, 'body')
  t.equal(hit.headers['x-kept'], 'yes')
  for (const name of ['keep-alive', 'proxy-authenticate', 'upgrade', 'te']) t.notOk(name in hit.headers, `${name} not replayed`)
  t.not(hit.headers.connection, 'close', 'connection not replayed')
})

t.test('headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1)', async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.header('connection', 'x-hop')
    reply.header('x-hop', 'only for this connection')
    reply.header('x-kept', 'yes')
    return 'body'
  })
  await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers['x-kept'], 'yes')
  t.notOk('x-hop' in hit.headers, 'x-hop not replayed')
})

t.test('a response with Set-Cookie is not stored and its cookie is never replayed', async (t) => {
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('set-cookie', 'session=' + calls() + '; HttpOnly')
    return { n: calls() }
  })
  const first = await app.inject('/r')
  const second = await app.inject('/r')
  t.equal(first.headers['set-cookie'], 'session=1; HttpOnly')
  t.equal(second.headers['x-cache'], 'MISS')
  t.equal(second.headers['set-cookie'], 'session=2; HttpOnly', 'each response carries its own cookie')
  t.same(second.json(), { n: 2 })
  t.equal(calls(), 2)
})

t.test('a cookie set only sometimes: only the cookie-free response is stored', async (t) => {
  const { app, calls } = await build(t, (request, reply) => {
    if ((request.query as { login?: string }).login === '1') reply.header('set-cookie', 'session=abc')
    return { n: calls() }
  })
  const withCookie = await app.inject('/r?login=1')
  t.equal(withCookie.headers['set-cookie'], 'session=abc')
  const again = await app.inject('/r?login=1')
  t.equal(again.headers['x-cache'], 'MISS')
  await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.notOk('set-cookie' in hit.headers)
  t.equal(calls(), 3)
})

for (const directive of ['no-store', 'private', 'private, max-age=60', 'max-age=60, No-Store']) {
  t.test(`Cache-Control: ${directive} from the handler is not stored`, async (t) => {
    const { app, calls } = await build(t, (request, reply) => {
      reply.header('cache-control', directive)
      return { n: calls() }
    })
    const first = await app.inject('/r')
    const second = await app.inject('/r')
    t.equal(first.headers['cache-control'], directive, 'the handler Cache-Control is sent as is')
    t.equal(second.headers['x-cache'], 'MISS')
    t.same(second.json(), { n: 2 })
    t.equal(calls(), 2)
  })
}

t.test('a handler Cache-Control that allows storing is stored and replayed as is', async (t) => {
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('cache-control', 'public, max-age=5')
    return 'ok'
  })
  await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers['cache-control'], 'public, max-age=5')
  t.equal(calls(), 1)
})

t.test('Vary: * is not stored', async (t) => {
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('vary', '*')
    return 'ok'
  })
  await app.inject('/r')
  t.equal((await app.inject('/r')).headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})

t.test('non-2xx statuses are not stored by default', async (t) => {
  for (const status of [301, 404, 500, 503]) {
    const { app, calls } = await build(t, (request, reply) => reply.code(status).send({ status }))
    const first = await app.inject('/r')
    const second = await app.inject('/r')
    t.equal(first.statusCode, status)
    t.equal(second.statusCode, status)
    t.equal(second.headers['x-cache'], 'MISS', `${status} not stored`)
    t.equal(calls(), 2)
  }
})

t.test('a thrown error is not stored', async (t) => {
  const { app, calls } = await build(t, () => { throw new Error('boom') })
  t.equal((await app.inject('/r')).statusCode, 500)
  const second = await app.inject('/r')
  t.equal(second.statusCode, 500)
  t.equal(second.headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})

t.test('206 Partial Content is not stored by default', async (t) => {
  const { app, calls } = await build(t, (request, reply) => reply.code(206).send('part'))
  await app.inject('/r')
  t.equal((await app.inject('/r')).headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})

t.test('plugin statusCodes make other statuses storable', async (t) => {
  const { app, calls } = await build(t, (request, reply) => reply.code(404).send({ missing: true }), { mode: 'memory' }, { statusCodes: [200, 404] })
  await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.statusCode, 404)
  t.same(hit.json(), { missing: true })
  t.equal(calls(), 1)
})

t.test('plugin statusCodes replace the default list', async (t) => {
  const { app, calls } = await build(t, (request, reply) => reply.code(201).send('made'), { mode: 'memory' }, { statusCodes: [200] })
  await app.inject('/r')
  t.equal((await app.inject('/r')).headers['x-cache'], 'MISS', '201 is no longer storable')
  t.equal(calls(), 2)
})

t.test('route statusCodes win over the plugin list', async (t) => {
  const { app, calls } = await build(t, (request, reply) => reply.code(410).send('gone'), { mode: 'memory', statusCodes: [410] }, { statusCodes: [200, 404] })
  await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.statusCode, 410)
  t.equal(calls(), 1)

  const other = await build(t, (request, reply) => reply.code(404).send('nope'), { mode: 'memory', statusCodes: [200] }, { statusCodes: [200, 404] })
  await other.app.inject('/r')
  t.equal((await other.app.inject('/r')).headers['x-cache'], 'MISS', 'the route list drops 404')
  t.equal(other.calls(), 2)
})

t.test('the hit/miss header name is configurable', async (t) => {
  const { app, calls } = await build(t, () => 'ok', { mode: 'memory' }, { header: 'X-Ember' })
  const miss = await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(miss.headers['x-ember'], 'MISS')
  t.equal(hit.headers['x-ember'], 'HIT')
  t.notOk('x-cache' in hit.headers)
  t.equal(calls(), 1)
})

t.test('header: false sends no hit/miss header but still caches', async (t) => {
  const { app, calls } = await build(t, () => 'ok', { mode: 'memory' }, { header: false })
  const miss = await app.inject('/r')
  const hit = await app.inject('/r')
  t.notOk('x-cache' in miss.headers)
  t.notOk('x-cache' in hit.headers)
  t.equal(hit.body, 'ok')
  t.equal(calls(), 1)
})

t.test('per-response headers are not stored with the entry', async (t) => {
  const cache = new MemoryCache()
  const { app } = await build(t, () => 'ok', cache, { header: 'x-hit' })
  await app.inject('/r')
  const entry = cache.lookup('GET:/r', INJECT_VARIANT)
  t.ok(entry !== undefined && typeof entry === 'object', 'stored')
  const stored = Object.keys((entry as { headers: Record<string, unknown> }).headers)
  for (const name of ['x-hit', 'date', 'content-length', 'age', 'connection']) t.notOk(stored.includes(name), `${name} not stored`)
  t.ok(stored.includes('content-type'))
  const hit = await app.inject('/r')
  t.equal(hit.headers['x-hit'], 'HIT')
  t.equal(hit.headers['content-length'], '2')
})

t.test('routes without config.cache get no cache header and are never cached', async (t) => {
  const app = await emberApp(t)
  let calls = 0
  app.get('/plain', async () => ({ n: ++calls }))
  const first = await app.inject('/plain')
  const second = await app.inject('/plain')
  t.notOk('x-cache' in second.headers)
  t.notOk('cache-control' in first.headers)
  t.same(second.json(), { n: 2 })
})

t.test('streams pass through untouched and are not stored by default', async (t) => {
  const bytes = randomBytes(10_000)
  const { app, calls } = await build(t, (request, reply) => {
    reply.type('application/octet-stream')
    return Readable.from([bytes.subarray(0, 3000), bytes.subarray(3000)])
  })
  const first = await app.inject('/r')
  const second = await app.inject('/r')
  t.ok(first.rawPayload.equals(bytes), 'first body intact')
  t.ok(second.rawPayload.equals(bytes), 'second body intact')
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(second.headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})

t.test('streams within streamMaxBytes are stored, body intact', async (t) => {
  const bytes = randomBytes(10_000)
  const { app, calls } = await build(t, (request, reply) => {
    reply.type('application/octet-stream')
    return Readable.from([bytes.subarray(0, 4000), bytes.subarray(4000)])
  }, { mode: 'memory' }, { streamMaxBytes: 10_000 })
  const miss = await app.inject('/r')
  const hit = await app.inject('/r')
  t.ok(miss.rawPayload.equals(bytes), 'miss body intact')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.ok(hit.rawPayload.equals(bytes), 'hit body is the same bytes')
  t.equal(hit.headers['content-type'], 'application/octet-stream')
  t.equal(calls(), 1)
})

t.test('streams past streamMaxBytes pass through intact and are not stored', async (t) => {
  const bytes = randomBytes(10_000)
  const { app, calls } = await build(t, (request, reply) => {
    reply.type('application/octet-stream')
    return Readable.from([bytes.subarray(0, 2000), bytes.subarray(2000, 6000), bytes.subarray(6000)])
  }, { mode: 'memory' }, { streamMaxBytes: 5000 })
  const first = await app.inject('/r')
  const second = await app.inject('/r')
  t.ok(first.rawPayload.equals(bytes), 'first body intact')
  t.ok(second.rawPayload.equals(bytes), 'second body intact')
  t.equal(second.headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})

t.test('route streamMaxBytes overrides the plugin default', async (t) => {
  const { app, calls } = await build(t, () => Readable.from([Buffer.from('streamed text')]), { mode: 'memory', streamMaxBytes: 100 })
  const miss = await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(miss.body, 'streamed text')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.body, 'streamed text')
  t.equal(calls(), 1)
})

t.test('bodies above maxEntryBytes are served intact but not stored', async (t) => {
  const bytes = randomBytes(2048)
  const { app, calls } = await build(t, (request, reply) => reply.type('application/octet-stream').send(bytes), new MemoryCache({ maxEntryBytes: 1024 }))
  const first = await app.inject('/r')
  const second = await app.inject('/r')
  t.ok(first.rawPayload.equals(bytes))
  t.ok(second.rawPayload.equals(bytes))
  t.equal(second.headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
})

t.test('a hit does not run the response serializer again', async (t) => {
  const app = await emberApp(t)
  let serialized = 0
  let handled = 0
  app.get('/s', {
    config: { cache: { mode: 'memory' } },
    schema: { response: { 200: { type: 'object', properties: { id: { type: 'integer' } } } } },
    serializerCompiler: () => (data: unknown) => {
      serialized++
      return JSON.stringify(data)
    }
  }, async () => ({ id: ++handled, dropped: 'not in schema' }))
  const miss = await app.inject('/s')
  t.equal(serialized, 1)
  const hit = await app.inject('/s')
  const hit2 = await app.inject('/s')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit2.body, miss.body)
  t.equal(serialized, 1, 'hits replay stored bytes')
  t.equal(handled, 1)
})

t.test('a hit does not run the default schema serializer or preSerialization hooks', async (t) => {
  const app = await emberApp(t)
  let preSerialization = 0
  app.addHook('preSerialization', async (request, reply, payload) => {
    preSerialization++
    return payload
  })
  app.get('/s', {
    config: { cache: new StaticCache() },
    schema: { response: { 200: { type: 'object', properties: { id: { type: 'integer' } } } } }
  }, async () => ({ id: 1, secret: 'filtered by the schema' }))
  const miss = await app.inject('/s')
  t.same(miss.json(), { id: 1 })
  const hit = await app.inject('/s')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.same(hit.json(), { id: 1 }, 'the serialized (filtered) form is what is replayed')
  t.equal(preSerialization, 1, 'preSerialization ran for the miss only')
})

t.test('a custom reply serializer runs on the miss only', async (t) => {
  const app = await emberApp(t)
  let serialized = 0
  app.setReplySerializer((payload) => {
    serialized++
    return JSON.stringify({ wrapped: payload })
  })
  app.get('/s', { config: { cache: { mode: 'memory' } } }, async () => ({ a: 1 }))
  await app.inject('/s')
  const hit = await app.inject('/s')
  t.same(hit.json(), { wrapped: { a: 1 } })
  t.equal(serialized, 1)
})

t.test('enabled: false makes every cached route a pass-through', async (t) => {
  const cache = new MemoryCache()
  const app = await emberApp(t, { enabled: false })
  let reads = 0
  let writes = 0
  app.get('/a', { config: { cache } }, async () => ({ n: ++reads }))
  app.get('/b', { config: { cache: { mode: 'static' } } }, async () => ({ n: ++reads }))
  app.put('/a', { config: { cache: { cache, writeThrough: true } } }, async () => ({ n: ++writes }))
  for (let i = 0; i < 2; i++) {
    const a = await app.inject('/a')
    const b = await app.inject('/b')
    t.notOk('x-cache' in a.headers)
    t.notOk('x-cache' in b.headers)
  }
  t.equal(reads, 4)
  const put = await app.inject({ method: 'PUT', url: '/a' })
  t.same(put.json(), { n: 1 })
  const after = await app.inject('/a')
  t.same(after.json(), { n: 5 }, 'writeThrough stored nothing')
  t.equal(cache.stats().entries, 0)
})

t.test('per-request headers (request ids, tracing) are not stored: a hit keeps its own values', async (t) => {
  const app = await emberApp(t, { perRequestHeaders: ['x-trace'] })
  let seq = 0
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-trace', 'trace-' + String(++seq))
    reply.header('x-request-id', 'req-' + String(seq))
  })
  app.get('/traced', { config: { cache: new MemoryCache() } }, async () => ({ ok: true }))
  const miss = await app.inject('/traced')
  const hit = await app.inject('/traced')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(miss.headers['x-trace'], 'trace-1')
  t.equal(hit.headers['x-trace'], 'trace-2', "the hit carries its own trace, not the first request's")
  t.equal(hit.headers['x-request-id'], 'req-1', 'a header left out of a custom perRequestHeaders list is stored as before')
})

t.test('per-request headers default: x-request-id and traceparent are never replayed', async (t) => {
  const app = await emberApp(t)
  let seq = 0
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', 'req-' + String(++seq))
    reply.header('traceparent', '00-' + String(seq))
  })
  app.get('/ids', { config: { cache: new MemoryCache() } }, async () => ({ ok: true }))
  await app.inject('/ids')
  const hit = await app.inject('/ids')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers['x-request-id'], 'req-2')
  t.equal(hit.headers.traceparent, '00-2')
})
