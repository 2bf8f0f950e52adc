// Issue 31 through a real Varnish 7 (Debian's varnishd with vmod-xkey) in front of the app, run
// with the VCL the repository ships (docs/varnish/default.vcl): responses carry their tags in
// xkey and an edge TTL in CDN-Cache-Control, and every invalidation the app runs is forwarded
// as an xkey purge (or a ban for clear()). Varnish is stopped and paused for real.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import emberCache, { varnishPurgers, type EdgeOptions, type EdgePurger } from '../lib/index'
import { createRequire } from 'node:module'
import { freePort, startVarnish, type VarnishServer } from './helpers/servers'

interface Item { id: string, version: number }

/** An app with items behind an edge: GET cached for 60 s here and an hour at the edge, PUT invalidates. */
async function itemsApp (t: Test, edge: EdgeOptions): Promise<{ app: FastifyInstance, reads: () => number, versions: Map<string, number>, port: number }> {
  const app = Fastify()
  t.teardown(() => app.close())
  const versions = new Map<string, number>()
  let reads = 0
  await app.register(emberCache, { edge })
  app.get<{ Params: { id: string } }>('/items/:id', {
    config: { cache: { mode: 'memory', ttl: 60, edgeTtl: 3600, tags: (request) => ['item:' + (request.params as { id: string }).id] } }
  }, async (request) => {
    reads++
    return { id: request.params.id, version: versions.get(request.params.id) ?? 1 } satisfies Item
  })
  app.put<{ Params: { id: string } }>('/items/:id', { config: { cache: { mode: 'memory', invalidate: ['tags:item:{id}'] } } }, async (request) => {
    versions.set(request.params.id, (versions.get(request.params.id) ?? 1) + 1)
    return { ok: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, reads: () => reads, versions, port: (app.server.address() as { port: number }).port }
}

/** Starts the app, then Varnish in front of it, with purgers that reach that Varnish. */
async function behindVarnish (t: Test, edge: Partial<EdgeOptions> = {}, timeout = 2_000): Promise<{ app: FastifyInstance, reads: () => number, versions: Map<string, number>, varnish: VarnishServer, get: (path: string) => Promise<{ status: number, body: Item, headers: Headers }> }> {
  // Varnish needs the app's port and the app's purger needs Varnish's: the purger looks it up when it sends.
  const edgeAt = { url: '' }
  const purgerProxy: EdgePurger = {
    name: 'varnish',
    purge: async (request) => await varnishPurgers({ servers: [edgeAt.url], timeout })[0].purge(request)
  }
  const built = await itemsApp(t, { tagHeader: 'xkey', purgers: [purgerProxy], ...edge })
  const varnish = await startVarnish(built.port)
  edgeAt.url = varnish.url
  t.teardown(() => varnish.stop())
  const get = async (path: string): Promise<{ status: number, body: Item, headers: Headers }> => {
    const response = await fetch(varnish.url + path)
    return { status: response.status, body: await response.json() as Item, headers: response.headers }
  }
  return { ...built, varnish, get }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

t.test('a GET cached at the edge is purged there when a write invalidates its tag; browsers never see the edge headers', async (t) => {
  const { app, reads, varnish, get } = await behindVarnish(t)
  const first = await get('/items/1')
  t.same([first.status, first.body, first.headers.get('x-edge-cache')], [200, { id: '1', version: 1 }, 'MISS'])
  t.equal(first.headers.get('xkey'), null, 'the tags stop at the edge (the shipped VCL removes them)')
  t.equal(first.headers.get('cdn-cache-control'), null, 'so does the edge TTL')
  t.equal(first.headers.get('cache-control'), 'max-age=60', 'browsers get the route\'s own freshness')
  const direct = await app.inject({ url: '/items/1', headers: { host: new URL(varnish.url).host } })
  t.match(direct.headers.xkey, /^k-[\w-]{22} item%3A1$/, 'the app sends its key tag and its tags, encoded')
  t.equal(direct.headers['cdn-cache-control'], 'max-age=3600')

  t.equal((await get('/items/1')).headers.get('x-edge-cache'), 'HIT', 'the edge answers')
  t.equal(reads(), 1)
  const put = await fetch(varnish.url + '/items/1', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(put.status, 200, 'writes pass through Varnish')
  // The purge goes out as the answer does (edge.wait 0): give it a moment.
  await sleep(200)
  const after = await get('/items/1')
  t.same([after.body.version, after.headers.get('x-edge-cache')], [2, 'MISS'], 'gone from the edge: the new version')
  t.equal(reads(), 2)
  t.same(app.emberCache.stats().edges?.map((edge) => [edge.name, edge.purged, edge.queued]), [['varnish', 1, 0]])
})

t.test('an invalidation by key, and clear(), reach the edge too', async (t) => {
  const { app, get } = await behindVarnish(t)
  await get('/items/7')
  t.equal((await get('/items/7')).headers.get('x-edge-cache'), 'HIT')
  const direct = await app.inject({ method: 'PUT', url: '/items/7', payload: {} })
  t.equal(direct.statusCode, 200)
  await sleep(200)
  t.equal((await get('/items/7')).body.version, 2, 'a write on the item purged it (its own URL\'s key tag and its tag)')
  await get('/items/8')
  t.equal((await get('/items/8')).headers.get('x-edge-cache'), 'HIT')
  const report = await app.emberCache.clear()
  t.same(report.edges, { done: ['varnish'], queued: [], unsupported: [] }, 'clear() banned everything at the edge')
  t.equal((await get('/items/8')).headers.get('x-edge-cache'), 'MISS')
  const pattern = await app.emberCache.invalidate({ pattern: '*' })
  t.equal(pattern.edges?.unsupported[0]?.edge, 'varnish', 'a pattern has no meaning at a tagging edge: reported as unsupported there')
})

t.test('a soft purge serves the old version at the edge once more, then the new one', async (t) => {
  const { app, reads, versions, get } = await behindVarnish(t)
  await get('/items/2')
  t.equal((await get('/items/2')).headers.get('x-edge-cache'), 'HIT')
  // The data changes behind the cache's back; then a soft invalidation says so.
  versions.set('2', 2)
  const report = await app.emberCache.invalidate({ tags: 'item:2', soft: true })
  t.same(report.edges?.done, ['varnish'], 'sent as an xkey soft purge')
  const stale = await get('/items/2')
  t.same([stale.body.version, stale.headers.get('x-edge-cache')], [1, 'HIT'], 'within grace: the old version, at once')
  let fresh: Item | undefined
  for (let i = 0; i < 20 && fresh?.version !== 2; i++) {
    await sleep(100)
    fresh = (await get('/items/2')).body
  }
  t.equal(fresh?.version, 2, 'and refreshed behind it')
  t.ok(reads() <= 4, `the handler ran ${reads()} times`)
})

t.test('Varnish paused during a write: the purge is reported, queued, and lands when Varnish is back', async (t) => {
  const { app, get, varnish } = await behindVarnish(t, {}, 300)
  await get('/items/3')
  t.equal((await get('/items/3')).headers.get('x-edge-cache'), 'HIT')
  varnish.pause()
  await sleep(50)
  const write = await app.inject({ method: 'PUT', url: '/items/3', payload: {} })
  t.equal(write.statusCode, 200, 'the write answers whatever the edge does')
  const report = await app.emberCache.invalidate({ tags: 'item:3' })
  t.equal(report.ok, false)
  t.equal(report.edges?.queued[0]?.edge, 'varnish', 'the report says the edge has it queued')
  t.ok((app.emberCache.stats().edges?.[0]?.queued ?? 0) >= 1, 'what Varnish did not confirm waits, in order')
  varnish.resume()
  let stats = app.emberCache.stats().edges?.[0]
  for (let i = 0; i < 60 && stats?.queued !== 0; i++) {
    await sleep(100)
    stats = app.emberCache.stats().edges?.[0]
  }
  t.equal(stats?.queued, 0, 'retried until Varnish confirmed')
  t.equal((await get('/items/3')).body.version, 2, 'and the edge serves the new version')
})

t.test('Varnish stopped and restarted: purges made meanwhile land, from two app instances', async (t) => {
  const one = await behindVarnish(t, {}, 300)
  // A second instance of the app (its own memory cache) purging the same Varnish.
  const other = await itemsApp(t, { tagHeader: 'xkey', purgers: [varnishPurgers({ servers: [one.varnish.url], timeout: 300 })] })
  await one.varnish.kill()
  for (let i = 0; i < 5; i++) {
    await one.app.inject({ method: 'PUT', url: '/items/' + String(i), payload: {} })
    await other.app.inject({ method: 'PUT', url: '/items/' + String(i), payload: {} })
  }
  await sleep(100)
  t.equal(one.app.emberCache.stats().edges?.[0]?.queued, 5, 'instance one holds its five purges')
  t.equal(other.app.emberCache.stats().edges?.[0]?.queued, 5, 'instance two its own five')
  await one.varnish.restart()
  for (let i = 0; i < 80; i++) {
    const queued = [one.app, other.app].map((app) => app.emberCache.stats().edges?.[0]?.queued)
    if (queued.every((n) => n === 0)) break
    await sleep(100)
  }
  t.same([one.app, other.app].map((app) => app.emberCache.stats().edges?.[0]?.queued), [0, 0], 'none lost, none left')
  t.same([one.app, other.app].map((app) => app.emberCache.stats().edges?.[0]?.purged), [5, 5])
})

t.test('edge.wait: a write answers after its purge, so a read that starts after the answer is never old', async (t) => {
  const { varnish, get } = await behindVarnish(t, { wait: 2_000 })
  let old = 0
  for (let i = 0; i < 25; i++) {
    await get('/items/9')
    const put = await fetch(varnish.url + '/items/9', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })
    t.equal(put.status, 200)
    if ((await get('/items/9')).body.version !== i + 2) old++
  }
  t.equal(old, 0, 'no read after a write saw the version before it')
})

t.test('the example app with VARNISH_URL: its public pages stay at the edge until a write purges them', async (t) => {
  const { build } = createRequire(__filename)('../example-app/app.js') as { build: (options: { varnishUrl?: string }) => Promise<FastifyInstance> }
  // The app must listen before Varnish knows its port, and know Varnish's URL when built: a
  // port for Varnish is picked first.
  const edgePort = await freePort()
  const app = await build({ varnishUrl: `http://127.0.0.1:${edgePort}` })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const varnish = await startVarnish((app.server.address() as { port: number }).port, edgePort)
  t.teardown(() => varnish.stop())
  const projects = async (): Promise<{ names: string[], edge: string | null }> => {
    const response = await fetch(varnish.url + '/projects')
    return { names: (await response.json() as Array<{ name: string }>).map((project) => project.name), edge: response.headers.get('x-edge-cache') }
  }
  const before = await projects()
  t.equal((await projects()).edge, 'HIT', 'kept at the edge (edgeTtl 300)')
  const created = await app.inject({ method: 'POST', url: '/projects', headers: { authorization: 'Bearer linus-token' }, payload: { name: 'edge-fresh' } })
  t.equal(created.statusCode, 201)
  const after = await projects()
  t.equal(after.edge, 'MISS', 'the write\'s invalidation purged the edge before it answered')
  t.same(after.names, [...before.names, 'edge-fresh'])
})
