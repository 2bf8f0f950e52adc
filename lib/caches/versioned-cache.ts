import { softenedEnvelope, type CacheEntry } from '../entry'
import type { Fence, ParsedTarget } from './cache'
import { RemoteCache } from './remote-cache'

// A cache over a plain key-value store that can only get, set and delete single keys (Memcached,
// a custom store): no scan, no sets. Every entry carries versions that invalidation moves on
// instead of deleting: the cache's namespace (clear), its key's generation (invalidating the key
// drops every variant at once) and its tags' versions (inside the envelope). A lookup reads the
// entry, the namespace and the generation at once; a tagged entry costs one more read for its
// tags. Stale entries are never deleted: they age out, or the store evicts them.

/** The version every entry of the cache carries: clear() moves it on. */
const NAMESPACE = 'ns'

/** The versions a miss saw when it began. */
interface VersionFence {
  namespace: string
  generation: string
  tags: Map<string, string>
}

export abstract class VersionedCache extends RemoteCache {
  /** The bytes at `storageKey`, or null. May reject: the caller fails open. */
  protected abstract read (storageKey: string): Promise<Buffer | null>
  /** Stores bytes at `storageKey` for `retention` seconds (0 = no expiry). */
  protected abstract write (storageKey: string, value: Buffer, retention: number): Promise<void>
  /**
   * Stores `value` only when nothing is stored at `storageKey` yet, so that two instances
   * making the same version agree on one. Stores without such an operation may set: a lost race
   * only makes entries stored meanwhile misses, never serves a stale one.
   */
  protected abstract writeIfAbsent (storageKey: string, value: Buffer): Promise<void>
  /** Where the entry of `key` and `variant` lives. */
  protected abstract entryKey (key: string, variant: string): string
  /** Where the version called `name` lives. */
  protected abstract versionKey (name: string): string

  protected async readBytes (key: string, variant: string): Promise<Buffer | null> {
    // Three reads in flight at once: one round trip.
    const [stored, namespace, generation] = await Promise.all([
      this.read(this.entryKey(key, variant)),
      this.read(this.versionKey(NAMESPACE)),
      this.read(this.versionKey(generationOf(key)))
    ])
    if (stored === null || namespace === null || generation === null) return null
    const ns = parseVersion(namespace)
    const gen = parseVersion(generation)
    const current = unwrapVersions(stored, ns.head + '\n' + gen.head)
    if (current !== null) return current
    // Stored before the key's last soft invalidation: still there, but stale.
    if (gen.previous === undefined) return null
    const previous = unwrapVersions(stored, ns.head + '\n' + gen.previous)
    return previous === null ? null : softenedEnvelope(previous)
  }

  /**
   * A miss's fence: the versions as they stand when it begins. The entry is stored under them,
   * so an invalidation anywhere in the fleet meanwhile (which moves one of them on) leaves it
   * a miss for every reader: nothing to check at store time.
   */
  override async beginFill (key: string, tags: readonly string[]): Promise<Fence> {
    if (!this.breaker.allows()) return undefined
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

  protected async writeBytes (key: string, variant: string, bytes: Buffer, retention: number, _entry: CacheEntry, fence?: Fence): Promise<boolean> {
    const given = fence as VersionFence | undefined
    const [namespace, generation] = given !== undefined
      ? [given.namespace, given.generation]
      : await Promise.all([this.version(NAMESPACE), this.version(generationOf(key))])
    await this.write(this.entryKey(key, variant), wrapVersions(namespace + '\n' + generation, bytes), retention)
    return true
  }

  /** Each tag has a version; an entry remembers the versions it saw (at the miss's start) and is stale once any moved on. */
  protected override async currentTagVersions (entry: CacheEntry, fence?: Fence): Promise<string[]> {
    const known = (fence as VersionFence | undefined)?.tags
    return await Promise.all(entry.tags.map((tag) => known?.get(tag) ?? this.version(tagOf(tag))))
  }

  protected override async tagsStillValid (entry: CacheEntry): Promise<boolean | 'stale'> {
    const current = await Promise.all(entry.tags.map((tag) => this.read(this.versionKey(tagOf(tag)))))
    let verdict: boolean | 'stale' = true
    for (let i = 0; i < current.length; i++) {
      const version = current[i]
      if (version === null) return false
      const { head, previous } = parseVersion(version)
      if (head === entry.tagVersions[i]) continue
      if (previous !== entry.tagVersions[i]) return false
      verdict = 'stale'
    }
    return verdict
  }

  /**
   * Soft invalidation: the key's generation (or the tag's version) moves on but remembers the
   * one before, and entries stored under that one read as stale instead of missing. Only the
   * last soft move is remembered; clear() and patterns fall back to removal.
   */
  protected override async markStale (target: ParsedTarget): Promise<void> {
    if (target.keys !== undefined) await this.guarded(() => Promise.all((target.keys as string[]).map((key) => this.bumpSoftly(generationOf(key)))))
    else if (target.tags !== undefined) await this.guarded(() => Promise.all((target.tags as string[]).map((tag) => this.bumpSoftly(tagOf(tag)))))
    else await super.markStale(target)
  }

  private async bumpSoftly (name: string): Promise<void> {
    const current = await this.read(this.versionKey(name))
    const head = current === null ? undefined : parseVersion(current).head
    await this.write(this.versionKey(name), Buffer.from(head === undefined ? randomVersion() : randomVersion() + '~' + head), 0)
  }

  protected async removeKeys (keys: string[]): Promise<void> {
    // A new generation orphans every variant of the key at once.
    await this.guarded(() => Promise.all(keys.map((key) => this.bump(generationOf(key)))))
  }

  protected async removeTags (tags: string[]): Promise<void> {
    await this.guarded(() => Promise.all(tags.map((tag) => this.bump(tagOf(tag)))))
  }

  /** A new namespace version: every entry stored before is a miss from now on. */
  protected async removeAll (): Promise<void> {
    await this.guarded(() => this.bump(NAMESPACE))
  }

  /**
   * The current value of a version (namespace, key generation or tag). One that was never moved
   * on (or was evicted) gets a fresh random value: a random value can never come back equal to
   * one an old entry remembers.
   */
  private async version (name: string): Promise<string> {
    const key = this.versionKey(name)
    const value = await this.read(key)
    if (value !== null) return parseVersion(value).head
    await this.writeIfAbsent(key, Buffer.from(randomVersion()))
    const again = await this.read(key)
    if (again === null) throw new Error(this.kind + ' lost version ' + name)
    return parseVersion(again).head
  }

  private async bump (name: string): Promise<void> {
    await this.write(this.versionKey(name), Buffer.from(randomVersion()), 0)
  }
}

function generationOf (key: string): string {
  return 'gen\u0000' + key
}

function tagOf (tag: string): string {
  return 'tag\u0000' + tag
}

/** A version as stored: `head`, or `head~previous` after a soft move. */
function parseVersion (value: Buffer): { head: string, previous: string | undefined } {
  const text = value.toString('utf8')
  const cut = text.indexOf('~')
  return cut === -1 ? { head: text, previous: undefined } : { head: text.slice(0, cut), previous: text.slice(cut + 1) }
}

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
