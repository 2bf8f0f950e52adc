// Types for CommonJS consumers (index.js, whose module.exports is the plugin function with every
// named export and `default` on it): `export =` of that function, merged with a namespace.
// test/package-exports.test.ts checks this list against the build's exports.
import * as lib from './dist/lib/index'

type EmberCachePlugin = typeof lib.emberCache

declare namespace emberCache {
  export import BackendTimeoutError = lib.BackendTimeoutError
  export import CacheEntry = lib.CacheEntry
  export import CacheKeyRequest = lib.CacheKeyRequest
  export import CacheMode = lib.CacheMode
  export import CacheOptions = lib.CacheOptions
  export import CircuitOpenError = lib.CircuitOpenError
  export import EmberCache = lib.EmberCache
  export import EmberCacheDecorator = lib.EmberCacheDecorator
  export import EmberCacheStats = lib.EmberCacheStats
  export import CacheStats = lib.CacheStats
  export import RouteStats = lib.RouteStats
  export import diagnosticsChannels = lib.diagnosticsChannels
  export import EmberCachePluginOptions = lib.EmberCachePluginOptions
  export import InvalidOptionError = lib.InvalidOptionError
  export import InvalidTargetError = lib.InvalidTargetError
  export import InvalidationFailedError = lib.InvalidationFailedError
  export import InvalidationReport = lib.InvalidationReport
  export import InvalidationTarget = lib.InvalidationTarget
  export import LocalCacheOptions = lib.LocalCacheOptions
  export import LookupResult = lib.LookupResult
  export import MemcachedCache = lib.MemcachedCache
  export import MemcachedCacheOptions = lib.MemcachedCacheOptions
  export import MemoryCache = lib.MemoryCache
  export import PatternNotSupportedError = lib.PatternNotSupportedError
  export import RedisCache = lib.RedisCache
  export import RedisCacheOptions = lib.RedisCacheOptions
  export import RedisClientLike = lib.RedisClientLike
  export import RedisOptionsLike = lib.RedisOptionsLike
  export import ClusterNodeLike = lib.ClusterNodeLike
  export import ModeRedisOptions = lib.ModeRedisOptions
  export import RemoteCache = lib.RemoteCache
  export import RemoteCacheOptions = lib.RemoteCacheOptions
  export import RouteCacheConfig = lib.RouteCacheConfig
  export import RouteCacheOptions = lib.RouteCacheOptions
  export import RouteDefaults = lib.RouteDefaults
  export import SetOptions = lib.SetOptions
  export import StaticCache = lib.StaticCache
  export import StaticCacheOptions = lib.StaticCacheOptions
  export import StoreCache = lib.StoreCache
  export import StoreCacheOptions = lib.StoreCacheOptions
  export import CacheStore = lib.CacheStore
  export import urlKey = lib.urlKey
  export import escapeKeyPart = lib.escapeKeyPart
  export import proxyRequestHeaders = lib.proxyRequestHeaders
  export import ProxyHeadersOptions = lib.ProxyHeadersOptions
  export import ProxiedRequest = lib.ProxiedRequest
  export import EdgeOptions = lib.EdgeOptions
  export import varnishPurgers = lib.varnishPurgers
  export import fastlyPurger = lib.fastlyPurger
  export import cloudflarePurger = lib.cloudflarePurger
  export import EdgePurgeFailure = lib.EdgePurgeFailure
  export import EdgePurger = lib.EdgePurger
  export import EdgePurge = lib.EdgePurge
  export import VarnishPurgerOptions = lib.VarnishPurgerOptions
  export import FastlyPurgerOptions = lib.FastlyPurgerOptions
  export import CloudflarePurgerOptions = lib.CloudflarePurgerOptions
  export import EdgeReport = lib.EdgeReport
  export import EdgeStats = lib.EdgeStats
  export import TagHeaderFormat = lib.TagHeaderFormat
  export import cacheConfig = lib.cacheConfig
  export import registerPrometheusMetrics = lib.registerPrometheusMetrics
  export import PromClientLike = lib.PromClientLike
  export import PrometheusOptions = lib.PrometheusOptions
  export import traceWithOpenTelemetry = lib.traceWithOpenTelemetry
  export import TracerLike = lib.TracerLike
  export import SpanLike = lib.SpanLike
  export const emberCache: EmberCachePlugin
  export { emberCache as default }
}

declare function emberCache (...params: Parameters<EmberCachePlugin>): ReturnType<EmberCachePlugin>

export = emberCache
