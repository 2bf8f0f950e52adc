// Issue 31: the purgers of edges we cannot reach from here (Fastly, Cloudflare) against a local
// HTTP server that checks every request the way their published APIs describe it, and the edge
// headers' limits, options and failure paths.
//   Fastly:     https://www.fastly.com/documentation/reference/api/purging/
//               POST /service/{service_id}/purge, Fastly-Key, Surrogate-Key: k1 k2 (at most 256),
//               Fastly-Soft-Purge: 1; POST /service/{service_id}/purge_all.
//   Cloudflare: https://developers.cloudflare.com/api/resources/cache/methods/purge/
//               POST /client/v4/zones/{zone_id}/purge_cache, Authorization: Bearer <token>,
//               JSON { tags: [...] } (at most 30 on most plans) or { purge_everything: true };
//               429 with Retry-After when rate limited.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { createServer, type IncomingMessage } from 'node:http'
import { Writable } from 'node:stream'
import emberCache, { cloudflarePurger, diagnosticsChannels, fastlyPurger, type EdgeOptions, type EdgePurge } from '../lib/index'
import { keyTag } from '../lib/edge/tag-header'
import { freePort } from './helpers/servers'

interface Seen { method: string, path: string, headers: IncomingMessage['headers'], body: string, at: number }

/** A local API: records each request, checks it with `check` (a string is a refusal: 400), answers `answer`. */
async function fakeApi (t: Test, check: (seen: Seen) => string | undefined, answer: (seen: Seen, index: number) => { status: number, headers?: Record<string, string>, body: unknown }): Promise<{ url: string, seen: Seen[], refusals: string[] }> {
  const seen: Seen[] = []
  const refusals: string[] = []
  const server = createServer((request, response) => {
    let body = ''
    request.on('data', (chunk: Buffer) => { body += chunk.toString() })
    request.on('end', () => {
      const item: Seen = { method: request.method ?? '', path: request.url ?? '', headers: request.headers, body, at: Date.now() }
      seen.push(item)
      const refusal = check(item)
      if (refusal !== undefined) {
        refusals.push(refusal)
        response.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ msg: refusal }))
        return
      }
      const { status, headers, body: out } = answer(item, seen.length - 1)
      response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(out))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: 'http://127.0.0.1:' + String((server.address() as { port: number }).port), seen, refusals }
}

function checkFastly (seen: Seen): string | undefined {
  if (seen.method !== 'POST') return 'method ' + seen.method
  if (seen.headers['fastly-key'] !== 'fastly-secret') return 'no Fastly-Key'
  if (seen.path === '/service/svc%201/purge_all') return seen.headers['surrogate-key'] === undefined ? undefined : 'purge_all takes no keys'
  if (seen.path !== '/service/svc%201/purge') return 'path ' + seen.path
  const keys = String(seen.headers['surrogate-key'] ?? '').split(' ')
  if (keys.length === 0 || keys.some((key) => key === '' || Buffer.byteLength(key) > 1024)) return 'bad Surrogate-Key'
  if (keys.length > 256) return 'more than 256 keys'
  if (seen.headers['fastly-soft-purge'] !== undefined && seen.headers['fastly-soft-purge'] !== '1') return 'Fastly-Soft-Purge must be 1'
  return undefined
}

function checkCloudflare (seen: Seen): string | undefined {
  if (seen.method !== 'POST' || seen.path !== '/client/v4/zones/zone-9/purge_cache') return `${seen.method} ${seen.path}`
  if (seen.headers.authorization !== 'Bearer cf-secret') return 'no bearer token'
  if (seen.headers['content-type'] !== 'application/json') return 'not JSON'
  const body = JSON.parse(seen.body) as Record<string, unknown>
  const fields = Object.keys(body)
  if (fields.length !== 1) return 'one purge kind per request: ' + fields.join(',')
  if (fields[0] === 'purge_everything') return body.purge_everything === true ? undefined : 'purge_everything must be true'
  if (fields[0] !== 'tags' || !Array.isArray(body.tags)) return 'unknown field ' + fields[0]
  if (body.tags.length === 0 || body.tags.length > 30) return `${body.tags.length} tags`
  return undefined
}

/** An app with one tagged route and its edge; `log` collects every log line. */
async function edgeApp (t: Test, edge: EdgeOptions): Promise<{ app: FastifyInstance, logs: string[] }> {
  const logs: string[] = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { logs.push(chunk.toString()); done() } })
  const app = Fastify({ logger: { level: 'info', stream } })
  t.teardown(() => app.close())
  await app.register(emberCache, { edge })
  app.get('/r', { config: { cache: { mode: 'memory', ttl: 60, edgeTtl: 600, tags: ['t1'] } } }, async () => 'x')
  await app.ready()
  return { app, logs }
}

t.test('Fastly: keys in Surrogate-Key batches of 256, soft purges flagged, purge_all for clear()', async (t) => {
  const api = await fakeApi(t, checkFastly, () => ({ status: 200, body: { status: 'ok' } }))
  const { app } = await edgeApp(t, { tagHeader: 'surrogate-key', purgers: [fastlyPurger({ serviceId: 'svc 1', token: 'fastly-secret', baseUrl: api.url })] })
  const response = await app.inject('/r')
  t.match(response.headers['surrogate-key'], /^k-[\w-]{22} t1$/, 'the response names its key tag and its tags for Fastly')
  t.equal(response.headers['cdn-cache-control'], 'max-age=600')
  const tags = Array.from({ length: 600 }, (_, i) => 'tag ' + String(i))
  const report = await app.emberCache.invalidate({ tags, soft: true })
  t.same(report.edges?.done, ['fastly svc 1'])
  t.same(api.refusals, [], 'every request as the API documents it')
  t.same(api.seen.map((seen) => String(seen.headers['surrogate-key']).split(' ').length), [256, 256, 88], '600 keys in three requests')
  t.ok(api.seen.every((seen) => seen.headers['fastly-soft-purge'] === '1'), 'soft')
  t.equal(String(api.seen[0].headers['surrogate-key']).split(' ')[0], 'tag%200', 'tags are spelled as in responses')
  await app.emberCache.invalidate('GET:/r')
  t.equal(api.seen[3].headers['surrogate-key'], keyTag('GET:/r'), 'a key goes as its key tag')
  t.equal(api.seen[3].headers['fastly-soft-purge'], undefined, 'hard by default')
  await app.emberCache.clear()
  t.equal(api.seen[4].path, '/service/svc%201/purge_all')
  t.same(app.emberCache.stats().edges, [{ name: 'fastly svc 1', purged: 3, failed: 0, queued: 0 }])
})

t.test('Cloudflare: tags in batches of 30, purge_everything for clear(), soft purges purged, 429 Retry-After honoured', async (t) => {
  const api = await fakeApi(t, checkCloudflare, (_seen, index) => index === 1
    ? { status: 429, headers: { 'retry-after': '1' }, body: { success: false, errors: [{ code: 971, message: 'Please wait and consider throttling your request speed' }] } }
    : { status: 200, body: { success: true, errors: [], messages: [], result: { id: 'x' } } })
  const { app } = await edgeApp(t, { tagHeader: 'cache-tag', purgers: [cloudflarePurger({ zoneId: 'zone-9', token: 'cf-secret', baseUrl: api.url })] })
  t.match((await app.inject('/r')).headers['cache-tag'], /^k-[\w-]{22},t1$/, 'comma separated for Cloudflare')
  const tags = Array.from({ length: 45 }, (_, i) => 'user,' + String(i))
  const report = await app.emberCache.invalidate({ tags, soft: true })
  t.same(api.refusals, [])
  t.equal(report.edges?.queued.length, 1, 'the second batch was rate limited: the purge is queued')
  t.match(report.edges?.queued[0].error.message, /answered 429/)
  const started = Date.now()
  for (let i = 0; i < 40 && app.emberCache.stats().edges?.[0].queued !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(app.emberCache.stats().edges?.[0].queued, 0, 'retried')
  const retry = api.seen[2]
  t.ok(retry.at - api.seen[1].at >= 950, `not before Retry-After (${retry.at - api.seen[1].at} ms)`)
  t.ok(Date.now() - started < 4_000)
  t.same(JSON.parse(retry.body).tags.length, 30, 'the retry sends the whole purge again, in its batches')
  t.equal(JSON.parse(api.seen[0].body).tags[0], 'user%2C0', 'a comma inside a tag is encoded, never a separator')
  await app.emberCache.clear()
  t.same(JSON.parse(api.seen[api.seen.length - 1].body), { purge_everything: true })
})

t.test('a failed purge never logs credentials; an unreachable edge is named and queued', async (t) => {
  const api = await fakeApi(t, () => undefined, () => ({ status: 503, body: { error: 'down' } }))
  const { app, logs } = await edgeApp(t, {
    tagHeader: 'surrogate-key',
    purgers: [fastlyPurger({ serviceId: 's', token: 'fastly-secret', baseUrl: api.url }), cloudflarePurger({ zoneId: 'z', token: 'cf-secret', baseUrl: 'http://127.0.0.1:' + String(await freePort()), timeout: 500 })]
  })
  const report = await app.emberCache.invalidate({ tags: 't1' })
  t.equal(report.ok, false)
  t.same(report.edges?.queued.map((item) => item.edge).sort(), ['cloudflare z', 'fastly s'])
  t.match(report.edges?.queued.find((item) => item.edge === 'cloudflare z')?.error.message, /ECONNREFUSED|refused/)
  const write = await app.inject({ method: 'GET', url: '/r' })
  t.equal(write.statusCode, 200, 'reads go on while edges are down')
  t.ok(logs.some((line) => line.includes('edge purge failed')), 'the failure is logged')
  t.notOk(logs.some((line) => line.includes('fastly-secret') || line.includes('cf-secret')), 'no token in any log line')
  t.notOk(JSON.stringify(app.emberCache.stats()).includes('secret'), 'nor in stats')
})

t.test('a custom purger gets each purge; a pattern is unsupported at edges', async (t) => {
  const got: EdgePurge[] = []
  const { app } = await edgeApp(t, { tagHeader: 'xkey', purgers: [{ name: 'mine', purge: async (request) => { got.push(request) } }] })
  await app.emberCache.invalidate({ keys: ['a', 'b'], soft: true })
  t.same(got, [{ tags: [keyTag('a'), keyTag('b')], soft: true }])
  const report = await app.emberCache.invalidate({ pattern: 'GET:/r*' })
  t.same(report.edges?.unsupported.map((item) => item.edge), ['mine'])
  t.equal(got.length, 1)
})

t.test('edge headers: limits enforced (no-store at the edge when the tags do not fit), never on per-caller answers', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache, { edge: { tagHeader: 'xkey' } })
  app.get('/many', { config: { cache: { mode: 'memory', ttl: 60, edgeTtl: 600, tags: Array.from({ length: 2_000 }, (_, i) => 'tag-' + String(i)) } } }, async () => 'x')
  app.get('/long', { config: { cache: { mode: 'memory', ttl: 60, edgeTtl: 600, tags: ['x'.repeat(1_100)] } } }, async () => 'x')
  app.get('/mine', { config: { cache: { mode: 'memory', ttl: 60, varyCookies: ['session'] } } }, async (request) => 'for ' + String(request.headers.cookie))
  app.get('/inherit', { config: { cache: { mode: 'memory', ttl: 60, private: true, keyFn: () => 'k', edgeTtl: 600 } } }, async () => 'x')
  for (const path of ['/many', '/long']) {
    const response = await app.inject(path)
    t.equal(response.headers.xkey, undefined, path + ': no tag header the edge would cut')
    t.equal(response.headers['cdn-cache-control'], 'no-store', path + ': the edge keeps no copy it could not purge')
    t.equal((await app.inject(path)).headers['cdn-cache-control'], 'no-store', path + ': hits say so too')
  }
  const mine = await app.inject({ url: '/mine', headers: { cookie: 'session=a' } })
  t.equal(mine.headers.xkey, undefined, 'a per-caller answer gets no edge headers')
  t.equal(mine.headers['cdn-cache-control'], undefined)
  const inherit = await app.inject('/inherit')
  t.equal(inherit.headers['cdn-cache-control'], undefined, 'a private route never gets an edge TTL')
})

t.test('edge options are checked at registration, naming the option', async (t) => {
  const cases: Array<[unknown, Record<string, unknown>, RegExp]> = [
    [{ tagHeader: 'akamai' }, {}, /edge\.tagHeader/],
    [{ tagHeader: { name: 'x-tags', separator: ';', maxHeaderBytes: 10, maxTagBytes: 5 } }, {}, /edge\.tagHeader\.separator/],
    [{ tagHeader: { name: 'bad name', separator: ' ', maxHeaderBytes: 10, maxTagBytes: 5 } }, {}, /edge\.tagHeader\.name/],
    [{ tagHeader: 'xkey', ttlHeader: 'cache-control' }, {}, /edge\.ttlHeader/],
    [{ tagHeader: 'xkey', wait: -1 }, {}, /edge\.wait/],
    [{ tagHeader: 'xkey', purgers: [{ name: 'x' }] }, {}, /edge\.purgers\[0\]/],
    [{ tagHeader: 'xkey', unknown: 1 }, {}, /edge\.unknown/],
    [undefined, { edgeTtl: 60 }, /edgeTtl.*edge option/],
    [{ tagHeader: 'xkey' }, { edgeTtl: -5 }, /edgeTtl/]
  ]
  for (const [edge, route, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => {
      await app.register(emberCache, edge === undefined ? {} : { edge: edge as EdgeOptions })
      app.get('/r', { config: { cache: { mode: 'memory', ttl: 60, ...route } } }, async () => 'x')
      await app.ready()
    }, { code: 'FST_EMBER_CACHE_INVALID_OPTION', message }, `refused: ${JSON.stringify({ edge, route })}`)
  }
})

t.test('each purge is traced on the ember-cache:edge-purge channel, failures included', async (t) => {
  const seen: Array<{ edge: string, tags: number, soft: boolean, outcome: string, error?: boolean }> = []
  const handlers = {
    start: () => {},
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (context: { edge: string, tags: number, soft: boolean, outcome: string }) => { seen.push({ edge: context.edge, tags: context.tags, soft: context.soft, outcome: context.outcome }) },
    error: () => { seen.push({ edge: '', tags: 0, soft: false, outcome: '', error: true }) }
  }
  diagnosticsChannels.edgePurge.subscribe(handlers as never)
  t.teardown(() => diagnosticsChannels.edgePurge.unsubscribe(handlers as never))
  let fail = false
  const { app } = await edgeApp(t, { tagHeader: 'xkey', purgers: [{ name: 'mine', purge: async () => { if (fail) throw new Error('down') } }] })
  await app.emberCache.invalidate({ tags: ['a', 'b'] })
  fail = true
  await app.emberCache.invalidate({ tags: 'c', soft: true })
  t.same(seen, [
    { edge: 'mine', tags: 2, soft: false, outcome: 'purged' },
    { edge: '', tags: 0, soft: false, outcome: '', error: true },
    { edge: 'mine', tags: 1, soft: true, outcome: 'failed' }
  ])
})
