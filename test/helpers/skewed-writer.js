'use strict'
// A writer instance in its own process whose clock runs SKEW_MS off the real one (Date.now
// shifted before anything loads): it stores one cache-aside value with TTL_SECONDS in a
// RedisCache or MemcachedCache of the built package, prints the warnings it logged, and exits.
const realNow = Date.now
const skew = Number(process.env.SKEW_MS)
Date.now = () => realNow() + skew

const path = require('node:path')
const { RedisCache, MemcachedCache } = require(path.join(__dirname, '..', '..', 'dist', 'lib', 'index.js'))

async function main () {
  const warnings = []
  const log = { warn: (fields, msg) => warnings.push(msg), info () {}, error () {}, debug () {}, trace () {}, fatal () {}, child () { return log } }
  const options = { keyPrefix: process.env.PREFIX, commandTimeout: 2000 }
  const cache = process.env.REDIS_URL !== undefined
    ? new RedisCache({ url: process.env.REDIS_URL, ...options })
    : new MemcachedCache({ servers: process.env.MEMCACHED_SERVERS, ...options })
  await cache.connect(log)
  await cache.set(process.env.KEY, { written: 'skewed' }, { ttl: Number(process.env.TTL_SECONDS) })
  await cache.close()
  process.stdout.write(JSON.stringify({ warnings }))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
