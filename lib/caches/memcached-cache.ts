import { createHash } from 'node:crypto'
import memjs from 'memjs'
import { InvalidOptionError, PatternNotSupportedError } from '../errors'
import { checkPositiveInteger, checkString, describe, checkObject } from '../validate'
import type { ParsedTarget } from './cache'
import { withTimeout, type RemoteCacheOptions } from './remote-cache'
import { VersionedCache } from './versioned-cache'

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

type MemjsClient = memjs.Client<string | Buffer, Buffer | null>

/**
 * Entries in Memcached, shared by every instance, with the version scheme of VersionedCache
 * (Memcached has no scan and no sets). Pattern invalidation is refused with a typed error.
 */
export class MemcachedCache extends VersionedCache {
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

  protected async read (storageKey: string): Promise<Buffer | null> {
    const { value } = await this.command((client) => client.get(storageKey))
    return value
  }

  protected async write (storageKey: string, value: Buffer, retention: number): Promise<void> {
    await this.command((client) => client.set(storageKey, value, { expires: expiryOf(retention) }))
  }

  protected async writeIfAbsent (storageKey: string, value: Buffer): Promise<void> {
    await this.command((client) => client.add(storageKey, value, { expires: 0 }))
  }

  protected removePattern (): never {
    throw new PatternNotSupportedError('MemcachedCache')
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

  private command<T> (run: (client: MemjsClient) => Promise<T>): Promise<T> {
    const client = this.clients[this.turn]
    this.turn = (this.turn + 1) % this.clients.length
    return withTimeout(run(client), this.commandTimeout, 'memcached')
  }

  /** Where an entry lives: readable when it can be, hashed when too long, odd or a variant. */
  protected entryKey (key: string, variant: string): string {
    if (variant === '') {
      const raw = this.keyPrefix + key
      // isSafeKey admits ASCII only, so its length in characters is its length in bytes.
      if (raw.length <= MAX_KEY_BYTES && isSafeKey(raw) && !key.startsWith(HASHED_ENTRY) && !key.startsWith(VERSION_MARK)) return raw
    }
    return this.keyPrefix + HASHED_ENTRY + hashOf('e\u0000' + key + '\u0000' + variant)
  }

  protected versionKey (name: string): string {
    return this.keyPrefix + VERSION_MARK + hashOf('v\u0000' + name)
  }
}

function hashOf (text: string): string {
  return createHash('sha256').update(text).digest('base64url')
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

/**
 * Memcached's expiry for `retention` seconds (0 = none). Memcached counts expiry on a clock
 * that ticks once a second, so an item given 1 s may vanish at the next tick, milliseconds
 * later (measured: 19 of 40 such items were gone within the second). One second more keeps
 * every item at least `retention`; freshness is checked from the entry's own storedAt anyway.
 */
function expiryOf (retention: number): number {
  if (retention === 0) return 0
  const seconds = retention + 1
  if (seconds <= MAX_RELATIVE_EXPIRY) return seconds
  return Math.floor(Date.now() / 1000) + seconds
}
