// Issue 29: what today's cache-tests asked of a shared cache. Age and HTTP-date parsing as the
// suite reads RFC 9111 / RFC 9110, RFC 9213 targeted Cache-Control (CDN-Cache-Control, or a
// product's own field first), heuristic freshness on by default for from-response routes, and
// a stale entry answering when the origin cannot be reached (RFC 9111 §4.2.4).
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { createRequire } from 'node:module'
import { createServer, type Server } from 'node:net'
import { MemoryCache } from '../lib/index'
import { ageOf, httpDate } from '../lib/http-freshness'
import { parseDictionary, targetedDirectives } from '../lib/targeted-cache-control'
import { countingApp, type Handler, type Scope } from './helpers/apps'
import { useClock } from './helpers/clock'

const { buildProxy } = createRequire(__filename)('../example-app/proxy.js') as { buildProxy: (options: { upstream: string, heuristicFreshness?: boolean }) => Promise<FastifyInstance> }

const fromResponse = (route: Record<string, unknown> = {}): { mode: 'memory', ttl: 'from-response' } => ({ mode: 'memory', ttl: 'from-response', ...route })

t.test('Age: a non-negative integer, read from the first member of the first line; anything else is ignored', async (t) => {
  const cases: Array<[unknown, number]> = [
    [undefined, 0], ['0', 0], ['7200', 7200], [' 30 ', 30], ['1, 2', 1], [['5', '9'], 5], ['5;x=1', 5],
    ['abc', 0], ['-5', 0], ['7.0', 0], ['1e3', 0], ['', 0], ['99999999999999', 2147483648]
  ]
  for (const [field, seconds] of cases) t.equal(ageOf(field), seconds, `Age ${JSON.stringify(field)}`)
})

t.test('HTTP-date: the three RFC 9110 forms exactly; anything else is no date', async (t) => {
  const when = Date.UTC(1994, 10, 6, 8, 49, 37)
  t.equal(httpDate('Sun, 06 Nov 1994 08:49:37 GMT'), when, 'IMF-fixdate')
  t.equal(httpDate('sun, 06 nov 1994 08:49:37 gmt'), when, 'names without case')
  t.equal(httpDate('Sunday, 06-Nov-94 08:49:37 GMT'), when, 'RFC 850, two-digit year in the past century')
  t.equal(httpDate('Sun Nov  6 08:49:37 1994'), when, 'asctime')
  for (const invalid of [
    'Sun, 06 Nov 1994 08:49:37 UTC', 'Sun 06 Nov 1994 08:49:37 GMT', 'Sun,  06 Nov 1994 08:49:37 GMT', 'Sun, 06-Nov-1994 08:49:37 GMT',
    'Sun, 06 Nov 1994 8:49:37 GMT', 'Sun, 06 Nov 1994 08.49.37 GMT', 'Sun, 06 Nov 1994 08:49:37 +1000', 'Sun, 32 Nov 1994 08:49:37 GMT',
    'Sun, 06 Foo 1994 08:49:37 GMT', '0', '', 'now', ['Sun, 06 Nov 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 08:49:37 GMT']
  ]) t.equal(httpDate(invalid), undefined, `no date: ${JSON.stringify(invalid)}`)
})

t.test('RFC 8941 dictionaries as directives: wrong types dropped, invalid fields rejected whole', async (t) => {
  t.same([...(parseDictionary('max-age=60, no-store') ?? [])], [['max-age', '60'], ['no-store', '']])
  t.same([...(parseDictionary('Max-Age=60') ?? [])], [['max-age', '60']], 'keys without case, as origins write them')
  t.same([...(parseDictionary('max-age=60;a=1, private=?0, s="x", n=1.5, l=(a b), t=tok') ?? [])], [['max-age', '60'], ['t', 'tok']], 'parameters ignored; false, strings, decimals, lists dropped')
  t.same([...(parseDictionary('max-age=1, max-age=2') ?? [])], [['max-age', '2']], 'the last member of a key wins')
  for (const invalid of ['', '   ', 'max-age=', 'max-age=60,', ',max-age=60', 'max-age =60', '1max-age=60', 'max-age=60 no-store', 'a="unterminated']) {
    t.equal(parseDictionary(invalid), undefined, `invalid: ${JSON.stringify(invalid)}`)
  }
  t.same([...(targetedDirectives({ 'ember-cdn-cache-control': 'nonsense==', 'cdn-cache-control': 'max-age=5' }, ['ember-cdn-cache-control', 'cdn-cache-control']) ?? [])],
    [['max-age', '5']], 'an invalid first field counts as absent: the next one decides')
  t.equal(targetedDirectives({ 'cache-control': 'max-age=5' }, ['cdn-cache-control']), undefined, 'none present')
})

t.test('RFC 9213: CDN-Cache-Control decides for a from-response route, in place of Cache-Control and Expires, and goes on', async (t) => {
  const clock = useClock(t)
  const cdn = await countingApp(t, (_request, reply) => {
    reply.header('cache-control', 'no-store').header('cdn-cache-control', 'max-age=60')
    return 'for the CDN'
  }, fromResponse())
  const first = await cdn.app.inject('/r')
  t.equal(first.headers['cdn-cache-control'], 'max-age=60', 'passed on: every CDN on the way reads it')
  t.equal(first.headers['cache-control'], 'no-store', 'Cache-Control is for the browser, untouched')
  t.equal((await cdn.app.inject('/r')).headers['x-cache'], 'HIT', 'stored despite Cache-Control: no-store')
  clock.advance(61)
  t.equal((await cdn.app.inject('/r')).headers['x-cache'], 'MISS', 'for the targeted field\'s 60 s')
  t.equal(cdn.calls(), 2)

  const noStore = await countingApp(t, (_request, reply) => { reply.header('cache-control', 'max-age=60').header('cdn-cache-control', 'no-store'); return 'x' }, fromResponse())
  await noStore.app.inject('/r')
  t.equal((await noStore.app.inject('/r')).headers['x-cache'], 'MISS', 'a targeted no-store wins over a fresh Cache-Control')

  const expires = await countingApp(t, (_request, reply) => {
    reply.header('cdn-cache-control', 'public').header('expires', new Date(Date.now() + 3_600_000).toUTCString())
    return 'x'
  }, fromResponse())
  await expires.app.inject('/r')
  t.equal((await expires.app.inject('/r')).headers['x-cache'], 'MISS', 'Expires does not count beside a targeted field')

  const invalid = await countingApp(t, (_request, reply) => { reply.header('cache-control', 'max-age=60').header('cdn-cache-control', 'max-age=60,,'); return 'x' }, fromResponse())
  await invalid.app.inject('/r')
  t.equal((await invalid.app.inject('/r')).headers['x-cache'], 'HIT', 'an invalid targeted field is as good as absent: Cache-Control decides')
})

t.test('RFC 9213: targeted fields never lift Cache-Control: private, and credentials still need a public answer', async (t) => {
  const privateCc = await countingApp(t, (_request, reply) => { reply.header('cache-control', 'private').header('cdn-cache-control', 'max-age=60'); return 'alice' }, fromResponse())
  await privateCc.app.inject('/r')
  t.equal((await privateCc.app.inject('/r')).body, 'alice')
  t.equal(privateCc.calls(), 2, 'a private response is never stored')
  const credentialed = await countingApp(t, (_request, reply) => { reply.header('cdn-cache-control', 'max-age=60'); return 'for ' + String(_request.headers.authorization) }, fromResponse())
  await credentialed.app.inject({ url: '/r', headers: { authorization: 'Bearer a' } })
  const other = await credentialed.app.inject({ url: '/r', headers: { authorization: 'Bearer b' } })
  t.equal(other.body, 'for Bearer b', 'a credentialed answer without public is not shared')
})

t.test('RFC 9213: a product\'s own field first, removed from the response; the list is the route\'s to set', async (t) => {
  const clock = useClock(t)
  const ours = await countingApp(t, (_request, reply) => {
    reply.header('ember-cdn-cache-control', 'max-age=10').header('cdn-cache-control', 'max-age=600').header('cache-control', 'max-age=5')
    return 'x'
  }, fromResponse({ targetedCacheControl: ['Ember-CDN-Cache-Control', 'CDN-Cache-Control'] }))
  const first = await ours.app.inject('/r')
  t.equal(first.headers['ember-cdn-cache-control'], undefined, 'our own field is ours: removed')
  t.equal(first.headers['cdn-cache-control'], 'max-age=600', 'the CDN\'s goes on to the CDNs before the client')
  clock.advance(8)
  t.equal((await ours.app.inject('/r')).headers['x-cache'], 'HIT', 'ours (10 s) decides, not Cache-Control (5 s)')
  clock.advance(5)
  t.equal((await ours.app.inject('/r')).headers['x-cache'], 'MISS', 'nor the CDN\'s (600 s)')

  const none = await countingApp(t, (_request, reply) => { reply.header('cache-control', 'no-store').header('cdn-cache-control', 'max-age=60'); return 'x' }, fromResponse({ targetedCacheControl: false }))
  await none.app.inject('/r')
  t.equal((await none.app.inject('/r')).headers['x-cache'], 'MISS', 'targetedCacheControl: false obeys Cache-Control alone')

  const cache = new MemoryCache({ ttl: 'from-response', targetedCacheControl: ['Ember-CDN-Cache-Control'] })
  const viaCache = await countingApp(t, (_request, reply) => { reply.header('cache-control', 'no-store').header('ember-cdn-cache-control', 'max-age=60'); return 'x' }, { cache } as never)
  await viaCache.app.inject('/r')
  t.equal((await viaCache.app.inject('/r')).headers['x-cache'], 'HIT', 'a cache object carries the list to its routes')
})

t.test('targetedCacheControl is checked at registration, naming the option', async (t) => {
  for (const bad of ['CDN-Cache-Control', [''], ['bad name'], [42]]) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register((await import('../lib/index')).default)
    await t.rejects(async () => {
      app.get('/r', { config: { cache: fromResponse({ targetedCacheControl: bad }) } }, async () => 'x')
      await app.ready()
    }, { code: 'FST_EMBER_CACHE_INVALID_OPTION', message: /targetedCacheControl/ }, `refused: ${JSON.stringify(bad)}`)
  }
})

t.test('RFC 9111 §4.2.2: heuristic freshness is on for from-response routes, and can be turned off', async (t) => {
  const lastModified: Handler = (_request, reply) => { reply.header('last-modified', new Date(Date.now() - 10 * 86_400_000).toUTCString()); return 'page' }
  const on = await countingApp(t, lastModified, fromResponse())
  await on.app.inject('/r')
  t.equal((await on.app.inject('/r')).headers['x-cache'], 'HIT', 'fresh for 10% of its 10 days (capped at a day)')
  const off = await countingApp(t, lastModified, fromResponse({ heuristicFreshness: false }))
  await off.app.inject('/r')
  t.not((await off.app.inject('/r')).headers['x-cache'], 'HIT', 'off: kept only to be revalidated')
  t.equal(off.calls(), 2)
  const fixed = await countingApp(t, lastModified, { mode: 'memory', ttl: 60 })
  t.equal((await fixed.app.inject('/r')).headers['x-cache'], 'MISS', 'a fixed-ttl route has its own freshness, heuristics play no part')
})

/** An upstream whose connections can be cut: answers like an HTTP origin until `cut` is called. */
async function cuttableUpstream (t: Scope, cacheControl: string): Promise<{ url: string, cut: () => void, hits: () => number }> {
  let down = false
  let hits = 0
  const server: Server = createServer((socket) => {
    socket.once('data', () => {
      hits++
      if (down) return socket.destroy()
      socket.end(`HTTP/1.1 200 OK\r\ncache-control: ${cacheControl}\r\ncontent-type: text/plain\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream`)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: 'http://127.0.0.1:' + String((server.address() as { port: number }).port), cut: () => { down = true }, hits: () => hits }
}

t.test('RFC 9111 §4.2.4: a proxy cut off from its origin answers with its stale entry, unless the entry forbids it', async (t) => {
  const clock = useClock(t)
  const servable = await cuttableUpstream(t, 'max-age=2')
  const proxy = await buildProxy({ upstream: servable.url })
  t.teardown(() => proxy.close())
  t.equal((await proxy.inject('/doc')).body, 'upstream')
  clock.advance(5)
  servable.cut()
  const stale = await proxy.inject('/doc')
  t.same([stale.statusCode, stale.body, stale.headers['x-cache']], [200, 'upstream', 'STALE'], 'the stale entry answers the closed connection')
  t.match(stale.headers['cache-status'], /fwd=stale; detail=origin-failed/)
  t.ok(Number(stale.headers.age) >= 5, 'with its age')
  t.equal(servable.hits(), 2, 'after the origin was tried')

  for (const forbidding of ['max-age=2, must-revalidate', 'max-age=2, proxy-revalidate', 'max-age=2, no-cache', 's-maxage=2']) {
    const strict = await cuttableUpstream(t, forbidding)
    const strictProxy = await buildProxy({ upstream: strict.url })
    t.teardown(() => strictProxy.close())
    await strictProxy.inject('/doc')
    clock.advance(5)
    strict.cut()
    const refused = await strictProxy.inject('/doc')
    t.ok(refused.statusCode >= 500 && refused.body !== 'upstream', `${forbidding}: the origin's failure goes through (${refused.statusCode})`)
  }
})

t.test('an origin\'s own 5xx answer is the truth; a handler that throws is an origin that failed', async (t) => {
  const clock = useClock(t)
  const own = await countingApp(t, (_request, reply, run) => {
    if (run === 1) { reply.header('cache-control', 'max-age=2'); return 'ok' }
    return reply.code(503).send('down for maintenance')
  }, fromResponse())
  await own.app.inject('/r')
  clock.advance(5)
  const sent = await own.app.inject('/r')
  t.same([sent.statusCode, sent.body], [503, 'down for maintenance'], 'an answered 503 is passed on (no stale-if-error was given)')

  const thrower = await countingApp(t, (_request, reply, run) => {
    if (run === 1) { reply.header('cache-control', 'max-age=2'); return 'ok' }
    if (run === 2) throw new Error('database unreachable')
    const notFound = new Error('gone') as Error & { statusCode: number }
    notFound.statusCode = 404
    throw notFound
  }, fromResponse())
  await thrower.app.inject('/r')
  clock.advance(5)
  const replaced = await thrower.app.inject('/r')
  t.same([replaced.statusCode, replaced.body, replaced.headers['x-cache']], [200, 'ok', 'STALE'], 'a thrown 500 is replaced by the stale entry')
  t.equal((await thrower.app.inject('/r')).statusCode, 404, 'a thrown 404 is an answer, not a failure')

  const fixed = await countingApp(t, (_request, _reply, run) => { if (run > 1) throw new Error('down'); return 'ok' }, { mode: 'memory', ttl: 2 })
  await fixed.app.inject('/r')
  clock.advance(5)
  t.equal((await fixed.app.inject('/r')).statusCode, 500, 'a fixed-ttl route serves stale only within its staleIfError')
})
