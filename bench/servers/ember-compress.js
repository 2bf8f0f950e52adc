'use strict'
// Issue 17: memory hits and misses of the ~4 KB body (BODY=large) with @fastify/compress
// registered after us, as production APIs run. ENCODINGS=0 turns our stored codings off
// (compression: false), so @fastify/compress compresses every hit, as before issue 17.
// The client's Accept-Encoding comes from the configuration (identity, gzip, br).
const { ITEM_PATH, handler, ember, serveFastify, run } = require('./common')

run(() => serveFastify(async (app) => {
  await app.register(ember().emberCache, { compression: process.env.ENCODINGS === '0' ? false : undefined })
  await app.register(require('@fastify/compress'))
  app.get(ITEM_PATH, { config: { cache: { mode: 'memory', ttl: 3600 } } }, handler)
}))
