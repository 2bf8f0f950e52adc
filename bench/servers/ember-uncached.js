'use strict'
// (5) A route WITHOUT config.cache on an app that registered the plugin and has cached
// routes: the plugin must cost it nothing (no hook is added to it).
const { ITEM_PATH, handler, ember, serveFastify, run } = require('./common')

run(() => serveFastify(async (app) => {
  await app.register(ember().emberCache)
  app.get('/cached-memory', { config: { cache: { mode: 'memory' } } }, handler)
  app.get('/cached-static', { config: { cache: { mode: 'static' } } }, handler)
  app.get(ITEM_PATH, handler)
}))
