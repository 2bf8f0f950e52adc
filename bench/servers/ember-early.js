'use strict'
// (stretch) Our static hit with `early: true`: the lookup runs in onRequest, so a hit skips
// the rest of the route's pipeline (public, auth-free routes only; see the README).
const { ITEM_PATH, handler, ember, serveFastify, run } = require('./common')

run(() => serveFastify(async (app) => {
  await app.register(ember().emberCache)
  app.get(ITEM_PATH, { config: { cache: { mode: 'static', early: true } } }, handler)
}))
