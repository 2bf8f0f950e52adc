import type { FastifyBaseLogger } from 'fastify'
import { ENTRY_VALUE, NO_TAGS, freshUntil, type CacheEntry } from '../entry'
import { InvalidOptionError, InvalidTargetError } from '../errors'
import { checkPattern } from '../cache-key'
import { ROUTE_DEFAULT_NAMES, checkRouteDefaults, type RouteDefaults } from '../route-defaults'
import { InvalidationLog } from '../invalidation-log'
import { optionNames } from '../option-spec'
import type { EdgeReport } from '../edge/forwarder'
import { cacheCounters, channels, trace, type CacheCounters, type CacheStats } from '../observe'
import { SingleFlight } from '../single-flight'
import {
  checkObject, checkPositiveInteger, checkSeconds, checkString, lowerCaseHeaders, rejectUnknown, describe
} from '../validate'

/**
 * Options every cache object accepts: its own settings, plus defaults for every route that uses
 * it (route options override them, they override the plugin's).
 */
export interface CacheOptions extends RouteDefaults<any> {
  /** Names the cache in logs, Cache-Status details, invalidation reports and stats. Default: kind, prefix and server. */
  name?: string
  /** Prepended to every stored key; users invalidate with unprefixed keys. Default '' (in-process), 'ember:' (remote). */
  keyPrefix?: string
  /** Largest body stored, in bytes; larger responses are served but not stored. Default 5 MiB. */
  maxEntryBytes?: number
}

export const CACHE_OPTION_NAMES: readonly string[] = optionNames('cache')

/** What to invalidate: a key (string), keys, a glob pattern, or tags. */
export type InvalidationTarget =
  | string
  | { key: string | string[], soft?: boolean }
  | { keys: string[], soft?: boolean }
  | { pattern: string, soft?: boolean }
  | { tags: string | string[], soft?: boolean }

/** What `fastify.emberCache.invalidate()` and `reply.cacheInvalidate()` did, per cache. */
export interface InvalidationReport {
  /** True when every cache did it. */
  ok: boolean
  /** Names of the caches that did it. */
  done: string[]
  /**
   * Caches whose backend failed. The invalidation is queued and retried, in order, before that
   * cache serves another hit.
   */
  queued: Array<{ cache: string, error: Error }>
  /** Caches that cannot do this kind of invalidation (a pattern on Memcached). */
  unsupported: Array<{ cache: string, error: Error }>
  /** With the plugin's `edge` option: what each edge in front did with it. */
  edges?: EdgeReport
}

export interface SetOptions {
  /** Seconds; defaults to the cache's ttl, then 60. 0 = never expires. */
  ttl?: number
  /** Tags stored with the value, for invalidate({ tags }): non-empty strings. */
  tags?: string[]
}

export interface WrapOptions extends SetOptions {
  /**
   * Milliseconds a call waits for a concurrent call's run of the function on the same key before
   * running its own (a run that never settles cannot hold the key for good). Default 5000.
   */
  wait?: number
}

/**
 * Cross-instance single-flight: before running the handler on a miss, an instance takes a short
 * lock per key and variant; the others poll for the entry it stores. Fail-open at every step.
 */
export interface FillLock {
  /** A token when this instance may run the handler; undefined when another instance holds the lock. */
  acquire: (key: string, variant: string) => Promise<string | undefined>
  /**
   * acquire() and a read of the entry at `variant` in one round trip (the read the lock holder
   * must make before it runs the handler: another instance may have stored and released since
   * its lookup). `found` is BYPASS when the backend failed.
   */
  acquireAndRead?: (key: string, variant: string) => Promise<{ token: string | undefined, found: LookupResult }>
  /** Releases a lock taken with `acquire` (only if it is still ours). Never throws. */
  release: (key: string, variant: string, token: string) => void
  /** True while some instance holds the lock. May reject (then run the handler). */
  isHeld: (key: string, variant: string) => Promise<boolean>
  /** Milliseconds a waiter polls for the holder's entry before running the handler itself. */
  readonly wait: number
  /** Milliseconds between two polls. */
  readonly poll: number
}

/** What a collapsed request receives from the one that ran the handler. */
export interface SharedAnswer {
  entry: CacheEntry
  /** The variant the entry was stored under. */
  variant: string
  /** The header (and 'cookie:' name) names that variant was extended with beyond the base, when known. */
  learned?: readonly string[]
}

/** What a shared backend hands a miss when it starts, to check when it stores (opaque). */
export type Fence = unknown

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
const DEFAULT_WRAP_WAIT_MS = 5_000
/** Every entry's ttl fits the envelope's 32 bits; backends may hold less (Memcached). */
export const MAX_UINT32_SECONDS = 0xffffffff
const DEFAULT_MAX_ENTRY_BYTES = 5 * 1024 * 1024
/** The longest close() waits for stores, lock releases and refreshes still running. */
const CLOSE_GRACE_MS = 2_000

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
 * Where a cache's entries live, and what it takes to keep them: in this process (LocalEntries)
 * or on a shared backend (SharedTier, over one driver). A cache object holds one; the public
 * API, lifecycle and invalidation bookkeeping stay in EmberCache. Not exported by the package.
 */
export interface CacheTier {
  /** True when entries live in this process: lookups answer synchronously. */
  readonly inProcess: boolean
  /** Set by shared backends that can collapse misses across instances (Redis). */
  readonly fillLock?: FillLock
  /** The longest an entry can be kept here, in seconds (ttl plus stale windows). */
  readonly maxRetentionSeconds: number
  /** Invalidations waiting for the backend (shared tiers). */
  readonly queuedInvalidations?: number
  /** Reads the entry for a key and variant. Never throws: a failing backend answers BYPASS. */
  lookup: (key: string, variant: string) => LookupResult | Promise<LookupResult>
  /** Stores an entry; with a miss's fence, only if nothing invalidated it since (false when not). Never throws. */
  store: (key: string, variant: string, entry: CacheEntry, fence?: Fence) => void | boolean | Promise<void | boolean>
  /** Starts a miss that may store under `key` with `tags` (shared tiers: a fence the store checks). */
  beginFill: (key: string, tags: readonly string[]) => Fence | Promise<Fence> | undefined
  /** Runs one invalidation (the cache has recorded it). Rejects when the backend did not take it. */
  apply: (target: ParsedTarget) => void | Promise<void>
  /** Refuses what this backend cannot do, before anything runs (or is queued). */
  checkSupported: (target: ParsedTarget) => void
  /** The entry object handed out for `key` and `variant` gained stored codings. */
  codingsAdded: (key: string, variant: string, entry: CacheEntry) => void
  /** The backend's clock now (ms): entry times are written on it. */
  serverNow: () => number
  /** Names the cache when the `name` option is not given; undefined: kind and prefix. */
  defaultName: () => string | undefined
  /** The tier's part of stats(). */
  stats: () => Partial<CacheStats>
  open: () => Promise<void>
  shutdown: () => Promise<void>
}

/** What a cache object's class gives EmberCache: where options are named in errors, and its tier. */
export interface CacheParts {
  /** The class name errors start with ('RedisCache'). */
  where: string
  /** Options this kind accepts besides every cache's. */
  allowed: readonly string[]
  /** keyPrefix when none is given. */
  defaultPrefix: string
  /** Builds the tier, once the cache's own options are checked. */
  tier: (cache: EmberCache) => CacheTier
}

/**
 * A cache object: what routes store responses in and handlers invalidate. It holds the public
 * API, lifecycle and invalidation bookkeeping; its tier (in-process, or a shared backend's)
 * holds the entries.
 */
export abstract class EmberCache {
  /** 'static', 'memory', 'redis', 'memcached', or a custom store's name. */
  abstract readonly kind: string
  /** @internal Where the entries live. */
  readonly tier: CacheTier
  readonly keyPrefix: string
  readonly maxEntryBytes: number
  /** @internal Defaults for the routes using this cache (route options win). */
  readonly defaults: Readonly<RouteDefaults<any>>
  /**
   * Recent invalidations. A miss notes the log's position when it starts, and does not store
   * its result if an invalidation since then names its key, a tag of it, or a pattern matching
   * it: an invalidation must win over a slower, older response.
   * @internal
   */
  readonly invalidations = new InvalidationLog()
  /** @internal What happened to this cache object (stats()). */
  readonly counters: CacheCounters = cacheCounters()
  /** @internal Concurrent misses per key and variant, collapsed into one origin call. */
  readonly flights = new SingleFlight<SharedAnswer>()
  /** Concurrent wrap() calls per key, collapsed into one run of their function. */
  private readonly wrapFlights = new SingleFlight<CacheEntry>()
  /** @internal The logger of the app that connected the cache (silent until then). */
  log: FastifyBaseLogger = silentLogger
  private readonly givenName: string | undefined
  private users = 0
  /** Work that outlives its response (stores, fill-lock releases, refreshes): close() lets it finish. */
  private readonly background = new Set<Promise<unknown>>()
  /** @internal Set while the backend is open (or opening); undefined before the first use and after close(). */
  opening: Promise<void> | undefined

  /** @internal */
  constructor (options: CacheOptions | undefined, { where, allowed, defaultPrefix, tier }: CacheParts) {
    checkObject(where, options)
    const opts = options ?? {}
    rejectUnknown(where + '.', opts, new Set([...CACHE_OPTION_NAMES, ...allowed]))
    checkString(where + '.name', opts.name)
    checkString(where + '.keyPrefix', opts.keyPrefix)
    // A NUL ends a prefix in a backend's names: a prefix holding one could reach another cache's.
    if (opts.keyPrefix?.includes('\u0000') === true) throw new InvalidOptionError(where + '.keyPrefix', 'must not hold a NUL, got ' + describe(opts.keyPrefix))
    checkPositiveInteger(where + '.maxEntryBytes', opts.maxEntryBytes)
    checkRouteDefaults(where + '.', opts)
    this.givenName = opts.name
    this.keyPrefix = opts.keyPrefix ?? defaultPrefix
    this.maxEntryBytes = opts.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES
    const defaults: RouteDefaults<any> = {}
    for (const name of ROUTE_DEFAULT_NAMES) {
      if (opts[name] !== undefined) (defaults as Record<string, unknown>)[name] = opts[name]
    }
    if (defaults.varyHeaders !== undefined) defaults.varyHeaders = lowerCaseHeaders(where + '.varyHeaders', defaults.varyHeaders)
    this.defaults = Object.freeze(defaults)
    this.tier = tier(this)
  }

  /** @internal True when entries live in this process: lookups answer synchronously. */
  get inProcess (): boolean {
    return this.tier.inProcess
  }

  /** @internal Set by shared backends that can collapse misses across instances (RedisCache). */
  get fillLock (): FillLock | undefined {
    return this.tier.fillLock
  }

  /** @internal Number of invalidations waiting for the backend. */
  get queuedInvalidations (): number {
    return this.tier.queuedInvalidations ?? 0
  }

  /** What this cache did and its state: its entry in `fastify.emberCache.stats().caches`. */
  stats (): CacheStats {
    return { name: this.name, kind: this.kind, ...this.counters, ...this.tier.stats() }
  }

  /** Names the cache in logs and reports: the `name` option, else kind, prefix and server. */
  get name (): string {
    return this.givenName ?? this.defaultName() + this.nameSuffix
  }

  /** ' #2', ' #3'... on an unnamed cache whose default name another cache of the app has. */
  private nameSuffix = ''

  /** @internal True when the `name` option was given. */
  get hasGivenName (): boolean {
    return this.givenName !== undefined
  }

  /** @internal Numbers an unnamed cache's default name (the plugin does, at ready, for caches that would share one). */
  numberName (n: number): void {
    this.nameSuffix = ' #' + String(n)
  }

  private defaultName (): string {
    return this.tier.defaultName() ?? (this.keyPrefix === '' ? this.kind : this.kind + ':' + this.keyPrefix)
  }

  /** Freshness in seconds for routes without their own; undefined when the cache sets none. */
  get ttl (): number | undefined {
    return typeof this.defaults.ttl === 'number' ? this.defaults.ttl : undefined
  }

  /**
   * Opens the backend for a user (the plugin calls this from `onReady` for every cache a route
   * uses). Counted: a cache shared by several routes or apps opens once and closes when its
   * last user closes it. Cache-aside calls open the cache by themselves, on first use.
   * @internal
   */
  async connect (log?: FastifyBaseLogger): Promise<void> {
    if (log !== undefined) this.log = log
    this.users++
    await this.ensureOpen()
  }

  /** Releases one user; the backend closes with the last (or at once when nobody connected). */
  async close (): Promise<void> {
    if (this.users > 0) {
      this.users--
      if (this.users > 0) return
    }
    if (this.opening === undefined) return
    await this.settleBackground()
    this.opening = undefined
    await this.tier.shutdown()
  }

  /**
   * Keeps `work` (a store, a lock release, a refresh that outlives its response) until it
   * settles, so that close() can wait for it: closing under it left fill locks behind and
   * entries half stored (found by test/faults-slow-and-close.test.ts).
   * @internal
   */
  track (work: Promise<unknown>): void {
    const settled: Promise<unknown> = work.then(() => { this.background.delete(settled) }, () => { this.background.delete(settled) })
    this.background.add(settled)
  }

  /** Waits for tracked work (and the work it starts) to settle, at most CLOSE_GRACE_MS. */
  private async settleBackground (): Promise<void> {
    const deadline = Date.now() + CLOSE_GRACE_MS
    while (this.background.size > 0 && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined
      const late = new Promise((resolve) => { timer = setTimeout(resolve, deadline - Date.now()) })
      await Promise.race([Promise.all(this.background), late])
      clearTimeout(timer)
    }
  }

  /** @internal Opens the backend once; the same promise for every caller until close(). */
  ensureOpen (): Promise<void> {
    this.opening ??= this.tier.open()
    return this.opening
  }

  /** @internal Reads the entry for a key and variant. Never throws: a failing backend answers BYPASS. */
  lookup (key: string, variant: string): LookupResult | Promise<LookupResult> {
    return this.tier.lookup(key, variant)
  }

  /**
   * Stores an entry. Never throws: a failing backend drops the write. With the `fence` of a
   * miss (beginFill), a shared backend stores only if no instance invalidated the key (or a tag
   * or pattern of it) since; false says it did not.
   * @internal
   */
  store (key: string, variant: string, entry: CacheEntry, fence?: Fence): void | boolean | Promise<void | boolean> {
    return this.tier.store(key, variant, entry, fence)
  }

  /**
   * Starts a miss that may store under `key` with `tags`: what the store later checks so that
   * an invalidation anywhere in the fleet wins the race (see store). Undefined for caches that
   * live in one process (their invalidation log is enough).
   * @internal
   */
  beginFill (key: string, tags: readonly string[]): Fence | Promise<Fence> | undefined {
    return this.tier.beginFill(key, tags)
  }

  /**
   * The entry object this cache handed out for `key` and `variant` gained stored codings (made
   * on its first hit that asked for one): a cache that keeps objects accounts for their bytes.
   * @internal
   */
  codingsAdded (key: string, variant: string, entry: CacheEntry): void {
    this.tier.codingsAdded(key, variant, entry)
  }

  /** @internal The backend's clock now (ms): entry times are written on it. In-process caches: ours. */
  serverNow (): number {
    return this.tier.serverNow()
  }

  /**
   * Invalidates by key (all variants), glob pattern, or tags. Rejects when the backend fails
   * (InvalidationFailedError; remote caches then retry it before they serve another hit), and
   * with PatternNotSupportedError for a pattern on a backend that has none.
   */
  async invalidate (target: InvalidationTarget): Promise<void> {
    const parsed = parseTarget(target)
    this.checkSupported(parsed)
    await this.ensureOpen()
    await this.traced(parsed)
  }

  /** Removes every entry of this cache (under its prefix); nothing else on the backend. */
  async clear (): Promise<void> {
    const target: ParsedTarget = { clear: true }
    this.checkSupported(target)
    await this.ensureOpen()
    await this.traced(target)
  }

  /** apply(), published on the ember-cache:invalidate channel when somebody listens. */
  private async traced (target: ParsedTarget): Promise<void> {
    if (!channels.invalidate.hasSubscribers) return await this.apply(target)
    const kind = target.keys !== undefined ? 'key' : target.pattern !== undefined ? 'pattern' : target.tags !== undefined ? 'tags' : 'clear'
    await trace(channels.invalidate, { cache: this.name, target: kind, soft: target.soft === true }, async () => await this.apply(target), () => 'done')
  }

  /** Runs one invalidation, recorded first, so that misses already running do not store. */
  private async apply (target: ParsedTarget): Promise<void> {
    this.invalidations.record(target)
    this.counters.invalidations++
    await this.tier.apply(target)
  }

  /** Refuses what this backend cannot do, before anything runs (or is queued). */
  private checkSupported (target: ParsedTarget): void {
    this.tier.checkSupported(target)
  }

  // Cache-aside API: JSON-compatible values, for work outside routes.

  async get<T = unknown> (key: string): Promise<T | undefined> {
    checkKey(key, 'get')
    await this.ensureOpen()
    const entry = await this.lookup(key, '')
    if (entry === undefined || entry === BYPASS || entry.kind !== ENTRY_VALUE) return undefined
    if (Date.now() >= freshUntil(entry)) return undefined
    return JSON.parse(entry.body.toString('utf8')) as T
  }

  /**
   * Stores a value. Like a route's store, it fails open: it resolves true when the value was
   * stored, false when the backend did not take it (down, or the value too large for it), and
   * rejects only for what the caller passed (a key, ttl, tags or value it cannot hold).
   */
  async set (key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    checkKey(key, 'set')
    const ttl = options?.ttl ?? this.ttl ?? DEFAULT_VALUE_TTL
    checkSeconds('set() ttl', ttl)
    this.checkRetention('set() ttl', ttl)
    const tags = options?.tags
    if (tags !== undefined && (!Array.isArray(tags) || !tags.every(isText))) {
      throw new InvalidTargetError('set() tags must be an array of non-empty strings without NUL, got ' + describe(tags))
    }
    const json = JSON.stringify(value)
    if (json === undefined) throw new TypeError('set() value must be JSON-serializable, got ' + describe(value))
    await this.ensureOpen()
    const stored = await this.store(key, '', {
      kind: ENTRY_VALUE,
      status: 0,
      headers: {},
      body: Buffer.from(json, 'utf8'),
      storedAt: Date.now(),
      ttl,
      initialAge: 0,
      flags: 0,
      staleWhileRevalidate: 0,
      staleIfError: 0,
      tags: tags ?? NO_TAGS,
      tagVersions: NO_TAGS
    })
    return stored !== false
  }

  /** @internal The longest an entry can be kept here, in seconds (retention: ttl plus its stale windows). */
  get maxRetentionSeconds (): number {
    return this.tier.maxRetentionSeconds
  }

  /** @internal Refuses a retention the backend cannot hold (a store of it would fail every time). */
  checkRetention (where: string, seconds: number): void {
    if (seconds > this.maxRetentionSeconds) {
      throw new InvalidOptionError(where, `${this.kind} caches hold entries at most ${this.maxRetentionSeconds} seconds, got ${seconds}`)
    }
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
  async wrap<T> (key: string, fn: () => T | Promise<T>, options?: WrapOptions): Promise<T> {
    checkKey(key, 'wrap')
    const wait = options?.wait ?? DEFAULT_WRAP_WAIT_MS
    if (!Number.isInteger(wait) || wait < 0) throw new TypeError('wrap() wait must be an integer number of milliseconds >= 0, got ' + describe(wait))
    const cached = await this.get<T>(key)
    if (cached !== undefined) return cached
    const flightKey = key
    // Bounded: a run that never settles (a hung promise) must not hold the key for good.
    const pending = this.wrapFlights.wait(flightKey, wait)
    if (pending !== undefined) {
      const shared = await pending
      if (shared !== undefined) return JSON.parse(shared.body.toString('utf8')) as T
    }
    const leads = this.wrapFlights.lead(flightKey)
    let sharedEntry: CacheEntry | undefined
    const mark = this.invalidations.mark()
    try {
      const value = await fn()
      if (value !== undefined && !this.invalidations.touches(mark, key, options?.tags ?? NO_TAGS)) await this.set(key, value, options)
      const json = JSON.stringify(value)
      if (json !== undefined) sharedEntry = { kind: ENTRY_VALUE, body: Buffer.from(json) } as CacheEntry
      return value
    } finally {
      if (leads) this.wrapFlights.settle(flightKey, sharedEntry)
    }
  }
}

/**
 * One invalidation, checked: exactly one of keys, pattern, tags, clear is set. `soft`: mark the
 * entries stale (served while one refresh runs) instead of removing them.
 */
export interface ParsedTarget { keys?: string[], pattern?: string, tags?: string[], clear?: true, soft?: true }

export function parseTarget (target: InvalidationTarget): ParsedTarget {
  if (isText(target)) return { keys: [target] }
  const parsed = parseHardTarget(target)
  const soft = (target as { soft?: unknown }).soft
  if (soft !== undefined && typeof soft !== 'boolean') throw new InvalidTargetError('soft must be a boolean, got ' + describe(soft))
  if (soft === true) parsed.soft = true
  return parsed
}

const TARGET_KINDS = ['key', 'keys', 'pattern', 'tags']

function parseHardTarget (target: InvalidationTarget): ParsedTarget {
  if (target !== null && typeof target === 'object' && !Array.isArray(target)) {
    // Exactly one kind of target and nothing unknown: `{ key, tags }` once ran only the key.
    const names = Object.keys(target)
    const kinds = names.filter((name) => TARGET_KINDS.includes(name))
    const unknown = names.filter((name) => name !== 'soft' && !TARGET_KINDS.includes(name))
    if (kinds.length > 1) throw new InvalidTargetError('give one of key, keys, pattern, tags per invalidation (call invalidate once for each), got ' + describe(target))
    if (unknown.length > 0) throw new InvalidTargetError('unknown field ' + unknown.join(', ') + '; expected one of key, keys, pattern, tags (and soft), got ' + describe(target))
    if ('key' in target) {
      const keys = Array.isArray(target.key) ? target.key : [target.key]
      if (keys.every(isText)) return { keys }
    } else if ('keys' in target && Array.isArray(target.keys) && target.keys.every(isText)) {
      return { keys: target.keys }
    } else if ('pattern' in target && isText(target.pattern)) {
      // Checked before anything is sent: a receiver that could not compile it would throw.
      const refused = checkPattern(target.pattern)
      if (refused !== undefined) throw new InvalidTargetError(refused + ', got ' + describe(target.pattern))
      return { pattern: target.pattern }
    } else if ('tags' in target) {
      const tags = Array.isArray(target.tags) ? target.tags : [target.tags]
      if (tags.every(isText)) return { tags }
    }
  }
  throw new InvalidTargetError('expected a key string, { key }, { keys }, { pattern } or { tags }, got ' + describe(target))
}

/** A key or tag: a non-empty string without NUL (NUL names what the cache keeps beside entries). */
function isText (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && !value.includes('\u0000')
}

/** Cache-aside keys are keys like any other: refused before anything is read or written. */
function checkKey (key: unknown, method: string): void {
  if (!isText(key)) throw new InvalidTargetError(method + '() expects a key: a non-empty string without NUL, got ' + describe(key))
}
