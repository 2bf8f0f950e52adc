'use strict'
// (3) Our static hit: { mode: 'static' }, stored on the first request, never expires.
const { ITEM_PATH, handler, ember, serveFastify, run } = require('./common')

run(() => serveFastify(async (app) => {
  await app.register(ember().emberCache)
  app.get(ITEM_PATH, { config: { cache: { mode: 'static' } } }, handler)
}))
