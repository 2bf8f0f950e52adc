import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { ParsedTarget } from './cache'
import { checkPattern } from '../cache-key'

// The coherence bus of a two-tier cache: every change one instance makes to the shared store
// (a store under a key, an invalidation, a clear) is announced on a Redis pub/sub channel, and
// every other instance drops what it names from its in-process tier (L1) at once. Messages
// carry keys, patterns and tags, never bodies. Losing the bus never means stale data for long:
// L1 keeps nothing longer than its ttl anyway, and is emptied when the bus comes back
// (messages may have been missed meanwhile).

/** What the bus asks of a connection it publishes on (a Redis client: the cache's own, or one of the bus's). */
export interface BusPublisher {
  connect: () => Promise<unknown>
  publish: (channel: string, message: string) => Promise<unknown>
  quit: () => Promise<unknown>
  disconnect: () => void
}

/** What the bus asks of its subscribed connection: subscribe, hear messages, and say when it is (re)connected. */
export interface BusSubscriber {
  readonly status: string
  connect: () => Promise<unknown>
  subscribe: (channel: string) => Promise<unknown>
  on: (event: 'message' | 'ready' | 'close' | 'error', listener: (...args: any[]) => void) => unknown
  quit: () => Promise<unknown>
  disconnect: () => void
}

/** One announcement: who sent it, when, and what changed. */
interface BusMessage {
  /** The sending instance (a process-local random id): an instance ignores its own messages. */
  i: string
  /** Sent at (epoch ms), so that receivers can tell how long it took. */
  a: number
  /** What changed: keys, a pattern, tags, or everything. */
  k?: string[]
  p?: string
  g?: string[]
  c?: true
  /** The keys were stored anew (not invalidated). */
  s?: true
}

export interface BusHandlers {
  /** Another instance changed these entries (`stored`: stored anew, else invalidated). `delayMs` is how long the message took. */
  changed: (target: ParsedTarget, delayMs: number, stored: boolean) => void
  /** The subscription was lost and is back: messages may have been missed (also: applying one failed). */
  resubscribed: () => void
  /** A message that is not one of ours arrived (dropped). */
  rejected: () => void
}

/** A message longer than this is not one of ours (keys of one turn of the event loop fit many times over). */
const MAX_MESSAGE_BYTES = 1024 * 1024
const MAX_NAMES = 10_000

export class CoherenceBus {
  readonly instanceId = randomBytes(8).toString('base64url')
  private subscribed = false
  private lostSince = 0
  /** Keys stored during this turn of the event loop, announced together in one message. */
  private storedKeys: Set<string> | undefined

  constructor (
    private readonly publisher: BusPublisher,
    /**
     * A connection of its own (a subscribed connection cannot run other commands); none for an
     * instance without an in-process tier, which only announces.
     */
    private readonly subscriber: BusSubscriber | undefined,
    readonly channel: string,
    private readonly handlers: BusHandlers,
    private readonly log: () => FastifyBaseLogger,
    /** The cache's name, for logs. */
    private readonly cacheName: () => string
  ) {
    if (subscriber === undefined) return
    subscriber.on('message', (channel: string, text: string) => {
      if (channel === this.channel) this.receive(text)
    })
    // ioredis resubscribes by itself after a reconnect; 'ready' then says we are listening again.
    subscriber.on('ready', () => {
      if (this.lostSince !== 0) {
        this.lostSince = 0
        this.handlers.resubscribed()
        this.log().info({ cache: this.cacheName(), channel: this.channel }, 'ember-cache: cache coherence bus back; in-process tier emptied')
      }
    })
    subscriber.on('close', () => {
      if (this.lostSince === 0 && this.subscribed) {
        this.lostSince = Date.now()
        this.log().warn({ cache: this.cacheName(), channel: this.channel }, 'ember-cache: cache coherence bus lost; in-process entries now live at most their l1 ttl')
      }
    })
    subscriber.on('error', () => {})
  }

  /** True while the subscription is live. */
  get healthy (): boolean {
    return this.subscribed && this.lostSince === 0
  }

  async open (): Promise<void> {
    if (this.subscriber === undefined) return
    const status = this.subscriber.status
    if (status === 'wait' || status === 'end') await this.subscriber.connect()
    await this.subscriber.subscribe(this.channel)
    this.subscribed = true
  }

  /**
   * Announces that entries were stored under `key`. Stores come with every miss: those of one
   * turn of the event loop go out as one message, so a busy instance sends one PUBLISH per turn,
   * not per miss.
   */
  announceStore (key: string): void {
    if (this.storedKeys === undefined) {
      this.storedKeys = new Set()
      setImmediate(() => {
        const keys = [...(this.storedKeys as Set<string>)]
        this.storedKeys = undefined
        this.announce({ keys }, true).catch(() => {})
      })
    }
    this.storedKeys.add(key)
  }

  /**
   * Announces a change; resolves once Redis has it (and so has pushed it to every subscriber).
   * Never rejects: a message that cannot be sent costs at most an L1 ttl.
   */
  announce (target: ParsedTarget, stored = false): Promise<void> {
    const message: BusMessage = { i: this.instanceId, a: Date.now() }
    if (stored) message.s = true
    if (target.keys !== undefined) message.k = target.keys
    else if (target.pattern !== undefined) message.p = target.pattern
    else if (target.tags !== undefined) message.g = target.tags
    else message.c = true
    return this.publisher.publish(this.channel, JSON.stringify(message)).then(() => {}, () => {})
  }

  /** Closes the subscription, and the publisher when the bus made it (not the cache's own client). */
  async close (closePublisher: boolean): Promise<void> {
    this.subscribed = false
    const clients = [this.subscriber, closePublisher ? this.publisher : undefined].filter((client) => client !== undefined)
    await Promise.all(clients.map(async (client) => {
      try {
        await client.quit()
      } catch {
        client.disconnect()
      }
    }))
  }

  private receive (text: string): void {
    // Anything that can publish on the server can reach this handler, inside ioredis's data
    // handler: a message that is not exactly ours is dropped (counted, logged once), and nothing
    // here may throw (one `PUBLISH <channel> null` took down every instance with an L1).
    let target: ParsedTarget | undefined
    let message: BusMessage | undefined
    try {
      message = parseMessage(text)
      target = message === undefined ? undefined : targetOf(message)
    } catch {
      target = undefined
    }
    if (message === undefined || target === undefined) {
      this.handlers.rejected()
      if (!this.warnedForeign) {
        this.warnedForeign = true
        this.log().warn({ cache: this.cacheName(), channel: this.channel, message: text.slice(0, 200) }, 'ember-cache: a message on the coherence bus is not one of ours; ignored (and counted in stats: busMessagesRejected)')
      }
      return
    }
    if (message.i === this.instanceId) return
    try {
      this.handlers.changed(target, Math.max(0, Date.now() - message.a), message.s === true)
    } catch (err) {
      this.log().error({ err, cache: this.cacheName() }, 'ember-cache: applying a coherence bus message failed; in-process tier emptied')
      this.handlers.resubscribed()
    }
  }

  private warnedForeign = false
}

function isNames (value: unknown): value is string[] {
  return Array.isArray(value) && value.length > 0 && value.length <= MAX_NAMES && value.every((name) => typeof name === 'string' && name.length > 0 && !name.includes('\u0000'))
}

/** The message, when it is exactly one of ours: an id, a time, and one target. */
function parseMessage (text: string): BusMessage | undefined {
  if (typeof text !== 'string' || text.length > MAX_MESSAGE_BYTES) return undefined
  const value: unknown = JSON.parse(text)
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined
  const message = value as Record<string, unknown>
  if (typeof message.i !== 'string' || typeof message.a !== 'number' || !Number.isFinite(message.a)) return undefined
  if (message.s !== undefined && message.s !== true) return undefined
  const parts = [message.k !== undefined, message.p !== undefined, message.g !== undefined, message.c !== undefined].filter(Boolean).length
  if (parts !== 1) return undefined
  if (message.k !== undefined && !isNames(message.k)) return undefined
  if (message.g !== undefined && !isNames(message.g)) return undefined
  if (message.c !== undefined && message.c !== true) return undefined
  if (message.p !== undefined && (typeof message.p !== 'string' || checkPattern(message.p) !== undefined)) return undefined
  return message as unknown as BusMessage
}

function targetOf (message: BusMessage): ParsedTarget {
  if (message.k !== undefined) return { keys: message.k }
  if (message.p !== undefined) return { pattern: message.p }
  if (message.g !== undefined) return { tags: message.g }
  return { clear: true }
}
