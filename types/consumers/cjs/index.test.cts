// A CommonJS TypeScript consumer (module node16, .cts): require-style and default imports.
import Fastify = require('fastify')
import emberCache = require('fastify-ember-cache')
import { MemoryCache, cacheConfig } from 'fastify-ember-cache'

async function main (): Promise<void> {
  const app = Fastify.default()
  await app.register(emberCache, { defaultTtl: 60 })
  await app.register(emberCache.default, {})
  await app.register(emberCache.emberCache, {})
  const cache = new emberCache.MemoryCache({ ttl: 5 })
  app.get('/a', { config: { cache } }, async () => 'a')
  app.get('/b', { config: { cache: cacheConfig({ cache: new MemoryCache(), ttl: 5 }) } }, async () => 'b')
  // @ts-expect-error a typo is a type error through cacheConfig
  cacheConfig({ mode: 'memory', tll: 30 })
  await app.ready()
}
void main
