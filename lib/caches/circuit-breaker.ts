import type { FastifyBaseLogger } from 'fastify'
import { describeBackendError } from '../observe'

// Stops paying a backend's timeout on every request while it is down. After `threshold`
// failures in a row the circuit opens: callers skip the backend for `cooldownMs`, then one
// probe goes through; its success closes the circuit, its failure opens it again.
// Each incident is logged twice: once when it opens, once when the backend is back.

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. Default 3. */
  threshold?: number
  /** Milliseconds the circuit stays open before one probe is let through. Default 1000. */
  cooldownMs?: number
}

/** What the breaker says of its cache in logs. */
export interface BreakerOwner {
  name: () => string
  log: () => FastifyBaseLogger
  /** The error that tells the reason: the backend client's own may hide its cause. */
  cause: (err: unknown) => unknown
}

const CLOSED = 0
const OPEN = 1
const PROBING = 2

export class CircuitBreaker {
  private state = CLOSED
  private failures = 0
  private retryAt = 0
  /** When the backend came back after the last incident; 0 once the settling time is over. */
  private recoveredAt = 0
  private readonly threshold: number
  readonly cooldownMs: number

  private readonly name: () => string
  private readonly log: () => FastifyBaseLogger
  private readonly cause: (err: unknown) => unknown

  constructor (owner: BreakerOwner, options: CircuitBreakerOptions = {}) {
    this.name = owner.name
    this.log = owner.log
    this.cause = owner.cause
    this.threshold = options.threshold ?? 3
    this.cooldownMs = options.cooldownMs ?? 1000
  }

  /** True when the backend may be asked now. In the open state, lets exactly one probe through. */
  allows (): boolean {
    if (this.state === CLOSED) return true
    if (this.state === OPEN && Date.now() >= this.retryAt) {
      this.state = PROBING
      return true
    }
    return false
  }

  get isOpen (): boolean {
    return this.state !== CLOSED
  }

  /** 'closed' (asking the backend), 'open' (not asking it) or 'probing' (one request is). */
  get stateName (): 'closed' | 'open' | 'probing' {
    return this.state === CLOSED ? 'closed' : this.state === OPEN ? 'open' : 'probing'
  }

  succeeded (): void {
    if (this.state !== CLOSED) {
      this.log().info({ cache: this.name() }, 'ember-cache: cache backend is back; caching resumed')
      this.recoveredAt = Date.now()
    }
    this.state = CLOSED
    this.failures = 0
  }

  failed (err: unknown): void {
    if (this.state === CLOSED) {
      this.failures++
      if (this.failures < this.threshold) return
      this.log().warn({ cache: this.name(), reason: describeBackendError(this.cause(err)), err }, 'ember-cache: cache backend failing; serving without cache until it recovers')
    }
    this.open()
  }

  /**
   * True for two cooldowns after the backend came back. Other instances of a fleet saw the same
   * incident and may hold invalidations they could not run; they retry one cooldown after their
   * last failure (at the latest when the backend came back), so until then an entry in the
   * backend may be one they have invalidated; the second cooldown is margin for their round
   * trip (found by test/faults-under-load.test.ts: reads right after a SIGCONT got data a write
   * had replaced).
   */
  get settling (): boolean {
    if (this.recoveredAt === 0) return false
    if (Date.now() - this.recoveredAt < 2 * this.cooldownMs) return true
    this.recoveredAt = 0
    return false
  }

  /**
   * The backend was away and is back, seen without a request failing (the connection closed and
   * reopened while this instance was quiet): settle as after an incident (see `settling`).
   */
  cameBack (): void {
    this.recoveredAt = Date.now()
  }

  /** Opens the circuit now (the caller has said why, once). */
  open (): void {
    this.state = OPEN
    this.failures = this.threshold
    this.retryAt = Date.now() + this.cooldownMs
  }
}
