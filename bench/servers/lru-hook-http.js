'use strict'
// (6) Anchor doing our HTTP work by hand: the lru-cache preHandler of lru-hook.js, plus the
// headers every hit of ours carries (ETag computed at store time, Cache-Control with the
// remaining freshness, Age, x-cache, Cache-Status). Separates the price of those headers
// (paid by any cache that sends them) from the price of our code.
const { createHash } = require('node:crypto')
const { LRUCache } = require('lru-cache')
const { ITEM_PATH, handler, serveFastify, run } = require('./common')

const TTL = 3600
const lru = new LRUCache({ max: 10_000, ttl: TTL * 1000 })

run(() => serveFastify((app) => {
  app.get(ITEM_PATH, {
    preHandler (request, reply, done) {
      const hit = lru.get(request.url)
      if (hit === undefined) return done()
      const age = Math.floor((Date.now() - hit.storedAt) / 1000)
      reply.headers(hit.headers)
      reply.header('age', String(age))
      reply.header('cache-control', 'public, max-age=' + (TTL - age))
      reply.header('x-cache', 'HIT')
      reply.header('cache-status', 'hand; hit; ttl=' + (TTL - age))
      reply.send(hit.body)
    },
    onSend (request, reply, payload, done) {
      if (typeof payload === 'string' && reply.statusCode === 200) {
        const body = Buffer.from(payload)
        const etag = 'W/"' + createHash('sha1').update(body).digest('base64url') + '"'
        reply.header('etag', etag)
        lru.set(request.url, { body, storedAt: Date.now(), headers: { 'content-type': reply.getHeader('content-type'), etag } })
      }
      done(null, payload)
    }
  }, handler)
}))
