// A consumer resolved the way bundlers resolve (moduleResolution bundler).
import Fastify from 'fastify'
import emberCache, { StaticCache, cacheConfig } from 'fastify-ember-cache'

const app = Fastify()
app.register(emberCache, { defaultTtl: 60 })
app.get('/health', { config: { cache: new StaticCache() } }, async () => ({ ok: true }))
// @ts-expect-error a typo is a type error through cacheConfig
cacheConfig({ mode: 'static', tll: 1 })
