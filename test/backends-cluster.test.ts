// The shared backend suite on RedisCache against a real 3-master Redis Cluster, plus what
// only a cluster can get wrong: pattern invalidation must reach every master, and tag
// bookkeeping across slots must not raise CROSSSLOT.
import t from 'tap'
import { Cluster } from 'ioredis'
import { RedisCache, type EmberCache } from '../lib/index'
import { redisCommand, startRedisCluster, type RedisClusterHandle } from './helpers/servers'
import { buildApp, freshPrefix, runBackendSuite, xCache } from '../lib/test-suite'
import { entryName, redisRawTraits } from './helpers/redis-raw'

t.test('RedisCache on a 3-master cluster', async (t) => {
  const cluster: RedisClusterHandle = await startRedisCluster()
  t.teardown(() => cluster.stop())
  const raw = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 } })
  t.teardown(() => raw.disconnect())
  await raw.ping()
  const clusterCache = (keyPrefix: string): RedisCache => new RedisCache({ clusterNodes: cluster.nodes, keyPrefix, commandTimeout: 2_000 })

  /** Keys starting with `prefix` on each master, in node order. */
  async function keysPerNode (match: string): Promise<number[]> {
    return await Promise.all(cluster.nodes.map(async (node) => ((await redisCommand(node, ['KEYS', match])) as string[]).length))
  }

  runBackendSuite(t, 'cluster', async ({ keyPrefix }) => ({ cache: clusterCache(keyPrefix), cleanup: async () => {} }), {
    shared: true,
    patterns: true,
    fillLock: true,
    ...redisRawTraits(raw)
  })

  async function fill (t: tap.Test, route: string, count: number): Promise<{ cache: EmberCache, keyPrefix: string, app: Awaited<ReturnType<typeof buildApp>> }> {
    const keyPrefix = freshPrefix('spread')
    const cache = clusterCache(keyPrefix)
    const app = await buildApp(t, cache)
    for (let i = 1; i <= count; i++) t.equal(xCache(await app.app.inject(`${route}/${i}`)), 'MISS')
    for (let i = 1; i <= count; i++) t.equal(xCache(await app.app.inject(`${route}/${i}`)), 'HIT')
    const slots = new Set<number>()
    for (let i = 1; i <= count; i++) slots.add(Number(await redisCommand(cluster.nodes[0], ['CLUSTER', 'KEYSLOT', entryName(keyPrefix, `GET:${route}/${i}`)])))
    t.ok(slots.size > count / 2, `${count} keys sit in ${slots.size} different slots`)
    const perNode = await keysPerNode(entryName(keyPrefix, `GET:${route}/*`))
    t.ok(perNode.every((n) => n > 0), `every master holds some entries: ${perNode.join(', ')}`)
    return { cache, keyPrefix, app }
  }

  t.test('cluster: pattern invalidation reaches every master', async (t) => {
    const { cache, keyPrefix, app } = await fill(t, '/items', 30)
    await app.app.inject('/json')
    await cache.invalidate({ pattern: 'GET:/items/*' })
    t.same(await keysPerNode(entryName(keyPrefix, 'GET:/items/*')), [0, 0, 0], 'no matching entry left on any master')
    for (let i = 1; i <= 30; i++) t.equal(xCache(await app.app.inject(`/items/${i}`)), 'MISS', `/items/${i} dropped`)
    t.equal(xCache(await app.app.inject('/json')), 'HIT', 'a key outside the pattern is kept')
  })

  t.test('cluster: tag invalidation over keys in many slots raises no CROSSSLOT', async (t) => {
    const { cache, keyPrefix, app } = await fill(t, '/tagged', 30)
    for (let i = 1; i <= 10; i++) await app.app.inject(`/fn-tagged/${i}`)
    await t.resolves(cache.invalidate({ tags: ['items', 'item:3', 'item:7'] }), 'several tags in one call')
    t.same(await keysPerNode(entryName(keyPrefix, 'GET:/tagged/*')), [0, 0, 0], 'no tagged entry left on any master')
    for (let i = 1; i <= 30; i++) t.equal(xCache(await app.app.inject(`/tagged/${i}`)), 'MISS', `/tagged/${i} dropped`)
    t.equal(xCache(await app.app.inject('/fn-tagged/3')), 'MISS')
    t.equal(xCache(await app.app.inject('/fn-tagged/4')), 'HIT', 'an entry with another tag is kept')
  })
})
