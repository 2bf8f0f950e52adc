'use strict'
// (6) Peer: fastify-lcache (app-wide onRequest lookup, onSend store, in-process Map).
const lcache = require('fastify-lcache').default
const { ITEM_PATH, handler, serveFastify, run } = require('./common')

run(() => serveFastify(async (app) => {
  await app.register(lcache, { ttlInMinutes: 60 })
  app.get(ITEM_PATH, handler)
}))
