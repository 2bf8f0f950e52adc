'use strict'
// (3) Our memory hit: { mode: 'memory' }. Also (4) our miss path, when run.js sends a new
// query string per request (every request a new key, so every request stores an entry).
// STATS=0 registers the plugin with stats: false (the price of counting, issue 18).
// PUBLIC=1 makes the route public: true, whose misses are not observed (the price of observing
// a miss's per-caller reads, issue 23).
const { ITEM_PATH, handler, ember, serveFastify, run } = require('./common')

run(() => serveFastify(async (app) => {
  await app.register(ember().emberCache, { stats: process.env.STATS !== '0' })
  app.get(ITEM_PATH, { config: { cache: { mode: 'memory', ttl: 3600, ...(process.env.PUBLIC === '1' ? { public: true } : {}) } } }, handler)
}))
