import { ENTRY_RESPONSE, encodeEntry, retentionSeconds, softened, type CacheEntry } from '../entry'
import { BackendTimeoutError, CircuitOpenError, EntryRefusedError, InvalidOptionError, InvalidationFailedError } from '../errors'
import { checkObject, checkPositiveInteger, checkString, describe, rejectUnknown } from '../validate'
import { describeBackendError, percentile, type CacheStats } from '../observe'
import { CoherenceBus } from './bus'
import { loadIoredis } from './backend-modules'
import type { RedisClientLike, RedisOptionsLike } from './redis-client'
import { L1Tier } from './local-cache'
import { BYPASS, EmberCache, entryId, type CacheOptions, type Fence, type LookupResult, type ParsedTarget } from './cache'
import { CircuitBreaker, type CircuitBreakerOptions } from './circuit-breaker'
import { DecodedEntries } from './decoded-entries'
import { InvalidationLog } from '../invalidation-log'
import { nestedNames, optionNames } from '../option-spec'

/** The in-process tier in front of a shared store. */
export interface L1Options {
  /** Most entries kept (variants count one each). Default 10 000. */
  max?: number
  /** Most bytes kept (bodies plus headers, approximately). Default 64 MiB. */
  maxSize?: number
  /**
   * Seconds an entry may stay in this process without news from the fleet; never past its own
   * freshness. Default 5 with a coherence bus, 1 without (at most 5 without one).
   */
  ttl?: number
}

/** The bus's connections; `own` when the bus made the publisher (and so closes it). */
export interface BusConnections { publisher: RedisClientLike, subscriber: RedisClientLike | undefined, own: boolean }

/** Where the coherence bus runs: a Redis server (for Memcached and custom stores). */
export interface BusOptions {
  /** `redis://host:port`; the bus makes its own two connections (publish, subscribe). */
  url?: string
  /** ioredis options of those connections. */
  redisOptions?: RedisOptionsLike
}

export interface RemoteCacheOptions extends CacheOptions {
  /**
   * An in-process tier (L1) in front of the shared store: a lookup reads it first, an L2 hit
   * fills it, a store writes both. `true` takes the defaults. Default: none.
   */
  l1?: boolean | L1Options
  /**
   * The coherence bus that keeps the L1 tiers of every instance in step: a RedisCache uses its
   * own server (`false` turns it off); Memcached and custom stores need `{ url }`.
   */
  bus?: false | BusOptions
  /** Milliseconds a read or write may take before the request goes on without cache. Default 200. */
  commandTimeout?: number
  /** Milliseconds `onReady` waits for the first connection; the app starts anyway after it. Default 2000. */
  connectTimeout?: number
  /** When to stop asking a failing backend. Default { threshold: 3, cooldownMs: 1000 }. */
  circuitBreaker?: CircuitBreakerOptions
}

export const REMOTE_OPTION_NAMES = optionNames('remote')
const DEFAULT_L1_MAX = 10_000
const DEFAULT_L1_MAX_SIZE = 64 * 1024 * 1024
const DEFAULT_L1_TTL = 5
const DEFAULT_L1_TTL_WITHOUT_BUS = 1
/** Without a bus, an instance hears nothing from the fleet: L1 may only keep entries briefly. */
const MAX_L1_TTL_WITHOUT_BUS = 5
const BUS_DELAY_SAMPLES = 1000
/** How often the backend's clock is measured against ours. */
const CLOCK_CHECK_MS = 60_000
/** A clock further off the backend's than this is warned about. */
const SKEW_WARN_MS = 2_000
const DEFAULT_COMMAND_TIMEOUT = 200
const DEFAULT_CONNECT_TIMEOUT = 2000
/**
 * Invalidations kept while the backend is down. Past this, the queue becomes one clear() of the
 * cache's prefix: more than was asked, never less.
 */
const MAX_QUEUED_INVALIDATIONS = 1000

/**
 * A cache whose entries live in a server shared by every instance. Entries cross the wire as
 * the binary envelope; a backend that fails, hangs or is down answers BYPASS (a miss that is
 * not stored) instead of an error, and the circuit breaker keeps that fast.
 */
export abstract class RemoteCache extends EmberCache {
  /** @internal */
  readonly inProcess = false
  /** @internal */
  readonly commandTimeout: number
  /** @internal */
  readonly connectTimeout: number
  /** @internal */
  protected readonly breaker: CircuitBreaker
  /** The decoded form of recently read envelopes, reused while their bytes are unchanged. */
  private readonly decoded = new DecodedEntries()
  /** @internal The in-process tier, when configured. */
  protected readonly l1: L1Tier | undefined
  /**
   * Set for the synchronous start of an invalidation, whose first guarded() call then runs
   * even with the circuit open (see apply); guarded() clears it.
   */
  private forceNext = false
  /** Changes applied to L1 (own invalidations, bus messages): an L1 fill that raced one is dropped. */
  private readonly l1Changes = new InvalidationLog()
  /** The coherence bus, once open (when configured). */
  private bus: CoherenceBus | undefined
  /** @internal */
  protected readonly busOptions: false | BusOptions | undefined
  /** @internal How long the last bus messages took to arrive, in ms (newest last, at most 1000). */
  readonly busDelays: number[] = []
  /**
   * Invalidations the backend did not take, oldest first. While any is queued the cache serves
   * no hits and stores nothing: entries they remove must not be served after the backend is back.
   */
  private readonly queued: ParsedTarget[] = []
  private lastFailure: unknown
  private draining: Promise<boolean> | undefined
  private retryTimer: NodeJS.Timeout | undefined

  /** @internal */
  constructor (where: string, options: RemoteCacheOptions | undefined, allowed: readonly string[]) {
    super(where, options, [...REMOTE_OPTION_NAMES, ...allowed], 'ember:')
    checkPositiveInteger(where + '.commandTimeout', options?.commandTimeout)
    checkPositiveInteger(where + '.connectTimeout', options?.connectTimeout)
    checkObject(where + '.circuitBreaker', options?.circuitBreaker)
    checkPositiveInteger(where + '.circuitBreaker.threshold', options?.circuitBreaker?.threshold)
    checkPositiveInteger(where + '.circuitBreaker.cooldownMs', options?.circuitBreaker?.cooldownMs)
    this.commandTimeout = options?.commandTimeout ?? DEFAULT_COMMAND_TIMEOUT
    this.connectTimeout = options?.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT
    this.breaker = new CircuitBreaker({ name: () => this.name, log: () => this.log, cause: (err) => this.failureCause(err) }, options?.circuitBreaker)
    this.busOptions = options?.bus
    if (options?.bus !== undefined && options.bus !== false) {
      checkObject(where + '.bus', options.bus)
      checkString(where + '.bus.url', options.bus.url)
      checkObject(where + '.bus.redisOptions', options.bus.redisOptions)
    }
    this.l1 = this.buildL1(where, options?.l1)
  }

  /** @internal Whether this kind of cache has a bus without being told where (RedisCache: its own server). */
  protected hasOwnBus (): boolean {
    return false
  }

  private buildL1 (where: string, l1: RemoteCacheOptions['l1']): L1Tier | undefined {
    if (l1 === undefined || l1 === false) return undefined
    if (l1 !== true) {
      checkObject(where + '.l1', l1)
      rejectUnknown(where + '.l1.', l1, nestedNames('l1'))
      checkPositiveInteger(where + '.l1.max', l1.max)
      checkPositiveInteger(where + '.l1.maxSize', l1.maxSize)
      if (l1.ttl !== undefined && (typeof l1.ttl !== 'number' || !(l1.ttl > 0))) {
        throw new InvalidOptionError(where + '.l1.ttl', 'expected a number of seconds > 0, got ' + describe(l1.ttl))
      }
    }
    const given = l1 === true ? {} : l1
    const withBus = this.busOptions !== false && (this.hasOwnBus() || this.busOptions?.url !== undefined)
    const ttl = given.ttl ?? (withBus ? DEFAULT_L1_TTL : DEFAULT_L1_TTL_WITHOUT_BUS)
    if (!withBus && ttl > MAX_L1_TTL_WITHOUT_BUS) {
      throw new InvalidOptionError(where + '.l1.ttl', `without a coherence bus an instance hears of no change the fleet makes, so L1 may keep entries at most ${MAX_L1_TTL_WITHOUT_BUS} s; got ${ttl} (give bus: { url } for longer)`)
    }
    return new L1Tier(where + '.l1', { max: given.max ?? DEFAULT_L1_MAX, maxSize: given.maxSize ?? DEFAULT_L1_MAX_SIZE, ttlMs: ttl * 1000 })
  }

  /**
   * The connections of the bus: RedisCache publishes on its own client and listens on a
   * duplicate; others connect to `bus.url`. Without `listen` (no L1 to keep in step) only a
   * publisher: the instance still tells the fleet what it invalidates.
   * @internal
   */
  protected busConnections (listen: boolean): BusConnections | undefined {
    const options = this.busOptions
    if (options === undefined || options === false || options.url === undefined) return undefined
    const lib = loadIoredis('the coherence bus')
    const make = (): RedisClientLike => {
      const client = new lib.Redis(options.url as string, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: this.commandTimeout, ...options.redisOptions })
      client.on('error', () => {})
      return client
    }
    return { publisher: make(), subscriber: listen ? make() : undefined, own: true }
  }

  /**
   * Starts a miss: the backend's own fence (beginBackendFill), the route tags it names, and when
   * it began on the backend's clock (for tags only its response will name: keptAfterTagCheck).
   * @internal
   */
  override beginFill (key: string, tags: readonly string[]): Promise<Fence> | undefined {
    const startedAt = this.serverNow()
    return this.beginBackendFill(key, tags).then((inner): RemoteFence => ({ inner, tags, startedAt }))
  }

  /** @internal The backend's part of a miss's fence (see EmberCache.beginFill). */
  protected async beginBackendFill (_key: string, _tags: readonly string[]): Promise<Fence> {
    return undefined
  }

  /** @internal The stored envelope for a key and variant, or null. May reject: the caller fails open. */
  protected abstract readBytes (key: string, variant: string): Promise<Buffer | null | undefined>
  /**
   * Stores an envelope for `retention` seconds (0 = no expiry); with a miss's fence, only when
   * nothing invalidated the entry since (false otherwise). May reject.
   * @internal
   */
  protected abstract writeBytes (key: string, variant: string, bytes: Buffer, retention: number, entry: CacheEntry, fence?: Fence): Promise<boolean>
  /** @internal */
  protected abstract connectBackend (): Promise<void>
  /** @internal */
  protected abstract disconnectBackend (): Promise<void>

  /**
   * Backends that check tags at read time say here whether an entry's tags are still valid, or
   * 'stale' when a tag was softly invalidated since (the entry is then served as stale).
   * @internal
   */
  protected tagsStillValid (_entry: CacheEntry): boolean | 'stale' | Promise<boolean | 'stale'> {
    return true
  }

  /** @internal Backends that check tags at read time give the tags' versions here (the fence's first), to store with the entry. */
  protected async currentTagVersions (_entry: CacheEntry, _fence?: Fence): Promise<string[]> {
    return []
  }

  /** @internal L1 first (answering synchronously), then the shared store. */
  lookup (key: string, variant: string): LookupResult | Promise<LookupResult> {
    if (this.queued.length > 0) {
      this.drain().catch(() => {})
      return BYPASS
    }
    // Just back from an incident: no hits until the fleet's queued invalidations have run.
    if (this.breaker.settling) return BYPASS
    if (this.l1 !== undefined) {
      const near = this.l1.lookup(key, variant)
      if (near !== undefined) return near
    }
    return this.lookupShared(key, variant)
  }

  private lookupShared (key: string, variant: string): LookupResult | Promise<LookupResult> {
    return this.readShared(key, variant, this.readBytes, undefined)
  }

  /**
   * Reads an entry from the shared store with `read` (readBytes, or a script that does more in
   * the same round trip), called on this cache with `key`, `variant` and `extra`: decoded, its
   * tags checked, kept in L1. BYPASS when the backend fails. (No closure per read: this is
   * every Redis hit's path.)
   * @internal
   */
  protected readShared<T> (key: string, variant: string, read: (this: this, key: string, variant: string, extra: T) => Promise<Buffer | null | undefined>, extra: T): LookupResult | Promise<LookupResult> {
    if (!this.breaker.allows()) return BYPASS
    const mark = this.l1Changes.mark()
    return this.decodeShared(key, variant, read.call(this, key, variant, extra), mark)
  }

  private async decodeShared (key: string, variant: string, read: Promise<Buffer | null | undefined>, mark: number): Promise<LookupResult> {
    try {
      let entry = this.decoded.decode(entryId(key, variant), await read, this.clockOffset)
      if (entry !== undefined && entry.tags.length > 0) {
        const verdict = await this.tagsStillValid(entry)
        if (verdict === false) entry = undefined
        else if (verdict === 'stale' && entry.kind === ENTRY_RESPONSE) entry = softened(entry)
      }
      this.breaker.succeeded()
      // The probe that found the backend back: its answer may be what the fleet has queued to remove.
      if (this.breaker.settling) return BYPASS
      if (entry !== undefined) this.fillL1(mark, key, variant, entry)
      return entry
    } catch (err) {
      this.failed(err)
      return BYPASS
    }
  }

  /** @internal The shared backend keeps identity bodies; the codings live with this process's copies (L1). */
  override codingsAdded (key: string, variant: string, entry: CacheEntry): void {
    this.l1?.codingsAdded(key, variant, entry)
  }

  /** @internal */
  async store (key: string, variant: string, entry: CacheEntry, fence?: Fence): Promise<boolean> {
    if (this.queued.length > 0 || !this.breaker.allows()) return false
    const mark = this.l1Changes.mark()
    try {
      // A copy: the entry given may be one that lookups hand out (decoded entries are shared).
      // Its time goes to the backend on the backend's clock, which every instance reads it by.
      const stamped = { ...entry, storedAt: entry.storedAt + this.clockOffset }
      const inner = (fence as RemoteFence | undefined)?.inner
      if (entry.tags.length > 0) stamped.tagVersions = await this.currentTagVersions(stamped, inner)
      const bytes = encodeEntry(stamped)
      if (bytes.length > this.maxItemBytes) throw new EntryRefusedError(`the entry is ${bytes.length} bytes, over the ${this.maxItemBytes} this backend holds`)
      // A response may ask for more than the backend holds (max-age=1e10): kept as long as it can be.
      let stored = await this.writeBytes(key, variant, bytes, Math.min(retentionSeconds(stamped), this.maxRetentionSeconds), stamped, inner)
      // Tags only the response named (Cache-Tag) were not fenced when the miss began: an
      // invalidation of one since then wins as route tags' do (the entry is withdrawn).
      if (stored && fence !== undefined && entry.tags.length > 0) stored = await this.keptAfterTagCheck(key, variant, stamped, fence)
      this.breaker.succeeded()
      if (stored && this.l1 !== undefined) {
        this.fillL1(mark, key, variant, entry)
        // Other instances' L1 may hold what this replaces.
        this.bus?.announceStore(key)
      }
      return stored
    } catch (err) {
      // One entry the backend will not hold (too large) is that entry's refusal, not a failing
      // backend: six such misses once opened the breaker, and every route answered BYPASS.
      if (err instanceof EntryRefusedError || this.refusesEntry(err)) {
        this.counters.entriesRefused++
        return false
      }
      this.failed(err)
      return false
    }
  }

  /** @internal The largest envelope the backend holds, in bytes (Memcached: its item size). */
  protected get maxItemBytes (): number {
    return Infinity
  }

  /** @internal Whether a backend error is about one entry (too large...), not the backend. */
  protected refusesEntry (_err: unknown): boolean {
    return false
  }

  /**
   * The tags of a stored entry that its miss's fence did not cover were not invalidated since
   * the miss began; if one was, the entry is withdrawn and false returned.
   */
  private async keptAfterTagCheck (key: string, variant: string, entry: CacheEntry, fence: Fence): Promise<boolean> {
    const { tags: fenced, startedAt: since } = fence as RemoteFence
    const late = this.fencesRouteTags ? entry.tags.filter((tag) => !fenced.includes(tag)) : entry.tags
    if (late.length === 0) return true
    if (!await this.tagsInvalidatedSince(late, since, (fence as RemoteFence).inner)) return true
    await this.withdraw(key, variant)
    return false
  }

  /** @internal Whether the backend's fence covers the route tags named when the miss began (versions read then); else all are checked at store. */
  protected get fencesRouteTags (): boolean {
    return true
  }

  /**
   * Whether any of `tags` was invalidated after the miss began (`since`, on the backend's clock,
   * or the backend's own mark in its fence). Backends that cannot tell say no.
   * @internal
   */
  protected async tagsInvalidatedSince (_tags: readonly string[], _since: number, _inner: Fence): Promise<boolean> {
    return false
  }

  /** @internal Removes one variant just stored (its response-only tag was invalidated meanwhile). */
  protected async withdraw (_key: string, _variant: string): Promise<void> {}

  /**
   * The backend's clock minus ours, in ms: every time in an entry is written on the backend's
   * clock and read on ours, so that instances whose clocks differ agree on an entry's age (a
   * writer 30 s ahead once had its 5 s entries served fresh for 35 s). 0 until measured, and
   * while within what the measurement can tell.
   * @internal
   */
  protected clockOffset = 0
  /** @internal What two instances' views of one instant may differ by (the backend clock's resolution, and margin). */
  protected get clockMarginMs (): number {
    return 100
  }

  /** @internal The backend's clock now (ms), or undefined for a backend that has none to tell. */
  protected async serverTime (): Promise<number | undefined> {
    return undefined
  }

  /** @internal Our clock translated to the backend's (ms): what "now" is in times written to it. */
  override serverNow (): number {
    return Date.now() + this.clockOffset
  }

  private clockTimer: NodeJS.Timeout | undefined
  private warnedSkew = false

  /** Measures the backend's clock against ours (at open, then every CLOCK_CHECK_MS). */
  private async measureClock (): Promise<void> {
    const before = Date.now()
    const server = await this.serverTime()
    const after = Date.now()
    if (server === undefined) return
    const offset = server - (before + after) / 2
    const error = (after - before) / 2 + this.clockMarginMs
    this.clockOffset = Math.abs(offset) > error ? Math.round(offset) : 0
    const skewed = Math.abs(offset) > SKEW_WARN_MS
    if (skewed && !this.warnedSkew) {
      this.log.warn({ cache: this.name, offsetMs: Math.round(offset) }, `ember-cache: this process's clock is ${Math.round(Math.abs(offset) / 1000)} s ${offset > 0 ? 'behind' : 'ahead of'} the cache backend's; entry ages are counted on the backend's clock, but check NTP: other instances' may be off too`)
    }
    this.warnedSkew = skewed
  }

  /**
   * Drops a change from L1 and remembers an invalidation, for fills that were under way
   * (fillL1). Another instance's store is not remembered: what a racing read got is then an
   * older entry nobody invalidated, still fair to keep, and every L2 hit around a busy key's
   * store would otherwise skip L1.
   */
  private dropFromL1 (target: ParsedTarget, stored = false): void {
    if (this.l1 === undefined) return
    if (!stored) this.l1Changes.record(target)
    this.l1.drop(target)
  }

  /**
   * Puts what the shared store answered (or took) into L1, unless a change to the key reached
   * this process meanwhile: the store's reply and the bus message come on different connections,
   * in either order, and an entry put into L1 after its invalidation was applied would be served
   * until l1.ttl (found by test/soak.test.ts: reads 2 s after a write got the old data).
   */
  private fillL1 (mark: number, key: string, variant: string, entry: CacheEntry): void {
    if (this.l1 === undefined || this.l1Changes.touches(mark, key, entry.tags)) return
    this.l1.store(key, variant, entry)
  }

  /**
   * Runs an invalidation (whatever the circuit says), or queues it when the backend fails;
   * the queue runs in order. Rejects with InvalidationFailedError while it stays queued.
   * @internal
   */
  protected override async apply (target: ParsedTarget): Promise<void> {
    this.invalidations.record(target)
    this.counters.invalidations++
    this.dropFromL1(target)
    // Tried even with the circuit open or others queued (removals commute, so order does not
    // matter): a Cluster with one master down still takes invalidations of the others' keys,
    // which other instances, whose circuit may never have opened, go on reading (found by
    // test/faults-under-load.test.ts); a frozen server runs it when it resumes.
    try {
      this.forceNext = true
      const running = this.runInvalidation(target)
      this.forceNext = false
      await running
      // The write that asked for it answers once the fleet's L1 tiers have been told: a read on
      // another instance right after the answer found its L1 still holding the old entry (one
      // stale read in 213,724 of a soak run).
      if (this.bus !== undefined) await withTimeout(this.bus.announce(target), this.commandTimeout, 'bus').catch(() => {})
      if (this.queued.length > 0) this.drain().catch(() => {})
      return
    } catch (err) {
      this.forceNext = false
      this.lastFailure = err
      this.counters.invalidationsFailed++
      this.enqueue(target)
    }
    if (await this.drain()) return
    throw new InvalidationFailedError(this.name, describeFailure(this.failureCause(this.lastFailure)))
  }

  /** @internal */
  override snapshot (): CacheStats {
    const stats: CacheStats = { ...super.snapshot(), breaker: this.breaker.stateName, queuedInvalidations: this.queued.length }
    if (this.l1 !== undefined) stats.l1 = { entries: this.l1.size, bytes: this.l1.bytesHeld() }
    if (this.l1 !== undefined) {
      stats.bus = { healthy: this.bus?.healthy ?? false, delayP50Ms: percentile(this.busDelays, 0.5), delayP99Ms: percentile(this.busDelays, 0.99) }
    }
    return stats
  }

  /** @internal Number of invalidations waiting for the backend. */
  get queuedInvalidations (): number {
    return this.queued.length
  }

  private enqueue (target: ParsedTarget): void {
    if (this.queued.length === 0) {
      this.log.warn({ cache: this.name, reason: describeBackendError(this.failureCause(this.lastFailure)), err: this.lastFailure }, 'ember-cache: invalidation failed; queued, and this cache serves no hits until it runs')
    }
    if (this.queued.length >= MAX_QUEUED_INVALIDATIONS) {
      this.queued.length = 0
      target = { clear: true }
    }
    this.queued.push(target)
  }

  /** Runs the queued invalidations in order; true once none is left. One run at a time. */
  private drain (): Promise<boolean> {
    this.draining ??= this.replay().finally(() => { this.draining = undefined })
    return this.draining
  }

  private async replay (): Promise<boolean> {
    while (this.queued.length > 0) {
      try {
        await this.runInvalidation(this.queued[0])
        this.bus?.announce(this.queued[0]).catch(() => {})
      } catch (err) {
        this.lastFailure = err
        this.scheduleRetry()
        return false
      }
      this.queued.shift()
    }
    this.log.info({ cache: this.name }, 'ember-cache: queued invalidations ran; cache serving hits again')
    return true
  }

  /**
   * The backend's connection is (re)established: run what is queued at once. Other instances
   * read the backend as soon as they reconnect too, and a backend that kept its data (AOF, a
   * replica) still holds what the queue removes: the sooner it runs, the shorter that window.
   * @internal
   */
  protected backendReady (): void {
    if (this.connectionLost) {
      this.connectionLost = false
      // Another instance may have queued invalidations while the backend was away, even if
      // this one was asked nothing meanwhile (a quiet instance once served a replaced entry
      // for 2 s after Redis came back from its AOF): settle before serving hits.
      this.breaker.cameBack()
    }
    if (this.queued.length > 0) this.drain().catch(() => {})
  }

  /** @internal The backend's connection closed while the cache was open. */
  protected backendLost (): void {
    if (this.opening !== undefined && !this.closing) this.connectionLost = true
  }

  private connectionLost = false
  private closing = false

  /** Retries the queue after the breaker's cooldown, without waiting for a request to ask. */
  private scheduleRetry (): void {
    if (this.retryTimer !== undefined || this.opening === undefined) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      if (this.queued.length > 0) this.drain().catch(() => {})
    }, this.breaker.cooldownMs)
    this.retryTimer.unref()
  }

  /** @internal A backend command failed: counted (error or timeout), and the breaker told. */
  protected failed (err: unknown): void {
    this.countFailure(err)
    this.breaker.failed(err)
  }

  private countFailure (err: unknown): void {
    if (err instanceof BackendTimeoutError || /timed out/i.test((err as Error)?.message ?? '')) this.counters.backendTimeouts++
    else if (!(err instanceof CircuitOpenError)) this.counters.backendErrors++
  }

  /** @internal Runs an invalidation command, failing fast while the circuit is open. */
  protected async guarded<T> (run: () => Promise<T>): Promise<T> {
    const forced = this.forceNext
    this.forceNext = false
    if (!forced && !this.breaker.allows()) throw new CircuitOpenError(this.kind)
    try {
      const result = await run()
      this.breaker.succeeded()
      return result
    } catch (err) {
      // A forced attempt during an incident does not push the probe back: writes would keep
      // the circuit from ever trying again.
      if (forced && this.breaker.isOpen) this.countFailure(err)
      else this.failed(err)
      throw err
    }
  }

  /** @internal The error that tells why a command failed: a client's own may name only its symptom. */
  protected failureCause (err: unknown): unknown {
    return err
  }

  /** @internal The same for a failed connect, which may look further (a probe of the address). */
  protected async connectFailureCause (err: unknown): Promise<unknown> {
    return this.failureCause(err)
  }

  /** @internal */
  protected override async open (): Promise<void> {
    try {
      await withTimeout(this.connectBackend(), this.connectTimeout, this.kind + ' connect')
    } catch (err) {
      // Fail open: the app starts and serves without cache; the client keeps reconnecting.
      // One warning for this incident: the breaker opens without another.
      this.counters.backendErrors++
      this.breaker.open()
      this.log.warn({ cache: this.name, reason: describeBackendError(await this.connectFailureCause(err)), err }, 'ember-cache: cache backend unreachable at start-up; serving without cache until it answers')
    }
    await this.measureClock().catch(() => {})
    this.clockTimer = setInterval(() => { this.measureClock().catch(() => {}) }, CLOCK_CHECK_MS)
    this.clockTimer.unref()
    // Every instance announces its invalidations, L1 or not: an instance (or a job) without an
    // L1 that said nothing left the others' L1 serving what it had invalidated (found by
    // test/soak.test.ts, one instance with L1 and one without: reads 2 s after a write were stale).
    await this.openBus()
  }

  private async openBus (): Promise<void> {
    const connections = this.busConnections(this.l1 !== undefined)
    if (connections === undefined) return
    this.bus = new CoherenceBus(connections.publisher, connections.subscriber, this.keyPrefix + '#bus', {
      changed: (target, delayMs, stored) => {
        this.counters.busMessages++
        this.dropFromL1(target, stored)
        if (this.busDelays.length >= BUS_DELAY_SAMPLES) this.busDelays.shift()
        this.busDelays.push(delayMs)
      },
      resubscribed: () => { this.dropFromL1({ clear: true }) },
      rejected: () => { this.counters.busMessagesRejected++ }
    }, () => this.log, () => this.name)
    this.ownsBusPublisher = connections.own
    try {
      if (connections.own) await withTimeout(connections.publisher.connect(), this.connectTimeout, 'bus connect')
      await withTimeout(this.bus.open(), this.connectTimeout, 'bus subscribe')
    } catch (err) {
      // Fail open: L1 still keeps entries at most its ttl; the connection keeps retrying.
      this.log.warn({ cache: this.name, reason: describeBackendError(this.failureCause(err)), err }, 'ember-cache: cache coherence bus unreachable at start-up; in-process entries live at most their l1 ttl')
    }
  }

  private ownsBusPublisher = false

  /** @internal */
  protected override async shutdown (): Promise<void> {
    this.closing = true
    clearInterval(this.clockTimer)
    this.clockTimer = undefined
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    if (this.queued.length > 0) {
      this.log.warn({ cache: this.name, queued: this.queued.length }, 'ember-cache: cache closed with invalidations still queued; entries they name stay until they expire')
      this.queued.length = 0
    }
    this.decoded.clear()
    this.l1?.drop({ clear: true })
    if (this.bus !== undefined) {
      const bus = this.bus
      this.bus = undefined
      await bus.close(this.ownsBusPublisher)
    }
    await this.disconnectBackend()
  }
}

/** A remote cache's fence for one miss. */
interface RemoteFence {
  /** The backend's own (RedisCache: the fence field's value; versioned: the versions seen). */
  inner: Fence
  /** The route tags the fence covers (named when the miss began). */
  tags: readonly string[]
  /** When the miss began, on the backend's clock (ms). */
  startedAt: number
}

/** Rejects with BackendTimeoutError when `promise` takes longer than `ms`. */
export function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new BackendTimeoutError(what, ms)), ms)
    promise.then((value) => {
      clearTimeout(timer)
      resolve(value)
    }, (err: unknown) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

function describeFailure (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
