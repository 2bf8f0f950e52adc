import { escapeGlob } from '../cache-key'
import { InvalidOptionError, PatternNotSupportedError } from '../errors'
import { checkObject, describe } from '../validate'
import { EmberCache, type ParsedTarget } from './cache'
import { sharedParts, withTimeout, type RemoteCacheOptions } from './shared-tier'
import type { SharedContext } from './shared-driver'
import { VersionedDriver, type VersionStore } from './versioned-driver'

/**
 * A store that moves bytes: what a custom backend implements (a database table, a file system,
 * another cache service). Keys are strings, values are Buffers; each method may answer
 * synchronously or with a promise, and may throw or reject: the cache then fails open. The cache
 * around it does everything else: the envelope, variants, tags, invalidation, timeouts, the
 * circuit breaker, single-flight.
 */
export interface CacheStore {
  /** The bytes stored under `key`, or null/undefined when there are none (or they expired). */
  get: (key: string) => Buffer | null | undefined | Promise<Buffer | null | undefined>
  /** Stores `value` under `key` for `ttl` seconds; 0 means no expiry. */
  set: (key: string, value: Buffer, ttl: number) => void | Promise<void>
  /** Removes `key` (nothing happens when it is absent). */
  delete: (key: string) => void | Promise<void>
  /**
   * Optional: stores `value` for `ttl` seconds only when `key` holds nothing, atomically.
   * Without it the cache uses get + set, which two instances may race (that only turns entries
   * stored meanwhile into misses).
   */
  add?: (key: string, value: Buffer, ttl: number) => void | Promise<void>
  /**
   * Optional: removes everything the store holds. `cache.clear()` calls it only for a cache
   * without keyPrefix (the store is then the cache's alone); with a prefix it uses deletePattern.
   */
  clear?: () => void | Promise<void>
  /**
   * Optional: removes every key matching a glob (`*`, `?`, `[...]`, backslash escapes, as Redis
   * MATCH reads them). With it, the cache supports pattern invalidation.
   */
  deletePattern?: (pattern: string) => void | Promise<void>
  /** Optional: opens connections; called once before first use. */
  connect?: () => void | Promise<void>
  /** Optional: closes connections; called when the cache closes. */
  close?: () => void | Promise<void>
}

export interface StoreCacheOptions extends RemoteCacheOptions {
  /** The store that holds the bytes. */
  store: CacheStore
}

const ENTRY_MARK = 'e:'
const VERSION_MARK = 'v:'

/**
 * A cache over a user's CacheStore, shared by every instance that uses the same store: a shared
 * tier over the version scheme (versioned-driver.ts) on the store.
 */
export class StoreCache extends EmberCache {
  readonly kind = 'store'

  constructor (options: StoreCacheOptions) {
    checkObject('StoreCache', options)
    super(options, sharedParts('StoreCache', 'store', options, (shared) => new VersionedDriver(shared, new UserStore(shared, options.store))))
  }
}

/**
 * A user's CacheStore as a store of the version scheme. Entries live at `<keyPrefix>e:<key>`
 * (plus `\0<variant>`), versions at `<keyPrefix>v:<name>`; every call is bounded by
 * commandTimeout, and a synchronous throw is a rejection.
 */
class UserStore implements VersionStore {
  private readonly backend: CacheStore
  private readonly keyPrefix: string

  constructor (private readonly shared: SharedContext, store: CacheStore) {
    this.keyPrefix = shared.keyPrefix
    if (store === null || typeof store !== 'object' ||
      typeof store.get !== 'function' || typeof store.set !== 'function' || typeof store.delete !== 'function') {
      throw new InvalidOptionError('StoreCache.store', 'expected an object with get(key), set(key, value, ttl) and delete(key) methods, got ' + describe(store))
    }
    for (const name of ['add', 'clear', 'deletePattern', 'connect', 'close'] as const) {
      if (store[name] !== undefined && typeof store[name] !== 'function') {
        throw new InvalidOptionError('StoreCache.store.' + name, 'expected a function when given, got ' + describe(store[name]))
      }
    }
    this.backend = store
  }

  async read (storageKey: string): Promise<Buffer | null> {
    const value = await this.call(() => this.backend.get(storageKey))
    if (value === null || value === undefined) return null
    if (!Buffer.isBuffer(value)) throw new TypeError('the store returned ' + describe(value) + ' from get(), not a Buffer')
    return value
  }

  async write (storageKey: string, value: Buffer, retention: number): Promise<void> {
    await this.call(() => this.backend.set(storageKey, value, retention))
  }

  async remove (storageKey: string): Promise<void> {
    await this.call(() => this.backend.delete(storageKey))
  }

  async writeIfAbsent (storageKey: string, value: Buffer, retention: number): Promise<void> {
    const add = this.backend.add
    if (add !== undefined) await this.call(() => add.call(this.backend, storageKey, value, retention))
    else if (await this.read(storageKey) === null) await this.write(storageKey, value, retention)
  }

  async removePattern (pattern: string): Promise<void> {
    const deletePattern = this.backend.deletePattern as NonNullable<CacheStore['deletePattern']>
    const prefix = escapeGlob(this.keyPrefix + ENTRY_MARK)
    // The pattern matches keys; their variants sit behind a NUL after the key.
    await this.shared.guarded(() => Promise.all([
      this.call(() => deletePattern.call(this.backend, prefix + pattern)),
      this.call(() => deletePattern.call(this.backend, prefix + pattern + '\u0000*'))
    ]))
  }

  /**
   * The namespace has moved on, so every entry is a miss whatever the store keeps. Then the space
   * is freed where that cannot touch other data: the prefix's keys by deletePattern, or the whole
   * store by clear() when the cache has no prefix (the store is its alone).
   */
  async afterClear (): Promise<void> {
    const { deletePattern, clear } = this.backend
    if (deletePattern !== undefined && this.keyPrefix !== '') {
      await this.shared.guarded(() => this.call(() => deletePattern.call(this.backend, escapeGlob(this.keyPrefix) + '*')))
    } else if (clear !== undefined && this.keyPrefix === '') {
      await this.shared.guarded(() => this.call(() => clear.call(this.backend)))
    }
  }

  checkSupported (target: ParsedTarget): void {
    if (target.pattern !== undefined && this.backend.deletePattern === undefined) throw new PatternNotSupportedError('this StoreCache (its store has no deletePattern)')
  }

  async connect (): Promise<void> {
    const connect = this.backend.connect
    if (connect !== undefined) await connect.call(this.backend)
  }

  async disconnect (): Promise<void> {
    const close = this.backend.close
    if (close !== undefined) await close.call(this.backend)
  }

  entryKey (key: string, variant: string): string {
    return this.keyPrefix + ENTRY_MARK + (variant === '' ? key : key + '\u0000' + variant)
  }

  versionKey (name: string): string {
    return this.keyPrefix + VERSION_MARK + name
  }

  /** One store call, bounded by commandTimeout; a synchronous throw becomes a rejection. */
  private async call<T> (run: () => T | Promise<T>): Promise<T> {
    return await withTimeout(Promise.resolve().then(run), this.shared.commandTimeout, this.shared.name)
  }
}
