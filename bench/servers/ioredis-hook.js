'use strict'
// (6) Anchor: a hand-written ioredis GET preHandler (body bytes only, content-type known).
// AUTO_PIPELINING=1 turns on ioredis enableAutoPipelining (configs.js runs it both ways); HIT_HEADERS=1 stores the ETag and
// store time with the body and sends our hit headers (the equal-headers anchor).
const { Redis } = require('ioredis')
const { ITEM_PATH, JSON_TYPE, HAND_TTL, handler, requireEnv, serveFastify, run, packWithMeta, sendWithMeta } = require('./common')

const redis = new Redis(requireEnv('REDIS_URL'), { enableAutoPipelining: process.env.AUTO_PIPELINING === '1' })
const withHeaders = process.env.HIT_HEADERS === '1'
// Its own keys: the two variants store different values and share one Redis in a bench run.
const prefix = withHeaders ? 'hwm:' : 'hw:'

run(() => serveFastify((app) => {
  app.addHook('onClose', () => redis.quit())
  app.get(ITEM_PATH, {
    async preHandler (request, reply) {
      const stored = await redis.getBuffer(prefix + request.url)
      if (stored === null) return
      reply.header('content-type', JSON_TYPE)
      return withHeaders ? sendWithMeta(reply, stored) : reply.send(stored)
    },
    onSend (request, reply, payload, done) {
      if (typeof payload === 'string' && reply.statusCode === 200) {
        redis.set(prefix + request.url, withHeaders ? packWithMeta(payload) : payload, 'EX', HAND_TTL).catch(() => {})
      }
      done(null, payload)
    }
  }, handler)
}))
