import { SOFT_STALE_MAX_SECONDS, softenedEnvelope, type CacheEntry } from '../entry'
import type { Fence, ParsedTarget } from './cache'
import type { SharedContext, SharedDriver } from './shared-driver'

// A cache over a plain key-value store that can only get, set and delete single keys (Memcached,
// a custom store): no scan, no sets. Every entry carries versions that invalidation moves on
// instead of deleting: the cache's namespace (clear), its key's generation (invalidating the key
// drops every variant at once) and its tags' versions (inside the envelope). A lookup reads the
// entry, the namespace and the generation at once; a tagged entry costs one more read for its
// tags. Stale entries are never deleted: they age out, or the store evicts them.

/**
 * How long a version record is kept (30 days). Misses make them (a key's generation, a tag's
 * version) whether they store or not: a crawler's 404s must not leave records without end.
 * One that expires comes back as a new value, which makes its entries misses (never stale).
 */
export const VERSION_RETENTION_SECONDS = 30 * 24 * 60 * 60

/** The version every entry of the cache carries: clear() moves it on. */
const NAMESPACE = 'ns'

/** The versions a miss saw when it began. */
interface VersionFence {
  namespace: string
  generation: string
  tags: Map<string, string>
}

/**
 * A key-value store that can get, set and delete single keys (Memcached, a user's CacheStore):
 * what the version scheme needs of it, and what the store says of itself to the shared tier.
 * Each method may reject: the cache fails open.
 */
export interface VersionStore {
  /** The bytes at `storageKey`, or null. */
  read: (storageKey: string) => Promise<Buffer | null>
  /** Stores bytes at `storageKey` for `retention` seconds (0 = no expiry). */
  write: (storageKey: string, value: Buffer, retention: number) => Promise<void>
  /**
   * Stores `value` only when nothing is stored at `storageKey` yet, so that two instances
   * making the same version agree on one. Stores without such an operation may set: a lost race
   * only makes entries stored meanwhile misses, never serves a stale one.
   */
  writeIfAbsent: (storageKey: string, value: Buffer, retention: number) => Promise<void>
  /** Removes what is stored at `storageKey`. */
  remove: (storageKey: string) => Promise<void>
  /** Where the entry of `key` and `variant` lives. */
  entryKey: (key: string, variant: string) => string
  /** Where the version called `name` lives. */
  versionKey: (name: string) => string
  connect: () => Promise<void>
  disconnect: () => Promise<void>
  /** Removes entries whose key matches a glob (refuses when the store cannot). */
  removePattern: (pattern: string) => Promise<void>
  /**
   * The bytes at `storageKey` and a token to replace them with only if they did not change
   * meanwhile (memcached's CAS). Without it: the bytes themselves are the token.
   */
  readForUpdate?: (storageKey: string) => Promise<{ value: Buffer | null, token: unknown }>
  /** Writes `value` if what was read for the token is still there; false when it changed. */
  writeIfUnchanged?: (storageKey: string, value: Buffer, token: unknown) => Promise<boolean>
  /** Writes a version record (it never expires); without it, write(). */
  writeVersion?: (storageKey: string, value: Buffer) => Promise<void>
  /** A version record was just replaced by compare-and-set where it lives: stores that keep copies elsewhere update them. */
  spreadVersion?: (storageKey: string, value: Buffer) => Promise<void>
  /** After clear() moved the namespace on: frees the space where that cannot touch other data. */
  afterClear?: () => Promise<void>
  checkSupported?: (target: ParsedTarget) => void
  defaultName?: () => string
  readonly maxItemBytes?: number
  readonly maxRetentionSeconds?: number
  refusesEntry?: (err: unknown) => boolean
  serverTime?: () => Promise<number | undefined>
  readonly clockMarginMs?: number
}

/** What two instances' views of one instant may differ by, when the store does not say. */
const DEFAULT_CLOCK_MARGIN_MS = 100

/** The version scheme above, over one store: the shared driver of Memcached and custom stores. */
export class VersionedDriver implements SharedDriver {
  constructor (private readonly shared: SharedContext, private readonly store: VersionStore) {}

  async connect (): Promise<void> {
    await this.store.connect()
  }

  async disconnect (): Promise<void> {
    await this.store.disconnect()
  }

  async removePattern (pattern: string): Promise<void> {
    await this.store.removePattern(pattern)
  }

  checkSupported (target: ParsedTarget): void {
    this.store.checkSupported?.(target)
  }

  defaultName (): string | undefined {
    return this.store.defaultName?.()
  }

  get maxItemBytes (): number | undefined {
    return this.store.maxItemBytes
  }

  get maxRetentionSeconds (): number | undefined {
    return this.store.maxRetentionSeconds
  }

  refusesEntry (err: unknown): boolean {
    return this.store.refusesEntry?.(err) === true
  }

  async serverTime (): Promise<number | undefined> {
    return await this.store.serverTime?.()
  }

  get clockMarginMs (): number {
    return this.store.clockMarginMs ?? DEFAULT_CLOCK_MARGIN_MS
  }

  private async readForUpdate (storageKey: string): Promise<{ value: Buffer | null, token: unknown }> {
    if (this.store.readForUpdate !== undefined) return await this.store.readForUpdate(storageKey)
    const value = await this.store.read(storageKey)
    return { value, token: value }
  }

  /**
   * Writes `value` if what was read for the token is still there; false when it changed. Stores
   * without compare-and-set compare and write in two steps (a racing writer can slip between).
   */
  private async writeIfUnchanged (storageKey: string, value: Buffer, token: unknown): Promise<boolean> {
    if (this.store.writeIfUnchanged !== undefined) return await this.store.writeIfUnchanged(storageKey, value, token)
    const now = await this.store.read(storageKey)
    const before = token as Buffer | null
    if (now === null ? before !== null : before === null || !now.equals(before)) return false
    await this.store.write(storageKey, value, VERSION_RETENTION_SECONDS)
    return true
  }

  async readBytes (key: string, variant: string): Promise<Buffer | null> {
    // Three reads in flight at once: one round trip.
    const [stored, namespace, generation] = await Promise.all([
      this.store.read(this.store.entryKey(key, variant)),
      this.store.read(this.store.versionKey(NAMESPACE)),
      this.store.read(this.store.versionKey(generationOf(key)))
    ])
    if (stored === null || namespace === null || generation === null) return null
    const ns = parseVersion(namespace)
    const gen = parseVersion(generation)
    const current = unwrapVersions(stored, ns.head + '\n' + gen.head)
    if (current !== null) return current
    // Stored before the key's last soft invalidation: still there, but stale (for a while).
    if (!this.softlyValid(gen)) return null
    const previous = unwrapVersions(stored, ns.head + '\n' + (gen.previous as string))
    return previous === null ? null : softenedEnvelope(previous)
  }

  /** A soft move's previous version still reads as stale: within SOFT_STALE_MAX_SECONDS of the move. */
  private softlyValid (version: Version): boolean {
    if (version.previous === undefined) return false
    return version.at === undefined || this.shared.serverNow() - version.at <= SOFT_STALE_MAX_SECONDS * 1000
  }

  /**
   * A miss's fence: the versions as they stand when it begins. The entry is stored under them,
   * so an invalidation anywhere in the fleet meanwhile (which moves one of them on) leaves it
   * a miss for every reader: nothing to check at store time.
   */
  async beginFill (key: string, tags: readonly string[]): Promise<Fence> {
    if (!this.shared.breaker.allows()) return undefined
    try {
      const [namespace, generation, ...tagVersions] = await Promise.all([
        this.version(NAMESPACE), this.version(generationOf(key)), ...tags.map((tag) => this.version(tagOf(tag)))
      ])
      const fence: VersionFence = { namespace, generation, tags: new Map(tags.map((tag, i) => [tag, tagVersions[i]])) }
      return fence
    } catch {
      return undefined
    }
  }

  async writeBytes (key: string, variant: string, bytes: Buffer, retention: number, _entry: CacheEntry, fence?: Fence): Promise<boolean> {
    const given = fence as VersionFence | undefined
    const [namespace, generation] = given !== undefined
      ? [given.namespace, given.generation]
      : await Promise.all([this.version(NAMESPACE), this.version(generationOf(key))])
    await this.store.write(this.store.entryKey(key, variant), wrapVersions(namespace + '\n' + generation, bytes), retention)
    return true
  }

  /** Each tag has a version; an entry remembers the versions it saw (at the miss's start) and is stale once any moved on. */
  async currentTagVersions (entry: CacheEntry, fence?: Fence): Promise<string[]> {
    const known = (fence as VersionFence | undefined)?.tags
    return await Promise.all(entry.tags.map((tag) => known?.get(tag) ?? this.version(tagOf(tag))))
  }

  async tagsStillValid (entry: CacheEntry): Promise<boolean | 'stale'> {
    const current = await Promise.all(entry.tags.map((tag) => this.store.read(this.store.versionKey(tagOf(tag)))))
    let verdict: boolean | 'stale' = true
    for (let i = 0; i < current.length; i++) {
      const bytes = current[i]
      if (bytes === null) return false
      const version = parseVersion(bytes)
      if (version.head === entry.tagVersions[i]) continue
      if (version.previous !== entry.tagVersions[i] || !this.softlyValid(version)) return false
      verdict = 'stale'
    }
    return verdict
  }

  /**
   * A tag's version says when it moved on: one moved on after the miss began (within what
   * instances' views of the backend's clock may differ by, counted as after) was invalidated
   * since. Only tags the miss's fence did not hold get here: versions cover route tags.
   */
  async tagsInvalidatedSince (tags: readonly string[], since: number): Promise<boolean> {
    const versions = await Promise.all(tags.map((tag) => this.store.read(this.store.versionKey(tagOf(tag)))))
    return versions.some((bytes) => {
      const at = bytes === null ? undefined : parseVersion(bytes).at
      return at !== undefined && at >= since - this.clockMarginMs
    })
  }

  async withdraw (key: string, variant: string): Promise<void> {
    await this.store.remove(this.store.entryKey(key, variant))
  }

  /**
   * Soft invalidation: the key's generation (or the tag's version) moves on but remembers the
   * one before, and entries stored under that one read as stale instead of missing. Only the
   * last soft move is remembered; clear() and patterns fall back to removal.
   */
  async markStale (target: ParsedTarget): Promise<void> {
    if (target.keys !== undefined) await this.shared.guarded(() => Promise.all((target.keys as string[]).map((key) => this.bumpSoftly(generationOf(key)))))
    else if (target.tags !== undefined) await this.shared.guarded(() => Promise.all((target.tags as string[]).map((tag) => this.bumpSoftly(tagOf(tag)))))
    else if (target.pattern !== undefined) await this.removePattern(target.pattern)
    else await this.removeAll()
  }

  /**
   * Moves a version on, remembering the one before. Compare-and-set, retried: a hard move
   * between the read and the write must not be undone (37 of 60 soft invalidations racing a
   * hard one once brought back the entry the hard one had removed, as stale).
   */
  private async bumpSoftly (name: string): Promise<void> {
    const key = this.store.versionKey(name)
    for (let attempt = 0; attempt < SOFT_BUMP_ATTEMPTS; attempt++) {
      const { value, token } = await this.readForUpdate(key)
      const head = value === null ? undefined : parseVersion(value).head
      const next = Buffer.from(head === undefined ? this.newVersion() : randomVersion() + '~' + head + '@' + String(this.shared.serverNow()))
      if (await this.writeIfUnchanged(key, next, token)) return await this.store.spreadVersion?.(key, next)
    }
    // Still racing after that: a hard move removes at least as much as the soft one would.
    await this.bump(name)
  }

  async removeKeys (keys: string[]): Promise<void> {
    // A new generation orphans every variant of the key at once.
    await this.shared.guarded(() => Promise.all(keys.map((key) => this.bump(generationOf(key)))))
  }

  async removeTags (tags: string[]): Promise<void> {
    await this.shared.guarded(() => Promise.all(tags.map((tag) => this.bump(tagOf(tag)))))
  }

  /** A fresh version, stamped with when it was made (the backend's clock): a miss that began earlier and stores its tag is withdrawn. */
  private newVersion (): string {
    return randomVersion() + '@' + String(this.shared.serverNow())
  }

  /** A new namespace version: every entry stored before is a miss from now on; then the store may free the space. */
  async removeAll (): Promise<void> {
    await this.shared.guarded(() => this.bump(NAMESPACE))
    await this.store.afterClear?.()
  }

  /**
   * The current value of a version (namespace, key generation or tag). One that was never moved
   * on (or was evicted) gets a fresh random value: a random value can never come back equal to
   * one an old entry remembers.
   */
  private async version (name: string): Promise<string> {
    const key = this.store.versionKey(name)
    const value = await this.store.read(key)
    if (value !== null) return parseVersion(value).head
    await this.store.writeIfAbsent(key, Buffer.from(randomVersion()), VERSION_RETENTION_SECONDS)
    const again = await this.store.read(key)
    if (again === null) throw new Error(this.shared.name + ' lost version ' + name)
    return parseVersion(again).head
  }

  private async bump (name: string): Promise<void> {
    await this.writeVersion(this.store.versionKey(name), Buffer.from(this.newVersion()))
  }

  /** Writes a version record (it never expires). */
  private async writeVersion (storageKey: string, value: Buffer): Promise<void> {
    if (this.store.writeVersion !== undefined) await this.store.writeVersion(storageKey, value)
    else await this.store.write(storageKey, value, VERSION_RETENTION_SECONDS)
  }
}

function generationOf (key: string): string {
  return 'gen\u0000' + key
}

function tagOf (tag: string): string {
  return 'tag\u0000' + tag
}

/** A version as read: its head, the one before a soft move, and when it was moved (ms, the backend's clock). */
interface Version {
  head: string
  previous: string | undefined
  at: number | undefined
}

/** A version as stored: `head`, or `head~previous` after a soft move, then `@time` when it was moved. */
function parseVersion (value: Buffer): Version {
  let text = value.toString('utf8')
  let at: number | undefined
  const stamp = text.lastIndexOf('@')
  if (stamp !== -1) {
    at = Number(text.slice(stamp + 1))
    if (!Number.isFinite(at)) at = undefined
    text = text.slice(0, stamp)
  }
  const cut = text.indexOf('~')
  return cut === -1 ? { head: text, previous: undefined, at } : { head: text.slice(0, cut), previous: text.slice(cut + 1), at }
}

/** Compare-and-set attempts of a soft move before it falls back to a hard one. */
const SOFT_BUMP_ATTEMPTS = 5

function randomVersion (): string {
  return Date.now().toString(36) + Math.random().toString(36).slice(2)
}

/** An envelope behind the versions it was stored under: [u16 length][versions][envelope]. */
function wrapVersions (versions: string, envelope: Buffer): Buffer {
  const text = Buffer.from(versions, 'utf8')
  const out = Buffer.allocUnsafe(2 + text.length + envelope.length)
  out.writeUInt16BE(text.length, 0)
  text.copy(out, 2)
  envelope.copy(out, 2 + text.length)
  return out
}

/** The envelope when it was stored under exactly these versions; null otherwise (or foreign bytes). */
function unwrapVersions (stored: Buffer, versions: string): Buffer | null {
  if (stored.length < 2) return null
  const length = stored.readUInt16BE(0)
  if (2 + length > stored.length || stored.toString('utf8', 2, 2 + length) !== versions) return null
  return stored.subarray(2 + length)
}
