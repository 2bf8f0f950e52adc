// Apps for tests that drive the plugin through inject: a Fastify instance with emberCache
// registered and closed when the test ends, and one cached route whose handler counts its runs.

import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import emberCache, { type EmberCachePluginOptions, type RouteCacheConfig } from '../../lib/index'

/** What the helpers need of a tap test: somewhere to register the app's close. */
export interface Scope { teardown: (fn: () => unknown) => void }

/** A route handler; `run` is 1 on the first run, 2 on the second... */
export type Handler = (request: FastifyRequest, reply: FastifyReply, run: number) => unknown

/** Fastify with emberCache registered (plugin `options`), closed when `t` ends; add routes to it. */
export async function emberApp (t: Scope, options: EmberCachePluginOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(emberCache, options)
  return app
}

/** One cached GET `path` route (config.cache = `cache`) whose handler counts its runs. */
export async function countingApp (
  t: Scope,
  handler: Handler,
  cache: RouteCacheConfig = { mode: 'memory' },
  options: EmberCachePluginOptions = {},
  path = '/r'
): Promise<{ app: FastifyInstance, calls: () => number }> {
  const app = await emberApp(t, options)
  let calls = 0
  app.get(path, { config: { cache } }, async (request, reply) => handler(request, reply, ++calls))
  return { app, calls: () => calls }
}
