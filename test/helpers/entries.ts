import { ENTRY_RESPONSE, type CacheEntry } from '../../lib/entry'

/**
 * A stored response as tests need one: a fresh 200 with a small text body, stored now for 60 s,
 * no stale windows, no tags. Give only the fields a test is about.
 */
export function responseEntry (overrides: Partial<CacheEntry> = {}): CacheEntry {
  return {
    kind: ENTRY_RESPONSE,
    status: 200,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body: Buffer.from('hello'),
    storedAt: Date.now(),
    ttl: 60,
    initialAge: 0,
    flags: 0,
    staleWhileRevalidate: 0,
    staleIfError: 0,
    tags: [],
    tagVersions: [],
    ...overrides
  }
}
