import type { FastifyBaseLogger } from 'fastify'
import { ENTRY_VALUE, NO_TAGS, freshUntil, type CacheEntry } from '../entry'
import { InvalidTargetError } from '../errors'
import { SingleFlight } from '../single-flight'
import {
  checkObject, checkPositiveInteger, checkSeconds, checkString, lowerCaseHeaders, rejectUnknown, describe
} from '../validate'

/** Options every cache object accepts. Route options override them, they override the plugin's. */
export interface CacheOptions {
  /** Freshness in seconds for routes using this cache; 0 = never expires. Default: plugin `defaultTtl`. */
  ttl?: number
  /** Prepended to every stored key; users invalidate with unprefixed keys. Default '' (in-process), 'ember:' (remote). */
  keyPrefix?: string
  /** Request headers that select a variant of each entry. Default: none. */
  varyHeaders?: string[]
  /** Seconds an expired entry may be served while one refresh runs (RFC 5861). Default 0. */
  staleWhileRevalidate?: number
  /** Seconds an expired entry may replace an origin error (RFC 5861). Default 0. */
  staleIfError?: number
  /** Largest body stored, in bytes; larger responses are served but not stored. Default 5 MiB. */
  maxEntryBytes?: number
}

export const CACHE_OPTION_NAMES = ['ttl', 'keyPrefix', 'varyHeaders', 'staleWhileRevalidate', 'staleIfError', 'maxEntryBytes'] as const

/** What to invalidate: a key (string), keys, a glob pattern, or tags. */
export type InvalidationTarget =
  | string
  | { key: string | string[] }
  | { keys: string[] }
  | { pattern: string }
  | { tags: string | string[] }

export interface SetOptions {
  /** Seconds; defaults to the cache's ttl, then 60. 0 = never expires. */
  ttl?: number
  tags?: string[]
}

/**
 * Cross-instance single-flight: before running the handler on a miss, an instance takes a short
 * lock per key; the others wait for the entry it stores. Fail-open at every step.
 */
export interface FillLock {
  /** A token when this instance may run the handler; undefined when another instance holds the lock. */
  acquire: (key: string, variant: string) => Promise<string | undefined>
  /** Releases a lock taken with `acquire` (only if it is still ours). Never throws. */
  release: (key: string, variant: string, token: string) => void
  /** Waits for the lock holder's entry; undefined when it did not come in time (then run the handler). */
  waitForEntry: (key: string, variant: string) => Promise<CacheEntry | undefined>
}

/** Returned by `lookup` when the backend could not be asked: serve without cache. */
export const BYPASS: unique symbol = Symbol('ember-cache.bypass')
export type LookupResult = CacheEntry | undefined | typeof BYPASS

// Separates a key from its variant in an entry's id. A control character cannot come from a
// URL, so no request key collides with a variant id, and patterns only ever see the key part.
export const VARIANT_SEPARATOR = '\u0000'

/** One id for a key's variant ('' = the key's only variant). */
export function entryId (key: string, variant: string): string {
  return variant === '' ? key : key + VARIANT_SEPARATOR + variant
}

const DEFAULT_VALUE_TTL = 60
const DEFAULT_MAX_ENTRY_BYTES = 5 * 1024 * 1024

const noop = (): void => {}
const silentLogger = {
  level: 'silent',
  fatal: noop,
  error: noop,
  warn: noop,
  info: noop,
  debug: noop,
  trace: noop,
  silent: noop,
  child: () => silentLogger
} as unknown as FastifyBaseLogger

/**
 * A cache object: what routes store responses in and handlers invalidate. Subclasses provide
 * storage; this class provides the public API, lifecycle and invalidation bookkeeping.
 */
export abstract class EmberCache {
  /** 'static', 'memory', 'redis', 'memcached', or a custom store's name. */
  abstract readonly kind: string
  /** True when entries live in this process: lookups answer synchronously. */
  abstract readonly inProcess: boolean
  readonly ttl: number | undefined
  readonly keyPrefix: string
  readonly varyHeaders: string[] | undefined
  readonly staleWhileRevalidate: number | undefined
  readonly staleIfError: number | undefined
  readonly maxEntryBytes: number
  /**
   * Bumped by every invalidation. A miss remembers it when it starts, and does not store its
   * result if it changed meanwhile: an invalidation must win over a slower, older response.
   */
  epoch = 0
  /** Concurrent misses per key, collapsed into one origin call. */
  readonly flights = new SingleFlight<CacheEntry>()
  /** Set by shared backends that can collapse misses across instances (RedisCache). */
  fillLock: FillLock | undefined = undefined
  protected log: FastifyBaseLogger = silentLogger
  private users = 0
  private opening: Promise<void> | undefined

  constructor (where: string, options: CacheOptions | undefined, allowed: readonly string[], defaultPrefix: string) {
    checkObject(where, options)
    const opts = options ?? {}
    rejectUnknown(where + '.', opts, new Set([...CACHE_OPTION_NAMES, ...allowed]))
    checkSeconds(where + '.ttl', opts.ttl)
    checkString(where + '.keyPrefix', opts.keyPrefix)
    checkSeconds(where + '.staleWhileRevalidate', opts.staleWhileRevalidate)
    checkSeconds(where + '.staleIfError', opts.staleIfError)
    checkPositiveInteger(where + '.maxEntryBytes', opts.maxEntryBytes)
    this.ttl = opts.ttl
    this.keyPrefix = opts.keyPrefix ?? defaultPrefix
    this.varyHeaders = lowerCaseHeaders(where + '.varyHeaders', opts.varyHeaders)
    this.staleWhileRevalidate = opts.staleWhileRevalidate
    this.staleIfError = opts.staleIfError
    this.maxEntryBytes = opts.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES
  }

  /**
   * Opens the backend. Counted: a cache shared by several routes or apps opens once and
   * closes when its last user closes it. The plugin calls this from `onReady`.
   */
  async connect (log?: FastifyBaseLogger): Promise<void> {
    if (log !== undefined) this.log = log
    this.users++
    if (this.opening === undefined) this.opening = this.open()
    await this.opening
  }

  /** Releases one user; the backend closes with the last. The plugin calls this from `onClose`. */
  async close (): Promise<void> {
    if (this.users === 0) return
    this.users--
    if (this.users > 0) return
    this.opening = undefined
    await this.shutdown()
  }

  protected async open (): Promise<void> {}
  protected async shutdown (): Promise<void> {}

  /** Reads the entry for a key and variant. Never throws: a failing backend answers BYPASS. */
  abstract lookup (key: string, variant: string): LookupResult | Promise<LookupResult>
  /** Stores an entry. Never throws: a failing backend drops the write. */
  abstract store (key: string, variant: string, entry: CacheEntry): void | Promise<void>
  /** Removes keys with all their variants. */
  protected abstract removeKeys (keys: string[]): void | Promise<void>
  /** Removes every key matching a glob (Redis MATCH syntax), with all variants. */
  protected abstract removePattern (pattern: string): void | Promise<void>
  /** Removes every entry stored with any of these tags. */
  protected abstract removeTags (tags: string[]): void | Promise<void>

  /**
   * Invalidates by key (all variants), glob pattern, or tags. Rejects when the backend fails
   * (route-level invalidation logs that instead of failing the request).
   */
  async invalidate (target: InvalidationTarget): Promise<void> {
    const parsed = parseTarget(target)
    this.epoch++
    if (parsed.keys !== undefined) await this.removeKeys(parsed.keys)
    else if (parsed.pattern !== undefined) await this.removePattern(parsed.pattern)
    else await this.removeTags(parsed.tags as string[])
  }

  // Cache-aside API: JSON-compatible values, for work outside routes.

  async get<T = unknown> (key: string): Promise<T | undefined> {
    const entry = await this.lookup(key, '')
    if (entry === undefined || entry === BYPASS || entry.kind !== ENTRY_VALUE) return undefined
    if (Date.now() >= freshUntil(entry)) return undefined
    return JSON.parse(entry.body.toString('utf8')) as T
  }

  async set (key: string, value: unknown, options?: SetOptions): Promise<void> {
    const ttl = options?.ttl ?? this.ttl ?? DEFAULT_VALUE_TTL
    checkSeconds('set() ttl', ttl)
    const json = JSON.stringify(value)
    if (json === undefined) throw new TypeError('set() value must be JSON-serializable, got ' + describe(value))
    await this.store(key, '', {
      kind: ENTRY_VALUE,
      status: 0,
      headers: {},
      body: Buffer.from(json, 'utf8'),
      storedAt: Date.now(),
      ttl,
      staleWhileRevalidate: 0,
      staleIfError: 0,
      tags: options?.tags ?? NO_TAGS,
      tagVersions: NO_TAGS
    })
  }

  async delete (key: string): Promise<void> {
    await this.invalidate({ key })
  }

  async has (key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined
  }

  /**
   * Returns the cached value for `key`, or runs `fn` once (concurrent callers share the run),
   * stores its result and returns it.
   */
  async wrap<T> (key: string, fn: () => T | Promise<T>, options?: SetOptions): Promise<T> {
    const cached = await this.get<T>(key)
    if (cached !== undefined) return cached
    const flightKey = '\u0001wrap\u0001' + key
    const pending = this.flights.pending(flightKey)
    if (pending !== undefined) {
      const shared = await pending
      if (shared !== undefined) return JSON.parse(shared.body.toString('utf8')) as T
    }
    const leads = this.flights.lead(flightKey)
    let sharedEntry: CacheEntry | undefined
    const epoch = this.epoch
    try {
      const value = await fn()
      if (value !== undefined && epoch === this.epoch) await this.set(key, value, options)
      const json = JSON.stringify(value)
      if (json !== undefined) sharedEntry = { kind: ENTRY_VALUE, body: Buffer.from(json) } as CacheEntry
      return value
    } finally {
      if (leads) this.flights.settle(flightKey, sharedEntry)
    }
  }
}

interface ParsedTarget { keys?: string[], pattern?: string, tags?: string[] }

function parseTarget (target: InvalidationTarget): ParsedTarget {
  if (isText(target)) return { keys: [target] }
  if (target !== null && typeof target === 'object') {
    if ('key' in target) {
      const keys = Array.isArray(target.key) ? target.key : [target.key]
      if (keys.every(isText)) return { keys }
    } else if ('keys' in target && Array.isArray(target.keys) && target.keys.every(isText)) {
      return { keys: target.keys }
    } else if ('pattern' in target && isText(target.pattern)) {
      return { pattern: target.pattern }
    } else if ('tags' in target) {
      const tags = Array.isArray(target.tags) ? target.tags : [target.tags]
      if (tags.every(isText)) return { tags }
    }
  }
  throw new InvalidTargetError('expected a key string, { key }, { keys }, { pattern } or { tags }, got ' + describe(target))
}

function isText (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0
}
