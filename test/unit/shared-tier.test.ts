// The shared tier alone, over a small driver of our own (a Map that can be switched off): fail
// open, the breaker, the invalidation queue, L1, refusals. The drivers of Redis and Memcached
// are tested against real servers in test/backends-*.test.ts.
import t from 'tap'
import { MemoryCache, InvalidationFailedError } from '../../lib/index'
import { BYPASS, type EmberCache, type ParsedTarget } from '../../lib/caches/cache'
import { SharedTier } from '../../lib/caches/shared-tier'
import type { SharedDriver } from '../../lib/caches/shared-driver'
import { responseEntry } from '../helpers/entries'

/** Variants of one key in a Map; `down` makes every call reject, as a dead server does. */
class MapDriver implements SharedDriver {
  readonly items = new Map<string, Buffer>()
  down = false
  calls = 0
  readonly maxItemBytes = 10_000
  private check (): void {
    this.calls++
    if (this.down) throw new Error('ECONNREFUSED')
  }

  async readBytes (key: string, variant: string): Promise<Buffer | null> { this.check(); return this.items.get(key + '\0' + variant) ?? null }
  async writeBytes (key: string, variant: string, bytes: Buffer): Promise<boolean> { this.check(); this.items.set(key + '\0' + variant, bytes); return true }
  async connect (): Promise<void> { this.check() }
  async disconnect (): Promise<void> {}
  async removeKeys (keys: string[]): Promise<void> { this.check(); for (const id of [...this.items.keys()]) if (keys.includes(id.split('\0')[0])) this.items.delete(id) }
  async removePattern (): Promise<void> { this.check(); this.items.clear() }
  async removeTags (): Promise<void> { this.check(); this.items.clear() }
  async removeAll (): Promise<void> { this.check(); this.items.clear() }
}

/** A shared tier on a cache object of its own (the tier reads the cache's name, log and counters). */
function tier (options: { l1?: boolean } = {}): { tier: SharedTier, driver: MapDriver, cache: EmberCache } {
  const driver = new MapDriver()
  const cache = new MemoryCache({ name: 'shared-test' })
  const shared = new SharedTier(cache, 'Test', { circuitBreaker: { threshold: 2, cooldownMs: 50 }, ...options }, () => driver)
  return { tier: shared, driver, cache }
}

t.test('a hit is decoded once and answered from L1 after', async (t) => {
  const { tier: shared, driver } = tier({ l1: true })
  await shared.open()
  t.teardown(() => shared.shutdown())
  t.equal(await shared.store('GET:/a', '', responseEntry()), true)
  const first = await shared.lookup('GET:/a', '')
  t.ok(first !== undefined && first !== BYPASS)
  const calls = driver.calls
  t.equal(shared.lookup('GET:/a', ''), first, 'L1 answers synchronously with the same entry')
  t.equal(driver.calls, calls, 'without asking the backend')
})

t.test('a failing backend is a miss (BYPASS); the breaker then stops asking until the cooldown', async (t) => {
  const { tier: shared, driver, cache } = tier()
  await shared.open()
  t.teardown(() => shared.shutdown())
  driver.down = true
  t.equal(await shared.lookup('GET:/a', ''), BYPASS)
  t.equal(await shared.store('GET:/a', '', responseEntry()), false, 'a store fails open')
  t.equal(shared.breaker.stateName, 'open')
  const calls = driver.calls
  t.equal(shared.lookup('GET:/a', ''), BYPASS, 'open: answered at once')
  t.equal(driver.calls, calls, 'without a call')
  t.equal(cache.counters.backendErrors, 2)
})

t.test('an invalidation the backend refuses is queued; no hits until it ran', async (t) => {
  const { tier: shared, driver } = tier()
  await shared.open()
  t.teardown(() => shared.shutdown())
  await shared.store('GET:/a', '', responseEntry())
  driver.down = true
  const target: ParsedTarget = { keys: ['GET:/a'] }
  await t.rejects(Promise.resolve(shared.apply(target)), InvalidationFailedError)
  t.equal(shared.queuedInvalidations, 1)
  driver.down = false
  t.equal(shared.lookup('GET:/a', ''), BYPASS, 'no hit while it is queued (the lookup starts the replay)')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(shared.queuedInvalidations, 0)
  t.equal(driver.items.size, 0, 'the replay removed the entry')
})

t.test('an entry over the backend\'s item size is refused without blaming the backend', async (t) => {
  const { tier: shared, cache } = tier()
  await shared.open()
  t.teardown(() => shared.shutdown())
  t.equal(await shared.store('GET:/big', '', responseEntry({ body: Buffer.alloc(20_000) })), false)
  t.equal(cache.counters.entriesRefused, 1)
  t.equal(shared.breaker.stateName, 'closed')
})
