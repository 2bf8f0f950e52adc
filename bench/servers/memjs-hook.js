'use strict'
// (6) Anchor: a hand-written memjs GET preHandler (body bytes only, content-type known).
const memjs = require('memjs')
const { ITEM_PATH, JSON_TYPE, handler, requireEnv, serveFastify, run } = require('./common')

const client = memjs.Client.create(requireEnv('MEMCACHED_SERVERS'), { logger: { log () {} } })

run(() => serveFastify((app) => {
  app.addHook('onClose', (instance, done) => { client.close(); done() })
  app.get(ITEM_PATH, {
    async preHandler (request, reply) {
      const { value } = await client.get('hw:' + request.url)
      if (value === null) return
      reply.header('content-type', JSON_TYPE)
      return reply.send(value)
    },
    onSend (request, reply, payload, done) {
      if (typeof payload === 'string' && reply.statusCode === 200) {
        client.set('hw:' + request.url, payload, { expires: 3600 }).catch(() => {})
      }
      done(null, payload)
    }
  }, handler)
}))
