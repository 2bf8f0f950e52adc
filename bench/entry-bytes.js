'use strict'

// npm run build && node bench/entry-bytes.js
//
// Issue 17's table: for the bench bodies (~1 KB and ~4 KB JSON), the bytes one entry takes in
// Redis (MEMORY USAGE of its key) and in Memcached (its `bytes` stat before and after), with the default codings
// (br, gzip) and without (compression: false), and the one-off cost of making the codings when
// an entry is stored (CPU time per entry, median of 15 runs of 100). Starts its own
// redis-server and memcached on free loopback ports.

const net = require('node:net')
const procs = require('./procs')
const { payload, largePayload } = require('./fixture')
const { encodeBody } = require('../dist/lib/content-coding')

const BODIES = [['~1 KB (bench body)', payload], ['~4 KB (issue 17 body)', largePayload]]

async function main () {
  const redis = await procs.startRedis()
  const memcached = await procs.startMemcached()
  const Fastify = require('fastify')
  const { emberCache, RedisCache, MemcachedCache } = require('../dist/lib/index')
  const Redis = require('ioredis')
  const client = new Redis(redis.url)
  const rows = []
  try {
    for (const [label, body] of BODIES) {
      const json = Buffer.from(JSON.stringify(body))
      const row = { body: label, bytes: json.length }
      for (const compression of [undefined, false]) {
        const name = compression === false ? 'identity' : 'coded'
        const app = Fastify()
        const prefix = `bytes-${name}-${json.length}:`
        const redisCache = new RedisCache({ url: redis.url, keyPrefix: prefix })
        const memcachedCache = new MemcachedCache({ servers: memcached.servers, keyPrefix: prefix })
        await app.register(emberCache, { compression })
        app.get('/redis', { config: { cache: { cache: redisCache, ttl: 600 } } }, async () => body)
        app.get('/memcached', { config: { cache: { cache: memcachedCache, ttl: 600 } } }, async () => body)
        await app.ready()
        await app.inject('/redis')
        const before = await memcachedBytes(memcached.port)
        await app.inject('/memcached')
        await procs.sleep(100) // the codings are stored after the answer
        const keys = await client.keys(prefix + '*')
        let redisBytes = 0
        for (const key of keys) redisBytes += Number(await client.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))
        row['redis ' + name] = redisBytes
        row['memcached ' + name] = (await memcachedBytes(memcached.port)) - before
        await app.close()
      }
      // The one-off price of the codings, per stored entry: CPU time, after a warm-up.
      for (let i = 0; i < 300; i++) await encodeBody(json, ['br', 'gzip'])
      const times = []
      for (let i = 0; i < 15; i++) {
        const cpu = process.cpuUsage()
        for (let j = 0; j < 100; j++) await encodeBody(json, ['br', 'gzip'])
        const used = process.cpuUsage(cpu)
        times.push((used.user + used.system) / 100 / 1000)
      }
      times.sort((a, b) => a - b)
      const [br, gzip] = await encodeBody(json, ['br', 'gzip'])
      row['br bytes'] = br.body.length
      row['gzip bytes'] = gzip.body.length
      row['codings CPU µs (median)'] = Math.round(times[times.length >> 1] * 1000)
      rows.push(row)
    }
  } finally {
    client.disconnect()
    await procs.killAll()
  }
  const columns = Object.keys(rows[0])
  const lines = ['| ' + columns.join(' | ') + ' |', '|' + columns.map(() => '---').join('|') + '|']
  for (const row of rows) lines.push('| ' + columns.map((column) => String(row[column])).join(' | ') + ' |')
  console.log(lines.join('\n'))
}

/** memcached's `bytes` stat: what its items take, headers included. */
function memcachedBytes (port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, procs.HOST, () => socket.write('stats\r\n'))
    let text = ''
    socket.on('data', (chunk) => {
      text += chunk
      if (!text.includes('END\r\n')) return
      socket.end()
      resolve(Number(/STAT bytes (\d+)/.exec(text)[1]))
    })
    socket.on('error', reject)
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
