// Faults under steady load (issue 19): two app instances on real HTTP share one backend while
// 50 readers and a writer run; the backend is killed and restarted, frozen for 5 s, a Cluster
// master is restarted, one of two Memcached servers is killed. Judged per fault: requests sent,
// non-2xx (0), read latency p50/p99 before and during, seconds until both instances hit again,
// reads that returned data a write had already replaced (0).
//
// Short phases in `npm test`; FAULT_LOAD_SECONDS=20 (or more) stretches the load before, during
// and after each fault for the figures in the README; FAULT_LOAD_REPORT=file writes them as JSON.
import t, { type Test } from 'tap'
import { appendFileSync } from 'node:fs'
import Fastify from 'fastify'
import { MemcachedCache, RedisCache, type EmberCache } from '../lib/index'
import { FAULT_OPTIONS } from './helpers/fault-suite'
import { sleep, waitFor } from './helpers/fault-kit'
import { Load, VersionedData, fleetMember, hitsResumeAfter, judge, type Judged } from './helpers/load'
import { redisCommand, startMemcached, startRedis, startRedisCluster, type ServerHandle } from './helpers/servers'
import { entryName } from './helpers/redis-raw'
import { freshPrefix } from '../lib/test-suite'

const LONG = Number(process.env.FAULT_LOAD_SECONDS ?? 0)
/** Load before the fault, and after hits resumed. */
const STEADY_MS = LONG > 0 ? LONG * 1000 / 2 : 1_500
const READERS = 50
const ITEMS = 50
const WRITE_EVERY_MS = 20

t.setTimeout(LONG > 0 ? 600_000 : 180_000)

interface Scenario {
  label: string
  /** One cache per instance, on the shared backend. */
  makeCache: (keyPrefix: string) => EmberCache
  /** Does the fault; resolves when the backend is back (restarted, resumed). */
  fault: () => Promise<void>
}

interface Figures { fault: string, sent: number, non2xx: number, writes: number, stale: number, before: Judged, during: Judged, hitsResumeSeconds: number }

async function underLoad (t: Test, scenario: Scenario): Promise<Figures> {
  const data = new VersionedData(ITEMS)
  const keyPrefix = freshPrefix('load')
  const bases: string[] = []
  for (let i = 0; i < 2; i++) {
    const app = Fastify()
    t.teardown(() => app.close())
    await fleetMember(app, scenario.makeCache(keyPrefix), data)
    bases.push(await app.listen({ host: '127.0.0.1', port: 0 }))
  }
  const load = new Load({ bases, items: ITEMS, readers: READERS, writeEveryMs: WRITE_EVERY_MS })
  let stopped = false
  t.teardown(async () => { if (!stopped) await load.stop() })
  await sleep(STEADY_MS)
  const faultAt = load.now()
  await scenario.fault()
  const backAt = load.now()
  await waitFor('both instances to hit again', () => hitsResumeAfter(load, backAt, 2) < Infinity, 15_000, 50)
  const resumedAt = backAt + hitsResumeAfter(load, backAt, 2) * 1000
  await sleep(STEADY_MS)
  await load.stop()
  stopped = true

  const all = judge(load, 0, Infinity)
  const figures: Figures = {
    fault: scenario.label,
    sent: all.sent,
    non2xx: all.non2xx,
    writes: all.writes,
    stale: all.stale,
    before: judge(load, 0, faultAt),
    during: judge(load, faultAt, resumedAt),
    hitsResumeSeconds: Number(((resumedAt - backAt) / 1000).toFixed(2))
  }
  t.comment(JSON.stringify(figures))
  if (process.env.FAULT_LOAD_REPORT !== undefined) appendFileSync(process.env.FAULT_LOAD_REPORT, JSON.stringify(figures) + '\n')
  t.ok(all.sent > 1_000, `${all.sent} requests sent (${all.writes} writes)`)
  t.equal(all.non2xx, 0, 'no request failed')
  t.equal(all.stale, 0, 'no read returned data a write had already replaced')
  t.ok(figures.before.sent > 0 && load.samples.some((s) => s.start < faultAt && s.xCache === 'HIT'), 'hits before the fault')
  t.ok(figures.hitsResumeSeconds < 10, `both instances hit again ${figures.hitsResumeSeconds} s after the backend was back`)
  // A fault costs a request at most the command timeout (plus queueing here): a Cluster used to
  // hold commands through slot refreshes for 1.5 s (the p99 during a master restart).
  t.ok(figures.during.p99 < 1_000, `read p99 during the fault ${figures.during.p99.toFixed(0)} ms`)
  return figures
}

const redisCache = (url: string) => (keyPrefix: string): EmberCache => new RedisCache({ url, keyPrefix, ...FAULT_OPTIONS })

t.test('Redis, two instances: kill -9, restart', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  if (!redis.managed) { t.plan(0, 'needs a harness-managed Redis'); return }
  await underLoad(t, {
    label: 'Redis kill -9, restart after 2 s',
    makeCache: redisCache(redis.url),
    fault: async () => {
      await redis.kill()
      await sleep(2_000)
      await redis.restart()
    }
  })
})

t.test('Redis, two instances: SIGSTOP for 5 s, SIGCONT', async (t) => {
  const redis = await startRedis()
  t.teardown(async () => { resumeQuietly(redis); await redis.stop() })
  if (!redis.managed) { t.plan(0, 'needs a harness-managed Redis'); return }
  await underLoad(t, {
    label: 'Redis SIGSTOP 5 s',
    makeCache: redisCache(redis.url),
    fault: async () => {
      redis.pause()
      await sleep(5_000)
      redis.resume()
    }
  })
})

t.test('Redis Cluster (3 masters), two instances: one master restarted', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  await underLoad(t, {
    label: 'Cluster: one of 3 masters kill -9, restart',
    makeCache: (keyPrefix) => new RedisCache({ clusterNodes: cluster.nodes, keyPrefix, ...FAULT_OPTIONS }),
    fault: async () => {
      await cluster.servers[1].kill()
      await sleep(2_000)
      await cluster.servers[1].restart()
      await cluster.waitForOk()
    }
  })
})

t.test('Memcached (two servers), two instances: one server killed, restarted', async (t) => {
  const first = await startMemcached()
  t.teardown(() => first.stop())
  const second = await startMemcached()
  t.teardown(() => second.stop())
  if (!second.managed) { t.plan(0, 'needs harness-managed Memcached'); return }
  await underLoad(t, {
    label: 'Memcached: one of 2 servers kill -9, restart after 2 s',
    makeCache: (keyPrefix) => new MemcachedCache({ servers: [first.servers, second.servers], keyPrefix, ...FAULT_OPTIONS }),
    fault: async () => {
      await second.kill()
      await sleep(2_000)
      await second.restart()
    }
  })
})

function resumeQuietly (server: ServerHandle): void {
  try {
    server.resume()
  } catch {
    // Not running: nothing to resume.
  }
}

t.test('a write during an outage: once Redis is back with the replaced entry (AOF), no instance serves it', async (t) => {
  const redis = await startRedis({ extraArgs: ['--appendonly', 'yes', '--appendfsync', 'always'] })
  t.teardown(() => redis.stop())
  if (!redis.managed) { t.plan(0, 'needs a harness-managed Redis'); return }
  const data = new VersionedData(1)
  const keyPrefix = freshPrefix('aof')
  const [a, b] = [Fastify(), Fastify()]
  for (const app of [a, b]) {
    t.teardown(() => app.close())
    await fleetMember(app, new RedisCache({ url: redis.url, keyPrefix, ...FAULT_OPTIONS }), data)
    await app.ready()
  }
  const read = async (app: typeof a): Promise<{ version: number, xCache: string }> => {
    const res = await app.inject({ url: '/item/0', headers: { host: 'api.example' } })
    return { version: res.json().version, xCache: String(res.headers['x-cache']) }
  }
  await read(a)
  await sleep(50)
  t.same(await read(b), { version: 1, xCache: 'HIT' }, 'B hits the entry A stored')
  await redis.kill()
  const write = await a.inject({ method: 'PUT', url: '/item/0', headers: { host: 'api.example' } })
  t.equal(write.statusCode, 200, 'the write is answered while Redis is down')
  t.match(write.headers['cache-status'], /invalidation-queued/)
  await redis.restart()
  const restored = await redisCommand(redis, ['EXISTS', entryName(keyPrefix, 'GET:/item/0')])
  // Redis is back with the old entry (the AOF kept it); B reads it as fast as it can.
  const seen: Array<{ version: number, xCache: string }> = []
  const until = Date.now() + 2_000
  while (Date.now() < until) {
    seen.push(await read(b))
    await sleep(5)
  }
  const stale = seen.filter((r) => r.version < 2)
  t.equal(restored, 1, 'the old entry came back with Redis')
  t.comment(JSON.stringify({ reads: seen.length, stale: stale.length, firstHitAt: seen.findIndex((r) => r.xCache === 'HIT') }))
  t.equal(stale.length, 0, `B served the replaced entry ${stale.length} times of ${seen.length}`)
})
