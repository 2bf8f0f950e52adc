'use strict'
// (6) Anchor doing our HTTP work by hand: the lru-cache preHandler of lru-hook.js, plus the
// headers every hit of ours carries (ETag computed at store time, Cache-Control with the
// remaining freshness, Age, x-cache, Cache-Status). Separates the price of those headers
// (paid by any cache that sends them) from the price of our code. A miss it stores sends
// what ours sends (ETag, Cache-Control, x-cache, Cache-Status): run with a new key per
// request (lru-hook-http-miss), it is the equal-work anchor of our miss.
const { LRUCache } = require('lru-cache')
const { ITEM_PATH, HAND_TTL, handler, serveFastify, run, weakEtag, setHitHeaders, setMissHeaders } = require('./common')

const lru = new LRUCache({ max: 10_000, ttl: HAND_TTL * 1000 })

run(() => serveFastify((app) => {
  app.get(ITEM_PATH, {
    preHandler (request, reply, done) {
      const hit = lru.get(request.url)
      if (hit === undefined) return done()
      reply.headers(hit.headers)
      setHitHeaders(reply, hit.storedAt)
      reply.send(hit.body)
    },
    onSend (request, reply, payload, done) {
      if (typeof payload === 'string' && reply.statusCode === 200) {
        const body = Buffer.from(payload)
        const etag = weakEtag(body)
        reply.header('etag', etag)
        setMissHeaders(reply)
        lru.set(request.url, { body, storedAt: Date.now(), headers: { 'content-type': reply.getHeader('content-type'), etag } })
      }
      done(null, payload)
    }
  }, handler)
}))
