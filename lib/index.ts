import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify'
import '../types/fastify'
import type { EmberCacheDecorator } from '../types/fastify'
import { EmberCache, type InvalidationReport, type InvalidationTarget } from './caches/cache'
import { MemoryCache, StaticCache } from './caches/local-cache'
import { RedisCache } from './caches/redis-cache'
import { MemcachedCache } from './caches/memcached-cache'
import { InvalidOptionError } from './errors'
import { ModeCaches } from './mode-caches'
import type { RouteCounters } from './observe'
import { routeParamNames } from './cache-key'
import { compileTargets, invalidateAll } from './invalidation'
import { CLEAR } from './edge/forwarder'
import { edgeSettings } from './edge/settings'
import { resolvePluginOptions, resolveRouteOptions, type CacheMode, type EmberCachePluginOptions, type RouteSettings } from './options'
import { buildLookupHook } from './hooks/lookup'
import { buildRefresher } from './hooks/refresh'
import { kState } from './hooks/request-state'
import { kObserver } from './hooks/read-observer'
import { buildStoreHook, markOriginFailed } from './hooks/store'
import { buildUnseenRouteCheck } from './hooks/unseen-routes'
import { buildWriteHook, buildWriteObserverHook, type OwnTargets } from './hooks/write'
import { ReadRoutes } from './read-routes'
import { KeyTemplates } from './key-templates'

const kSettings = Symbol('ember-cache.settings')
const READ_METHODS = new Set(['GET', 'HEAD'])
// RFC 9110 §9.2.1: every method that is not safe may change what a read returns (RFC 9111 §4.4).
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])
const WRITE_THROUGH_METHODS = new Set(['PUT', 'PATCH'])

async function emberCachePlugin (fastify: FastifyInstance, options: EmberCachePluginOptions): Promise<void> {
  const opts = resolvePluginOptions(options)
  opts.edge = edgeSettings(options?.edge, fastify.log)
  /** Every cache a route uses: connected once in onReady, closed once in onClose. */
  const caches = new Set<EmberCache>()
  const refresh = buildRefresher((injectOptions) => fastify.inject(injectOptions))

  const modeCaches = new ModeCaches(fastify, opts)
  const cacheForMode = (mode: CacheMode, where: string): EmberCache => modeCaches.get(mode, where)
  // Fail fast on bad in-process mode options, not when the first route happens to ask for them.
  if (opts.memory !== undefined) cacheForMode('memory', 'memory')
  if (opts.static !== undefined) cacheForMode('static', 'static')

  // Caches used outside routes (cache-aside) live and die with the app too, when given.
  for (const cache of opts.caches) caches.add(cache)

  /** The read routes with a cache, for stats(). */
  const routes: RouteSettings[] = []
  /** The same, by path: a write route updates its read route's entry (resolved when ready). */
  const readRoutes = new ReadRoutes()
  /** The key templates of the read routes, per cache: no two may make the same key. */
  const keyTemplates = new KeyTemplates()
  const writeRoutes: Array<{ settings: RouteSettings, own: OwnTargets }> = []
  const decorator: EmberCacheDecorator = {
    invalidate: (target: InvalidationTarget) => invalidateAll(caches, target, fastify.log, opts.edge),
    clear: () => invalidateAll(caches, CLEAR, fastify.log, opts.edge),
    stats: () => ({
      caches: [...caches].map((cache) => cache.stats()),
      routes: routes.filter((settings) => settings.counters !== undefined).map((settings) => ({
        route: settings.label,
        cache: settings.cache.name,
        ...(settings.counters as RouteCounters),
        refusals: { ...(settings.counters as RouteCounters).refusals }
      })),
      ...(opts.edge === undefined ? {} : { edges: opts.edge.forwarder.stats() })
    }),
    get caches () { return [...caches] }
  }
  fastify.decorate('emberCache', decorator)
  fastify.decorateRequest(kState as unknown as string, null)
  fastify.decorateRequest(kObserver as unknown as string, null)
  fastify.decorateReply('cacheInvalidate', function (this: FastifyReply, target: InvalidationTarget): Promise<InvalidationReport> {
    const settings = (this.request.routeOptions.config as unknown as Record<symbol, RouteSettings | undefined>)[kSettings]
    return invalidateAll(settings === undefined ? caches : [settings.cache], target, this.log, opts.edge)
  })

  fastify.addHook('onRoute', (routeOptions) => {
    const config = (routeOptions.config as { cache?: unknown } | undefined)?.cache
    if (config === undefined) return
    const methods = (Array.isArray(routeOptions.method) ? routeOptions.method : [routeOptions.method]).map((m) => m.toUpperCase())
    const label = methods.join(',') + ' ' + routeOptions.url
    const settings = resolveRouteOptions(config, { label, params: routeParamNames(routeOptions.url ?? ''), path: routeOptions.url ?? '' }, opts, cacheForMode)
    caches.add(settings.cache)
    // A new object: the automatic HEAD route still holds the user's original config.
    routeOptions.config = { ...routeOptions.config, [kSettings]: settings } as typeof routeOptions.config
    if (methods.every((m) => READ_METHODS.has(m))) {
      if (settings.writeThrough || settings.invalidate.length > 0) {
        throw new InvalidOptionError(label + ' config.cache.' + (settings.writeThrough ? 'writeThrough' : 'invalidate'), 'belongs on a write route (POST, PUT, PATCH, DELETE)')
      }
      if (settings.keyTemplate !== undefined) {
        const refused = keyTemplates.add(settings.cache, settings.keyTemplate, label)
        if (refused !== undefined) throw new InvalidOptionError(label + ' config.cache.key', refused)
      }
      if (!opts.enabled) return
      if (settings.early) checkEarlyHooks(routeOptions, label)
      routes.push(settings)
      readRoutes.add(settings)
      const lookup = buildLookupHook(settings, refresh)
      // Lookup after the route's own hooks, so that a hit is never served to a request its auth
      // hooks reject; `early` (public routes only) moves it to onRequest and skips the rest.
      if (settings.early) routeOptions.onRequest = appendHook(routeOptions.onRequest, lookup)
      else routeOptions.preHandler = appendHook(routeOptions.preHandler, lookup)
      // HEAD routes get it too, only to send the MISS header: the store hook never stores for HEAD.
      routeOptions.onSend = appendHook(routeOptions.onSend, buildStoreHook(settings))
      if (settings.ttlFromResponse) routeOptions.onError = appendHook(routeOptions.onError, markOriginFailed)
      return
    }
    if (methods.every((m) => !SAFE_METHODS.has(m))) {
      if (settings.writeThrough && !methods.every((m) => WRITE_THROUGH_METHODS.has(m))) {
        throw new InvalidOptionError(label + ' config.cache.writeThrough', 'only PUT and PATCH routes can write through')
      }
      if (settings.early) throw new InvalidOptionError(label + ' config.cache.early', 'belongs on a read route (GET, HEAD)')
      const targets = compileTargets(settings.invalidate, settings.cache, label + ' config.cache.invalidate', settings.routeParams)
      if (!opts.enabled) return
      const own: OwnTargets = { targets: [] }
      writeRoutes.push({ settings, own })
      // What a writeThrough handler reads of its caller decides whether its answer is shared.
      if (settings.writeThrough && settings.observe !== undefined) routeOptions.preHandler = appendHook(routeOptions.preHandler, buildWriteObserverHook(settings, settings.observe))
      routeOptions.onSend = appendHook(routeOptions.onSend, buildWriteHook(settings, targets, own))
      return
    }
    throw new InvalidOptionError(label + ' config.cache', 'cached routes are either reads (GET, HEAD) or writes (any unsafe method: POST, PUT, PATCH, DELETE, ...), not ' + methods.join(', '))
  })

  // Routes that ask for caching but were declared before the plugin loaded are reported.
  fastify.addHook('onRequest', buildUnseenRouteCheck((config) => config[kSettings] !== undefined))
  fastify.addHook('onReady', async () => {
    // Every route is known now: each write route finds the entry its read route keeps.
    for (const { settings, own } of writeRoutes) own.targets = readRoutes.ownTargets(settings)
    nameCaches(caches, fastify.log)
    await Promise.all([...caches].map((cache) => cache.connect(fastify.log)))
  })
  fastify.addHook('onClose', async () => {
    opts.edge?.forwarder.close()
    await Promise.all([...caches].map((cache) => cache.close()))
  })
}

/**
 * A hit of an `early` route is answered in onRequest, so the route's own later hooks would
 * never run for it: a route that has any is refused rather than silently skipping them.
 * (App-wide hooks cannot be seen from here; the README says so.)
 */
function checkEarlyHooks (routeOptions: { preParsing?: unknown, preValidation?: unknown, preHandler?: unknown }, label: string): void {
  for (const name of ['preParsing', 'preValidation', 'preHandler'] as const) {
    const hooks = routeOptions[name]
    if (hooks !== undefined && (!Array.isArray(hooks) || hooks.length > 0)) {
      throw new InvalidOptionError(label + ' config.cache.early', 'the route has its own ' + name + ' hook, which a hit would skip; drop early or move the check to onRequest')
    }
  }
}

/**
 * Logs and stats tell caches apart by name: caches left unnamed that would share one are
 * numbered (`memory`, `memory #2`, in the order routes first used them); two caches given the
 * same name are warned about.
 */
function nameCaches (caches: Iterable<EmberCache>, log: FastifyInstance['log']): void {
  const byName = new Map<string, EmberCache[]>()
  for (const cache of caches) byName.set(cache.name, [...byName.get(cache.name) ?? [], cache])
  for (const [name, same] of byName) {
    if (same.length < 2) continue
    const named = same.filter((cache) => cache.hasGivenName)
    const first = named.length > 0 ? 2 : 1
    same.filter((cache) => !cache.hasGivenName).forEach((cache, i) => { if (first + i > 1) cache.numberName(first + i) })
    if (named.length > 1) log.warn({ cache: name }, 'ember-cache: two caches share this name in logs and stats(); give each its own `name` option')
  }
}

/** Adds our hook after the route's own (undefined, one function or an array), keeping theirs. */
function appendHook<T> (existing: T | T[] | undefined, hook: T): T[] {
  if (existing === undefined) return [hook]
  return Array.isArray(existing) ? [...existing, hook] : [existing, hook]
}

/** The plugin: `await app.register(emberCache, options)`. */
export const emberCache: FastifyPluginAsync<EmberCachePluginOptions> = fp(emberCachePlugin, {
  fastify: '5.x',
  name: 'fastify-ember-cache'
})

export default emberCache
export { EmberCache, MemoryCache, StaticCache, RedisCache, MemcachedCache }
export { RemoteCacheOptions, L1Options, BusOptions } from './caches/shared-tier'
export { CircuitBreakerOptions } from './caches/circuit-breaker'
export { ReadYourWritesOptions } from './read-your-writes'
export { CacheOptions, InvalidationTarget, InvalidationReport, SetOptions, WrapOptions } from './caches/cache'
export { LocalCacheOptions, StaticCacheOptions } from './caches/local-cache'
export { RedisCacheOptions } from './caches/redis-cache'
export { RedisClientLike, RedisOptionsLike, ClusterNodeLike } from './caches/redis-client'
export { ModeRedisOptions } from './mode-caches'
export { MemcachedCacheOptions } from './caches/memcached-cache'
export { StoreCache, StoreCacheOptions, CacheStore } from './caches/store-cache'
export { EmberCachePluginOptions, RouteCacheOptions, RouteCacheConfig, CacheMode } from './options'
export { RouteDefaults, CacheKeyRequest, CompressionOptions, LooseRouteGeneric } from './route-defaults'
export { Coding } from './content-coding'
export { EmberCacheStats, CacheStats, RouteStats, CacheCounters, RouteCounters, TraceContext, EdgePurgeContext, channels as diagnosticsChannels } from './observe'
export { cacheConfig } from './options'
export { registerPrometheusMetrics, PromClientLike, PrometheusOptions } from './prometheus'
export { traceWithOpenTelemetry, TracerLike, SpanLike } from './opentelemetry'
export { EmberCacheDecorator } from '../types/fastify'
export { InvalidOptionError, InvalidTargetError, PatternNotSupportedError, BackendTimeoutError, CircuitOpenError, InvalidationFailedError } from './errors'
export { urlKey, escapeKeyPart } from './cache-key'
export { proxyRequestHeaders, ProxyHeadersOptions, ProxiedRequest } from './proxy-headers'
export { EdgeOptions } from './edge/settings'
export { varnishPurgers, fastlyPurger, cloudflarePurger, EdgePurgeFailure, EdgePurger, EdgePurge, HttpPurgeOptions, VarnishPurgerOptions, FastlyPurgerOptions, CloudflarePurgerOptions } from './edge/purgers'
export { EdgeReport, EdgeStats } from './edge/forwarder'
export { TagHeaderFormat } from './edge/tag-header'
