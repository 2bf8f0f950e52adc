// Proves the server harness itself: if these fail, backend test failures mean nothing.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import {
  memcachedCommand,
  redisCommand,
  startMemcached,
  startRedis,
  startRedisCluster
} from './helpers/servers'

async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

function openSocket (port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => resolve(socket))
    socket.once('error', reject)
  })
}

t.test('redis', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())

  t.test('answers PING at the advertised url', async (t) => {
    t.equal(await redisCommand(redis, ['PING']), 'PONG')
    const url = new URL(redis.url)
    t.equal(url.hostname, redis.host)
    t.equal(Number(url.port), redis.port)
  })

  t.test('flushAll empties it', async (t) => {
    await redisCommand(redis, ['SET', 'harness:k', 'v'])
    t.equal(await redisCommand(redis, ['GET', 'harness:k']), 'v')
    await redis.flushAll()
    t.equal(await redisCommand(redis, ['DBSIZE']), 0)
  })

  t.test('clientCount sees a connection come and go', async (t) => {
    const before = await redis.clientCount()
    const socket = await openSocket(redis.port)
    // A round trip proves the server has accepted the connection, not just the kernel.
    socket.write('PING\r\n')
    await new Promise((resolve) => socket.once('data', resolve))
    t.equal(await redis.clientCount(), before + 1)
    socket.destroy()
    await waitFor('the closed connection to drop', async () => await redis.clientCount() === before)
    t.pass('count back to ' + String(before))
  })

  t.test('pause makes PING time out, resume brings it back', { skip: !redis.managed && 'needs a harness-managed server' }, async (t) => {
    redis.pause()
    const started = Date.now()
    await t.rejects(redisCommand(redis, ['PING'], 300), /no reply .* within 300 ms/)
    t.ok(Date.now() - started < 1_000, 'the timeout is bounded')
    redis.resume()
    t.equal(await redisCommand(redis, ['PING'], 1_000), 'PONG')
  })

  t.test('kill then restart serves again on the same port', { skip: !redis.managed && 'needs a harness-managed server' }, async (t) => {
    const port = redis.port
    await redis.kill()
    await t.rejects(redisCommand(redis, ['PING'], 300), /ECONNREFUSED/)
    await redis.restart()
    t.equal(redis.port, port)
    t.equal(await redisCommand(redis, ['PING']), 'PONG')
  })
})

t.test('redis extraArgs reach the command line', async (t) => {
  const redis = await startRedis({ extraArgs: ['--maxmemory', '10mb'] })
  t.teardown(() => redis.stop())
  if (!redis.managed) return t.comment('skip: extraArgs only apply to spawned servers')
  t.same(await redisCommand(redis, ['CONFIG', 'GET', 'maxmemory']), ['maxmemory', '10485760'])
  t.same(await redisCommand(redis, ['CONFIG', 'GET', 'save']), ['save', ''], 'persistence is off')
})

t.test('memcached', async (t) => {
  const mc = await startMemcached()
  t.teardown(() => mc.stop())

  t.test('set/get over raw TCP, then flushAll empties it', async (t) => {
    t.match(await memcachedCommand(mc, 'version\r\n'), /^VERSION \d/)
    t.equal(await memcachedCommand(mc, 'set harness:k 0 60 5\r\nhello\r\n'), 'STORED\r\n')
    t.equal(await memcachedCommand(mc, 'get harness:k\r\n'), 'VALUE harness:k 0 5\r\nhello\r\nEND\r\n')
    t.equal(await mc.itemCount(), 1)
    await mc.flushAll()
    t.equal(await memcachedCommand(mc, 'get harness:k\r\n'), 'END\r\n')
  })

  t.test('a value containing END does not cut the reply short', async (t) => {
    t.equal(await memcachedCommand(mc, 'set harness:e 0 60 5\r\n\r\nEND\r\n'), 'STORED\r\n')
    t.equal(await memcachedCommand(mc, 'get harness:e\r\n'), 'VALUE harness:e 0 5\r\n\r\nEND\r\nEND\r\n')
  })

  t.test('pause, resume, kill, restart', { skip: !mc.managed && 'needs a harness-managed server' }, async (t) => {
    mc.pause()
    await t.rejects(memcachedCommand(mc, 'version\r\n', 300), /within 300 ms/)
    mc.resume()
    t.match(await memcachedCommand(mc, 'version\r\n'), /^VERSION/)
    await mc.kill()
    await t.rejects(memcachedCommand(mc, 'version\r\n', 300), /ECONNREFUSED/)
    await mc.restart()
    t.match(await memcachedCommand(mc, 'version\r\n'), /^VERSION/)
  })
})

t.test('redis cluster: three masters, every node reports ok', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  t.equal(cluster.nodes.length, 3)
  t.equal(new Set(cluster.nodes.map((n) => n.port)).size, 3, 'distinct ports')
  for (const node of cluster.nodes) {
    const info = String(await redisCommand(node, ['CLUSTER', 'INFO']))
    t.match(info, /cluster_state:ok/, `node ${node.port} ok`)
    t.match(info, /cluster_slots_assigned:16384/, `node ${node.port} sees every slot`)
    t.match(info, /cluster_size:3/, `node ${node.port} sees three masters`)
  }
  t.ok(cluster.servers.every((s) => s.managed))
  await cluster.flushAll()

  const node = cluster.servers[1]
  if (node === undefined) throw new Error('no second node')
  await node.kill()
  await node.restart()
  await cluster.waitForOk(10_000)
  t.pass('a killed node rejoins after restart')
})
