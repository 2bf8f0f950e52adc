import type { FastifyBaseLogger } from 'fastify'
import type { CacheEntry } from '../entry'
import type { CircuitBreaker } from './circuit-breaker'
import type { Fence, FillLock, LookupResult, ParsedTarget } from './cache'
import type { BusPublisher, BusSubscriber } from './bus'

// A shared backend, as the shared tier (shared-tier.ts) drives it: bytes in and out by key and
// variant, invalidation, connection, and optional capabilities. Redis implements it directly;
// Memcached and a user's CacheStore through the version scheme of versioned-driver.ts. Every
// method may reject: the tier fails open (a miss, a dropped store, a queued invalidation).

/** The bus's connections; `own` when the bus made the publisher (and so closes it). */
export interface BusConnections { publisher: BusPublisher, subscriber: BusSubscriber | undefined, own: boolean }

export interface SharedDriver {
  /** The stored envelope for a key and variant, or null. */
  readBytes: (key: string, variant: string) => Promise<Buffer | null | undefined>
  /**
   * Stores an envelope for `retention` seconds (0 = no expiry); with a miss's fence, only when
   * nothing invalidated the entry since (false otherwise).
   */
  writeBytes: (key: string, variant: string, bytes: Buffer, retention: number, entry: CacheEntry, fence?: Fence) => Promise<boolean>
  connect: () => Promise<void>
  disconnect: () => Promise<void>
  /** Removes keys with all their variants. */
  removeKeys: (keys: string[]) => Promise<void>
  /** Removes every key matching a glob (Redis MATCH syntax), with all variants. */
  removePattern: (pattern: string) => Promise<void>
  /** Removes every entry stored with any of these tags. */
  removeTags: (tags: string[]) => Promise<void>
  /** Removes every entry under the cache's prefix, never anything else on the same server. */
  removeAll: () => Promise<void>

  /** Soft invalidation: the entries a target names become stale. Without it they are removed. */
  markStale?: (target: ParsedTarget) => Promise<void>
  /** The backend's part of a miss's fence, checked when it stores. */
  beginFill?: (key: string, tags: readonly string[]) => Promise<Fence>
  /** Backends that check tags at read time: whether an entry's tags are still valid, or 'stale' after a soft invalidation. */
  tagsStillValid?: (entry: CacheEntry) => boolean | 'stale' | Promise<boolean | 'stale'>
  /** Backends that check tags at read time: the tags' versions to store with the entry (the fence's first). */
  currentTagVersions?: (entry: CacheEntry, fence?: Fence) => Promise<string[]>
  /**
   * Whether any of `tags` was invalidated after a miss began (`since`, on the backend's clock,
   * or the backend's own mark in its fence). Without it: no.
   */
  tagsInvalidatedSince?: (tags: readonly string[], since: number, inner: Fence) => Promise<boolean>
  /** Removes one variant just stored (a tag only its response named was invalidated meanwhile). */
  withdraw?: (key: string, variant: string) => Promise<void>
  /** Whether the backend's fence covers the route tags named when the miss began. Default true. */
  readonly fencesRouteTags?: boolean
  /** The largest envelope the backend holds, in bytes. Default: no bound. */
  readonly maxItemBytes?: number
  /** The longest the backend keeps an item, in seconds. Default: the envelope's 32 bits. */
  readonly maxRetentionSeconds?: number
  /** Whether an error is about one entry (too large...), not the backend. */
  refusesEntry?: (err: unknown) => boolean
  /** The backend's clock now (ms), or undefined when it has none to tell. */
  serverTime?: () => Promise<number | undefined>
  /** What two instances' views of one instant may differ by, in ms. Default 100. */
  readonly clockMarginMs?: number
  /** The error that tells why a command failed: a client's own may name only its symptom. */
  failureCause?: (err: unknown) => unknown
  /** The same for a failed connect, which may look further (a probe of the address). */
  connectFailureCause?: (err: unknown) => Promise<unknown>
  /** True when the backend carries a coherence bus without being told where (Redis: its own server). */
  readonly hasOwnBus?: boolean
  /** The bus's connections on the backend itself, when it has one (see hasOwnBus). */
  ownBusConnections?: (listen: boolean) => BusConnections | undefined
  /** Refuses what this backend cannot do (Memcached: patterns). */
  checkSupported?: (target: ParsedTarget) => void
  /** Names the cache when the `name` option is not given (kind, prefix and server). */
  defaultName?: () => string | undefined
  /** Cross-instance single-flight of misses, when the backend can hold a lock. */
  readonly fillLock?: FillLock
}

/** What the shared tier gives its driver. */
export interface SharedContext {
  readonly name: string
  readonly log: FastifyBaseLogger
  readonly keyPrefix: string
  /** Milliseconds a command may take. */
  readonly commandTimeout: number
  /** Milliseconds the first connection may take. */
  readonly connectTimeout: number
  readonly breaker: CircuitBreaker
  /** Runs an invalidation command, failing fast while the circuit is open. */
  guarded: <T>(run: () => Promise<T>) => Promise<T>
  /**
   * Reads an entry with `read` (called on `owner` with key, variant and `extra`): decoded, its
   * tags checked, kept in L1. BYPASS when the backend fails.
   */
  readShared: <O, T>(key: string, variant: string, read: (this: O, key: string, variant: string, extra: T) => Promise<Buffer | null | undefined>, owner: O, extra: T) => LookupResult | Promise<LookupResult>
  /** Keeps work that outlives its request until it settles (close() waits for it). */
  track: (work: Promise<unknown>) => void
  /** The backend's connection is (re)established. */
  backendReady: () => void
  /** The backend's connection closed while the cache was open. */
  backendLost: () => void
  /** The backend's clock now (ms). */
  serverNow: () => number
}
