'use strict'

// A caching reverse proxy: Fastify + @fastify/reply-from + fastify-ember-cache. Whatever the
// upstream says in its response headers decides what is stored and for how long
// (`ttl: 'from-response'`), as in a proxy cache. UPSTREAM=http://host:port node example-app/proxy.js
const Fastify = require('fastify')
const replyFrom = require('@fastify/reply-from')
const { emberCache, MemoryCache, proxyRequestHeaders } = require('fastify-ember-cache')

async function buildProxy (options = {}) {
  const app = Fastify({ logger: options.logger ?? false })
  // Bodies pass through untouched, whatever their type.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (request, payload, done) => done(null, payload))
  await app.register(emberCache)
  // A cache passes an origin's 503 on; reply-from would otherwise retry GETs that get one.
  await app.register(replyFrom, { base: options.upstream, retryMethods: [] })

  // options.cache: a cache object of your own (a RedisCache shared by a fleet of proxies), given ttl: 'from-response'.
  // Heuristic freshness (RFC 9111 §4.2.2) is on, as in proxies before web origins; HEURISTIC=0 turns it off.
  const heuristic = options.heuristicFreshness === undefined ? {} : { heuristicFreshness: options.heuristicFreshness }
  const cache = options.cache ?? new MemoryCache({ ttl: 'from-response', max: 50_000, ...heuristic })
  // The upstream hears what the key covers: the host and protocol this proxy was asked for,
  // stated by the proxy; a client's own X-Forwarded-*, Forwarded and URL overrides never reach it.
  const rewriteRequestHeaders = proxyRequestHeaders()
  const forward = (request, reply) => reply.from(request.url, { rewriteRequestHeaders })
  // Reads are cached as the upstream's headers say; every unsafe method invalidates what it
  // touches (RFC 9111 §4.4), custom ones such as M-SEARCH included once Fastify knows them.
  app.addHttpMethod('M-SEARCH', { hasBody: true })
  app.route({ method: ['GET', 'HEAD'], url: '/*', config: { cache }, handler: forward })
  app.route({ method: ['POST', 'PUT', 'PATCH', 'DELETE', 'M-SEARCH'], url: '/*', config: { cache }, handler: forward })
  app.route({ method: ['OPTIONS'], url: '/*', handler: forward })
  return app
}

async function main () {
  const app = await buildProxy({ upstream: process.env.UPSTREAM ?? 'http://127.0.0.1:8000', logger: process.env.LOG === '1', heuristicFreshness: process.env.HEURISTIC === '0' ? false : undefined })
  await app.listen({ port: Number(process.env.PORT ?? 3001), host: process.env.HOST ?? '127.0.0.1' })
  console.log('caching proxy on http://127.0.0.1:' + app.server.address().port + ' for ' + (process.env.UPSTREAM ?? 'http://127.0.0.1:8000'))
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => { app.close().then(() => process.exit(0)) })
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

module.exports = { buildProxy }
