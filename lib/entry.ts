import { CODINGS, type Coding, type EncodedBody } from './content-coding'
import { FLAG_KEEP_STALE, FLAG_NO_CACHE, FLAG_STALE, KEEP_STALE_SECONDS } from './http-freshness'

// The stored entry and its versioned binary envelope. This is the only place that turns an
// entry into bytes and back: stores move bytes (remote) or entry objects (in-process).

/** Header values as replayed: names are lower-case. */
export type StoredHeaders = Record<string, string | string[]>

export const ENTRY_RESPONSE = 1
export const ENTRY_VALUE = 2
/**
 * Stored at a key's base variant when the key's response varies on request headers (RFC 9111
 * §4.1): its body lists those header names; the response itself is stored under the variant
 * that includes their values. Lookups follow it; it is never served.
 */
export const ENTRY_VARY = 3

export interface CacheEntry {
  /** ENTRY_RESPONSE for an HTTP response, ENTRY_VALUE for a cache-aside JSON value, ENTRY_VARY for a Vary pointer. */
  kind: number
  status: number
  headers: StoredHeaders
  body: Buffer
  /** Epoch milliseconds when this entry was stored (its response arrived). */
  storedAt: number
  /** Freshness lifetime in seconds; 0 means it never goes stale (unless flagged stale or no-cache). */
  ttl: number
  /** Seconds the response was already old when stored: upstream Age and transit (RFC 9111 §4.2.3). */
  initialAge: number
  /** FLAG_* bits of http-freshness.ts (no-cache, must-revalidate, stale, computed ETag, keep stale). */
  flags: number
  /** Seconds past freshness during which it may be served while one refresh runs. */
  staleWhileRevalidate: number
  /** Seconds past freshness during which it may replace an origin error. */
  staleIfError: number
  tags: string[]
  /**
   * Per-tag version seen at store time, parallel to `tags`. Only backends that check tags at
   * read time (Memcached) fill it; elsewhere it is empty.
   */
  tagVersions: string[]
  /**
   * The body in other content codings, computed once when stored (the `compression` option);
   * a hit sends the one the client accepts best. Absent or empty: identity only.
   */
  encodings?: EncodedBody[]
}

/**
 * The tags (and tag versions) of an untagged entry: one shared, frozen array, so a miss on an
 * untagged route allocates none. Entries are never edited in place; frozen makes sure of it.
 */
export const NO_TAGS = Object.freeze([]) as unknown as string[]

const MAGIC_0 = 0xeb
const MAGIC_1 = 0xca
/**
 * Version 2 added initialAge and flags (a version 1 envelope reads as a miss); version 3 the
 * encoded bodies after the body. Both 2 and 3 are read, so instances of the previous release
 * and this one share entries during a rolling deploy (3 reads as a miss to the previous one).
 */
export const ENVELOPE_VERSION = 3
const PREVIOUS_VERSION = 2
// magic(2) version(1) kind(1) status(2) storedAt(8) initialAge(8) flags(1) ttl(4) swr(4) sie(4)
// tags(2) headers(2) body(4) = 43, then (version 3) encodings(1) and per encoding coding(1)
// length(4) bytes. One short and encodeEntry silently drops the body's last bytes (Buffer#copy
// truncates).
const FIXED_BYTES = 43
const MAX_UINT32 = 0xffffffff

const NEVER_FRESH = FLAG_NO_CACHE | FLAG_STALE

/** Epoch ms when the entry stops being fresh: Infinity for ttl 0, at once when flagged no-cache or stale. */
export function freshUntil (entry: CacheEntry): number {
  if ((entry.flags & NEVER_FRESH) !== 0) return entry.storedAt
  return entry.ttl === 0 ? Infinity : entry.storedAt + (entry.ttl - entry.initialAge) * 1000
}

/** Seconds the backend must keep the entry: freshness left plus the longest grace window (0 = forever). */
export function retentionSeconds (entry: CacheEntry): number {
  const neverFresh = (entry.flags & NEVER_FRESH) !== 0
  if (entry.ttl === 0 && !neverFresh) return 0
  const freshness = neverFresh ? 0 : Math.max(0, entry.ttl - entry.initialAge)
  const grace = Math.max(entry.staleWhileRevalidate, entry.staleIfError, (entry.flags & FLAG_KEEP_STALE) !== 0 ? KEEP_STALE_SECONDS : 0)
  // Backends count whole seconds (Redis EXPIRE rejects 0.5; memjs truncates it to 0 = forever),
  // and 0 means forever to them: an entry with nothing left is kept one second.
  return Math.max(1, Math.ceil(freshness + grace))
}

/** The stale-while-revalidate window of a softly invalidated entry: until it would have gone anyway. */
export const SOFT_STALE_WINDOW = MAX_UINT32
/**
 * The longest a softly invalidated entry is kept, served stale while refreshes run: its own
 * retention when shorter. An entry that never expires (ttl 0) whose refreshes keep failing
 * goes after this, rather than being served stale for ever.
 */
export const SOFT_STALE_MAX_SECONDS = 3600

/**
 * A softly invalidated copy of an entry: stale from now (FLAG_STALE), and servable stale while
 * one refresh runs until its retention ends, whatever its own window was.
 */
export function softened (entry: CacheEntry): CacheEntry {
  return { ...entry, flags: entry.flags | FLAG_STALE, staleWhileRevalidate: SOFT_STALE_WINDOW }
}

/** Byte offsets in the envelope of the fields soft invalidation rewrites in place (also in RedisCache's script). */
export const ENVELOPE_FLAGS_OFFSET = 22
export const ENVELOPE_SWR_OFFSET = 27

/** What a script on the backend needs to know a response envelope by (RedisCache's SOFT_SCRIPT is built from it). */
export const ENVELOPE_LAYOUT = {
  magic: [MAGIC_0, MAGIC_1] as const,
  versions: [PREVIOUS_VERSION, ENVELOPE_VERSION] as const,
  fixedBytes: FIXED_BYTES,
  kindOffset: 3
}

/**
 * A softly invalidated copy of a response envelope (bytes, for backends that keep bytes), or
 * the bytes as they are when they are not a response envelope of this version.
 */
export function softenedEnvelope (bytes: Buffer): Buffer {
  if (bytes.length < FIXED_BYTES || bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1 || !knownVersion(bytes[2]) || bytes[3] !== ENTRY_RESPONSE) return bytes
  const copy = Buffer.from(bytes)
  copy[ENVELOPE_FLAGS_OFFSET] |= FLAG_STALE
  copy.writeUInt32BE(SOFT_STALE_WINDOW, ENVELOPE_SWR_OFFSET)
  return copy
}

/** A Vary pointer for `names` (sorted, lower-case) that lives as long as `entry`. */
export function varyPointer (names: readonly string[], entry: CacheEntry): CacheEntry {
  return {
    kind: ENTRY_VARY,
    status: 0,
    headers: {},
    body: Buffer.from(names.join(','), 'utf8'),
    storedAt: entry.storedAt,
    ttl: entry.ttl,
    initialAge: entry.initialAge,
    flags: entry.flags,
    staleWhileRevalidate: entry.staleWhileRevalidate,
    staleIfError: entry.staleIfError,
    tags: NO_TAGS,
    tagVersions: NO_TAGS
  }
}

const pointerMemo = new WeakMap<CacheEntry, readonly string[]>()

/** The header names a Vary pointer lists (memoized per pointer object: lookups follow it often). */
export function pointerNames (pointer: CacheEntry): readonly string[] {
  let names = pointerMemo.get(pointer)
  if (names === undefined) {
    const text = pointer.body.toString('utf8')
    names = text === '' ? [] : text.split(',')
    pointerMemo.set(pointer, names)
  }
  return names
}

function knownVersion (version: number): boolean {
  return version === ENVELOPE_VERSION || version === PREVIOUS_VERSION
}

/** Approximate in-memory size, for byte-bounded LRUs. */
export function entrySize (entry: CacheEntry): number {
  let size = entry.body.length + 64
  if (entry.encodings !== undefined) for (const encoded of entry.encodings) size += encoded.body.length + 16
  for (const name in entry.headers) {
    const value = entry.headers[name]
    size += name.length + (typeof value === 'string' ? value.length : value.join('').length)
  }
  for (const tag of entry.tags) size += tag.length
  return size
}

export function encodeEntry (entry: CacheEntry): Buffer {
  const parts: Buffer[] = []
  let size = FIXED_BYTES
  const strings = (value: string): Buffer => {
    const bytes = Buffer.from(value, 'utf8')
    parts.push(bytes)
    return bytes
  }
  for (let i = 0; i < entry.tags.length; i++) {
    size += 4 + strings(entry.tags[i]).length + strings(entry.tagVersions[i] ?? '').length
  }
  let headerCount = 0
  for (const name in entry.headers) {
    const value = entry.headers[name]
    const values = typeof value === 'string' ? [value] : value
    for (const one of values) {
      size += 6 + strings(name).length + strings(String(one)).length
      headerCount++
    }
  }
  size += entry.body.length
  const encodings = entry.encodings ?? []
  size += 1
  for (const encoded of encodings) size += 5 + encoded.body.length

  const out = Buffer.allocUnsafe(size)
  let offset = 0
  out[offset++] = MAGIC_0
  out[offset++] = MAGIC_1
  out[offset++] = ENVELOPE_VERSION
  out[offset++] = entry.kind
  offset = out.writeUInt16BE(entry.status, offset)
  offset = out.writeDoubleBE(entry.storedAt, offset)
  offset = out.writeDoubleBE(entry.initialAge, offset)
  out[offset++] = entry.flags
  // Whole seconds, rounded up: writeUInt32BE truncates, and a ttl of 0.5 read back as 0 never expires.
  offset = out.writeUInt32BE(Math.min(Math.ceil(entry.ttl), MAX_UINT32), offset)
  offset = out.writeUInt32BE(Math.ceil(entry.staleWhileRevalidate), offset)
  offset = out.writeUInt32BE(Math.ceil(entry.staleIfError), offset)
  let part = 0
  offset = out.writeUInt16BE(entry.tags.length, offset)
  for (let i = 0; i < entry.tags.length; i++) {
    offset = writeShortBytes(out, offset, parts[part++])
    offset = writeShortBytes(out, offset, parts[part++])
  }
  offset = out.writeUInt16BE(headerCount, offset)
  for (let i = 0; i < headerCount; i++) {
    offset = writeShortBytes(out, offset, parts[part++])
    const value = parts[part++]
    offset = out.writeUInt32BE(value.length, offset)
    offset += value.copy(out, offset)
  }
  offset = out.writeUInt32BE(entry.body.length, offset)
  offset += entry.body.copy(out, offset)
  out[offset++] = encodings.length
  for (const encoded of encodings) {
    out[offset++] = CODINGS.indexOf(encoded.coding)
    offset = out.writeUInt32BE(encoded.body.length, offset)
    offset += encoded.body.copy(out, offset)
  }
  return out
}

function writeShortBytes (out: Buffer, offset: number, bytes: Buffer): number {
  offset = out.writeUInt16BE(bytes.length, offset)
  return offset + bytes.copy(out, offset)
}

/**
 * Decodes an envelope. Anything that is not exactly a valid envelope of this version (corrupt,
 * truncated, foreign or older data) returns undefined, which callers treat as a miss.
 * `copyBody` false makes the body a view into `data`, for a caller that owns `data` for good.
 */
export function decodeEntry (data: Buffer | null | undefined, copyBody = true): CacheEntry | undefined {
  if (data == null || data.length < FIXED_BYTES) return undefined
  if (data[0] !== MAGIC_0 || data[1] !== MAGIC_1 || !knownVersion(data[2])) return undefined
  const version = data[2]
  try {
    let offset = 3
    const kind = data[offset++]
    const status = data.readUInt16BE(offset); offset += 2
    const storedAt = data.readDoubleBE(offset); offset += 8
    const initialAge = data.readDoubleBE(offset); offset += 8
    const flags = data[offset++]
    const ttl = data.readUInt32BE(offset); offset += 4
    const staleWhileRevalidate = data.readUInt32BE(offset); offset += 4
    const staleIfError = data.readUInt32BE(offset); offset += 4
    const tagCount = data.readUInt16BE(offset); offset += 2
    const tags: string[] = []
    const tagVersions: string[] = []
    for (let i = 0; i < tagCount; i++) {
      let len = data.readUInt16BE(offset); offset += 2
      tags.push(readString(data, offset, len)); offset += len
      len = data.readUInt16BE(offset); offset += 2
      tagVersions.push(readString(data, offset, len)); offset += len
    }
    const headerCount = data.readUInt16BE(offset); offset += 2
    const headers: StoredHeaders = {}
    for (let i = 0; i < headerCount; i++) {
      const nameLen = data.readUInt16BE(offset); offset += 2
      const name = readString(data, offset, nameLen); offset += nameLen
      const valueLen = data.readUInt32BE(offset); offset += 4
      const value = readString(data, offset, valueLen); offset += valueLen
      const previous = headers[name]
      if (previous === undefined) headers[name] = value
      else headers[name] = typeof previous === 'string' ? [previous, value] : [...previous, value]
    }
    const bodyLen = data.readUInt32BE(offset); offset += 4
    const bodyStart = offset
    offset += bodyLen
    let encodings: EncodedBody[] | undefined
    if (version === ENVELOPE_VERSION) {
      const count = data.readUInt8(offset); offset += 1
      for (let i = 0; i < count; i++) {
        const coding: Coding | undefined = CODINGS[data.readUInt8(offset)]; offset += 1
        const length = data.readUInt32BE(offset); offset += 4
        if (coding === undefined || offset + length > data.length) return undefined
        const view = data.subarray(offset, offset + length); offset += length
        ;(encodings ??= []).push({ coding, body: copyBody ? Buffer.from(view) : view })
      }
    }
    if (offset !== data.length) return undefined
    if ((kind !== ENTRY_RESPONSE && kind !== ENTRY_VALUE && kind !== ENTRY_VARY) || !Number.isFinite(storedAt) || !(initialAge >= 0)) return undefined
    // reply.code() throws on a status outside 100-599: replaying one would fail the request.
    if (kind === ENTRY_RESPONSE && (status < 100 || status > 599)) return undefined
    // Copy so a pooled or shared input buffer cannot change the body later.
    const view = data.subarray(bodyStart, bodyStart + bodyLen)
    const body = copyBody ? Buffer.from(view) : view
    const entry: CacheEntry = { kind, status, headers, body, storedAt, ttl, initialAge, flags, staleWhileRevalidate, staleIfError, tags, tagVersions }
    if (encodings !== undefined) entry.encodings = encodings
    return entry
  } catch {
    // A length field pointing past the end: RangeError from the reads above.
    return undefined
  }
}

function readString (data: Buffer, offset: number, len: number): string {
  if (offset + len > data.length) throw new RangeError('truncated envelope')
  return data.toString('utf8', offset, offset + len)
}
