import { LRUCache } from 'lru-cache'
import { ENTRY_RESPONSE, SOFT_STALE_MAX_SECONDS, entrySize, retentionSeconds, softened, type CacheEntry } from '../entry'
import { globToRegExp } from '../cache-key'
import { checkPositiveInteger } from '../validate'
import type { CacheStats } from '../observe'
import { MAX_UINT32_SECONDS, VARIANT_SEPARATOR, entryId, type CacheTier, type LookupResult, type ParsedTarget } from './cache'

const DEFAULT_MAX = 10_000

/** What an entry costs the process: its id (key and variant) and the entry itself. */
function heldSize (entry: CacheEntry, id: string): number {
  return entrySize(entry) + id.length
}

/**
 * Entries held in this process, as decoded objects: a hit costs a Map lookup, no decoding.
 * Variants and tags are indexed so that invalidation is exact and needs no full scan. The tier
 * of MemoryCache and StaticCache, and (as L1Tier) the in-process tier of a shared cache.
 */
export class LocalEntries implements CacheTier {
  readonly inProcess = true
  readonly maxRetentionSeconds = MAX_UINT32_SECONDS
  protected readonly entries: LRUCache<string, CacheEntry>
  private readonly variantsByKey = new Map<string, Set<string>>()
  private readonly idsByTag = new Map<string, Set<string>>()
  /** Only a byte bound (maxSize) makes the LRU refuse an entry. */
  private readonly mayRefuse: boolean

  /** Longest an entry is kept, in ms, whatever its own retention (an L1 tier's ttl); 0 = no cap. */
  private readonly keepAtMostMs: number

  constructor (where: string, options: { max?: number, maxSize?: number } | undefined, keepAtMostMs = 0) {
    this.keepAtMostMs = keepAtMostMs
    checkPositiveInteger(where + '.max', options?.max)
    checkPositiveInteger(where + '.maxSize', options?.maxSize)
    const maxSize = options?.maxSize
    this.entries = new LRUCache<string, CacheEntry>({
      max: options?.max ?? DEFAULT_MAX,
      // The LRU's TTL only purges entries past their retention; freshness is checked exactly
      // from storedAt on every hit. A coarse clock spares lru-cache a timer per millisecond
      // (an L1 tier, whose ttl is the point, keeps a finer one).
      ttlResolution: keepAtMostMs > 0 ? 50 : 1000,
      // The id counts: under a cache-busting flood of long query strings the keys are most of
      // what is held (found by test/safety-abuse.test.ts). Sizes are kept without a bound too,
      // so that stats() reads the total instead of walking every entry.
      ...(maxSize === undefined ? { maxEntrySize: Number.MAX_SAFE_INTEGER } : { maxSize }),
      sizeCalculation: heldSize,
      // dispose, not disposeAfter: unindex touches only our own maps, so it may run inside the
      // LRU's set(); disposeAfter would queue a tuple per eviction, one per miss on a full cache.
      dispose: (entry, id, reason) => {
        // A replaced value keeps its id; store() writes its index entries again after the set.
        // With nothing indexed (no variants, no tags), the evicted entry is not touched at all:
        // on a full cache that is one cold entry read saved per miss.
        if (reason !== 'set' && (this.variantsByKey.size > 0 || this.idsByTag.size > 0)) this.unindex(id, entry)
      }
    })
    this.mayRefuse = maxSize !== undefined
  }

  lookup (key: string, variant: string): LookupResult {
    return this.entries.get(entryId(key, variant))
  }

  store (key: string, variant: string, entry: CacheEntry): void {
    const id = entryId(key, variant)
    // A new options object each time: lru-cache writes a status field into the one it is given.
    let keepMs = retentionSeconds(entry) * 1000
    if (this.keepAtMostMs > 0 && (keepMs === 0 || keepMs > this.keepAtMostMs)) keepMs = this.keepAtMostMs
    this.entries.set(id, entry, { ttl: keepMs })
    // maxSize may refuse an entry larger than the whole cache: then there is nothing to index.
    if (this.mayRefuse && !this.entries.has(id)) return
    if (variant !== '') addTo(this.variantsByKey, key, id)
    for (const tag of entry.tags) addTo(this.idsByTag, tag, id)
  }

  codingsAdded (key: string, variant: string, entry: CacheEntry): void {
    const id = entryId(key, variant)
    // Set again to count its new bytes (and maybe evict for them), its expiry unchanged. Only
    // if it is still the entry held: a newer one is never replaced.
    if (this.entries.peek(id) === entry) this.entries.set(id, entry, { noUpdateTTL: true })
  }

  /** Runs one invalidation on the entries held (soft: they become stale). */
  apply (target: ParsedTarget): void {
    if (target.soft === true) this.markStale(target)
    else if (target.keys !== undefined) this.removeKeys(target.keys)
    else if (target.pattern !== undefined) this.removePattern(target.pattern)
    else if (target.tags !== undefined) this.removeTags(target.tags)
    else this.removeAll()
  }

  beginFill (): undefined {
    return undefined
  }

  checkSupported (): void {}

  serverNow (): number {
    return Date.now()
  }

  defaultName (): undefined {
    return undefined
  }

  async open (): Promise<void> {}

  protected removeKeys (keys: string[]): void {
    for (const key of keys) {
      this.entries.delete(key)
      const variants = this.variantsByKey.get(key)
      if (variants === undefined) continue
      for (const id of [...variants]) this.entries.delete(id)
    }
  }

  protected removePattern (pattern: string): void {
    const matcher = globToRegExp(pattern)
    for (const id of [...this.entries.keys()]) {
      const cut = id.indexOf(VARIANT_SEPARATOR)
      if (matcher.test(cut === -1 ? id : id.slice(0, cut))) this.entries.delete(id)
    }
  }

  protected removeTags (tags: string[]): void {
    for (const tag of tags) {
      const ids = this.idsByTag.get(tag)
      if (ids === undefined) continue
      for (const id of [...ids]) this.entries.delete(id)
      this.idsByTag.delete(tag)
    }
  }

  /** Soft invalidation: each entry named becomes its softened copy, for what is left of its time. */
  private markStale (target: ParsedTarget): void {
    for (const id of this.idsOf(target)) {
      const entry = this.entries.peek(id)
      if (entry === undefined || entry.kind !== ENTRY_RESPONSE) continue
      const remaining = Math.min(this.entries.getRemainingTTL(id), SOFT_STALE_MAX_SECONDS * 1000)
      this.entries.set(id, softened(entry), { ttl: Math.max(1, remaining) })
    }
  }

  /** The ids (key and variants) a target names. */
  private idsOf (target: ParsedTarget): string[] {
    if (target.keys !== undefined) {
      return target.keys.flatMap((key) => [key, ...(this.variantsByKey.get(key) ?? [])])
    }
    if (target.tags !== undefined) return target.tags.flatMap((tag) => [...(this.idsByTag.get(tag) ?? [])])
    const all = [...this.entries.keys()]
    if (target.pattern === undefined) return all
    const matcher = globToRegExp(target.pattern)
    return all.filter((id) => {
      const cut = id.indexOf(VARIANT_SEPARATOR)
      return matcher.test(cut === -1 ? id : id.slice(0, cut))
    })
  }

  protected removeAll (): void {
    this.entries.clear()
    this.variantsByKey.clear()
    this.idsByTag.clear()
  }

  stats (): Partial<CacheStats> {
    return { entries: this.entries.size, bytes: this.bytesHeld() }
  }

  /** Approximate bytes of the entries held (kept by the LRU as entries come and go). */
  bytesHeld (): number {
    return this.entries.calculatedSize
  }

  /** Number of entries held, variants included. */
  get size (): number {
    return this.entries.size
  }

  async shutdown (): Promise<void> {
    this.entries.clear()
  }

  private unindex (id: string, entry: CacheEntry): void {
    const cut = id.indexOf(VARIANT_SEPARATOR)
    if (cut !== -1) removeFrom(this.variantsByKey, id.slice(0, cut), id)
    for (const tag of entry.tags) removeFrom(this.idsByTag, tag, id)
  }
}

function addTo (index: Map<string, Set<string>>, name: string, id: string): void {
  const ids = index.get(name)
  if (ids === undefined) index.set(name, new Set([id]))
  else ids.add(id)
}

function removeFrom (index: Map<string, Set<string>>, name: string, id: string): void {
  const ids = index.get(name)
  if (ids === undefined) return
  ids.delete(id)
  if (ids.size === 0) index.delete(name)
}

/**
 * The in-process tier in front of a remote cache (`l1` option): a MemoryCache that keeps an
 * entry at most `ttl` ms, so that without news from the fleet it goes back to the shared store.
 */
export class L1Tier extends LocalEntries {
  constructor (where: string, options: { max: number, maxSize?: number, ttlMs: number }) {
    super(where, { max: options.max, ...(options.maxSize === undefined ? {} : { maxSize: options.maxSize }) }, options.ttlMs)
  }

  /**
   * Patterns waiting to be matched against the tier's entries (one pass per turn of the event
   * loop for all of them); lookups meanwhile check them. A burst of pattern messages, each
   * matched at once against every entry, stalled the event loop for seconds.
   */
  private pendingPatterns: RegExp[] | undefined = undefined

  /** Runs an invalidation on the tier's own entries (for the bus): keys and tags at once, patterns within the turn. */
  drop (target: ParsedTarget): void {
    if (target.keys !== undefined) this.removeKeys(target.keys)
    else if (target.pattern !== undefined) this.dropPattern(target.pattern)
    else if (target.tags !== undefined) this.removeTags(target.tags)
    else {
      this.pendingPatterns = undefined
      this.removeAll()
    }
  }

  override lookup (key: string, variant: string): LookupResult {
    const patterns = this.pendingPatterns
    if (patterns !== undefined) {
      for (let i = 0; i < patterns.length; i++) if (patterns[i].test(key)) return undefined
    }
    return super.lookup(key, variant)
  }

  private dropPattern (pattern: string): void {
    if (this.pendingPatterns === undefined) {
      this.pendingPatterns = []
      setImmediate(() => this.matchPending())
    }
    this.pendingPatterns.push(globToRegExp(pattern))
  }

  /** One pass for every pattern of the turn; past a bound on the work, the tier is emptied instead. */
  private matchPending (): void {
    const patterns = this.pendingPatterns
    this.pendingPatterns = undefined
    if (patterns === undefined) return
    if (patterns.length * this.entries.size > PATTERN_WORK_LIMIT) return this.removeAll()
    for (const id of [...this.entries.keys()]) {
      const cut = id.indexOf(VARIANT_SEPARATOR)
      const key = cut === -1 ? id : id.slice(0, cut)
      if (patterns.some((matcher) => matcher.test(key))) this.entries.delete(id)
    }
  }
}

/** Pattern tests one turn of the event loop may spend on the in-process tier (about 2 ms); past it, the tier is emptied. */
const PATTERN_WORK_LIMIT = 20_000
