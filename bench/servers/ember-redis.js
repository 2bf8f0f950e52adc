'use strict'
// (3) Our Redis hit: { mode: 'redis' } on the plugin's shared RedisCache. L1=1 puts an
// in-process tier (with its coherence bus) in front of it.
const { ITEM_PATH, handler, ember, requireEnv, serveFastify, run } = require('./common')

run(() => serveFastify(async (app) => {
  const l1 = process.env.L1 === '1' ? { l1: { ttl: 30 } } : {}
  // COMPRESSION=0: no stored codings (nor Vary: Accept-Encoding), the work of a build before them.
  const compression = process.env.COMPRESSION === '0' ? { compression: false } : {}
  await app.register(ember().emberCache, { redis: { url: requireEnv('REDIS_URL'), ...l1 }, ...compression })
  app.get(ITEM_PATH, { config: { cache: { mode: 'redis', ttl: 3600 } } }, handler)
}))
