'use strict'
// (3) Our Redis hit: { mode: 'redis' } on the plugin's shared RedisCache.
const { ITEM_PATH, handler, ember, requireEnv, serveFastify, run } = require('./common')

run(() => serveFastify(async (app) => {
  await app.register(ember().emberCache, { redis: { url: requireEnv('REDIS_URL') } })
  app.get(ITEM_PATH, { config: { cache: { mode: 'redis', ttl: 3600 } } }, handler)
}))
