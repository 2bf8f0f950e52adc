// The node:diagnostics_channel TracingChannels (public API) and the OpenTelemetry subscriber on
// top of them: events in order for a hit, a miss, an invalidation and a background refresh, in
// process (synchronous) and on Redis (asynchronous); payloads that carry a key hash, never the key.
import t, { type Test } from 'tap'
import { tracingChannel } from 'node:diagnostics_channel'
import Fastify, { type FastifyInstance } from 'fastify'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import emberCache, { MemoryCache, RedisCache, diagnosticsChannels, traceWithOpenTelemetry, type EmberCache } from '../lib/index'
import { useClock } from './helpers/clock'
import { waitFor } from './helpers/fault-kit'
import { startRedis } from './helpers/servers'

const NAMES = ['lookup', 'store', 'invalidate', 'refresh'] as const
const EVENTS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'] as const

interface Seen { line: string, context: Record<string, unknown> }

/** Records every event of the four channels as "channel:event[:outcome]", until `t` ends. */
function record (t: Test): Seen[] {
  const seen: Seen[] = []
  for (const name of NAMES) {
    const channel = tracingChannel('ember-cache:' + name)
    const handlers = Object.fromEntries(EVENTS.map((event) => [event, (context: Record<string, unknown>) => {
      // end/asyncEnd carry what was decided; start has no outcome yet.
      const outcome = event === 'start' || (event === 'end' && context.async === true) ? '' : ':' + String(context.outcome)
      seen.push({ line: `${name}:${event}${outcome}`, context: { ...context } })
    }]))
    channel.subscribe(handlers as never)
    t.teardown(() => channel.unsubscribe(handlers as never))
  }
  return seen
}

async function tracedApp (t: Test, cache: EmberCache): Promise<{ app: FastifyInstance, runs: () => number }> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache)
  let runs = 0
  app.get('/item/:id', { config: { cache: { cache, ttl: 1, staleWhileRevalidate: 600 } } }, async () => ({ n: ++runs }))
  await app.ready()
  return { app, runs: () => runs }
}

/** The lines seen while `run` ran (and its background work settled). */
async function during (seen: Seen[], run: () => Promise<unknown>): Promise<Seen[]> {
  const from = seen.length
  await run()
  await new Promise((resolve) => setTimeout(resolve, 20))
  return seen.slice(from)
}

const lines = (events: Seen[]): string[] => events.map((event) => event.line)

t.test('the channel names are the documented ones', async (t) => {
  t.same(Object.keys(diagnosticsChannels).sort(), ['edgePurge', 'invalidate', 'lookup', 'refresh', 'store'])
  t.equal(diagnosticsChannels.lookup.start.name, 'tracing:ember-cache:lookup:start')
})

t.test('memory: hit, miss, invalidation, refresh, in order (synchronous lookups end at once)', async (t) => {
  const seen = record(t)
  const cache = new MemoryCache({ name: 'traced' })
  const { app } = await tracedApp(t, cache)
  const clock = useClock(t)

  const miss = await during(seen, () => app.inject('/item/1'))
  t.same(lines(miss), ['lookup:start', 'lookup:end:miss', 'store:start', 'store:end:stored'])
  const hit = await during(seen, () => app.inject('/item/1'))
  t.same(lines(hit), ['lookup:start', 'lookup:end:hit'])
  t.match(hit[1].context, { cache: 'traced', route: 'GET /item/:id', keyHash: /^[0-9a-f]{16}$/, outcome: 'hit' })
  t.equal(hit[1].context.keyHash, miss[1].context.keyHash, 'one key, one hash')
  t.notOk(JSON.stringify(seen.map((event) => event.context)).includes('/item/1'), 'the key itself is never published')

  const invalidation = await during(seen, () => app.emberCache.invalidate({ tags: ['x'] }))
  t.same(lines(invalidation), ['invalidate:start', 'invalidate:end', 'invalidate:asyncStart:done', 'invalidate:asyncEnd:done'])
  t.match(invalidation[0].context, { cache: 'traced', target: 'tags', soft: false })

  await app.inject('/item/2')
  clock.advance(5)
  const refresh = await during(seen, async () => {
    await app.inject('/item/2')
    await waitFor('the refresh', () => seen.some((event) => event.line === 'refresh:asyncEnd:refreshed'))
  })
  t.same(lines(refresh), [
    'lookup:start', 'lookup:end:stale',
    'refresh:start', 'refresh:end',
    'lookup:start', 'lookup:end:refresh', 'store:start', 'store:end:stored',
    'refresh:asyncStart:refreshed', 'refresh:asyncEnd:refreshed'
  ], 'the stale answer, then the refresh around its own lookup and store')
})

t.test('redis: lookups and stores end asynchronously (asyncStart/asyncEnd); errors are published', async (t) => {
  const srv = await startRedis()
  t.teardown(() => srv.stop())
  const seen = record(t)
  const cache = new RedisCache({ url: srv.url, keyPrefix: 'traced:', commandTimeout: 100, circuitBreaker: { threshold: 1, cooldownMs: 60_000 } })
  const { app } = await tracedApp(t, cache)

  const miss = await during(seen, () => app.inject('/item/1'))
  t.same(lines(miss), [
    'lookup:start', 'lookup:end', 'lookup:asyncStart:miss', 'lookup:asyncEnd:miss',
    'store:start', 'store:end', 'store:asyncStart:stored', 'store:asyncEnd:stored'
  ])
  const hit = await during(seen, () => app.inject('/item/1'))
  t.same(lines(hit), ['lookup:start', 'lookup:end', 'lookup:asyncStart:hit', 'lookup:asyncEnd:hit'])
  t.match(hit[3].context, { cache: cache.name, route: 'GET /item/:id', async: true })

  const invalidation = await during(seen, () => app.emberCache.invalidate({ key: 'anything' }))
  t.same(lines(invalidation), ['invalidate:start', 'invalidate:end', 'invalidate:asyncStart:done', 'invalidate:asyncEnd:done'])

  if (!srv.managed) return
  await srv.kill()
  const failed = await during(seen, () => app.emberCache.invalidate({ key: 'anything' }))
  t.same(lines(failed), ['invalidate:start', 'invalidate:end', 'invalidate:error:undefined', 'invalidate:asyncStart:undefined', 'invalidate:asyncEnd:undefined'])
  t.match(failed[2].context.error, { code: 'FST_EMBER_CACHE_INVALIDATION_FAILED' })
  const down = await during(seen, () => app.inject('/item/3'))
  t.same(lines(down).slice(0, 2), ['lookup:start', 'lookup:end:bypass'], 'with the circuit open the lookup is decided at once: bypass')
})

t.test('OpenTelemetry: spans from the channels, with outcome, key hash and errors', async (t) => {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const stop = traceWithOpenTelemetry(provider.getTracer('ember-cache-test'))
  t.teardown(stop)
  const srv = await startRedis()
  t.teardown(() => srv.stop())
  const cache = new RedisCache({ url: srv.url, keyPrefix: 'otel:', commandTimeout: 100, circuitBreaker: { threshold: 1, cooldownMs: 60_000 } })
  const { app } = await tracedApp(t, cache)

  await app.inject('/item/1')
  await app.inject('/item/1')
  await app.emberCache.invalidate({ tags: ['t'] })
  const spans = exporter.getFinishedSpans().map((span) => ({ name: span.name, attributes: span.attributes, status: span.status.code }))
  t.match(spans, [
    { name: 'ember-cache.lookup', attributes: { 'ember_cache.cache': cache.name, 'ember_cache.route': 'GET /item/:id', 'ember_cache.outcome': 'miss', 'ember_cache.key_hash': /^[0-9a-f]{16}$/ } },
    { name: 'ember-cache.store', attributes: { 'ember_cache.outcome': 'stored' } },
    { name: 'ember-cache.lookup', attributes: { 'ember_cache.outcome': 'hit' } },
    { name: 'ember-cache.invalidate', attributes: { 'ember_cache.target': 'tags', 'ember_cache.outcome': 'done' } }
  ])
  t.equal(spans.length, 4)
  const lookup = exporter.getFinishedSpans()[0]
  const durationMs = lookup.duration[0] * 1000 + lookup.duration[1] / 1e6
  t.ok(durationMs > 0 && durationMs < 1000, `the lookup span covers the Redis round trip: ${durationMs.toFixed(3)} ms`)

  if (!srv.managed) return
  await srv.kill()
  exporter.reset()
  await app.emberCache.invalidate({ key: 'x' })
  const [failed] = exporter.getFinishedSpans()
  t.equal(failed?.name, 'ember-cache.invalidate')
  t.equal(failed?.status.code, 2, 'status ERROR')
  t.equal(failed?.events[0]?.name, 'exception', 'with the exception recorded')

  stop()
  exporter.reset()
  await app.inject('/item/9')
  t.equal(exporter.getFinishedSpans().length, 0, 'no spans once unsubscribed')
})

t.test('nobody subscribed: nothing is published and requests work as before', async (t) => {
  for (const name of NAMES) t.notOk(tracingChannel('ember-cache:' + name).hasSubscribers, name + ' has no subscribers here')
  const { app, runs } = await tracedApp(t, new MemoryCache())
  t.equal((await app.inject('/item/1')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/item/1')).headers['x-cache'], 'HIT')
  t.equal(runs(), 1)
})
