import { createHash } from 'node:crypto'
import memjs from 'memjs'
import type { CacheEntry } from '../entry'
import { InvalidOptionError, PatternNotSupportedError } from '../errors'
import { checkPositiveInteger, checkString, describe, checkObject } from '../validate'
import type { ParsedTarget } from './cache'
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
const MEMJS_TIMEOUT_FACTOR = 10
// Storage keys come in three disjoint forms: readable entries (prefix + key), hashed entries
// (prefix + 'sha256:' + hash) and versions (prefix + '!' + hash). A readable key that looks like
// either hashed form is hashed too, so no key a caller chooses can land on another's record.
const HASHED_ENTRY = 'sha256:'
const VERSION_MARK = '!'
/** The version every entry of the cache carries: clear() moves it on. */
const NAMESPACE = 'ns'

type MemjsClient = memjs.Client<string | Buffer, Buffer | null>

/**
 * Entries in Memcached, shared by every instance. Memcached has no scan and no sets, so every
 * entry carries versions that invalidation moves on instead of deleting: the cache's namespace
 * (clear), its key's generation (invalidating the key drops every variant at once) and its tags'
 * versions. A lookup reads the entry, the namespace and the generation at once (one round trip);
 * a tagged entry costs one more for its tags. Pattern invalidation is refused with a typed error.
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
    // Three gets in flight at once: one round trip (memjs pipelines on each connection).
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
    const value = wrapVersions(namespace + '\n' + generation, bytes)
    await this.command((client) => client.set(this.entryKey(key, variant), value, { expires: expiryOf(retention) }))
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
    // A new generation orphans every variant of the key at once (they age out).
    await this.guarded(() => Promise.all(keys.map((key) => this.bump(generationOf(key)))))
  }

  protected removePattern (): never {
    throw new PatternNotSupportedError('MemcachedCache')
  }

  protected async removeTags (tags: string[]): Promise<void> {
    await this.guarded(() => Promise.all(tags.map((tag) => this.bump(tagOf(tag)))))
  }

  /** A new namespace version: every entry stored before is a miss from now on. No flush_all. */
  protected async removeAll (): Promise<void> {
    await this.guarded(() => this.bump(NAMESPACE))
  }

  protected override checkSupported (target: ParsedTarget): void {
    if (target.pattern !== undefined) throw new PatternNotSupportedError('MemcachedCache')
  }

  protected override defaultName (): string {
    return 'memcached:' + this.keyPrefix + '@' + this.servers
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

  /**
   * The current value of a version (namespace, key generation or tag). One that was never moved
   * on (or was evicted) gets a fresh random value: `add` keeps a concurrent writer's value, and
   * a random value can never come back equal to one an old entry remembers.
   */
  private async version (name: string): Promise<string> {
    const key = this.versionKey(name)
    const value = await this.read(key)
    if (value !== null) return value.toString('utf8')
    await this.command((client) => client.add(key, randomVersion(), { expires: 0 }))
    const again = await this.read(key)
    if (again === null) throw new Error('memcached lost version ' + name)
    return again.toString('utf8')
  }

  private async bump (name: string): Promise<void> {
    await this.command((client) => client.set(this.versionKey(name), randomVersion(), { expires: 0 }))
  }

  private async read (key: string): Promise<Buffer | null> {
    const { value } = await this.command((client) => client.get(key))
    return value
  }

  private command<T> (run: (client: MemjsClient) => Promise<T>): Promise<T> {
    const client = this.clients[this.turn]
    this.turn = (this.turn + 1) % this.clients.length
    return withTimeout(run(client), this.commandTimeout, 'memcached')
  }

  /** Where an entry lives: readable when it can be, hashed when too long, odd or a variant. */
  private entryKey (key: string, variant: string): string {
    if (variant === '') {
      const raw = this.keyPrefix + key
      // isSafeKey admits ASCII only, so its length in characters is its length in bytes.
      if (raw.length <= MAX_KEY_BYTES && isSafeKey(raw) && !key.startsWith(HASHED_ENTRY) && !key.startsWith(VERSION_MARK)) return raw
    }
    return this.keyPrefix + HASHED_ENTRY + hashOf('e\u0000' + key + '\u0000' + variant)
  }

  private versionKey (name: string): string {
    return this.keyPrefix + VERSION_MARK + hashOf('v\u0000' + name)
  }
}

function generationOf (key: string): string {
  return 'gen\u0000' + key
}

function tagOf (tag: string): string {
  return 'tag\u0000' + tag
}

function hashOf (text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

/** An envelope behind the versions it was stored under: [length][versions][envelope]. */
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
