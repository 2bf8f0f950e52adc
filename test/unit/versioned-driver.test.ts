// The version scheme alone, over an in-memory VersionStore: invalidation moves versions on
// instead of deleting, soft moves leave the previous version readable as stale.
import t from 'tap'
import { MemoryCache } from '../../lib/index'
import { decodeEntry, encodeEntry } from '../../lib/entry'
import { FLAG_STALE } from '../../lib/http-freshness'
import { SharedTier } from '../../lib/caches/shared-tier'
import { VersionedDriver, type VersionStore } from '../../lib/caches/versioned-driver'
import { responseEntry } from '../helpers/entries'
import type { Scope } from '../helpers/apps'

class MapStore implements VersionStore {
  readonly items = new Map<string, Buffer>()
  async read (key: string): Promise<Buffer | null> { return this.items.get(key) ?? null }
  async write (key: string, value: Buffer): Promise<void> { this.items.set(key, value) }
  async writeIfAbsent (key: string, value: Buffer): Promise<void> { if (!this.items.has(key)) this.items.set(key, value) }
  async remove (key: string): Promise<void> { this.items.delete(key) }
  entryKey (key: string, variant: string): string { return 'e:' + key + '\0' + variant }
  versionKey (name: string): string { return 'v:' + name }
  async connect (): Promise<void> {}
  async disconnect (): Promise<void> {}
  async removePattern (): Promise<void> { throw new Error('no patterns') }
}

async function driver (t: Scope): Promise<{ driver: VersionedDriver, store: MapStore }> {
  const store = new MapStore()
  let made: VersionedDriver | undefined
  const tier = new SharedTier(new MemoryCache(), 'Test', {}, (shared) => (made = new VersionedDriver(shared, store)))
  await tier.open()
  t.teardown(() => tier.shutdown())
  return { driver: made as VersionedDriver, store }
}

const envelope = (tags: string[] = []): Buffer => encodeEntry(responseEntry({ tags }))

t.test('an entry is read back only under the versions it was stored with', async (t) => {
  const { driver: d, store } = await driver(t)
  t.equal(await d.readBytes('GET:/a', ''), null, 'nothing stored')
  await d.writeBytes('GET:/a', '', envelope(), 60, responseEntry())
  t.ok(await d.readBytes('GET:/a', ''))
  const records = store.items.size
  await d.removeKeys(['GET:/a'])
  t.equal(await d.readBytes('GET:/a', ''), null, 'the key generation moved on')
  t.ok(store.items.size >= records, 'nothing was deleted: the old entry is orphaned')
  await d.writeBytes('GET:/b', 'x', envelope(), 60, responseEntry())
  await d.removeAll()
  t.equal(await d.readBytes('GET:/b', 'x'), null, 'clear moves the namespace on')
})

t.test('a miss fenced before an invalidation stores under versions nobody reads', async (t) => {
  const { driver: d } = await driver(t)
  const fence = await d.beginFill('GET:/a', [])
  await d.removeKeys(['GET:/a'])
  await d.writeBytes('GET:/a', '', envelope(), 60, responseEntry(), fence)
  t.equal(await d.readBytes('GET:/a', ''), null)
})

t.test('a soft move keeps the previous version readable as stale; tags are checked per entry', async (t) => {
  const { driver: d } = await driver(t)
  await d.writeBytes('GET:/a', '', envelope(), 60, responseEntry())
  await d.markStale({ keys: ['GET:/a'], soft: true })
  const bytes = await d.readBytes('GET:/a', '')
  const entry = bytes === null ? undefined : decodeEntry(bytes)
  t.ok(entry !== undefined && (entry.flags & FLAG_STALE) !== 0, 'read back, stale')
  const tagged = responseEntry({ tags: ['t'] })
  tagged.tagVersions = await d.currentTagVersions(tagged)
  t.equal(await d.tagsStillValid(tagged), true)
  await d.markStale({ tags: ['t'], soft: true })
  t.equal(await d.tagsStillValid(tagged), 'stale')
  await d.removeTags(['t'])
  t.equal(await d.tagsStillValid(tagged), false)
})
