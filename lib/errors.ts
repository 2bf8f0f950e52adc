import createError from '@fastify/error'

// Every error this plugin throws, in one place, so codes stay unique and greppable.

/** A plugin, cache or route option has the wrong type or value. Thrown at registration. */
export const InvalidOptionError = createError<[string, string]>(
  'FST_EMBER_CACHE_INVALID_OPTION',
  'Invalid option "%s": %s',
  500,
  TypeError
)

/** `invalidate()` was given something that is not a key, pattern or tag target. */
export const InvalidTargetError = createError<[string]>(
  'FST_EMBER_CACHE_INVALID_TARGET',
  'Invalid invalidation target: %s',
  500,
  TypeError
)

/** The backend cannot match keys by pattern (Memcached has no SCAN). */
export const PatternNotSupportedError = createError<[string]>(
  'FST_EMBER_CACHE_PATTERN_NOT_SUPPORTED',
  'Pattern invalidation is not supported by %s: invalidate by key or by tags instead'
)

/** A backend command did not answer within `commandTimeout`. Treated as a miss. */
export const BackendTimeoutError = createError<[string, number]>(
  'FST_EMBER_CACHE_BACKEND_TIMEOUT',
  '%s did not answer within %d ms'
)

/** The circuit breaker is open: the backend failed recently and is not being asked. */
export const CircuitOpenError = createError<[string]>(
  'FST_EMBER_CACHE_CIRCUIT_OPEN',
  '%s is unavailable (circuit open); serving without cache'
)

/**
 * An invalidation could not reach the backend. It is queued and retried, in order, before the
 * cache serves another hit; until then the cache answers every request from the origin.
 */
export const InvalidationFailedError = createError<[string, string]>(
  'FST_EMBER_CACHE_INVALIDATION_FAILED',
  '%s could not invalidate (%s); queued: it runs before this cache serves another hit'
)

/** The backend will not hold this one entry (too large for it). The entry is not stored; the backend is fine. */
export const EntryRefusedError = createError<[string]>(
  'FST_EMBER_CACHE_ENTRY_REFUSED',
  'entry not stored: %s'
)
