// The invalidation queue alone: order, the bound, retries, and what it says.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ParsedTarget } from '../../lib/caches/cache'
import { InvalidationQueue, MAX_QUEUED_INVALIDATIONS } from '../../lib/caches/invalidation-queue'
import { capturingLogger } from '../helpers/logs'

function queue (run: (target: ParsedTarget) => Promise<void>, retryMs = 20): { queue: InvalidationQueue, announced: ParsedTarget[], lines: ReturnType<typeof capturingLogger>['lines'] } {
  const { logger, lines } = capturingLogger()
  const announced: ParsedTarget[] = []
  const q = new InvalidationQueue({
    name: () => 'redis:test',
    log: () => logger,
    run,
    announce: (target) => { announced.push(target) },
    cause: (err) => err,
    isOpen: () => true,
    retryMs: () => retryMs
  })
  return { queue: q, announced, lines }
}

t.test('replays in order once the backend takes them; announces each; says so once', async (t) => {
  let up = false
  const ran: ParsedTarget[] = []
  const { queue: q, announced, lines } = queue(async (target) => {
    if (!up) throw new Error('ECONNREFUSED')
    ran.push(target)
  })
  q.add({ keys: ['a'] }, new Error('ECONNREFUSED'))
  q.add({ tags: ['t'] }, new Error('ECONNREFUSED'))
  t.equal(q.size, 2)
  t.equal(await q.drain(), false, 'still down')
  t.equal(q.size, 2, 'nothing lost')
  up = true
  t.equal(await q.drain(), true)
  t.same(ran, [{ keys: ['a'] }, { tags: ['t'] }], 'in the order asked')
  t.same(announced, ran, 'each announced to the fleet once it ran')
  t.same(lines.map((line) => line.level + ' ' + line.msg), [
    'warn ember-cache: invalidation failed; queued, and this cache serves no hits until it runs',
    'info ember-cache: queued invalidations ran; cache serving hits again'
  ], 'one warning for the incident, one line when it is over')
})

t.test('retries by itself after the cooldown, without a request asking', async (t) => {
  let attempts = 0
  const { queue: q } = queue(async () => {
    attempts++
    if (attempts < 3) throw new Error('down')
  })
  q.add({ keys: ['a'] }, new Error('down'))
  await q.drain()
  await sleep(100)
  t.equal(q.size, 0, 'emptied by the retries')
  t.equal(attempts, 3)
})

t.test('past its bound the queue becomes one clear: more than was asked, never less', async (t) => {
  const ran: ParsedTarget[] = []
  let up = false
  const { queue: q } = queue(async (target) => {
    if (!up) throw new Error('down')
    ran.push(target)
  })
  for (let i = 0; i <= MAX_QUEUED_INVALIDATIONS; i++) q.add({ keys: ['k' + i] }, new Error('down'))
  t.equal(q.size, 1)
  up = true
  await q.drain()
  t.same(ran, [{ clear: true }])
})

t.test('close drops what is queued, says so, and stops retrying', async (t) => {
  let attempts = 0
  const { queue: q, lines } = queue(async () => {
    attempts++
    throw new Error('down')
  }, 10)
  q.add({ keys: ['a'] }, new Error('down'))
  await q.drain()
  q.close()
  await sleep(50)
  t.equal(attempts, 1, 'no retry after close')
  t.equal(q.size, 0)
  t.match(lines.at(-1)?.msg, /closed with invalidations still queued/)
})
