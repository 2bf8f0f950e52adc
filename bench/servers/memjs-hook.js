'use strict'
// (6) Anchor: a hand-written memjs GET preHandler (body bytes only, content-type known).
// HIT_HEADERS=1 stores the ETag and store time with the body and sends our hit headers
// (the equal-headers anchor).
const memjs = require('memjs')
const { ITEM_PATH, JSON_TYPE, HAND_TTL, handler, requireEnv, serveFastify, run, packWithMeta, sendWithMeta } = require('./common')

const client = memjs.Client.create(requireEnv('MEMCACHED_SERVERS'), { logger: { log () {} } })
const withHeaders = process.env.HIT_HEADERS === '1'
// Its own keys: the two variants store different values and share one Memcached in a bench run.
const prefix = withHeaders ? 'hwm:' : 'hw:'

run(() => serveFastify((app) => {
  app.addHook('onClose', (instance, done) => { client.close(); done() })
  app.get(ITEM_PATH, {
    async preHandler (request, reply) {
      const { value } = await client.get(prefix + request.url)
      if (value === null) return
      reply.header('content-type', JSON_TYPE)
      return withHeaders ? sendWithMeta(reply, value) : reply.send(value)
    },
    onSend (request, reply, payload, done) {
      if (typeof payload === 'string' && reply.statusCode === 200) {
        client.set(prefix + request.url, withHeaders ? packWithMeta(payload) : payload, { expires: HAND_TTL }).catch(() => {})
      }
      done(null, payload)
    }
  }, handler)
}))
