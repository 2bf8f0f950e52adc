import { BYPASS, type LookupResult, type SharedAnswer } from '../caches/cache'
import { ENTRY_VARY, pointerNames, type CacheEntry } from '../entry'
import { varyNames } from '../http-semantics'
import { extendVariant, variantHas } from '../variant'
import type { CacheRequest } from './request-state'

// RFC 9111 §4.1, per stored key: a key whose response varies on request headers has a Vary
// pointer at its base variant (origin + configured headers), naming those headers; its
// responses are stored under the base variant plus their values. One URL's Vary never changes
// how another URL of the same route is looked up.

/**
 * Reads the entry a request may be answered with: at its base variant, or, when a Vary pointer
 * is there, at the variant the pointer's names select. Sets `state.variant` to where it read.
 */
export function readEntry (state: CacheRequest): LookupResult | Promise<LookupResult> {
  state.variant = state.baseVariant
  const found = state.settings.cache.lookup(state.key, state.baseVariant)
  if (found instanceof Promise) return found.then((result) => follow(state, result))
  return follow(state, found)
}

function follow (state: CacheRequest, found: LookupResult): LookupResult | Promise<LookupResult> {
  if (found === BYPASS || found === undefined || found.kind !== ENTRY_VARY) return found
  state.pointerNames = pointerNames(found)
  state.variant = extendVariant(state.baseVariant, state.request, state.pointerNames)
  return state.settings.cache.lookup(state.key, state.variant)
}

/**
 * The request headers a response varies on beyond the route's configured ones, lower-case and
 * sorted (so `Vary: a, b` and `Vary: b, a` select the same variants). Accept-Encoding is left
 * out: one entry holds every stored coding of the body, chosen per request.
 */
export function learnedNames (vary: string | string[] | undefined, configured: readonly string[]): string[] {
  if (vary === undefined) return []
  const names: string[] = []
  for (const name of varyNames(vary)) {
    if (name !== '*' && !configured.includes(name) && !names.includes(name)) names.push(name)
  }
  return names.sort()
}

/**
 * RFC 9111 §4.1: an entry found at a variant answers the request only when the variant was
 * made with every header the entry's Vary names (another writer may have stored it elsewhere).
 */
export function entryFitsVariant (entry: CacheEntry, variant: string): boolean {
  const vary = entry.headers.vary
  if (vary === undefined) return true
  const names = varyNames(vary)
  for (let i = 0; i < names.length; i++) {
    if (!variantHas(variant, names[i])) return false
  }
  return true
}

/** Whether the answer a leader stored is the one this waiting request would get. */
export function answerFits (state: CacheRequest, shared: SharedAnswer): boolean {
  if (shared.variant === state.variant) return true
  const learned = shared.learned ?? learnedNames(shared.entry.headers.vary, state.settings.varyHeaders)
  return learned.length > 0 && extendVariant(state.baseVariant, state.request, learned) === shared.variant
}
