import { learnVariantHeaders, variantHas } from '../cache-key'
import type { CacheEntry } from '../entry'
import { varyNames } from '../http-semantics'
import type { RouteSettings } from '../options'

/**
 * RFC 9111 §4.1: a stored response answers only requests that match it on every header its
 * Vary names. The lookup variant holds the values of the route's variant headers, so the entry
 * matches when each of its Vary names is among them. Otherwise (stored before this process
 * learned that Vary, or by another writer) it is a miss, and the names are learned so that the
 * next lookups include them.
 */
export function matchesVariant (settings: RouteSettings, entry: CacheEntry, variant: string): boolean {
  const vary = entry.headers.vary
  if (vary === undefined) return true
  const names = varyNames(vary)
  for (let i = 0; i < names.length; i++) {
    if (!variantHas(variant, names[i])) {
      learnVariantHeaders(settings.variantHeaders, names)
      return false
    }
  }
  return true
}
