// ESM entry: explicit named exports (Node cannot see the CommonJS build's exports by itself).
// test/package-exports.test.ts checks this list against the build's.
import plugin from './index.js'

export default plugin
export const {
  emberCache,
  EmberCache,
  MemoryCache,
  StaticCache,
  RedisCache,
  MemcachedCache,
  RemoteCache,
  StoreCache,
  diagnosticsChannels,
  InvalidOptionError,
  InvalidTargetError,
  PatternNotSupportedError,
  BackendTimeoutError,
  CircuitOpenError,
  InvalidationFailedError,
  urlKey,
  escapeKeyPart,
  proxyRequestHeaders,
  varnishPurgers,
  fastlyPurger,
  cloudflarePurger,
  EdgePurgeFailure,
  cacheConfig,
  registerPrometheusMetrics,
  traceWithOpenTelemetry
} = plugin
