'use strict'
// Scale on paper: one cached route over many URLs. ENTRIES sizes the cache, BODY_BYTES the
// body, BACKEND picks memory or redis. The stats answer carries the process's memory after a
// full GC (node --expose-gc), so bench/scale.js can tell the bytes each entry costs.
const { ember, requireEnv, serveFastify, stats, run } = require('./common')

const entries = Number(requireEnv('ENTRIES'))
const bodyBytes = Number(requireEnv('BODY_BYTES'))
const backend = requireEnv('BACKEND')
// One JSON body per id, the id spliced into a fixed pad: bodies differ, building them is cheap.
const pad = 'x'.repeat(Math.max(0, bodyBytes - 40))

Object.defineProperty(stats, 'memory', {
  enumerable: true,
  get () {
    if (typeof global.gc === 'function') global.gc()
    return process.memoryUsage()
  }
})

run(() => serveFastify(async (app) => {
  const { emberCache, MemoryCache, RedisCache } = ember()
  const cache = backend === 'redis'
    ? new RedisCache({ url: requireEnv('REDIS_URL'), ttl: 3600 })
    : new MemoryCache({ max: entries + 100, ttl: 3600 })
  await app.register(emberCache)
  app.get('/item/:id', { config: { cache: { cache } } }, async (request, reply) => {
    stats.handlerCalls++
    reply.type('application/json; charset=utf-8')
    return '{"id":' + JSON.stringify(request.params.id) + ',"pad":"' + pad + '"}'
  })
}))
