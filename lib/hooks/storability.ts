import {
  FLAG_KEEP_STALE, FLAG_MUST_REVALIDATE, FLAG_NO_CACHE, FLAG_STALE, HEURISTIC_STATUSES, responseFreshness
} from '../http-freshness'
import { refusalReason, varyNames, type Directives } from '../http-semantics'
import type { CacheRequest } from './request-state'

// Whether a response may be stored, and for how long: the route's fixed ttl, or, with
// `ttl: 'from-response'`, what the response says (RFC 9111 §3, §4.2, §5.2.2).

/** How a response is stored, or why it is not. */
export interface StoreDecision {
  refusal: string | undefined
  ttl: number
  initialAge: number
  flags: number
  staleWhileRevalidate: number
  staleIfError: number
}

/** Response fields addressed to this cache, read by a from-response route. */
export interface AddressedFields {
  /** Surrogate-Control (Edge Architecture 1.0), as sent. */
  surrogateControl: unknown
  /** The directives of the first valid targeted field of the route's list (RFC 9213), if any. */
  targeted: Directives | undefined
}

/** The decision for a route with a fixed ttl: the route's rules, the route's freshness. */
export function fixedDecision (state: CacheRequest, status: number, headers: Record<string, unknown>, cacheControl: Directives): StoreDecision {
  const { settings } = state
  return {
    refusal: refusalReason(status, settings.statusCodes, headers, cacheControl),
    ttl: jittered(settings.ttl, settings.ttlJitter),
    initialAge: 0,
    flags: 0,
    staleWhileRevalidate: settings.staleWhileRevalidate,
    staleIfError: settings.staleIfError
  }
}

/** A ttl less a random part of `jitter` of it (whole seconds; 0, never expiring, stays 0). */
function jittered (ttl: number, jitter: number): number {
  if (jitter === 0 || ttl === 0) return ttl
  return Math.max(1, ttl - Math.floor(ttl * jitter * Math.random()))
}

/**
 * The decision of a shared cache that reads the response (RFC 9111): any final status but 206
 * and 304 with explicit freshness; without it, a heuristically cacheable status (RFC 9110 §15.1)
 * with freshness from Last-Modified when heuristics are on, or stored stale, only to be
 * revalidated, when the response has validators. Never a Set-Cookie response (safety first).
 */
export function responseDecision (
  state: CacheRequest, status: number, headers: Record<string, unknown>, cacheControl: Directives, addressed: AddressedFields | undefined
): StoreDecision {
  const { settings } = state
  const decision: StoreDecision = {
    refusal: undefined,
    ttl: 0,
    initialAge: 0,
    flags: 0,
    staleWhileRevalidate: settings.staleWhileRevalidate,
    staleIfError: settings.staleIfError
  }
  if (status < 200 || status === 206 || status === 304 || (settings.statusCodesGiven && !settings.statusCodes.has(status))) {
    decision.refusal = 'status'
    return decision
  }
  if (headers['set-cookie'] !== undefined) decision.refusal = 'set-cookie'
  else if (headers.vary !== undefined && varyNames(headers.vary as string | string[]).includes('*')) decision.refusal = 'vary-star'
  if (decision.refusal !== undefined) return decision

  // RFC 9213 §2.1: a targeted field for us takes the place of Cache-Control and Expires. Not of
  // Cache-Control's private, which no field lifts (README, "Security").
  const targeted = addressed?.targeted
  if (targeted !== undefined && cacheControl.has('private')) {
    decision.refusal = 'private'
    return decision
  }
  const directives = targeted ?? cacheControl
  const freshness = responseFreshness(status, { ...headers, 'surrogate-control': addressed?.surrogateControl }, directives, {
    requestTime: state.requestTime,
    responseTime: Date.now(),
    surrogateToken: settings.surrogateToken,
    heuristic: settings.heuristicFreshness,
    targeted: targeted !== undefined
  })
  if (freshness.refusal !== undefined) {
    decision.refusal = freshness.refusal
    return decision
  }
  // RFC 9111 §3.5: a response to a credentialed request is shared only when it says so.
  if (state.credentialed && !directives.has('public') && !directives.has('must-revalidate') && !directives.has('s-maxage')) {
    decision.refusal = 'authorization'
    return decision
  }
  const hasValidators = typeof headers.etag === 'string' || typeof headers['last-modified'] === 'string'
  const mayServeStale = (freshness.flags & (FLAG_MUST_REVALIDATE | FLAG_NO_CACHE)) === 0
  decision.flags = freshness.flags | (hasValidators || mayServeStale ? FLAG_KEEP_STALE : 0)
  // Whole seconds, as Age is sent. Rounded down: a response that spent 3 ms in transit is not
  // a second old (an untrusted Age is already counted as too old).
  decision.initialAge = Math.floor(freshness.initialAge)
  decision.staleWhileRevalidate = Math.max(decision.staleWhileRevalidate, freshness.staleWhileRevalidate ?? 0)
  decision.staleIfError = Math.max(decision.staleIfError, freshness.staleIfError ?? 0)
  if (freshness.lifetime === undefined) {
    // No freshness at all: worth keeping only to revalidate, and only for statuses a cache may
    // hold without explicit freshness.
    if (!hasValidators) decision.refusal = 'no-freshness'
    else if (!settings.statusCodesGiven && !HEURISTIC_STATUSES.has(status) && !directives.has('public')) decision.refusal = 'status'
    decision.flags |= FLAG_STALE
    return decision
  }
  // An entry that may only ever be used after revalidation is no use without validators.
  if ((decision.flags & FLAG_NO_CACHE) !== 0 && !hasValidators) {
    decision.refusal = 'no-cache'
    return decision
  }
  decision.ttl = Math.ceil(freshness.lifetime)
  if (decision.ttl === 0) decision.flags |= FLAG_STALE
  return decision
}
