import type { FastifyBaseLogger } from 'fastify'
import { describeBackendError } from '../observe'
import type { ParsedTarget } from './cache'

// Invalidations a shared backend did not take, oldest first, replayed in order. While any is
// queued the cache serves no hits and stores nothing: entries they remove must not be served
// after the backend is back. The queue lives in the process (an instance that dies with
// invalidations queued cannot replay them: callers that must be sure check the result).

/**
 * Invalidations kept while the backend is down. Past this, the queue becomes one clear() of the
 * cache's prefix: more than was asked, never less.
 */
export const MAX_QUEUED_INVALIDATIONS = 1000

/** What the queue needs of its cache. */
export interface QueueOwner {
  name: () => string
  log: () => FastifyBaseLogger
  /** Sends one invalidation to the backend. */
  run: (target: ParsedTarget) => Promise<void>
  /** Tells the fleet once it ran. */
  announce: (target: ParsedTarget) => void
  /** The error that tells why (see SharedDriver.failureCause). */
  cause: (err: unknown) => unknown
  /** True while the cache is open: no retry is scheduled after it closed. */
  isOpen: () => boolean
  /** How long to wait before retrying, in ms (the breaker's cooldown). */
  retryMs: () => number
}

export class InvalidationQueue {
  private readonly queued: ParsedTarget[] = []
  private draining: Promise<boolean> | undefined
  private retryTimer: NodeJS.Timeout | undefined
  /** The last failure of the backend, for the error callers get and for logs. */
  lastFailure: unknown

  constructor (private readonly owner: QueueOwner) {}

  get size (): number {
    return this.queued.length
  }

  /** Queues a target the backend refused with `err` (the first of an incident is logged). */
  add (target: ParsedTarget, err: unknown): void {
    this.lastFailure = err
    if (this.queued.length === 0) {
      this.owner.log().warn({ cache: this.owner.name(), reason: describeBackendError(this.owner.cause(err)), err }, 'ember-cache: invalidation failed; queued, and this cache serves no hits until it runs')
    }
    if (this.queued.length >= MAX_QUEUED_INVALIDATIONS) {
      this.queued.length = 0
      target = { clear: true }
    }
    this.queued.push(target)
  }

  /** Runs the queued invalidations in order; true once none is left. One run at a time. */
  drain (): Promise<boolean> {
    this.draining ??= this.replay().finally(() => { this.draining = undefined })
    return this.draining
  }

  private async replay (): Promise<boolean> {
    while (this.queued.length > 0) {
      try {
        await this.owner.run(this.queued[0])
        this.owner.announce(this.queued[0])
      } catch (err) {
        this.lastFailure = err
        this.scheduleRetry()
        return false
      }
      this.queued.shift()
    }
    this.owner.log().info({ cache: this.owner.name() }, 'ember-cache: queued invalidations ran; cache serving hits again')
    return true
  }

  /** Retries after the cooldown, without waiting for a request to ask. */
  private scheduleRetry (): void {
    if (this.retryTimer !== undefined || !this.owner.isOpen()) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      if (this.queued.length > 0) this.drain().catch(() => {})
    }, this.owner.retryMs())
    this.retryTimer.unref()
  }

  /** The cache closes: no more retries; what is still queued is dropped, and said so. */
  close (): void {
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    if (this.queued.length > 0) {
      this.owner.log().warn({ cache: this.owner.name(), queued: this.queued.length }, 'ember-cache: cache closed with invalidations still queued; entries they name stay until they expire')
      this.queued.length = 0
    }
  }
}
