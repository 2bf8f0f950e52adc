import type { FastifyBaseLogger } from 'fastify'
import { ENTRY_RESPONSE, encodeEntry, retentionSeconds, softened, type CacheEntry } from '../entry'
import { BackendTimeoutError, CircuitOpenError, EntryRefusedError, InvalidOptionError, InvalidationFailedError } from '../errors'
import { checkObject, checkPositiveInteger, checkString, describe, rejectUnknown } from '../validate'
import { describeBackendError, percentile, type CacheStats } from '../observe'
import { InvalidationLog } from '../invalidation-log'
import { nestedNames, optionNames, type OptionScope } from '../option-spec'
import { BackendClock } from './backend-clock'
import { CoherenceBus, type BusPublisher, type BusSubscriber } from './bus'
import { loadIoredis } from './backend-modules'
import type { RedisOptionsLike } from './redis-client'
import { L1Tier } from './local-entries'
import { BYPASS, MAX_UINT32_SECONDS, entryId, type CacheOptions, type CacheParts, type CacheTier, type EmberCache, type Fence, type FillLock, type LookupResult, type ParsedTarget } from './cache'
import { CircuitBreaker, type CircuitBreakerOptions } from './circuit-breaker'
import { DecodedEntries } from './decoded-entries'
import { InvalidationQueue } from './invalidation-queue'
import type { BusConnections, SharedContext, SharedDriver } from './shared-driver'

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

const DEFAULT_L1_MAX = 10_000
const DEFAULT_L1_MAX_SIZE = 64 * 1024 * 1024
const DEFAULT_L1_TTL = 5
const DEFAULT_L1_TTL_WITHOUT_BUS = 1
/** Without a bus, an instance hears nothing from the fleet: L1 may only keep entries briefly. */
const MAX_L1_TTL_WITHOUT_BUS = 5
const BUS_DELAY_SAMPLES = 1000
const DEFAULT_COMMAND_TIMEOUT = 200
const DEFAULT_CONNECT_TIMEOUT = 2000
const DEFAULT_CLOCK_MARGIN_MS = 100

/**
 * A cache's entries in a server shared by every instance, through one driver. Entries cross the
 * wire as the binary envelope; a backend that fails, hangs or is down answers BYPASS (a miss
 * that is not stored) instead of an error. It composes what every shared backend gets: the
 * circuit breaker, the invalidation queue, the in-process tier (L1) and the coherence bus that
 * keeps it in step, the decoded-entry memo and the backend's clock.
 */
export class SharedTier implements CacheTier, SharedContext {
  readonly inProcess = false
  readonly commandTimeout: number
  readonly connectTimeout: number
  readonly breaker: CircuitBreaker
  /** The backend. */
  readonly driver: SharedDriver
  /** The decoded form of recently read envelopes, reused while their bytes are unchanged. */
  private readonly decoded = new DecodedEntries()
  /** The in-process tier, when configured. */
  readonly l1: L1Tier | undefined
  /**
   * Set for the synchronous start of an invalidation, whose first guarded() call then runs
   * even with the circuit open (see apply); guarded() clears it.
   */
  private forceNext = false
  /** Changes applied to L1 (own invalidations, bus messages): an L1 fill that raced one is dropped. */
  private readonly l1Changes = new InvalidationLog()
  /** The coherence bus, once open (when configured). */
  private bus: CoherenceBus | undefined
  private ownsBusPublisher = false
  private readonly busOptions: false | BusOptions | undefined
  /** How long the last bus messages took to arrive, in ms (newest last, at most 1000). */
  readonly busDelays: number[] = []
  private readonly queue: InvalidationQueue
  private readonly clock: BackendClock
  private connectionLost = false
  private closing = false

  constructor (private readonly cache: EmberCache, where: string, given: RemoteCacheOptions | undefined, makeDriver: (shared: SharedContext) => SharedDriver) {
    const options = given ?? {}
    checkPositiveInteger(where + '.commandTimeout', options.commandTimeout)
    checkPositiveInteger(where + '.connectTimeout', options.connectTimeout)
    checkObject(where + '.circuitBreaker', options.circuitBreaker)
    checkPositiveInteger(where + '.circuitBreaker.threshold', options.circuitBreaker?.threshold)
    checkPositiveInteger(where + '.circuitBreaker.cooldownMs', options.circuitBreaker?.cooldownMs)
    this.commandTimeout = options.commandTimeout ?? DEFAULT_COMMAND_TIMEOUT
    this.connectTimeout = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT
    this.breaker = new CircuitBreaker({ name: () => this.name, log: () => this.log, cause: (err) => this.failureCause(err) }, options.circuitBreaker)
    this.busOptions = options.bus
    if (options.bus !== undefined && options.bus !== false) {
      checkObject(where + '.bus', options.bus)
      checkString(where + '.bus.url', options.bus.url)
      checkObject(where + '.bus.redisOptions', options.bus.redisOptions)
    }
    this.queue = new InvalidationQueue({
      name: () => this.name,
      log: () => this.log,
      run: async (target) => { await this.runInvalidation(target) },
      announce: (target) => { this.bus?.announce(target).catch(() => {}) },
      cause: (err) => this.failureCause(err),
      isOpen: () => this.cache.opening !== undefined,
      retryMs: () => this.breaker.cooldownMs
    })
    this.driver = makeDriver(this)
    this.clock = new BackendClock({
      serverTime: async () => await this.driver.serverTime?.(),
      marginMs: this.driver.clockMarginMs ?? DEFAULT_CLOCK_MARGIN_MS,
      name: () => this.name,
      log: () => this.log
    })
    this.l1 = this.buildL1(where, options.l1)
  }

  get name (): string {
    return this.cache.name
  }

  get log (): FastifyBaseLogger {
    return this.cache.log
  }

  get keyPrefix (): string {
    return this.cache.keyPrefix
  }

  get fillLock (): FillLock | undefined {
    return this.driver.fillLock
  }

  get maxRetentionSeconds (): number {
    return this.driver.maxRetentionSeconds ?? MAX_UINT32_SECONDS
  }

  track (work: Promise<unknown>): void {
    this.cache.track(work)
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
    const withBus = this.busOptions !== false && (this.driver.hasOwnBus === true || this.busOptions?.url !== undefined)
    const ttl = given.ttl ?? (withBus ? DEFAULT_L1_TTL : DEFAULT_L1_TTL_WITHOUT_BUS)
    if (!withBus && ttl > MAX_L1_TTL_WITHOUT_BUS) {
      throw new InvalidOptionError(where + '.l1.ttl', `without a coherence bus an instance hears of no change the fleet makes, so L1 may keep entries at most ${MAX_L1_TTL_WITHOUT_BUS} s; got ${ttl} (give bus: { url } for longer)`)
    }
    return new L1Tier(where + '.l1', { max: given.max ?? DEFAULT_L1_MAX, maxSize: given.maxSize ?? DEFAULT_L1_MAX_SIZE, ttlMs: ttl * 1000 })
  }

  /**
   * The connections of the bus: `bus.url` gives two of its own; else the backend's own (Redis
   * publishes on its client and listens on a duplicate). Without `listen` (no L1 to keep in
   * step) only a publisher: the instance still tells the fleet what it invalidates.
   */
  private busConnections (listen: boolean): BusConnections | undefined {
    const options = this.busOptions
    if (options === false) return undefined
    if (options?.url === undefined) return this.driver.ownBusConnections?.(listen)
    const lib = loadIoredis('the coherence bus')
    const make = (): BusPublisher & BusSubscriber => {
      const client: BusPublisher & BusSubscriber = new lib.Redis(options.url as string, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: this.commandTimeout, ...options.redisOptions })
      client.on('error', () => {})
      return client
    }
    return { publisher: make(), subscriber: listen ? make() : undefined, own: true }
  }

  /**
   * Starts a miss: the backend's own fence, the route tags it names, and when it began on the
   * backend's clock (for tags only its response will name: keptAfterTagCheck).
   */
  beginFill (key: string, tags: readonly string[]): Promise<Fence> | undefined {
    const startedAt = this.serverNow()
    const inner = this.driver.beginFill === undefined ? Promise.resolve(undefined) : this.driver.beginFill(key, tags)
    return inner.then((fence): RemoteFence => ({ inner: fence, tags, startedAt }))
  }

  /** L1 first (answering synchronously), then the shared store. */
  lookup (key: string, variant: string): LookupResult | Promise<LookupResult> {
    if (this.queue.size > 0) {
      this.queue.drain().catch(() => {})
      return BYPASS
    }
    // Just back from an incident: no hits until the fleet's queued invalidations have run.
    if (this.breaker.settling) return BYPASS
    if (this.l1 !== undefined) {
      const near = this.l1.lookup(key, variant)
      if (near !== undefined) return near
    }
    return this.readShared(key, variant, this.driver.readBytes, this.driver, undefined)
  }

  /**
   * Reads an entry from the shared store with `read` (readBytes, or a script that does more in
   * the same round trip), called on `owner` with `key`, `variant` and `extra`: decoded, its
   * tags checked, kept in L1. BYPASS when the backend fails. (No closure per read: this is
   * every Redis hit's path.)
   */
  readShared<O, T> (key: string, variant: string, read: (this: O, key: string, variant: string, extra: T) => Promise<Buffer | null | undefined>, owner: O, extra: T): LookupResult | Promise<LookupResult> {
    if (!this.breaker.allows()) return BYPASS
    const mark = this.l1Changes.mark()
    return this.decodeShared(key, variant, read.call(owner, key, variant, extra), mark)
  }

  private async decodeShared (key: string, variant: string, read: Promise<Buffer | null | undefined>, mark: number): Promise<LookupResult> {
    try {
      let entry = this.decoded.decode(entryId(key, variant), await read, this.clock.offset)
      if (entry !== undefined && entry.tags.length > 0 && this.driver.tagsStillValid !== undefined) {
        const verdict = await this.driver.tagsStillValid(entry)
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

  /** The shared backend keeps identity bodies; the codings live with this process's copies (L1). */
  codingsAdded (key: string, variant: string, entry: CacheEntry): void {
    this.l1?.codingsAdded(key, variant, entry)
  }

  async store (key: string, variant: string, entry: CacheEntry, fence?: Fence): Promise<boolean> {
    if (this.queue.size > 0 || !this.breaker.allows()) return false
    const mark = this.l1Changes.mark()
    try {
      // A copy: the entry given may be one that lookups hand out (decoded entries are shared).
      // Its time goes to the backend on the backend's clock, which every instance reads it by.
      const stamped = { ...entry, storedAt: entry.storedAt + this.clock.offset }
      const inner = (fence as RemoteFence | undefined)?.inner
      if (entry.tags.length > 0) stamped.tagVersions = this.driver.currentTagVersions === undefined ? [] : await this.driver.currentTagVersions(stamped, inner)
      const bytes = encodeEntry(stamped)
      const maxItemBytes = this.driver.maxItemBytes ?? Infinity
      if (bytes.length > maxItemBytes) throw new EntryRefusedError(`the entry is ${bytes.length} bytes, over the ${maxItemBytes} this backend holds`)
      // A response may ask for more than the backend holds (max-age=1e10): kept as long as it can be.
      let stored = await this.driver.writeBytes(key, variant, bytes, Math.min(retentionSeconds(stamped), this.maxRetentionSeconds), stamped, inner)
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
      if (err instanceof EntryRefusedError || this.driver.refusesEntry?.(err) === true) {
        this.cache.counters.entriesRefused++
        return false
      }
      this.failed(err)
      return false
    }
  }

  /**
   * The tags of a stored entry that its miss's fence did not cover were not invalidated since
   * the miss began; if one was, the entry is withdrawn and false returned.
   */
  private async keptAfterTagCheck (key: string, variant: string, entry: CacheEntry, fence: Fence): Promise<boolean> {
    const { tags: fenced, startedAt: since, inner } = fence as RemoteFence
    const late = this.driver.fencesRouteTags === false ? entry.tags : entry.tags.filter((tag) => !fenced.includes(tag))
    if (late.length === 0 || this.driver.tagsInvalidatedSince === undefined) return true
    if (!await this.driver.tagsInvalidatedSince(late, since, inner)) return true
    await this.driver.withdraw?.(key, variant)
    return false
  }

  /** Our clock translated to the backend's (ms): what "now" is in times written to it. */
  serverNow (): number {
    return this.clock.now()
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

  /** Sends one invalidation to the backend (soft, when the driver can mark entries stale). */
  private async runInvalidation (target: ParsedTarget): Promise<void> {
    if (target.soft === true && this.driver.markStale !== undefined) return await this.driver.markStale(target)
    if (target.keys !== undefined) await this.driver.removeKeys(target.keys)
    else if (target.pattern !== undefined) await this.driver.removePattern(target.pattern)
    else if (target.tags !== undefined) await this.driver.removeTags(target.tags)
    else await this.driver.removeAll()
  }

  checkSupported (target: ParsedTarget): void {
    this.driver.checkSupported?.(target)
  }

  defaultName (): string | undefined {
    return this.driver.defaultName?.()
  }

  /**
   * Runs an invalidation (whatever the circuit says), or queues it when the backend fails;
   * the queue runs in order. Rejects with InvalidationFailedError while it stays queued.
   */
  async apply (target: ParsedTarget): Promise<void> {
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
      if (this.queue.size > 0) this.queue.drain().catch(() => {})
      return
    } catch (err) {
      this.forceNext = false
      this.cache.counters.invalidationsFailed++
      this.queue.add(target, err)
    }
    if (await this.queue.drain()) return
    throw new InvalidationFailedError(this.name, describeFailure(this.failureCause(this.queue.lastFailure)))
  }

  stats (): Partial<CacheStats> {
    const stats: Partial<CacheStats> = { breaker: this.breaker.stateName, queuedInvalidations: this.queue.size }
    if (this.l1 !== undefined) {
      stats.l1 = { entries: this.l1.size, bytes: this.l1.bytesHeld() }
      stats.bus = { healthy: this.bus?.healthy ?? false, delayP50Ms: percentile(this.busDelays, 0.5), delayP99Ms: percentile(this.busDelays, 0.99) }
    }
    return stats
  }

  /** Number of invalidations waiting for the backend. */
  get queuedInvalidations (): number {
    return this.queue.size
  }

  /**
   * The backend's connection is (re)established: run what is queued at once. Other instances
   * read the backend as soon as they reconnect too, and a backend that kept its data (AOF, a
   * replica) still holds what the queue removes: the sooner it runs, the shorter that window.
   */
  backendReady (): void {
    if (this.connectionLost) {
      this.connectionLost = false
      // Another instance may have queued invalidations while the backend was away, even if
      // this one was asked nothing meanwhile (a quiet instance once served a replaced entry
      // for 2 s after Redis came back from its AOF): settle before serving hits.
      this.breaker.cameBack()
    }
    if (this.queue.size > 0) this.queue.drain().catch(() => {})
  }

  /** The backend's connection closed while the cache was open. */
  backendLost (): void {
    if (this.cache.opening !== undefined && !this.closing) this.connectionLost = true
  }

  /** A backend command failed: counted (error or timeout), and the breaker told. */
  failed (err: unknown): void {
    this.countFailure(err)
    this.breaker.failed(err)
  }

  private countFailure (err: unknown): void {
    if (err instanceof BackendTimeoutError || /timed out/i.test((err as Error)?.message ?? '')) this.cache.counters.backendTimeouts++
    else if (!(err instanceof CircuitOpenError)) this.cache.counters.backendErrors++
  }

  /** Runs an invalidation command, failing fast while the circuit is open. */
  async guarded<T> (run: () => Promise<T>): Promise<T> {
    const forced = this.forceNext
    this.forceNext = false
    if (!forced && !this.breaker.allows()) throw new CircuitOpenError(this.cache.kind)
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

  private failureCause (err: unknown): unknown {
    return this.driver.failureCause === undefined ? err : this.driver.failureCause(err)
  }

  async open (): Promise<void> {
    try {
      await withTimeout(this.driver.connect(), this.connectTimeout, this.cache.kind + ' connect')
    } catch (err) {
      // Fail open: the app starts and serves without cache; the client keeps reconnecting.
      // One warning for this incident: the breaker opens without another.
      this.cache.counters.backendErrors++
      this.breaker.open()
      const cause = this.driver.connectFailureCause === undefined ? this.failureCause(err) : await this.driver.connectFailureCause(err)
      this.log.warn({ cache: this.name, reason: describeBackendError(cause), err }, 'ember-cache: cache backend unreachable at start-up; serving without cache until it answers')
    }
    await this.clock.start()
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
        this.cache.counters.busMessages++
        this.dropFromL1(target, stored)
        if (this.busDelays.length >= BUS_DELAY_SAMPLES) this.busDelays.shift()
        this.busDelays.push(delayMs)
      },
      resubscribed: () => { this.dropFromL1({ clear: true }) },
      rejected: () => { this.cache.counters.busMessagesRejected++ }
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

  async shutdown (): Promise<void> {
    this.closing = true
    this.clock.stop()
    this.queue.close()
    this.decoded.clear()
    this.l1?.drop({ clear: true })
    if (this.bus !== undefined) {
      const bus = this.bus
      this.bus = undefined
      await bus.close(this.ownsBusPublisher)
    }
    await this.driver.disconnect()
  }
}

/** A shared tier's fence for one miss. */
interface RemoteFence {
  /** The backend's own (Redis: the fence field's value; versioned: the versions seen). */
  inner: Fence
  /** The route tags the fence covers (named when the miss began). */
  tags: readonly string[]
  /** When the miss began, on the backend's clock (ms). */
  startedAt: number
}

/**
 * A shared cache's parts (RedisCache, MemcachedCache, StoreCache): the options of every shared
 * cache and of its `kind`, the remote key prefix, and a shared tier over the driver `makeDriver` builds.
 */
export function sharedParts (where: string, kind: OptionScope, options: RemoteCacheOptions | undefined, makeDriver: (shared: SharedContext) => SharedDriver): CacheParts {
  return {
    where,
    allowed: [...optionNames('remote'), ...optionNames(kind)],
    defaultPrefix: 'ember:',
    tier: (cache) => new SharedTier(cache, where, options, makeDriver)
  }
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
