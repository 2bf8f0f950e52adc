// Real faults against a real memcached: down at start-up, SIGKILL and SIGSTOP
// mid-traffic, log once per incident, and nothing left behind after app.close().
import t from 'tap'
import { MemcachedCache } from '../lib/index'
import { startMemcached } from './helpers/servers'
import { FAULT_OPTIONS, pause, runFaultSuite } from './helpers/fault-suite'
import { liveHandles, sleep, waitFor } from './helpers/fault-kit'

runFaultSuite(t, 'memcached', {
  start: startMemcached,
  makeCache: (server, keyPrefix) => new MemcachedCache({ servers: server.servers, keyPrefix, ...FAULT_OPTIONS })
})

t.test('memcached: regression: probes against a SIGSTOPped server do not pile up half-open sockets', async (t) => {
  const server = await startMemcached()
  t.teardown(async () => {
    try { server.resume() } catch {}
    await server.stop()
  })
  if (!server.managed) return t.plan(0, 'fault injection needs a harness-managed server')
  const cache = new MemcachedCache({ servers: server.servers, keyPrefix: 'pile:', ...FAULT_OPTIONS })
  await cache.connect()
  t.teardown(() => cache.close())
  await cache.set('k', 1)
  const connected = liveHandles().sockets
  await pause(server)
  // memjs used to time out each command itself (at commandTimeout) and only end() the socket:
  // every probe left one more socket waiting for a FIN from the stopped server.
  let most = connected
  for (let i = 0; i < 15; i++) {
    t.equal(await cache.get('k'), undefined, `probe ${i} is a miss while stopped`)
    most = Math.max(most, liveHandles().sockets)
    await sleep(30)
  }
  t.ok(most <= connected + 1, `at most one socket more while stopped (${connected} connected, ${most} at most)`)
  server.resume()
  // After the cooldown the probe succeeds; reads then wait out the settling time (two cooldowns).
  const ms = await waitFor('the value once the server resumes', async () => await cache.get('k') === 1, 5 * FAULT_OPTIONS.circuitBreaker.cooldownMs)
  t.pass(`the same connection answers once the server resumes (${ms} ms)`)
})
