import type { FastifyBaseLogger } from 'fastify'
import { parseTarget, type InvalidationTarget, type ParsedTarget } from '../caches/cache'
import { PatternNotSupportedError } from '../errors'
import { channels, type EdgePurgeContext } from '../observe'
import { EdgePurgeFailure, type EdgePurge, type EdgePurger } from './purgers'
import { edgeTag, keyTag } from './tag-header'

// Every invalidation the plugin runs is also sent to each configured edge: keys and tags as edge
// tags (a key by its hash tag), clear() as a purge of everything; a pattern has no equivalent at
// an edge that tags responses, and is reported as unsupported there. A purge that fails waits in
// its edge's queue, in order, and is retried with backoff (or when the edge's Retry-After says)
// until the edge confirms it: later purges queue behind it, so none overtakes another.

/** What the edges did with one invalidation (part of the invalidation report). */
export interface EdgeReport {
  /** Edges that confirmed the purge. */
  done: string[]
  /** Edges that did not (down, refused, too slow, or still behind an earlier failed purge): queued and retried. */
  queued: Array<{ edge: string, error: Error }>
  /** Edges that cannot do this kind of purge (a pattern). */
  unsupported: Array<{ edge: string, error: Error }>
}

/** One edge in `fastify.emberCache.stats().edges`. */
export interface EdgeStats {
  name: string
  /** Purges the edge confirmed (first try or retried). */
  purged: number
  /** Attempts that failed (each is retried). */
  failed: number
  /** Purges waiting for the edge now. */
  queued: number
}

/** Purges kept per edge while it is down; beyond it they collapse into one purge of everything (nothing is lost). */
const MAX_QUEUED = 10_000
const FIRST_BACKOFF_MS = 1_000
const MAX_BACKOFF_MS = 30_000

/** One edge: its purger, the purges it has not confirmed, and when it is tried again. */
class EdgeQueue {
  readonly stats: EdgeStats
  private readonly pending: EdgePurge[] = []
  private timer: NodeJS.Timeout | undefined = undefined
  private backoff = FIRST_BACKOFF_MS
  private draining = false
  /** Resolved when the queue empties: awaited by a write that waits for its purge. */
  private waiters: Array<() => void> = []

  constructor (private readonly purger: EdgePurger, private readonly log: FastifyBaseLogger) {
    this.stats = { name: purger.name, purged: 0, failed: 0, queued: 0 }
  }

  /** Sends a purge now, or queues it behind earlier ones; resolves with the error when it had to queue. */
  async submit (request: EdgePurge): Promise<Error | undefined> {
    if (this.pending.length > 0 || this.draining) {
      this.enqueue(request)
      return new EdgePurgeFailure(this.purger.name + ' is still retrying earlier purges; this one waits behind them')
    }
    try {
      await this.attempt(request)
      return undefined
    } catch (err) {
      this.enqueue(request)
      this.schedule((err as EdgePurgeFailure).retryAfterMs)
      return err as Error
    }
  }

  /** Resolves once nothing is queued (at once when nothing is). */
  async settled (): Promise<void> {
    if (this.pending.length === 0 && !this.draining) return
    await new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  close (): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private async attempt (request: EdgePurge): Promise<void> {
    const context: EdgePurgeContext = { edge: this.purger.name, all: 'all' in request, tags: 'tags' in request ? request.tags.length : 0, soft: request.soft, outcome: 'purged' }
    const run = async (): Promise<void> => {
      try {
        await this.purger.purge(request)
        this.stats.purged++
      } catch (err) {
        // Set before the channel's error and asyncEnd events, which subscribers read it in.
        context.outcome = 'failed'
        this.stats.failed++
        throw err
      }
    }
    if (channels.edgePurge.hasSubscribers) await channels.edgePurge.tracePromise(run, context)
    else await run()
  }

  private enqueue (request: EdgePurge): void {
    if (this.pending.length >= MAX_QUEUED) {
      // Too much to remember: one purge of everything covers them all.
      this.pending.length = 0
      this.pending.push({ all: true, soft: false })
      this.log.warn({ edge: this.purger.name }, 'ember-cache: too many purges waiting for this edge; it will be purged entirely when it is back')
    } else this.pending.push(request)
    this.stats.queued = this.pending.length
  }

  private schedule (retryAfterMs: number | undefined): void {
    if (this.timer !== undefined) return
    const delay = Math.min(MAX_BACKOFF_MS, Math.max(retryAfterMs ?? 0, this.backoff))
    this.timer = setTimeout(() => { this.timer = undefined; this.drain().catch(() => {}) }, delay)
    this.timer.unref()
  }

  private async drain (): Promise<void> {
    this.draining = true
    while (this.pending.length > 0) {
      try {
        await this.attempt(this.pending[0])
      } catch (err) {
        this.draining = false
        this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2)
        this.log.warn({ edge: this.purger.name, queued: this.pending.length, reason: (err as Error).message }, 'ember-cache: edge purge still failing; retrying')
        return this.schedule((err as EdgePurgeFailure).retryAfterMs)
      }
      this.pending.shift()
      this.stats.queued = this.pending.length
    }
    this.draining = false
    this.backoff = FIRST_BACKOFF_MS
    this.log.info({ edge: this.purger.name }, 'ember-cache: queued edge purges done')
    const waiters = this.waiters
    this.waiters = []
    for (const resolve of waiters) resolve()
  }
}

/** Stands for clear() where a target is expected (a string would be a key). */
export const CLEAR: unique symbol = Symbol('ember-cache clear')

/** The plugin's edges: forwards invalidations to every one of them. */
export class EdgeForwarder {
  private readonly queues: EdgeQueue[]

  constructor (purgers: readonly EdgePurger[], private readonly log: FastifyBaseLogger) {
    this.queues = purgers.map((purger) => new EdgeQueue(purger, log))
  }

  /**
   * Forwards invalidation targets (or clear) to every edge, as one purge per edge (a write's
   * targets together), and says what each did.
   */
  async forward (targets: InvalidationTarget | typeof CLEAR | Array<InvalidationTarget | typeof CLEAR>): Promise<EdgeReport> {
    const list = Array.isArray(targets) ? targets : [targets]
    const parsed: ParsedTarget[] = list.map((target) => target === CLEAR ? { clear: true } : parseTarget(target as InvalidationTarget))
    const report: EdgeReport = { done: [], queued: [], unsupported: [] }
    const request = edgePurgeOf(parsed)
    if (request === undefined) {
      for (const queue of this.queues) report.unsupported.push({ edge: queue.stats.name, error: new PatternNotSupportedError(queue.stats.name) })
      return report
    }
    const errors = await Promise.all(this.queues.map(async (queue) => await queue.submit(request)))
    errors.forEach((error, i) => {
      if (error === undefined) report.done.push(this.queues[i].stats.name)
      else report.queued.push({ edge: this.queues[i].stats.name, error })
    })
    if (report.queued.length > 0) this.log.warn({ edges: report.queued.map((item) => item.edge), reason: report.queued[0].error.message }, 'ember-cache: edge purge failed; queued and retried')
    return report
  }

  /** Resolves when every edge has confirmed what it was sent (queued purges included). */
  async settled (): Promise<void> {
    await Promise.all(this.queues.map(async (queue) => await queue.settled()))
  }

  stats (): EdgeStats[] {
    return this.queues.map((queue) => ({ ...queue.stats }))
  }

  close (): void {
    for (const queue of this.queues) queue.close()
  }
}

/**
 * The purge some invalidation targets mean at an edge: their keys (as key tags) and tags
 * together, or everything when one is clear(); undefined when one is a pattern. Soft only when
 * every target is.
 */
export function edgePurgeOf (targets: readonly ParsedTarget[]): EdgePurge | undefined {
  const soft = targets.every((target) => target.soft === true)
  if (targets.some((target) => target.pattern !== undefined)) return undefined
  if (targets.some((target) => target.clear === true)) return { all: true, soft }
  const tags = new Set<string>()
  for (const target of targets) {
    for (const key of target.keys ?? []) tags.add(keyTag(key))
    for (const tag of target.tags ?? []) tags.add(edgeTag(tag))
  }
  return { tags: [...tags], soft }
}
