// In-process entries alone: variants, tags, patterns, soft marks, the byte bound and L1's cap.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { L1Tier, LocalEntries } from '../../lib/caches/local-entries'
import { FLAG_STALE } from '../../lib/http-freshness'
import type { CacheEntry } from '../../lib/entry'
import { responseEntry } from '../helpers/entries'

t.test('a key with its variants and tags goes as one; patterns match keys, not variants', async (t) => {
  const entries = new LocalEntries('test', undefined)
  entries.store('GET:/a', '', responseEntry({ tags: ['t1'] }))
  entries.store('GET:/a', 'x-lang=fr', responseEntry())
  entries.store('GET:/b', '', responseEntry({ tags: ['t1', 't2'] }))
  entries.store('GET:/c', 'x-lang=en', responseEntry())
  t.equal(entries.size, 4)
  entries.apply({ keys: ['GET:/a'] })
  t.equal(entries.lookup('GET:/a', 'x-lang=fr'), undefined, 'every variant of the key')
  t.ok(entries.lookup('GET:/b', ''))
  entries.apply({ tags: ['t2'] })
  t.equal(entries.lookup('GET:/b', ''), undefined)
  entries.apply({ pattern: 'GET:/c*' })
  t.equal(entries.size, 0, 'the pattern reached the variant through its key')
})

t.test('soft invalidation keeps entries, stale', async (t) => {
  const entries = new LocalEntries('test', undefined)
  entries.store('GET:/a', '', responseEntry({ tags: ['t'] }))
  entries.apply({ tags: ['t'], soft: true })
  const entry = entries.lookup('GET:/a', '') as CacheEntry | undefined
  t.ok(entry !== undefined && (entry.flags & FLAG_STALE) !== 0, 'still there, marked stale')
})

t.test('the byte bound evicts and counts bytes; stats() says what is held', async (t) => {
  const entries = new LocalEntries('test', { maxSize: 5_000 })
  for (let i = 0; i < 10; i++) entries.store('GET:/' + i, '', responseEntry({ body: Buffer.alloc(1_000) }))
  t.ok(entries.bytesHeld() <= 5_000)
  t.ok(entries.size < 10)
  t.same(entries.stats(), { entries: entries.size, bytes: entries.bytesHeld() })
  await entries.shutdown()
  t.equal(entries.size, 0)
})

t.test('L1 keeps an entry at most its ttl, and drops patterns within the turn', async (t) => {
  const l1 = new L1Tier('l1', { max: 100, ttlMs: 60 })
  l1.store('GET:/a', '', responseEntry({ ttl: 600 }))
  l1.store('GET:/b', '', responseEntry({ ttl: 600 }))
  l1.drop({ pattern: 'GET:/b*' })
  t.equal(l1.lookup('GET:/b', ''), undefined, 'a pending pattern already hides the entry')
  t.ok(l1.lookup('GET:/a', ''))
  await sleep(120)
  t.equal(l1.lookup('GET:/a', ''), undefined, 'gone after the L1 ttl, though fresh for 600 s')
})
