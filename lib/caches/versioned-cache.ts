import type { CacheEntry } from '../entry'
import { RemoteCache } from './remote-cache'

// A cache over a plain key-value store that can only get, set and delete single keys (Memcached,
// a custom store): no scan, no sets. Every entry carries versions that invalidation moves on
// instead of deleting: the cache's namespace (clear), its key's generation (invalidating the key
// drops every variant at once) and its tags' versions (inside the envelope). A lookup reads the
// entry, the namespace and the generation at once; a tagged entry costs one more read for its
// tags. Stale entries are never deleted: they age out, or the store evicts them.

/** The version every entry of the cache carries: clear() moves it on. */
const NAMESPACE = 'ns'

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
    return unwrapVersions(stored, namespace.toString('utf8') + '\n' + generation.toString('utf8'))
  }

  protected async writeBytes (key: string, variant: string, bytes: Buffer, retention: number): Promise<void> {
    const [namespace, generation] = await Promise.all([this.version(NAMESPACE), this.version(generationOf(key))])
    await this.write(this.entryKey(key, variant), wrapVersions(namespace + '\n' + generation, bytes), retention)
  }

  /** Each tag has a version; an entry remembers the versions it saw and is stale once any moved on. */
  protected override async currentTagVersions (entry: CacheEntry): Promise<string[]> {
    return await Promise.all(entry.tags.map((tag) => this.version(tagOf(tag))))
  }

  protected override async tagsStillValid (entry: CacheEntry): Promise<boolean> {
    const current = await Promise.all(entry.tags.map((tag) => this.read(this.versionKey(tagOf(tag)))))
    return current.every((version, i) => version !== null && version.toString('utf8') === entry.tagVersions[i])
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
    if (value !== null) return value.toString('utf8')
    await this.writeIfAbsent(key, Buffer.from(randomVersion()))
    const again = await this.read(key)
    if (again === null) throw new Error(this.kind + ' lost version ' + name)
    return again.toString('utf8')
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
