// How clients spell what the cache reads: quoted Cache-Control values, query names that decode
// alike, write targets a client percent-encoded. Each test pins a defect the reliability and
// security suite found, and failed on the code before its fix.
import t from 'tap'
import { MemoryCache } from '../lib/index'
import { countingApp, emberApp } from './helpers/apps'

t.test('a stray quote in Cache-Control hid the no-store after it: the response was stored (found by test/properties.test.ts)', async (t) => {
  const { app, calls } = await countingApp(t, (_request, reply, run) => {
    reply.header('cache-control', 'max-age=60, foo="x, no-store')
    return { run }
  }, { mode: 'memory', ttl: 'from-response' })
  await app.inject('/r')
  const second = await app.inject('/r')
  t.equal(second.json().run, 2, 'the handler ran again')
  t.equal(calls(), 2)
  t.not(second.headers['x-cache'], 'HIT')
})

t.test('a restrictive directive inside a quoted value counts as given: when in doubt, do not store (found by test/properties.test.ts)', async (t) => {
  for (const directive of ['no-store', 'private', 'no-cache']) {
    const { app, calls } = await countingApp(t, (_request, reply, run) => {
      reply.header('cache-control', `max-age=60, ext="a, ${directive}, b"`)
      return { run }
    }, { mode: 'memory', ttl: 'from-response' })
    await app.inject('/r')
    const second = await app.inject('/r')
    t.equal(calls(), 2, `${directive} in quotes: the second request ran the handler`)
    t.not(second.headers['x-cache'], 'HIT', `${directive} in quotes: no hit`)
  }
})

t.test('parameter names that decode alike were sorted apart: ?a=evil&%61=1 shared the key of ?%61=1&a=evil (found by test/safety-poisoning.test.ts)', async (t) => {
  const { app, calls } = await countingApp(t, (request) => ({ a: (request.query as { a: unknown }).a }))
  const attacker = await app.inject('/r?a=evil&%61=1')
  t.same(attacker.json().a, ['evil', '1'])
  const victim = await app.inject('/r?%61=1&a=evil')
  t.same(victim.json().a, ['1', 'evil'], 'the victim gets its own order of values')
  t.equal(victim.headers['x-cache'], 'MISS')
  t.equal(calls(), 2)
  // Names that are the same once decoded, in the same order, still share: that is the same request.
  const again = await app.inject('/r?%61=1&a=evil')
  t.equal(again.headers['x-cache'], 'HIT')
})

t.test('a + in a parameter name is a space: ?a+b=2&a%20b=1 and ?a%20b=1&a+b=2 are different requests', async (t) => {
  const { app, calls } = await countingApp(t, (request) => ({ v: (request.query as Record<string, unknown>)['a b'] }))
  const first = await app.inject('/r?a+b=2&a%20b=1')
  const second = await app.inject('/r?a%20b=1&a+b=2')
  t.same(first.json().v, ['2', '1'])
  t.same(second.json().v, ['1', '2'])
  t.equal(calls(), 2)
})

t.test('a write target filled from a param missed entries whose URL the client percent-encoded: /users/john%20doe/widgets stayed stale after the write (found by test/safety-abuse.test.ts)', async (t) => {
  const app = await emberApp(t)
  const cache = new MemoryCache()
  let version = 1
  app.get('/users/:userId/widgets', { config: { cache } }, async () => ({ version }))
  app.get('/teams', { config: { cache } }, async () => ({ version }))
  app.post('/users/:userId/widgets', { config: { cache: { cache, invalidate: ['GET:/users/{userId}/widgets*', 'GET:/teams?name={query.team}'] } } }, async () => {
    version++
    return { version }
  })
  await app.ready()
  const reads = ['/users/john%20doe/widgets', '/users/john doe/widgets'.replace(' ', '%20') + '?page=2', '/users/%2A/widgets', '/teams?name=red%20sox', '/teams?name=red+sox', '/teams?name=red%2Bsox']
  for (const url of reads) t.equal((await app.inject(url)).json().version, 1)
  await app.inject({ method: 'POST', url: '/users/john%20doe/widgets?team=red%20sox' })
  for (const url of reads.filter((url) => url.includes('john') || url.includes('red%20') || url.includes('red+'))) {
    t.equal((await app.inject(url)).json().version, 2, `${url} is fresh after the write`)
  }
  t.equal((await app.inject('/users/%2A/widgets')).headers['x-cache'], 'HIT', 'another user is kept')
  t.equal((await app.inject('/teams?name=red%2Bsox')).headers['x-cache'], 'HIT', 'team "red+sox" is another team, kept')
  await app.inject({ method: 'POST', url: '/users/*/widgets' })
  t.equal((await app.inject('/users/%2A/widgets')).json().version, 3, 'user * spelled %2A is fresh after a write to /users/*')
})
