// The coherence bus alone, over an in-process pub/sub (any connection with publish and
// subscribe will do; Redis is tested in test/fleet*.test.ts).
import t from 'tap'
import { EventEmitter } from 'node:events'
import { CoherenceBus, type BusHandlers, type BusPublisher, type BusSubscriber } from '../../lib/caches/bus'
import type { ParsedTarget } from '../../lib/caches/cache'
import { capturingLogger } from '../helpers/logs'

/** Channels in this process: a connection publishes, subscribed ones hear it. */
class Hub {
  readonly subscribers = new Set<Connection>()
  connection (): Connection {
    return new Connection(this)
  }
}

class Connection extends EventEmitter implements BusPublisher, BusSubscriber {
  status = 'wait'
  private readonly channels = new Set<string>()
  constructor (private readonly hub: Hub) { super() }
  async connect (): Promise<void> { this.status = 'ready' }
  async subscribe (channel: string): Promise<void> { this.channels.add(channel); this.hub.subscribers.add(this) }
  async publish (channel: string, message: string): Promise<number> {
    for (const connection of this.hub.subscribers) if (connection.channels.has(channel)) connection.emit('message', channel, message)
    return this.hub.subscribers.size
  }

  async quit (): Promise<void> { this.hub.subscribers.delete(this); this.status = 'end' }
  disconnect (): void { this.hub.subscribers.delete(this) }
}

function listener (): { handlers: BusHandlers, changed: Array<{ target: ParsedTarget, stored: boolean }>, resubscribed: () => number, rejected: () => number } {
  const changed: Array<{ target: ParsedTarget, stored: boolean }> = []
  let resubscribed = 0
  let rejected = 0
  return {
    handlers: { changed: (target, _delay, stored) => { changed.push({ target, stored }) }, resubscribed: () => { resubscribed++ }, rejected: () => { rejected++ } },
    changed,
    resubscribed: () => resubscribed,
    rejected: () => rejected
  }
}

t.test('what one instance announces, the others hear; its own messages it ignores', async (t) => {
  const hub = new Hub()
  const { logger } = capturingLogger()
  const a = listener()
  const b = listener()
  const busA = new CoherenceBus(hub.connection(), hub.connection(), 'ember:#bus', a.handlers, () => logger, () => 'a')
  const busB = new CoherenceBus(hub.connection(), hub.connection(), 'ember:#bus', b.handlers, () => logger, () => 'b')
  await busA.open()
  await busB.open()
  t.ok(busA.healthy)
  await busA.announce({ tags: ['t'] })
  await busA.announce({ pattern: 'GET:/a*' })
  t.same(b.changed, [{ target: { tags: ['t'] }, stored: false }, { target: { pattern: 'GET:/a*' }, stored: false }])
  t.same(a.changed, [], 'not its own')
  busA.announceStore('GET:/x')
  busA.announceStore('GET:/y')
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(b.changed.at(-1), { target: { keys: ['GET:/x', 'GET:/y'] }, stored: true }, 'stores of one turn go out as one message')
  await busA.close(true)
  await busB.close(true)
})

t.test('a foreign message is dropped and counted, warned once; a lost subscription empties L1 when back', async (t) => {
  const hub = new Hub()
  const { logger, lines } = capturingLogger()
  const b = listener()
  const subscriber = hub.connection()
  const bus = new CoherenceBus(hub.connection(), subscriber, 'ember:#bus', b.handlers, () => logger, () => 'b')
  await bus.open()
  const stranger = hub.connection()
  for (const text of ['null', '{"i":"x","a":1}', '{"i":"x","a":1,"k":["a"],"c":true}', 'not json']) await stranger.publish('ember:#bus', text)
  t.equal(b.rejected(), 4)
  t.same(b.changed, [])
  t.equal(lines.filter((line) => line.level === 'warn').length, 1)
  subscriber.emit('close')
  t.notOk(bus.healthy)
  subscriber.emit('ready')
  t.equal(b.resubscribed(), 1, 'messages may have been missed: L1 is emptied')
  t.ok(bus.healthy)
  await bus.close(true)
})
