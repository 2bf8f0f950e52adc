// The decoded entries of a remote cache: an entry object is reused only for bytes equal to the
// ones it was decoded from, never aliases the caller's buffer, and is bounded.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { DecodedEntries } from '../lib/caches/decoded-entries'
import { encodeEntry } from '../lib/entry'
import { responseEntry } from './helpers/entries'

function envelope (body: Buffer, storedAt = 1_700_000_000_000): Buffer {
  const entry = responseEntry({
    headers: { 'content-type': 'application/octet-stream', link: ['<a>; rel=x', '<b>; rel=y'] },
    body,
    storedAt,
    ttl: 30
  })
  return encodeEntry(entry)
}

t.test('equal bytes, even in another buffer, give the same entry object; other bytes a new one', async (t) => {
  const decoded = new DecodedEntries()
  const body = randomBytes(1000)
  const bytes = envelope(body)
  const first = decoded.decode('k', bytes)
  t.ok(first)
  t.equal(decoded.decode('k', Buffer.from(bytes)), first, 'reused for a copy of the same bytes')
  const flipped = Buffer.from(bytes)
  // The body's last byte (the envelope ends with the count of codings, 0 here).
  flipped[flipped.length - 2] ^= 0xff
  const other = decoded.decode('k', flipped)
  t.not(other, first, 'one byte apart: decoded afresh')
  t.equal(other?.body[999], body[999] ^ 0xff)
  t.equal(decoded.decode('other-key', bytes) === first, false, 'ids never share entries')
})

t.test('the entry owns its bytes: changing the buffer read from the backend changes nothing', async (t) => {
  const decoded = new DecodedEntries()
  const body = randomBytes(64)
  const bytes = envelope(body)
  const entry = decoded.decode('k', bytes)
  bytes.fill(0)
  t.same(entry?.body, body)
  t.equal(decoded.decode('k', envelope(body)), entry, 'and is still found for the original bytes')
})

t.test('absent or invalid bytes read as a miss and forget the entry', async (t) => {
  const decoded = new DecodedEntries()
  const bytes = envelope(randomBytes(100))
  const first = decoded.decode('k', bytes)
  t.equal(decoded.decode('k', null), undefined)
  t.not(decoded.decode('k', bytes), first, 'after a miss the bytes are decoded again')
  const again = decoded.decode('k', bytes)
  t.equal(decoded.decode('k', Buffer.from('not an envelope')), undefined)
  t.not(decoded.decode('k', bytes), again, 'after invalid bytes too')
})

t.test('envelopes over 256 KB are decoded on every read', async (t) => {
  const decoded = new DecodedEntries()
  const body = randomBytes(300 * 1024)
  const bytes = envelope(body)
  const first = decoded.decode('big', bytes)
  const second = decoded.decode('big', bytes)
  t.not(second, first)
  t.same(second?.body, body)
})

t.test('clear() forgets every entry; the LRU keeps at most 1000', async (t) => {
  const decoded = new DecodedEntries()
  const bytes = envelope(randomBytes(10))
  const first = decoded.decode('k', bytes)
  decoded.clear()
  t.not(decoded.decode('k', bytes), first)
  const kept = decoded.decode('k', bytes)
  for (let i = 0; i < 1000; i++) decoded.decode('filler-' + String(i), envelope(randomBytes(10)))
  t.not(decoded.decode('k', bytes), kept, 'the least recently used entry went first')
})
