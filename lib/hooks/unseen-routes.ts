import type { FastifyBaseLogger, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'

// A plugin sees a route only through its onRoute hook, which runs when the route is declared:
// routes declared before the plugin has loaded (after an `app.register(emberCache)` that is
// not awaited, or before it) are never seen, and their `config.cache` did nothing, silently.
// An app-wide onRequest hook does reach them (Fastify builds a route's hooks when the app
// starts), so the first request of each route checks once whether a route asking for caching
// was seen. Routes in an encapsulated context beside the plugin's are beyond any of its hooks:
// the README says to register the plugin at the root.

/** Fastify's key for a request's route context (its description is stable since Fastify 4). */
const CONTEXT_DESCRIPTION = 'fastify.context'

/**
 * An onRequest hook that warns once per route whose config asks for caching and that the
 * plugin never saw (`seen` says whether a route config went through onRoute).
 */
export function buildUnseenRouteCheck (seen: (config: Record<PropertyKey, unknown>) => boolean): (this: unknown, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void {
  let contextKey: symbol | null | undefined
  const checked = new WeakSet<object>()
  /** Routes warned about, by method and URL (a GET route's automatic HEAD is the same route). */
  const warned = new Set<string>()
  return function checkRoute (request, reply, done) {
    if (contextKey === undefined) contextKey = findContextKey(request)
    const context = contextKey === null ? undefined : (request as unknown as Record<symbol, { config?: Record<PropertyKey, unknown> } | undefined>)[contextKey]
    if (context !== undefined && !checked.has(context)) {
      checked.add(context)
      const config = context.config
      if (config?.cache !== undefined && !seen(config)) {
        const route = (request.method === 'HEAD' ? 'GET' : request.method) + ' ' + String(config.url)
        if (!warned.has(route)) {
          warned.add(route)
          warnUnseen(request.log, route)
        }
      }
    }
    done()
  }
}

function findContextKey (request: FastifyRequest): symbol | null {
  return Object.getOwnPropertySymbols(request).find((key) => key.description === CONTEXT_DESCRIPTION) ?? null
}

function warnUnseen (log: FastifyBaseLogger, route: string): void {
  log.warn({ route }, `ember-cache: route ${route} has config.cache, but fastify-ember-cache never saw it: the route was declared before the plugin loaded, and its config.cache does nothing. Declare routes after \`await app.register(emberCache, ...)\` (README, "Where routes must be")`)
}
