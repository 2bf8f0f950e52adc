import t from 'tap'
import { randomBytes } from 'node:crypto'
import { decodeEntry, encodeEntry, ENTRY_RESPONSE, ENTRY_VALUE, type CacheEntry } from '../lib/entry'

function sample (overrides: Partial<CacheEntry> = {}): CacheEntry {
  return {
    kind: ENTRY_RESPONSE,
    status: 203,
    headers: { 'content-type': 'application/octet-stream', vary: 'x-a', link: ['<a>; rel=x', '<b>; rel=y'], 'x-ünïcode': 'välue' },
    body: randomBytes(1000),
    storedAt: 1_700_000_000_123.5,
    ttl: 30,
    initialAge: 12.25,
    flags: 5,
    staleWhileRevalidate: 5,
    staleIfError: 600,
    tags: ['tasks', 'tâche:1'],
    tagVersions: ['v1', ''],
    ...overrides
  }
}

t.test('an envelope round-trips every field, binary body byte for byte', async (t) => {
  const entry = sample()
  t.same(decodeEntry(encodeEntry(entry)), entry)
  const empty = sample({ body: Buffer.alloc(0), headers: {}, tags: [], tagVersions: [], kind: ENTRY_VALUE, ttl: 0 })
  t.same(decodeEntry(encodeEntry(empty)), empty)
})

t.test('the decoded body does not share memory with the input buffer', async (t) => {
  const bytes = encodeEntry(sample())
  const decoded = decodeEntry(bytes) as CacheEntry
  const before = Buffer.from(decoded.body)
  bytes.fill(0)
  t.same(decoded.body, before)
})

t.test('anything that is not exactly a valid envelope is a miss, never a throw', async (t) => {
  const good = encodeEntry(sample())
  t.equal(decodeEntry(undefined), undefined)
  t.equal(decodeEntry(null), undefined)
  t.equal(decodeEntry(Buffer.from('{"status":200,"body":"json from another cache"}')), undefined, 'foreign JSON')
  t.equal(decodeEntry(Buffer.from('garbage')), undefined)
  const otherVersion = Buffer.from(good)
  otherVersion[2] = 99
  t.equal(decodeEntry(otherVersion), undefined, 'another envelope version')
  t.equal(decodeEntry(good.subarray(0, good.length - 1)), undefined, 'truncated by one byte')
  t.equal(decodeEntry(Buffer.concat([good, Buffer.from([0])])), undefined, 'one trailing byte')
  let crashes = 0
  for (let i = 0; i < 2000; i++) {
    const corrupt = Buffer.from(good)
    // Flip a few random bytes past the magic: lengths, counts, kinds all get hit over the loop.
    for (let j = 0; j < 3; j++) corrupt[3 + Math.floor(Math.random() * (corrupt.length - 3))] = Math.floor(Math.random() * 256)
    try {
      const decoded = decodeEntry(corrupt)
      if (decoded !== undefined) t.type(decoded.body, Buffer)
    } catch {
      crashes++
    }
  }
  t.equal(crashes, 0, 'no corrupt envelope made decode throw')
  for (let i = 0; i < 500; i++) {
    t.doesNotThrow(() => decodeEntry(Buffer.concat([Buffer.from([0xeb, 0xca, 1]), randomBytes(Math.floor(Math.random() * 200))])))
  }
})
