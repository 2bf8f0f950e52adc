'use strict'
// (6) Anchor: a hand-written ioredis GET preHandler (body bytes only, content-type known).
// AUTO_PIPELINING=1 turns on ioredis enableAutoPipelining (run.js runs both variants).
const { Redis } = require('ioredis')
const { ITEM_PATH, JSON_TYPE, handler, requireEnv, serveFastify, run } = require('./common')

const redis = new Redis(requireEnv('REDIS_URL'), { enableAutoPipelining: process.env.AUTO_PIPELINING === '1' })

run(() => serveFastify((app) => {
  app.addHook('onClose', () => redis.quit())
  app.get(ITEM_PATH, {
    async preHandler (request, reply) {
      const body = await redis.getBuffer('hw:' + request.url)
      if (body === null) return
      reply.header('content-type', JSON_TYPE)
      return reply.send(body)
    },
    onSend (request, reply, payload, done) {
      if (typeof payload === 'string' && reply.statusCode === 200) {
        redis.set('hw:' + request.url, payload, 'EX', 3600).catch(() => {})
      }
      done(null, payload)
    }
  }, handler)
}))
