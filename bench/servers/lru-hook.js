'use strict'
// (6) Anchor: the ten lines a user could write instead of us: an lru-cache preHandler that
// replays stored bytes and headers, and an onSend hook that stores the serialized response.
const { LRUCache } = require('lru-cache')
const { ITEM_PATH, handler, serveFastify, run } = require('./common')

const lru = new LRUCache({ max: 10_000, ttl: 3600_000 })

run(() => serveFastify((app) => {
  app.get(ITEM_PATH, {
    preHandler (request, reply, done) {
      const hit = lru.get(request.url)
      if (hit === undefined) return done()
      reply.headers(hit.headers)
      reply.send(hit.body)
    },
    onSend (request, reply, payload, done) {
      // A miss carries the serialized string; a hit carries the Buffer we replayed.
      if (typeof payload === 'string' && reply.statusCode === 200) {
        lru.set(request.url, { body: Buffer.from(payload), headers: reply.getHeaders() })
      }
      done(null, payload)
    }
  }, handler)
}))
