// The shared backend suite on MemcachedCache over TWO real memcached servers (keys are
// spread across them), plus the Memcached specifics: pattern invalidation is refused,
// expiries over 30 days are absolute timestamps, and keys land on both servers.
import t from 'tap'
import memjs from 'memjs'
import { MemcachedCache } from '../lib/index'
import { memcachedCommand, startMemcached, type MemcachedServer } from './helpers/servers'
import { INJECT_VARIANT, buildApp, freshPrefix, runBackendSuite, xCache } from '../lib/test-suite'
import { entryKey, writeEntry } from './helpers/memcached-raw'
import { placeKey } from '../lib/caches/memcached-cache'

t.test('MemcachedCache on two servers', async (t) => {
  const first: MemcachedServer = await startMemcached()
  t.teardown(() => first.stop())
  // MEMCACHED_URL names the servers itself; otherwise spawn a second one.
  const second: MemcachedServer | undefined = first.managed ? await startMemcached() : undefined
  if (second !== undefined) t.teardown(() => second.stop())
  const servers = second === undefined ? first.servers : `${first.servers},${second.servers}`
  // Keys placed on the server the cache places them on (rendezvous hashing over the names).
  const raw = memjs.Client.create(servers, { retries: 1, timeout: 1, logger: { log: () => {} } })
  const names = servers.split(',')
  // memjs's types say a string; its code (and so this) returns the server's index.
  ;(raw as unknown as { getServer: (key: string) => number }).getServer = (key) => names.indexOf(placeKey(names, key))
  t.teardown(() => raw.close())
  const memcachedCache = (keyPrefix: string): MemcachedCache => new MemcachedCache({ servers, keyPrefix, commandTimeout: 2_000 })
  /** Meta get (`mg key [flags]`) on one `host:port`: HD when it holds the key. `version` ends the reply. */
  const metaGet = (server: string, storageKey: string, flags = ''): Promise<string> => {
    const [host, port] = server.split(':')
    return memcachedCommand({ host, port: Number(port) }, `mg ${storageKey}${flags}\r\nversion\r\n`)
  }

  runBackendSuite(t, 'memcached', async ({ keyPrefix }) => ({ cache: memcachedCache(keyPrefix), cleanup: async () => {} }), {
    shared: true,
    patterns: false,
    fillLock: false,
    writeRaw: async (keyPrefix, key, variant, bytes) => { await writeEntry(raw, keyPrefix, key, variant, bytes) },
    backendTtl: async (keyPrefix, key, variant) => {
      // The t flag: remaining seconds, -1 for no expiry.
      for (const server of servers.split(',')) {
        const reply = await metaGet(server, entryKey(keyPrefix, key, variant), ' t')
        const found = /^HD t(-?\d+)/m.exec(reply)
        if (found !== null) return Number(found[1])
      }
      return undefined
    }
  })

  t.test('memcached: regression: an entry given 1 s vanished at memcached\'s next clock tick, milliseconds later', async (t) => {
    const keyPrefix = freshPrefix('tick')
    const { app } = await buildApp(t, memcachedCache(keyPrefix))
    const held = async (i: number): Promise<boolean> => {
      for (const server of servers.split(',')) {
        if (/^HD/m.test(await metaGet(server, entryKey(keyPrefix, `GET:/ttl1?i=${i}`, INJECT_VARIANT)))) return true
      }
      return false
    }
    // Five 1 s entries stored 200 ms apart, each checked when 0.9 s old. Memcached's clock ticks
    // once a second, so a tick falls inside at least one entry's 0.9 s: with an expiry of 1 that
    // entry was gone; with one second more every entry lives past a second.
    const started = Date.now()
    const at = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, started + ms - Date.now())))
    for (let i = 0; i < 5; i++) {
      await at(i * 200)
      t.equal(xCache(await app.inject(`/ttl1?i=${i}`)), 'MISS')
    }
    for (let i = 0; i < 5; i++) {
      await at(i * 200 + 900)
      t.ok(await held(i), `entry ${i} still held at 0.9 s (checked at ${Date.now() - started - i * 200} ms of age)`)
    }
  })

  t.test('memcached: entries are spread over both servers', { skip: second === undefined && 'MEMCACHED_URL in use' }, async (t) => {
    if (second === undefined) return
    const keyPrefix = freshPrefix('spread')
    const { app } = await buildApp(t, memcachedCache(keyPrefix))
    for (let i = 1; i <= 40; i++) await app.inject(`/items/${i}`)
    for (let i = 1; i <= 40; i++) t.equal(xCache(await app.inject(`/items/${i}`)), 'HIT')
    // Each server is asked for each key: item counts also move when memcached reclaims expired
    // entries of earlier tests, and once counted 39 of these 40.
    const held = [0, 0]
    for (let i = 1; i <= 40; i++) {
      for (const [n, server] of [first, second].entries()) {
        if (/^HD/m.test(await metaGet(server.servers, entryKey(keyPrefix, `GET:/items/${i}`, INJECT_VARIANT)))) held[n]++
      }
    }
    t.ok(held[0] > 0 && held[1] > 0, `each server holds entries: ${held.join(' + ')}`)
    t.equal(held[0] + held[1], 40, 'each of the 40 entries is on one server')
  })
})
