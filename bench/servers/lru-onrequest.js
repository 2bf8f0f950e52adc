'use strict'
// (6) Anchor for the `early` stretch goal: the same hand-written lru-cache hook, answering
// from onRequest (before body parsing, validation and preHandler hooks).
const { LRUCache } = require('lru-cache')
const { ITEM_PATH, handler, serveFastify, run } = require('./common')

const lru = new LRUCache({ max: 10_000, ttl: 3600_000 })

run(() => serveFastify((app) => {
  app.get(ITEM_PATH, {
    onRequest (request, reply, done) {
      const hit = lru.get(request.url)
      if (hit === undefined) return done()
      reply.headers(hit.headers)
      reply.send(hit.body)
    },
    onSend (request, reply, payload, done) {
      if (typeof payload === 'string' && reply.statusCode === 200) {
        lru.set(request.url, { body: Buffer.from(payload), headers: reply.getHeaders() })
      }
      done(null, payload)
    }
  }, handler)
}))
