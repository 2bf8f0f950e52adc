// The circuit breaker alone: when it opens, lets one probe through, closes, and settles.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { CircuitBreaker } from '../../lib/caches/circuit-breaker'
import { capturingLogger } from '../helpers/logs'

function breaker (options = { threshold: 3, cooldownMs: 40 }): { breaker: CircuitBreaker, lines: ReturnType<typeof capturingLogger>['lines'] } {
  const { logger, lines } = capturingLogger()
  return { breaker: new CircuitBreaker({ name: () => 'redis:test', log: () => logger, cause: (err) => err }, options), lines }
}

t.test('opens after threshold failures in a row, not before; a success in between resets the count', async (t) => {
  const { breaker: b, lines } = breaker()
  b.failed(new Error('one'))
  b.failed(new Error('two'))
  b.succeeded()
  b.failed(new Error('three'))
  b.failed(new Error('four'))
  t.equal(b.stateName, 'closed', 'two in a row after a success: still closed')
  t.ok(b.allows())
  b.failed(new Error('five'))
  t.equal(b.stateName, 'open')
  t.notOk(b.allows(), 'an open circuit refuses')
  t.same(lines.filter((line) => line.level === 'warn').map((line) => line.msg), ['ember-cache: cache backend failing; serving without cache until it recovers'], 'one warning for the incident')
})

t.test('after the cooldown exactly one probe goes through; its success closes, its failure reopens', async (t) => {
  const { breaker: b, lines } = breaker({ threshold: 1, cooldownMs: 30 })
  b.failed(new Error('down'))
  await sleep(40)
  t.ok(b.allows(), 'the probe')
  t.equal(b.stateName, 'probing')
  t.notOk(b.allows(), 'no second probe while one runs')
  b.failed(new Error('still down'))
  t.equal(b.stateName, 'open', 'a failed probe opens it again')
  t.notOk(b.allows(), 'for another cooldown')
  await sleep(40)
  t.ok(b.allows())
  b.succeeded()
  t.equal(b.stateName, 'closed')
  t.same(lines.filter((line) => line.level === 'info').map((line) => line.msg), ['ember-cache: cache backend is back; caching resumed'])
  t.equal(lines.filter((line) => line.level === 'warn').length, 1, 'the failed probe did not warn again')
})

t.test('settles for two cooldowns after the backend is back, or after cameBack()', async (t) => {
  const { breaker: b } = breaker({ threshold: 1, cooldownMs: 30 })
  t.notOk(b.settling, 'never failed: not settling')
  b.open()
  await sleep(35)
  t.ok(b.allows())
  b.succeeded()
  t.ok(b.settling, 'just back')
  await sleep(35)
  t.ok(b.settling, 'still within two cooldowns')
  await sleep(35)
  t.notOk(b.settling, 'settled')
  b.cameBack()
  t.ok(b.settling, 'a reconnect seen without a failure settles too')
  t.equal(b.stateName, 'closed', 'settling does not open the circuit')
})

t.test('defaults: threshold 3, cooldown 1000 ms', async (t) => {
  const b = new CircuitBreaker({ name: () => 'x', log: () => capturingLogger().logger, cause: (err) => err })
  t.equal(b.cooldownMs, 1000)
  b.failed(new Error('a'))
  b.failed(new Error('b'))
  t.equal(b.stateName, 'closed')
  b.failed(new Error('c'))
  t.equal(b.stateName, 'open')
})
