'use strict'
// (1) The reference: a plain Fastify route that serializes the object on every request.
// Also the "plain miss" comparison when loaded with a new query string per request.
const { ITEM_PATH, handler, serveFastify, run } = require('./common')

run(() => serveFastify((app) => {
  app.get(ITEM_PATH, handler)
}))
