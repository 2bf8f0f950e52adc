// Validators and conditional requests (issue 4): every stored response carries an ETag, and
// If-None-Match / If-Modified-Since answer 304 Not Modified from a hit and from a fresh miss.
import t from 'tap'
import crypto from 'node:crypto'
import { countingApp as build, emberApp } from './helpers/apps'

const LAST_MODIFIED = 'Wed, 21 Oct 2015 07:28:00 GMT'

t.test('RFC 9110 §8.8.3: a stored response without an ETag gets one computed from its body', async (t) => {
  const { app, calls } = await build(t, () => ({ hello: 'world' }))
  const miss = await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(miss.headers['x-cache'], 'MISS')
  t.match(miss.headers.etag, /^W\/"[A-Za-z0-9_-]+"$/, 'a weak, quoted validator: a compressor after us may send other bytes under it')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers.etag, miss.headers.etag, 'the hit replays the same validator')
  t.equal(calls(), 1)
})

t.test('RFC 9110 §8.8.3: the computed ETag is computed once at store time, stable across hits', async (t) => {
  const original = crypto.hash
  let hashes = 0
  // Counts through the module object the compiled plugin calls into (one-shot crypto.hash).
  crypto.hash = ((...args: Parameters<typeof original>) => { hashes++; return original(...args) }) as typeof original
  t.teardown(() => { crypto.hash = original })
  const { app, calls } = await build(t, () => 'same body')
  const miss = await app.inject('/r')
  const etags = new Set<string>()
  for (let i = 0; i < 5; i++) {
    const hit = await app.inject('/r')
    t.equal(hit.headers['x-cache'], 'HIT')
    etags.add(String(hit.headers.etag))
  }
  t.same([...etags], [miss.headers.etag], 'every hit carries the stored ETag')
  t.equal(hashes, 1, 'hashed once, when stored, never per hit')
  t.equal(calls(), 1)
})

t.test('RFC 9110 §8.8.3: equal bodies on different URLs get equal computed ETags', async (t) => {
  const app = await emberApp(t)
  app.get('/a', { config: { cache: { mode: 'memory' } } }, async () => 'same')
  app.get('/b', { config: { cache: { mode: 'memory' } } }, async () => 'same')
  app.get('/c', { config: { cache: { mode: 'memory' } } }, async () => 'other')
  const a = await app.inject('/a')
  const b = await app.inject('/b')
  const c = await app.inject('/c')
  t.equal(a.headers.etag, b.headers.etag)
  t.not(a.headers.etag, c.headers.etag)
})

t.test("RFC 9110 §8.8.3: the handler's own ETag is kept, not replaced", async (t) => {
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('etag', 'W/"v7"')
    return 'body'
  })
  const miss = await app.inject('/r')
  const hit = await app.inject('/r')
  t.equal(miss.headers.etag, 'W/"v7"')
  t.equal(hit.headers.etag, 'W/"v7"')
  t.equal(calls(), 1)
})

t.test('RFC 9110 §13.1.2: If-None-Match with the current ETag answers 304 from a hit, with no body', async (t) => {
  const { app, calls } = await build(t, () => ({ hello: 'world' }))
  const miss = await app.inject('/r')
  const etag = String(miss.headers.etag)
  const res = await app.inject({ url: '/r', headers: { 'if-none-match': etag } })
  t.equal(res.statusCode, 304)
  t.equal(res.rawPayload.length, 0, 'no body')
  t.equal(res.headers.etag, etag, 'the validator is sent with the 304')
  t.equal(res.headers['x-cache'], 'HIT')
  t.match(res.headers['cache-control'], /^max-age=\d+$/)
  t.ok(res.headers.age !== undefined, 'Age is sent with the 304')
  t.equal(calls(), 1)
})

t.test('RFC 9110 §13.1.2: If-None-Match on a fresh miss answers 304 once the response is stored', async (t) => {
  const { app, calls } = await build(t, () => 'fresh miss')
  // A client that already holds this representation (e.g. from another instance).
  const probe = await build(t, () => 'fresh miss')
  const etag = String((await probe.app.inject('/r')).headers.etag)
  const res = await app.inject({ url: '/r', headers: { 'if-none-match': etag } })
  t.equal(res.statusCode, 304)
  t.equal(res.rawPayload.length, 0)
  t.equal(res.headers['x-cache'], 'MISS')
  t.equal(res.headers.etag, etag)
  t.equal(calls(), 1)
  const hit = await app.inject('/r')
  t.equal(hit.statusCode, 200, 'the full response was stored, not the 304')
  t.equal(hit.body, 'fresh miss')
})

t.test('RFC 9110 §13.1.2: If-None-Match with a different ETag answers 200 with the body', async (t) => {
  const { app, calls } = await build(t, () => 'body')
  await app.inject('/r')
  const res = await app.inject({ url: '/r', headers: { 'if-none-match': '"something-else"' } })
  t.equal(res.statusCode, 200)
  t.equal(res.body, 'body')
  t.equal(res.headers['x-cache'], 'HIT')
  t.equal(calls(), 1)
})

t.test('RFC 9110 §13.1.2: If-None-Match with a list matches when any member matches', async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.header('etag', '"b"')
    return 'body'
  })
  await app.inject('/r')
  const res = await app.inject({ url: '/r', headers: { 'if-none-match': '"a", "b" , "c"' } })
  t.equal(res.statusCode, 304)
  const none = await app.inject({ url: '/r', headers: { 'if-none-match': '"a", "c"' } })
  t.equal(none.statusCode, 200)
})

t.test('RFC 9110 §13.1.2: If-None-Match with a weak list matches (weak comparison)', async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.header('etag', '"v1"')
    return 'body'
  })
  await app.inject('/r')
  const weakRequest = await app.inject({ url: '/r', headers: { 'if-none-match': 'W/"v0", W/"v1"' } })
  t.equal(weakRequest.statusCode, 304, 'W/"v1" matches a strong "v1"')
  t.equal(weakRequest.rawPayload.length, 0)
})

t.test('RFC 9110 §13.1.2: a weak stored ETag matches a strong If-None-Match (weak comparison)', async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.header('etag', 'W/"v1"')
    return 'body'
  })
  await app.inject('/r')
  const res = await app.inject({ url: '/r', headers: { 'if-none-match': '"v1"' } })
  t.equal(res.statusCode, 304)
})

t.test('RFC 9110 §13.1.2: If-None-Match: * matches any stored representation', async (t) => {
  const { app, calls } = await build(t, () => 'body')
  await app.inject('/r')
  const res = await app.inject({ url: '/r', headers: { 'if-none-match': '*' } })
  t.equal(res.statusCode, 304)
  t.equal(res.rawPayload.length, 0)
  t.equal(calls(), 1)
})

t.test('RFC 9110 §13.1.3: If-Modified-Since at or after Last-Modified answers 304 from a hit', async (t) => {
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('last-modified', LAST_MODIFIED)
    return 'body'
  })
  await app.inject('/r')
  const same = await app.inject({ url: '/r', headers: { 'if-modified-since': LAST_MODIFIED } })
  t.equal(same.statusCode, 304)
  t.equal(same.rawPayload.length, 0)
  t.equal(same.headers['last-modified'], LAST_MODIFIED)
  const later = await app.inject({ url: '/r', headers: { 'if-modified-since': 'Thu, 22 Oct 2015 07:28:00 GMT' } })
  t.equal(later.statusCode, 304)
  t.equal(calls(), 1)
})

t.test('RFC 9110 §13.1.3: If-Modified-Since on a fresh miss answers 304', async (t) => {
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('last-modified', LAST_MODIFIED)
    return 'body'
  })
  const res = await app.inject({ url: '/r', headers: { 'if-modified-since': LAST_MODIFIED } })
  t.equal(res.statusCode, 304)
  t.equal(res.rawPayload.length, 0)
  t.equal(res.headers['x-cache'], 'MISS')
  t.equal(calls(), 1)
})

t.test('RFC 9110 §13.1.3: If-Modified-Since before Last-Modified answers 200 with the body', async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.header('last-modified', LAST_MODIFIED)
    return 'body'
  })
  await app.inject('/r')
  const res = await app.inject({ url: '/r', headers: { 'if-modified-since': 'Tue, 20 Oct 2015 07:28:00 GMT' } })
  t.equal(res.statusCode, 200)
  t.equal(res.body, 'body')
})

t.test('RFC 9110 §13.1.3: If-Modified-Since without a stored Last-Modified answers 200', async (t) => {
  const { app } = await build(t, () => 'body')
  await app.inject('/r')
  const res = await app.inject({ url: '/r', headers: { 'if-modified-since': 'Thu, 01 Jan 2099 00:00:00 GMT' } })
  t.equal(res.statusCode, 200)
  t.equal(res.body, 'body')
})

t.test('RFC 9110 §13.1.3: an invalid If-Modified-Since date is ignored', async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.header('last-modified', LAST_MODIFIED)
    return 'body'
  })
  await app.inject('/r')
  const res = await app.inject({ url: '/r', headers: { 'if-modified-since': 'yesterday' } })
  t.equal(res.statusCode, 200)
})

t.test('RFC 9110 §13.2.2: If-None-Match takes precedence over If-Modified-Since', async (t) => {
  const { app } = await build(t, (request, reply) => {
    reply.header('last-modified', LAST_MODIFIED)
    reply.header('etag', '"v1"')
    return 'body'
  })
  await app.inject('/r')
  const res = await app.inject({ url: '/r', headers: { 'if-none-match': '"v0"', 'if-modified-since': LAST_MODIFIED } })
  t.equal(res.statusCode, 200, 'a non-matching If-None-Match wins over a matching date')
  t.equal(res.body, 'body')
})

t.test('RFC 9110 §15.4.5: a HEAD request with a matching If-None-Match answers 304 from the GET entry', async (t) => {
  const { app, calls } = await build(t, () => 'body')
  const miss = await app.inject('/r')
  const res = await app.inject({ method: 'HEAD', url: '/r', headers: { 'if-none-match': String(miss.headers.etag) } })
  t.equal(res.statusCode, 304)
  t.equal(res.rawPayload.length, 0)
  t.equal(calls(), 1)
})
