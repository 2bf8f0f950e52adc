import type { FastifyReply } from 'fastify'
import { codedEtag, type Coding, type EncodedBody } from './content-coding'
import { freshUntil, type CacheEntry } from './entry'
import { MAX_AGE_SECONDS } from './http-freshness'
import { freshnessHeader } from './http-semantics'
import type { RouteSettings } from './options'

// The headers a response from the cache carries: the stored ones plus Age, Cache-Control and
// the status headers, which change once a second at most. An entry object lives across many
// hits, so its plain-hit headers are built once per second of its age and reused.

type ReplayHeaders = Record<string, string | string[]>

/** Where an entry object keeps its plain-hit headers (never part of the envelope). */
const kHitHeaders = Symbol('ember-cache.hit-headers')

/** A header set ready for the reply. */
interface BuiltHeaders {
  headers: ReplayHeaders
  /** Some value is an array (a repeated header): each reply gets its own copy of those. */
  hasArrays: boolean
}

interface HitHeadersMemo extends BuiltHeaders {
  /** The route they were built for: the status header names and scope are per route. */
  settings: RouteSettings
  /** The Cache-Status detail they carry (`hit`, or `hit; detail=l1`). */
  cacheStatus: string
  /** Whole seconds since the entry was stored (its Age) when they were built. */
  age: number
}

/** One memo per representation: identity, and each stored coding. */
type Memos = Partial<Record<Coding | 'identity', HitHeadersMemo>>
type MemoBag = Partial<Record<typeof kHitHeaders, Memos>>
const HIT_FROM_L1 = 'hit; detail=l1'

/**
 * Sets the headers of an answer from an entry: stored headers, Age, Cache-Control and status
 * headers. A plain hit reuses the header set built for the current second of the entry's age
 * (entries live across many hits: in-process ones in their store, remote ones in the cache's
 * decoded entries). Only whole-second TTLs are memoized: with a fractional one the remaining
 * seconds can change within one second of age; and only once the entry's storedAt has passed:
 * before that (another instance's clock ahead of ours) Age stays 0 while the freshness left
 * still counts down.
 */
export function setReplayHeaders (
  reply: FastifyReply, settings: RouteSettings, entry: CacheEntry, now: number,
  shortStatus: string, cacheStatus: string, key: string, encoded: EncodedBody | undefined
): void {
  const memoize = shortStatus === 'HIT' && (cacheStatus === 'hit' || cacheStatus === HIT_FROM_L1) && Number.isInteger(entry.ttl) && Number.isInteger(entry.initialAge) &&
    now >= entry.storedAt && Object.isExtensible(entry)
  const built = memoize
    ? hitHeaders(settings, entry, now, cacheStatus, key, encoded)
    : replayHeaders(settings, entry, now, ageSeconds(entry, now), shortStatus, cacheStatus, key, encoded)
  if (built.hasArrays) setHeaderCopies(reply, built.headers)
  else reply.headers(built.headers)
}

/**
 * Sets stored headers on a reply. Fastify keeps an array header value by reference, and a
 * later hook may push to it: every reply gets its own copy of the entry's arrays, so one
 * response cannot change the next.
 */
export function setHeaderCopies (reply: FastifyReply, headers: ReplayHeaders): void {
  for (const name in headers) {
    const value = headers[name]
    reply.header(name, typeof value === 'string' ? value : value.slice())
  }
}

/** x-cache and Cache-Status, on any answer of a cached route (hit, miss, bypass, stale). */
export function setStatusHeaders (reply: FastifyReply, settings: RouteSettings, shortStatus: string, detail: string, key: string | undefined): void {
  if (settings.header !== false) reply.header(settings.header, shortStatus)
  if (settings.cacheStatus !== false) reply.header('cache-status', cacheStatusValue(settings, detail, key))
}

/** The plain-hit headers of `entry` (in one representation) for this second of its age, built once per second. */
function hitHeaders (settings: RouteSettings, entry: CacheEntry, now: number, cacheStatus: string, key: string, encoded: EncodedBody | undefined): HitHeadersMemo {
  const age = ageSeconds(entry, now)
  const bag = entry as MemoBag
  let memos = bag[kHitHeaders]
  const representation = encoded === undefined ? 'identity' : encoded.coding
  const memo = memos?.[representation]
  if (memo !== undefined && memo.age === age && memo.settings === settings && memo.cacheStatus === cacheStatus) return memo
  const { headers, hasArrays } = replayHeaders(settings, entry, now, age, 'HIT', cacheStatus, key, encoded)
  if (memo === undefined) {
    const built = { settings, cacheStatus, age, headers, hasArrays }
    if (memos === undefined) {
      memos = {}
      // Non-enumerable: code that copies or encodes the entry never sees it.
      Object.defineProperty(bag, kHitHeaders, { value: memos, writable: false })
    }
    memos[representation] = built
    return built
  }
  memo.settings = settings
  memo.cacheStatus = cacheStatus
  memo.age = age
  memo.headers = headers
  memo.hasArrays = hasArrays
  return memo
}

/** Stored headers, then Age, Cache-Control (unless stored) and the status headers. */
function replayHeaders (
  settings: RouteSettings, entry: CacheEntry, now: number, age: number, shortStatus: string, cacheStatus: string, key: string,
  encoded: EncodedBody | undefined
): BuiltHeaders {
  const headers: ReplayHeaders = {}
  let hasArrays = false
  for (const name in entry.headers) {
    const value = entry.headers[name]
    headers[name] = value
    if (typeof value !== 'string') hasArrays = true
  }
  if (encoded !== undefined) {
    headers['content-encoding'] = encoded.coding
    // RFC 9110 §8.8.3: each coding is a representation of its own, with a validator of its own.
    if (typeof headers.etag === 'string') headers.etag = codedEtag(headers.etag, encoded.coding)
  }
  headers.age = String(age)
  const remaining = remainingSeconds(entry, now)
  // A from-response route passes the response's own headers through, as a proxy cache does.
  if (entry.headers['cache-control'] === undefined && !settings.ttlFromResponse) headers['cache-control'] = freshnessHeader(entry.ttl, settings.scope)
  if (settings.header !== false) headers[settings.header] = shortStatus
  if (settings.cacheStatus !== false) headers['cache-status'] = cacheStatusValue(settings, cacheStatus + '; ttl=' + remaining, key)
  return { headers, hasArrays }
}

/** RFC 9211 §2: `<cache>; hit | fwd=<why>; ttl; stored; collapsed; key` (key only with debug). */
function cacheStatusValue (settings: RouteSettings, detail: string, key: string | undefined): string {
  const value = (settings.cacheStatus as string) + '; ' + detail
  return settings.debug && key !== undefined ? value + '; key=' + JSON.stringify(key) : value
}

/**
 * RFC 9111 §4.2.3, §5.1: Age is how long ago the origin produced the response, in whole
 * seconds: its age when stored plus the time it has been stored.
 */
export function ageSeconds (entry: CacheEntry, now: number): number {
  return Math.min(MAX_AGE_SECONDS, Math.floor(entry.initialAge + Math.max(0, now - entry.storedAt) / 1000))
}

/** Whole seconds of freshness left, rounded up (0 for entries that never expire or are stale). */
function remainingSeconds (entry: CacheEntry, now: number): number {
  const until = freshUntil(entry)
  return until === Infinity ? 0 : Math.max(0, Math.ceil((until - now) / 1000))
}
