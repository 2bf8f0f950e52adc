'use strict'
// (3) Our Memcached hit: { mode: 'memcached' } on the plugin's shared MemcachedCache.
const { ITEM_PATH, handler, ember, requireEnv, serveFastify, run } = require('./common')

run(() => serveFastify(async (app) => {
  await app.register(ember().emberCache, { memcached: { servers: requireEnv('MEMCACHED_SERVERS') } })
  app.get(ITEM_PATH, { config: { cache: { mode: 'memcached', ttl: 3600 } } }, handler)
}))
