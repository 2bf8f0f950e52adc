// A classic CommonJS consumer (module commonjs, esModuleInterop), resolving the package's main types.
import Fastify from 'fastify'
import emberCache, { MemoryCache, cacheConfig } from '../../..'

const app = Fastify()
app.register(emberCache, { defaultTtl: 60 })
app.get('/r', { config: { cache: new MemoryCache() } }, async () => 'r')
// @ts-expect-error a typo is a type error through cacheConfig
cacheConfig({ mode: 'memory', tll: 30 })
