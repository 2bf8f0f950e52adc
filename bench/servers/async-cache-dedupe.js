'use strict'
// (6) Peer: async-cache-dedupe around the handler (memory storage). It caches the object,
// so Fastify still serializes it on every hit: this is how it is used in route handlers.
const { createCache } = require('async-cache-dedupe')
const { ITEM_PATH, handler, serveFastify, run } = require('./common')

const cache = createCache({ ttl: 3600, storage: { type: 'memory' } })
cache.define('item', async (url) => handler())

run(() => serveFastify((app) => {
  app.get(ITEM_PATH, (request) => cache.item(request.url))
}))
