// ttl: 'from-response' as an RFC 9111 shared cache (issue 16): on an ordinary route whose
// handler sets the headers, and through the caching reverse proxy of example-app/proxy.js
// (@fastify/reply-from) in front of a real upstream server.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { createRequire } from 'node:module'
import { MemoryCache, type InvalidationTarget } from '../lib/index'
import { emberApp } from './helpers/apps'
import { useClock } from './helpers/clock'

const { buildProxy } = createRequire(__filename)('../example-app/proxy.js') as { buildProxy: (options: { upstream: string }) => Promise<FastifyInstance> }

type Handler = (request: FastifyRequest, reply: FastifyReply, run: number) => unknown

/** A from-response route at GET /r whose handler counts its runs and sees every request. */
async function origin (t: Test, handler: Handler, route: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, calls: () => number, seen: FastifyRequest['headers'][] }> {
  const app = await emberApp(t)
  let calls = 0
  const seen: FastifyRequest['headers'][] = []
  app.get('/r', { config: { cache: { mode: 'memory', ttl: 'from-response', ...route } } }, async (request, reply) => {
    seen.push({ ...request.headers })
    return handler(request, reply, ++calls)
  })
  return { app, calls: () => calls, seen }
}

t.test('RFC 9111 §5.3: Expires minus Date gives the freshness; an invalid Expires means already expired', async (t) => {
  const clock = useClock(t)
  const dated = await origin(t, (_request, reply) => {
    const now = Date.now()
    reply.header('date', new Date(now).toUTCString()).header('expires', new Date(now + 30_000).toUTCString())
    return 'dated'
  })
  await dated.app.inject('/r')
  clock.advance(20)
  t.equal((await dated.app.inject('/r')).headers['x-cache'], 'HIT', 'fresh for the 30 s between Date and Expires')
  clock.advance(15)
  t.equal((await dated.app.inject('/r')).headers['x-cache'], 'MISS', 'and not after')
  const invalid = await origin(t, (_request, reply) => { reply.header('expires', '0'); return 'x' })
  await invalid.app.inject('/r')
  t.equal((await invalid.app.inject('/r')).headers['x-cache'], 'MISS')
})

t.test('RFC 9111 §4.2.3: an upstream Age counts: too old is never fresh, and a hit\'s Age goes on from it', async (t) => {
  const old = await origin(t, (_request, reply) => { reply.header('cache-control', 'max-age=3600').header('age', '7200'); return 'old' })
  await old.app.inject('/r')
  t.equal((await old.app.inject('/r')).headers['x-cache'], 'MISS', 'Age 7200 > max-age 3600')
  const young = await origin(t, (_request, reply) => { reply.header('cache-control', 'max-age=3600').header('age', '100'); return 'young' })
  await young.app.inject('/r')
  const hit = await young.app.inject('/r')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.ok(Number(hit.headers.age) >= 100, 'Age continues from the upstream Age: ' + String(hit.headers.age))
  // RFC 9111 §5.1: Age is a non-negative integer; a value that is not one is ignored (today's
  // cache-tests age-parse-*). A list is read by its first member, parameters dropped.
  for (const [age, expected] of [['abc', 'HIT'], ['-5', 'HIT'], ['7.0', 'HIT'], ['1, 7200', 'HIT'], ['7200, 1', 'MISS'], ['5;x=1', 'HIT'], ['7200;x=1', 'MISS']]) {
    const odd = await origin(t, (_request, reply) => { reply.header('cache-control', 'max-age=3600').header('age', age); return 'x' })
    await odd.app.inject('/r')
    t.equal((await odd.app.inject('/r')).headers['x-cache'], expected, `an Age of ${JSON.stringify(age)}: ${expected}`)
  }
})

t.test('RFC 9111 §4.3: a stale entry with an ETag is revalidated; a 304 freshens it and the client gets the stored body', async (t) => {
  const clock = useClock(t)
  const { app, calls, seen } = await origin(t, (request, reply, run) => {
    reply.header('cache-control', 'max-age=10').header('etag', '"v1"').header('x-run', String(run))
    if (request.headers['if-none-match'] === '"v1"') return reply.code(304).send()
    return 'body v1'
  })
  await app.inject('/r')
  clock.advance(11)
  const revalidated = await app.inject('/r')
  t.equal(seen[1]['if-none-match'], '"v1"', 'the handler got a conditional request with the stored ETag')
  t.equal(revalidated.statusCode, 200)
  t.equal(revalidated.body, 'body v1', 'the stored body, not the 304')
  t.equal(revalidated.headers['x-cache'], 'REVALIDATED')
  t.equal(revalidated.headers['x-run'], '2', 'headers updated from the 304 (RFC 9111 §3.2)')
  t.match(revalidated.headers['cache-status'], /fwd=stale; fwd-status=304; stored/)
  t.equal((await app.inject('/r')).headers['x-cache'], 'HIT', 'fresh again for another max-age')
  clock.advance(11)
  const own = await app.inject({ url: '/r', headers: { 'if-none-match': '"v1"' } })
  t.equal(own.statusCode, 304, 'a client whose own validator matches gets a 304')
  t.equal(seen[2]['if-none-match'], '"v1"')
  const other = await app.inject({ url: '/r', headers: { 'if-none-match': '"v0"' } })
  t.equal(other.statusCode, 200, 'one whose validator does not gets the body')
  t.equal(calls(), 3)
})

t.test('RFC 9111 §4.3: Last-Modified revalidates too; a 200 to the conditional request replaces the entry', async (t) => {
  const clock = useClock(t)
  const { app, seen } = await origin(t, (_request, reply, run) => {
    reply.header('cache-control', 'max-age=5').header('last-modified', 'Wed, 01 Jan 2025 00:00:00 GMT')
    return 'version ' + String(run)
  })
  await app.inject('/r')
  clock.advance(6)
  const replaced = await app.inject('/r')
  t.equal(seen[1]['if-modified-since'], 'Wed, 01 Jan 2025 00:00:00 GMT')
  t.equal(replaced.body, 'version 2')
  t.equal((await app.inject('/r')).body, 'version 2', 'the new response was stored')
})

t.test('RFC 9111 §5.2.2.4: response no-cache is stored but revalidated on every use', async (t) => {
  const { app, seen } = await origin(t, (request, reply) => {
    reply.header('cache-control', 'max-age=3600, no-cache').header('etag', '"nc"')
    if (request.headers['if-none-match'] === '"nc"') return reply.code(304).send()
    return 'no-cache body'
  })
  await app.inject('/r')
  for (let i = 0; i < 3; i++) {
    const res = await app.inject('/r')
    t.equal(res.headers['x-cache'], 'REVALIDATED', 'never a plain hit')
    t.equal(res.body, 'no-cache body')
  }
  t.equal(seen.length, 4, 'the handler was asked each time')
})

t.test('RFC 9111 §5.2.2.2 / RFC 5861: response stale windows are read from the response; must-revalidate forbids serving stale', async (t) => {
  const clock = useClock(t)
  const swr = await origin(t, (_request, reply, run) => { reply.header('cache-control', 'max-age=1, stale-while-revalidate=60'); return 'run ' + String(run) })
  await swr.app.inject('/r')
  clock.advance(2)
  const stale = await swr.app.inject('/r')
  t.equal(stale.headers['x-cache'], 'STALE', 'stale-while-revalidate from the response, no route option')
  const sie = await origin(t, (_request, reply, run) => {
    if (run > 1) return reply.code(503).send('down')
    reply.header('cache-control', 'max-age=1, stale-if-error=60')
    return 'good'
  })
  await sie.app.inject('/r')
  clock.advance(2)
  const rescued = await sie.app.inject('/r')
  t.equal(rescued.statusCode, 200)
  t.equal(rescued.body, 'good', 'stale-if-error from the response')
  const strict = await origin(t, (_request, reply, run) => {
    if (run > 1) return reply.code(503).send('down')
    reply.header('cache-control', 'max-age=1, stale-if-error=60, must-revalidate')
    return 'good'
  })
  await strict.app.inject('/r')
  clock.advance(2)
  t.equal((await strict.app.inject('/r')).statusCode, 503, 'must-revalidate: the error goes through, never the stale entry')
})

t.test('RFC 9111 §4.2.1, §5.2: directive parsing', async (t) => {
  const cases: Array<[string, boolean]> = [
    ['max-age=3600, max-age=1800', false],
    ['max-age =3600', false],
    ['max-age= 3600', false],
    ['extension="max-age=3600", max-age=1', false],
    ['MaX-aGe=3600', true],
    ['foobar, max-age=3600', true],
    ['max-age=003600', true],
    ['max-age="3600"', true],
    ['max-age=99999999999', true]
  ]
  for (const [header, cached] of cases) {
    const { app } = await origin(t, (_request, reply) => { reply.header('cache-control', header); return 'x' })
    await app.inject('/r')
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    t.equal((await app.inject('/r')).headers['x-cache'], cached ? 'HIT' : 'MISS', `Cache-Control: ${header}`)
  }
})

t.test('RFC 9110 §15.1, RFC 9111 §3: storable statuses; never a 206 or a 304 as the entry', async (t) => {
  for (const status of [404, 500, 301, 599]) {
    const { app } = await origin(t, (_request, reply) => reply.code(status).header('cache-control', 'max-age=60').send('status ' + String(status)))
    await app.inject('/r')
    t.equal((await app.inject('/r')).headers['x-cache'], 'HIT', `${status} with explicit freshness is stored`)
  }
  const partial = await origin(t, (_request, reply) => reply.code(206).header('cache-control', 'max-age=60').header('content-range', 'bytes 0-1/10').send('ab'))
  await partial.app.inject('/r')
  t.equal((await partial.app.inject('/r')).headers['x-cache'], 'MISS', '206 is never the entry')
  const created = await origin(t, (_request, reply) => reply.code(201).header('last-modified', 'Wed, 01 Jan 2020 00:00:00 GMT').send('x'), { heuristicFreshness: true })
  await created.app.inject('/r')
  t.equal((await created.app.inject('/r')).headers['x-cache'], 'MISS', '201 has no heuristic freshness')
  const heuristic = await origin(t, (_request, reply) => reply.header('last-modified', 'Wed, 01 Jan 2020 00:00:00 GMT').send('x'), { heuristicFreshness: true })
  await heuristic.app.inject('/r')
  t.equal((await heuristic.app.inject('/r')).headers['x-cache'], 'HIT', 'heuristicFreshness: a 200 with Last-Modified is fresh for a while (RFC 9111 §4.2.2)')
  const understood = await origin(t, (_request, reply) => reply.code(599).header('cache-control', 'max-age=60, must-understand').send('x'))
  await understood.app.inject('/r')
  t.equal((await understood.app.inject('/r')).headers['x-cache'], 'MISS', 'must-understand with a status we do not know (RFC 9111 §5.2.2.3)')
})

t.test('from-response routes pass the response on unedited: no Cache-Control added, no computed ETag', async (t) => {
  const { app } = await origin(t, (_request, reply) => { reply.header('expires', new Date(Date.now() + 60_000).toUTCString()); return 'x' })
  const miss = await app.inject('/r')
  const hit = await app.inject('/r')
  for (const res of [miss, hit]) {
    t.equal(res.headers['cache-control'], undefined)
    t.equal(res.headers.etag, undefined)
  }
  t.equal(hit.headers['x-cache'], 'HIT')
})

t.test('RFC 9110 §14: a Range request on a stored full response gets a correct 206; the 206 is never stored', async (t) => {
  const { app, calls } = await origin(t, (_request, reply) => { reply.header('cache-control', 'max-age=60').header('etag', '"r1"'); return '0123456789' })
  await app.inject('/r')
  const range = (header: string, extra: Record<string, string> = {}): Promise<{ statusCode: number, body: string, headers: Record<string, unknown> }> => app.inject({ url: '/r', headers: { range: header, ...extra } })
  const first = await range('bytes=2-4')
  t.same([first.statusCode, first.body, first.headers['content-range']], [206, '234', 'bytes 2-4/10'])
  const suffix = await range('bytes=-3')
  t.same([suffix.statusCode, suffix.body], [206, '789'])
  const open = await range('bytes=7-')
  t.same([open.statusCode, open.body], [206, '789'])
  const multiple = await range('bytes=0-1, 4-5')
  t.same([multiple.statusCode, multiple.body], [200, '0123456789'], 'several ranges: the whole representation')
  const beyond = await range('bytes=20-30')
  t.same([beyond.statusCode, beyond.headers['content-range']], [416, 'bytes */10'])
  const ifRange = await range('bytes=0-1', { 'if-range': '"other"' })
  t.same([ifRange.statusCode, ifRange.body], [200, '0123456789'], 'If-Range naming another representation: everything')
  const ifRangeOk = await range('bytes=0-1', { 'if-range': '"r1"' })
  t.same([ifRangeOk.statusCode, ifRangeOk.body], [206, '01'])
  t.equal(calls(), 1, 'all of it from the one stored response')
})

t.test('invalidation wins races precisely: only misses whose key, tag or pattern was invalidated are dropped', async (t) => {
  const app = await emberApp(t)
  const cache = new MemoryCache()
  let release: () => void = () => {}
  const gate = (): Promise<void> => new Promise((resolve) => { release = resolve })
  app.get('/slow/:id', { config: { cache: { cache, tags: (request) => ['item:' + request.params.id] } } }, async (request) => {
    await gate()
    return { id: (request.params as { id: string }).id }
  })
  const cases: Array<[string, InvalidationTarget, boolean]> = [
    ['another key', { key: 'GET:/other' }, false],
    ['another tag', { tags: ['item:2'] }, false],
    ['a pattern that does not match', { pattern: 'GET:/else*' }, false],
    ['its key', { key: 'GET:/slow/1' }, true],
    ['its tag', { tags: ['item:1'] }, true],
    ['a pattern matching it', { pattern: 'GET:/slow/*' }, true]
  ]
  for (const [label, target, dropped] of cases) {
    await cache.clear()
    const pending = app.inject('/slow/1')
    await new Promise((resolve) => setTimeout(resolve, 20))
    await cache.invalidate(target)
    release()
    const res = await pending
    t.equal(/detail=invalidated/.test(String(res.headers['cache-status'])), dropped, `${label}: ${dropped ? 'not stored' : 'stored'}`)
    const next = app.inject('/slow/1')
    // Only a miss runs the handler (and waits at the gate); a stray release would open the next case's.
    if (dropped) setTimeout(() => release(), 10)
    t.equal((await next).headers['x-cache'], dropped ? 'MISS' : 'HIT')
  }
})

t.test('RFC 9111 §4.1: Vary is kept per stored key: one URL\'s Vary does not touch another URL of the same route', async (t) => {
  const app = await emberApp(t)
  let calls = 0
  app.get('/pages/*', { config: { cache: { mode: 'memory' } } }, async (request, reply) => {
    calls++
    if (request.url === '/pages/localized') reply.header('vary', 'accept-language')
    return request.url
  })
  await app.inject('/pages/plain')
  await app.inject({ url: '/pages/localized', headers: { 'accept-language': 'en' } })
  t.equal((await app.inject({ url: '/pages/plain', headers: { 'accept-language': 'fr' } })).headers['x-cache'], 'HIT', 'the plain page stays one entry for every language')
  t.equal((await app.inject({ url: '/pages/localized', headers: { 'accept-language': 'fr' } })).headers['x-cache'], 'MISS', 'the localized one varies')
  t.equal((await app.inject({ url: '/pages/localized', headers: { 'accept-language': 'en' } })).headers['x-cache'], 'HIT')
  t.equal(calls, 3)
})

t.test('RFC 9111 §3.5: on a from-response route, a credentialed response is stored only when it says so, and never served to credentials', async (t) => {
  for (const [cc, stored] of [['max-age=60', false], ['max-age=60, public', true], ['s-maxage=60', true], ['max-age=60, must-revalidate', true]] as const) {
    const { app, calls } = await origin(t, (_request, reply) => { reply.header('cache-control', cc); return 'x' })
    await app.inject({ url: '/r', headers: { authorization: 'Bearer a' } })
    t.equal((await app.inject('/r')).headers['x-cache'], stored ? 'HIT' : 'MISS', `${cc}: ${stored ? 'stored' : 'not stored'}`)
    await app.inject({ url: '/r', headers: { authorization: 'Bearer b' } })
    t.equal(calls(), stored ? 2 : 3, 'a credentialed request always reaches the origin')
  }
})

t.test('through the caching reverse proxy (reply-from) in front of a real upstream', async (t) => {
  const upstream = Fastify()
  t.teardown(() => upstream.close())
  let reads = 0
  let version = 1
  upstream.addHttpMethod('PURGE')
  upstream.get('/doc', async (request, reply) => {
    reads++
    const etag = `"v${version}"`
    // 2 s, not 1: the upstream's Date has whole seconds, so a response made late in a second
    // arrives up to 1 s old (RFC 9111 §4.2.3 apparent age), and max-age=1 was stale by the next request.
    reply.header('cache-control', 'max-age=2').header('etag', etag)
    if (request.headers['if-none-match'] === etag) return reply.code(304).send()
    return reply.type('text/plain').send('document v' + String(version))
  })
  upstream.get('/other', async (_request, reply) => { reads++; reply.header('cache-control', 'max-age=60'); return 'other ' + String(reads) })
  upstream.post('/doc', async (_request, reply) => { version++; return reply.header('content-location', '/other').send({ ok: true }) })
  await upstream.listen({ port: 0, host: '127.0.0.1' })
  const proxy = await buildProxy({ upstream: 'http://127.0.0.1:' + String((upstream.server.address() as { port: number }).port) })
  t.teardown(() => proxy.close())

  const first = await proxy.inject('/doc')
  t.same([first.statusCode, first.body, first.headers['x-cache']], [200, 'document v1', 'MISS'], 'a streamed upstream body is stored')
  t.equal((await proxy.inject('/doc')).headers['x-cache'], 'HIT')
  await new Promise((resolve) => setTimeout(resolve, 2_100))
  const revalidated = await proxy.inject('/doc')
  t.same([revalidated.statusCode, revalidated.body, revalidated.headers['x-cache']], [200, 'document v1', 'REVALIDATED'], 'the upstream answered our conditional request with 304')
  t.equal(reads, 2)
  await proxy.inject('/other')
  t.equal((await proxy.inject('/other')).headers['x-cache'], 'HIT')
  t.equal((await proxy.inject({ method: 'POST', url: '/doc', payload: {} })).statusCode, 200)
  t.equal((await proxy.inject('/doc')).body, 'document v2', 'a POST invalidates its URL')
  t.equal((await proxy.inject('/other')).headers['x-cache'], 'MISS', 'and the same-origin Content-Location it names (RFC 9111 §4.4)')
})
