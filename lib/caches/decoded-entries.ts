import { LRUCache } from 'lru-cache'
import { decodeEntry, type CacheEntry } from '../entry'

// A remote hit reads the envelope from the backend every time (that read is what keeps every
// instance consistent), but decoding it again is wasted work while the bytes are the same: the
// headers become strings, the body is copied, and the hit headers are rebuilt. This keeps the
// last decoded entry per id with its own copy of the bytes; a read that returns identical bytes
// gets the same entry object back, hit-header memo included. Different bytes decode afresh.

/** Entries whose decoded form is kept; more than the hot set of most APIs. */
const MAX_ENTRIES = 1000
/** Bytes of envelopes kept at most (each is held once: the body is a view into it). */
const MAX_BYTES = 16 * 1024 * 1024
/** Larger envelopes are decoded on every read: comparing them costs about what decoding does. */
const MAX_ENVELOPE_BYTES = 256 * 1024

interface Decoded {
  bytes: Buffer
  entry: CacheEntry
  /** The clock offset its times were translated by. */
  offset: number
}

export class DecodedEntries {
  private readonly decoded = new LRUCache<string, Decoded>({
    max: MAX_ENTRIES,
    maxSize: MAX_BYTES,
    sizeCalculation: (value) => value.bytes.length
  })

  /**
   * The entry these bytes (read for `id`) hold, or undefined for no or invalid bytes. Its
   * storedAt, written on the backend's clock, is read on ours: minus `offset` (backend minus ours).
   */
  decode (id: string, bytes: Buffer | null | undefined, offset = 0): CacheEntry | undefined {
    if (bytes == null) {
      this.decoded.delete(id)
      return undefined
    }
    const known = this.decoded.get(id)
    if (known !== undefined && known.offset === offset && known.bytes.equals(bytes)) return known.entry
    if (bytes.length > MAX_ENVELOPE_BYTES) {
      if (known !== undefined) this.decoded.delete(id)
      return onOurClock(decodeEntry(bytes), offset)
    }
    // Our own copy: the client's buffer may be a view into a larger socket chunk, which the
    // memo would otherwise keep alive (and Buffer.from would share Node's 8 KB pool slabs).
    // The entry's body is then a view into this copy.
    const own = Buffer.allocUnsafeSlow(bytes.length)
    bytes.copy(own)
    const entry = onOurClock(decodeEntry(own, false), offset)
    if (entry === undefined) this.decoded.delete(id)
    else this.decoded.set(id, { bytes: own, entry, offset })
    return entry
  }

  clear (): void {
    this.decoded.clear()
  }
}

function onOurClock (entry: CacheEntry | undefined, offset: number): CacheEntry | undefined {
  if (entry !== undefined && offset !== 0) entry.storedAt -= offset
  return entry
}
