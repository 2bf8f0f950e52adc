import type { FastifyRequest } from 'fastify'
import { ENTRY_RESPONSE, NO_TAGS, type CacheEntry } from '../entry'
import type { RouteSettings } from '../options'

// Turning a response into an entry: shared by the store hook (GET misses) and write-through
// (PUT/PATCH answers stored as the GET entry).

/** How an entry keeps its freshness: a StoreDecision's numbers. */
export interface Freshness {
  ttl: number
  initialAge: number
  flags: number
  staleWhileRevalidate: number
  staleIfError: number
}

/** A response entry, fresh from now, with the freshness decided for it. */
export function responseEntryOf (_settings: RouteSettings, status: number, headers: CacheEntry['headers'], body: Buffer, freshness: Freshness, tags: string[]): CacheEntry {
  return {
    kind: ENTRY_RESPONSE,
    status,
    headers,
    body,
    storedAt: Date.now(),
    ttl: freshness.ttl,
    initialAge: freshness.initialAge,
    flags: freshness.flags,
    staleWhileRevalidate: freshness.staleWhileRevalidate,
    staleIfError: freshness.staleIfError,
    tags,
    tagVersions: NO_TAGS
  }
}

/** The entry's tags; a tags function that throws or returns junk stores no tags, never fails the request. */
export function tagsOf (request: FastifyRequest, settings: RouteSettings): string[] {
  const tags = settings.tags
  if (tags === undefined) return NO_TAGS
  if (typeof tags !== 'function') return tags
  try {
    const computed = tags(request)
    return Array.isArray(computed) ? computed.filter((tag) => typeof tag === 'string' && tag.length > 0) : NO_TAGS
  } catch (err) {
    request.log.warn({ err }, 'ember-cache: tags function threw; storing without tags')
    return NO_TAGS
  }
}

/** A payload as bytes, or undefined for what cannot be stored as is (streams, objects). */
export function bodyOf (payload: unknown): Buffer | undefined {
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8')
  if (Buffer.isBuffer(payload)) return payload
  if (payload === null || payload === undefined) return Buffer.alloc(0)
  return undefined
}
