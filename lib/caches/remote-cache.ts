import { encodeEntry, retentionSeconds, type CacheEntry } from '../entry'
import { BackendTimeoutError, CircuitOpenError, InvalidationFailedError } from '../errors'
import { checkObject, checkPositiveInteger } from '../validate'
import { BYPASS, EmberCache, entryId, type CacheOptions, type LookupResult, type ParsedTarget } from './cache'
import { CircuitBreaker, type CircuitBreakerOptions } from './circuit-breaker'
import { DecodedEntries } from './decoded-entries'

export interface RemoteCacheOptions extends CacheOptions {
  /** Milliseconds a read or write may take before the request goes on without cache. Default 200. */
  commandTimeout?: number
  /** Milliseconds `onReady` waits for the first connection; the app starts anyway after it. Default 2000. */
  connectTimeout?: number
  /** When to stop asking a failing backend. Default { threshold: 3, cooldownMs: 1000 }. */
  circuitBreaker?: CircuitBreakerOptions
}

export const REMOTE_OPTION_NAMES = ['commandTimeout', 'connectTimeout', 'circuitBreaker']
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
  readonly inProcess = false
  readonly commandTimeout: number
  readonly connectTimeout: number
  protected readonly breaker: CircuitBreaker
  /** The decoded form of recently read envelopes, reused while their bytes are unchanged. */
  private readonly decoded = new DecodedEntries()
  /**
   * Invalidations the backend did not take, oldest first. While any is queued the cache serves
   * no hits and stores nothing: entries they remove must not be served after the backend is back.
   */
  private readonly queued: ParsedTarget[] = []
  private lastFailure: unknown
  private draining: Promise<boolean> | undefined
  private retryTimer: NodeJS.Timeout | undefined

  constructor (where: string, options: RemoteCacheOptions | undefined, allowed: readonly string[]) {
    super(where, options, [...REMOTE_OPTION_NAMES, ...allowed], 'ember:')
    checkPositiveInteger(where + '.commandTimeout', options?.commandTimeout)
    checkPositiveInteger(where + '.connectTimeout', options?.connectTimeout)
    checkObject(where + '.circuitBreaker', options?.circuitBreaker)
    checkPositiveInteger(where + '.circuitBreaker.threshold', options?.circuitBreaker?.threshold)
    checkPositiveInteger(where + '.circuitBreaker.cooldownMs', options?.circuitBreaker?.cooldownMs)
    this.commandTimeout = options?.commandTimeout ?? DEFAULT_COMMAND_TIMEOUT
    this.connectTimeout = options?.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT
    this.breaker = new CircuitBreaker(where, () => this.log, options?.circuitBreaker)
  }

  /** The stored envelope for a key and variant, or null. May reject: the caller fails open. */
  protected abstract readBytes (key: string, variant: string): Promise<Buffer | null | undefined>
  /** Stores an envelope for `retention` seconds (0 = no expiry). May reject. */
  protected abstract writeBytes (key: string, variant: string, bytes: Buffer, retention: number, entry: CacheEntry): Promise<void>
  protected abstract connectBackend (): Promise<void>
  protected abstract disconnectBackend (): Promise<void>

  /** Backends that check tags at read time say here whether an entry's tags are still valid. */
  protected tagsStillValid (_entry: CacheEntry): boolean | Promise<boolean> {
    return true
  }

  /** Backends that check tags at read time give the tags' current versions here, to store with the entry. */
  protected async currentTagVersions (_entry: CacheEntry): Promise<string[]> {
    return []
  }

  async lookup (key: string, variant: string): Promise<LookupResult> {
    if (this.queued.length > 0) {
      this.drain().catch(() => {})
      return BYPASS
    }
    if (!this.breaker.allows()) return BYPASS
    try {
      let entry = this.decoded.decode(entryId(key, variant), await this.readBytes(key, variant))
      if (entry !== undefined && entry.tags.length > 0 && !(await this.tagsStillValid(entry))) entry = undefined
      this.breaker.succeeded()
      return entry
    } catch (err) {
      this.breaker.failed(err)
      return BYPASS
    }
  }

  async store (key: string, variant: string, entry: CacheEntry): Promise<void> {
    if (this.queued.length > 0 || !this.breaker.allows()) return
    try {
      // A copy: the entry given may be one that lookups hand out (decoded entries are shared).
      const stamped = entry.tags.length > 0 ? { ...entry, tagVersions: await this.currentTagVersions(entry) } : entry
      await this.writeBytes(key, variant, encodeEntry(stamped), retentionSeconds(stamped), stamped)
      this.breaker.succeeded()
    } catch (err) {
      this.breaker.failed(err)
    }
  }

  /**
   * Runs an invalidation, or queues it when the backend fails (and behind any already queued,
   * so that they run in order). Rejects with InvalidationFailedError while it stays queued.
   */
  protected override async apply (target: ParsedTarget): Promise<void> {
    this.invalidations.record(target)
    if (this.queued.length === 0) {
      try {
        await this.runInvalidation(target)
        return
      } catch (err) {
        this.lastFailure = err
        this.enqueue(target)
      }
    } else {
      this.enqueue(target)
    }
    if (await this.drain()) return
    throw new InvalidationFailedError(this.name, describeFailure(this.lastFailure))
  }

  /** Number of invalidations waiting for the backend. */
  get queuedInvalidations (): number {
    return this.queued.length
  }

  private enqueue (target: ParsedTarget): void {
    if (this.queued.length === 0) {
      this.log.warn({ cache: this.name, err: this.lastFailure }, 'cache invalidation failed; queued, and no hits are served until it runs')
    }
    if (this.queued.length >= MAX_QUEUED_INVALIDATIONS && this.canClear()) {
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
      } catch (err) {
        this.lastFailure = err
        this.scheduleRetry()
        return false
      }
      this.queued.shift()
    }
    this.log.info({ cache: this.name }, 'queued invalidations ran; cache serving hits again')
    return true
  }

  /** Retries the queue after the breaker's cooldown, without waiting for a request to ask. */
  private scheduleRetry (): void {
    if (this.retryTimer !== undefined || this.opening === undefined) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      if (this.queued.length > 0) this.drain().catch(() => {})
    }, this.breaker.cooldownMs)
    this.retryTimer.unref()
  }

  /** Whether clear() can stand in for a long queue (it needs a prefix of its own on Redis). */
  protected canClear (): boolean {
    return true
  }

  /** Runs an invalidation command, failing fast while the circuit is open. */
  protected async guarded<T> (run: () => Promise<T>): Promise<T> {
    if (!this.breaker.allows()) throw new CircuitOpenError(this.kind)
    try {
      const result = await run()
      this.breaker.succeeded()
      return result
    } catch (err) {
      this.breaker.failed(err)
      throw err
    }
  }

  protected override async open (): Promise<void> {
    try {
      await withTimeout(this.connectBackend(), this.connectTimeout, this.kind + ' connect')
    } catch (err) {
      // Fail open: the app starts and serves without cache; the client keeps reconnecting.
      this.breaker.failed(err)
      this.log.warn({ cache: this.kind, err }, 'cache backend unreachable at start-up; serving without cache until it answers')
    }
  }

  protected override async shutdown (): Promise<void> {
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    if (this.queued.length > 0) {
      this.log.warn({ cache: this.name, queued: this.queued.length }, 'cache closed with invalidations still queued; entries they name stay until they expire')
      this.queued.length = 0
    }
    this.decoded.clear()
    await this.disconnectBackend()
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
