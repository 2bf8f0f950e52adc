import { createHash } from 'node:crypto'
import memjs from 'memjs'
import type { CacheEntry } from '../entry'
import { InvalidOptionError, PatternNotSupportedError } from '../errors'
import { checkPositiveInteger, checkString, describe, checkObject } from '../validate'
import { RemoteCache, withTimeout, type RemoteCacheOptions } from './remote-cache'

export interface MemcachedCacheOptions extends RemoteCacheOptions {
  /** `'host1:11211,host2:11211'` or an array of `host:port`. Keys are spread across them. */
  servers?: string | string[]
  /** Single-server form, with `port`. */
  host?: string
  /** Single-server form, with `host`. Default 11211. */
  port?: number
  /** Clients (each with its own connections) used in turn. Default 1. */
  poolSize?: number
}

const MEMCACHED_OPTIONS = ['servers', 'host', 'port', 'poolSize']
// Memcached reads an expiry above 30 days as an absolute Unix time (memcached protocol.txt).
const MAX_RELATIVE_EXPIRY = 60 * 60 * 24 * 30
// Keys: at most 250 bytes, no spaces or control characters (memcached protocol.txt).
const MAX_KEY_BYTES = 250
// Leaves room for a hashed key ('sha256:' + 43 characters) within MAX_KEY_BYTES.
const MAX_PREFIX_BYTES = 100
const GENERATION_SUFFIX = '#gen'
const MEMJS_TIMEOUT_FACTOR = 10
const TAG_INFIX = '#tag:'

type MemjsClient = memjs.Client<string | Buffer, Buffer | null>

/**
 * Entries in Memcached, shared by every instance. Memcached has no scan and no sets, so
 * variants of a key are stored under the key's generation (invalidating the key starts a new
 * one), tags are versions checked when an entry is read, and pattern invalidation is refused
 * with a typed error.
 */
export class MemcachedCache extends RemoteCache {
  readonly kind = 'memcached'
  readonly servers: string
  private readonly clients: MemjsClient[]
  private turn = 0

  constructor (options: MemcachedCacheOptions) {
    checkObject('MemcachedCache', options)
    super('MemcachedCache', options, MEMCACHED_OPTIONS)
    checkString('MemcachedCache.host', options.host)
    checkPositiveInteger('MemcachedCache.port', options.port)
    checkPositiveInteger('MemcachedCache.poolSize', options.poolSize)
    // The prefix stays readable in front of hashed keys too, so it must itself be a safe, short key.
    if (this.keyPrefix !== '' && (Buffer.byteLength(this.keyPrefix) > MAX_PREFIX_BYTES || !isSafeKey(this.keyPrefix))) {
      throw new InvalidOptionError('MemcachedCache.keyPrefix', `expected at most ${MAX_PREFIX_BYTES} bytes without spaces or control characters, got ` + describe(this.keyPrefix))
    }
    this.servers = serverList(options)
    const poolSize = options.poolSize ?? 1
    this.clients = []
    for (let i = 0; i < poolSize; i++) {
      this.clients.push(memjs.Client.create(this.servers, {
        // memjs counts in seconds; our own timer (withTimeout) is the real bound. memjs only
        // end()s a socket it times out, so each of its timeouts against a hung server leaves a
        // half-open socket behind until the server wakes: let it time out rarely, not per probe.
        timeout: (this.commandTimeout * MEMJS_TIMEOUT_FACTOR) / 1000,
        conntimeout: this.connectTimeout / 1000,
        retries: 1,
        keepAlive: true,
        logger: { log: () => {} }
      }))
    }
  }

  protected async readBytes (key: string, variant: string): Promise<Buffer | null> {
    const storageKey = variant === '' ? this.storageKey(key) : await this.variantKey(key, variant)
    const { value } = await this.command((client) => client.get(storageKey))
    return value
  }

  protected async writeBytes (key: string, variant: string, bytes: Buffer, retention: number): Promise<void> {
    const storageKey = variant === '' ? this.storageKey(key) : await this.variantKey(key, variant)
    await this.command((client) => client.set(storageKey, bytes, { expires: expiryOf(retention) }))
  }

  /** Each tag has a version; an entry remembers the versions it saw and is stale once any moved on. */
  protected override async currentTagVersions (entry: CacheEntry): Promise<string[]> {
    return await Promise.all(entry.tags.map((tag) => this.version(TAG_INFIX + tag)))
  }

  protected override async tagsStillValid (entry: CacheEntry): Promise<boolean> {
    const current = await Promise.all(entry.tags.map((tag) => this.version(TAG_INFIX + tag)))
    return current.every((version, i) => version === entry.tagVersions[i])
  }

  protected async removeKeys (keys: string[]): Promise<void> {
    await this.guarded(() => Promise.all(keys.map(async (key) => {
      // Variants are found through the key's generation: a new one orphans them all at once.
      await Promise.all([
        this.command((client) => client.delete(this.storageKey(key))),
        this.bump(key + GENERATION_SUFFIX)
      ])
    })))
  }

  protected removePattern (): never {
    throw new PatternNotSupportedError('MemcachedCache')
  }

  protected async removeTags (tags: string[]): Promise<void> {
    await this.guarded(() => Promise.all(tags.map((tag) => this.bump(TAG_INFIX + tag))))
  }

  protected async connectBackend (): Promise<void> {
    // memjs connects on first use: ask every server for its version so onReady really waits.
    await Promise.all(this.clients.map((client) => client.get('ember:connect-probe')))
  }

  protected async disconnectBackend (): Promise<void> {
    for (const client of this.clients) {
      client.close()
      // close() only end()s: a socket to a hung (SIGSTOPped) server would wait for a FIN that
      // never comes and keep the process alive. error() destroys it and fails what is pending.
      for (const server of client.servers) server.error(new Error('memcached client closed'))
    }
  }

  /** The Memcached key of a variant: it includes the key's current generation. */
  private async variantKey (key: string, variant: string): Promise<string> {
    const generation = await this.version(key + GENERATION_SUFFIX)
    return this.storageKey(key + '#' + generation + '#' + variant)
  }

  /**
   * The current version of a tag or key generation. One that was never bumped (or was evicted)
   * gets a fresh random value: `add` keeps a concurrent writer's value, and a random value can
   * never come back equal to one an old entry remembers.
   */
  private async version (name: string): Promise<string> {
    const key = this.storageKey(name)
    const { value } = await this.command((client) => client.get(key))
    if (value !== null) return value.toString('utf8')
    await this.command((client) => client.add(key, randomVersion(), { expires: 0 }))
    const again = await this.command((client) => client.get(key))
    if (again.value === null) throw new Error('memcached lost version ' + name)
    return again.value.toString('utf8')
  }

  private async bump (name: string): Promise<void> {
    await this.command((client) => client.set(this.storageKey(name), randomVersion(), { expires: 0 }))
  }

  private command<T> (run: (client: MemjsClient) => Promise<T>): Promise<T> {
    const client = this.clients[this.turn]
    this.turn = (this.turn + 1) % this.clients.length
    return withTimeout(run(client), this.commandTimeout, 'memcached')
  }

  /** prefix + key, hashed when too long for Memcached or holding spaces or control characters. */
  private storageKey (key: string): string {
    const raw = this.keyPrefix + key
    // isSafeKey admits ASCII only, so its length in characters is its length in bytes.
    if (raw.length <= MAX_KEY_BYTES && isSafeKey(raw)) return raw
    return this.keyPrefix + 'sha256:' + createHash('sha256').update(raw).digest('base64url')
  }
}

function serverList (options: MemcachedCacheOptions): string {
  const { servers, host, port } = options
  if (servers !== undefined) {
    const list = Array.isArray(servers) ? servers : typeof servers === 'string' ? servers.split(',') : undefined
    if (list === undefined || list.length === 0 || list.some((server) => typeof server !== 'string' || server.trim() === '')) {
      throw new InvalidOptionError('MemcachedCache.servers', "expected 'host:port[,host:port]' or an array of them, got " + describe(servers))
    }
    return list.map((server) => server.trim()).join(',')
  }
  if (host !== undefined) return host + ':' + String(port ?? 11211)
  throw new InvalidOptionError('MemcachedCache', 'give servers, or host (and port)')
}

/** Printable ASCII without space (0x21-0x7e), at least one character. A loop: twice as fast as the regex per key. */
function isSafeKey (key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i)
    if (code < 0x21 || code > 0x7e) return false
  }
  return key.length > 0
}

function expiryOf (retention: number): number {
  if (retention <= MAX_RELATIVE_EXPIRY) return retention
  return Math.floor(Date.now() / 1000) + retention
}

function randomVersion (): string {
  return Date.now().toString(36) + Math.random().toString(36).slice(2)
}
