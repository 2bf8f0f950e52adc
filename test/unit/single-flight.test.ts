// Single-flight alone: one leader per key, waiters get its result, a leader that never settles
// cannot hold a key past the wait.
import t from 'tap'
import { SingleFlight } from '../../lib/single-flight'

t.test('the first caller leads; the others wait and get what it settles with', async (t) => {
  const flights = new SingleFlight<string>()
  t.equal(flights.wait('k', 1000), undefined, 'nothing to wait for before a leader')
  t.ok(flights.lead('k'))
  t.notOk(flights.lead('k'), 'one leader per key')
  t.ok(flights.lead('other'), 'keys are independent')
  const waiters = [flights.wait('k', 1000), flights.wait('k', 0), flights.pending('k')]
  flights.settle('k', 'answer')
  t.same(await Promise.all(waiters), ['answer', 'answer', 'answer'])
  t.equal(flights.size, 1, 'the settled flight left; the other stays')
  t.ok(flights.lead('k'), 'the next caller leads anew')
})

t.test('a leader that cannot share settles undefined: waiters run on their own', async (t) => {
  const flights = new SingleFlight<string>()
  flights.lead('k')
  const waiter = flights.wait('k', 1000)
  flights.settle('k', undefined)
  t.equal(await waiter, undefined)
  flights.settle('k', 'late')
  t.equal(flights.size, 0, 'settling a key nobody leads does nothing')
})

t.test('a leader that never settles holds waiters at most maxWaitMs, then the key is free', async (t) => {
  const flights = new SingleFlight<string>()
  flights.lead('k')
  const started = Date.now()
  t.equal(await flights.wait('k', 30), undefined)
  t.ok(Date.now() - started >= 25, 'it waited')
  t.ok(flights.lead('k'), 'the hung flight ended: the next request leads')
})
