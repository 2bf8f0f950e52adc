'use strict'
// (2) Ceiling: a plain route that sends prebuilt bytes, so no serialization at all.
const { ITEM_PATH, JSON_TYPE, payloadBuffer, stats, serveFastify, run } = require('./common')

run(() => serveFastify((app) => {
  app.get(ITEM_PATH, (request, reply) => {
    stats.handlerCalls++
    reply.header('content-type', JSON_TYPE)
    return reply.send(payloadBuffer)
  })
}))
