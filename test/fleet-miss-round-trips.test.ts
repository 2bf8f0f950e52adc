// Issue 30: a Redis miss costs two round trips before the handler runs: the lookup, then one
// script that sets the fence, takes the fill lock and reads again (with the invalidation
// epoch beside it). Counted on the client's own connection: a command sent before any reply to
// the previous batch came back travels in the same round trip.
import t from 'tap'
import Fastify from 'fastify'
import Redis from 'ioredis'
import emberCache, { RedisCache } from '../lib/index'
import { freshPrefix } from '../lib/test-suite'
import { entryName } from './helpers/redis-raw'
import { startRedis } from './helpers/servers'

interface Sent { name: string, repliesBefore: number }

t.test('a Redis miss: two round trips before the handler, and still one handler run for concurrent misses', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const client = new Redis(redis.url)
  t.teardown(() => client.disconnect())
  const sent: Sent[] = []
  let replies = 0
  const send = client.sendCommand.bind(client)
  client.sendCommand = ((command: { name: string, promise: Promise<unknown> }) => {
    sent.push({ name: command.name, repliesBefore: replies })
    const result = send(command as never)
    command.promise.then(() => { replies++ }, () => { replies++ })
    return result
  }) as typeof client.sendCommand
  const keyPrefix = freshPrefix('rtt')
  const cache = new RedisCache({ client, keyPrefix })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache)
  let runs = 0
  let atHandler: Sent[] = []
  app.get('/item/:id', { config: { cache: { cache, ttl: 60 } } }, async () => {
    runs++
    atHandler = [...sent]
    await new Promise((resolve) => setTimeout(resolve, 30))
    return { runs }
  })
  await app.ready()
  // Scripts loaded and connection warm.
  await app.inject('/item/warm')
  await new Promise((resolve) => setTimeout(resolve, 50))

  sent.length = 0
  const response = await app.inject('/item/1')
  t.equal(response.headers['x-cache'], 'MISS')
  const roundTrips = new Set(atHandler.map((command) => command.repliesBefore)).size
  t.equal(roundTrips, 2, 'lookup, then fence + lock + read: ' + atHandler.map((command) => `${command.name}@${command.repliesBefore}`).join(' '))
  t.ok(atHandler.length <= 4, `${atHandler.length} commands before the handler`)

  // The guarantees the extra reads were for still hold: 20 concurrent misses, one run.
  runs = 0
  const many = await Promise.all(Array.from({ length: 20 }, async () => await app.inject('/item/2')))
  t.equal(runs, 1, 'one handler run')
  t.ok(many.every((answer) => answer.statusCode === 200))
  // The lock is a field of the entry's hash, and gone once the entry is stored.
  await new Promise((resolve) => setTimeout(resolve, 50))
  const fields = await client.hkeys(entryName(keyPrefix, 'GET:/item/2'))
  t.notOk(fields.some((field) => field.startsWith('\u0000lock:')), 'lock released: ' + JSON.stringify(fields))
})
