import { createHash } from 'node:crypto'
import type MemjsModule from 'memjs'
import { InvalidOptionError, PatternNotSupportedError } from '../errors'
import { checkPositiveInteger, checkString, describe } from '../validate'
import type { ParsedTarget } from './cache'
import { withTimeout } from './shared-tier'
import type { SharedContext } from './shared-driver'
import { VERSION_RETENTION_SECONDS, type VersionStore } from './versioned-driver'
import type { MemcachedCacheOptions } from './memcached-cache'
import { loadMemjs } from './backend-modules'

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

type MemjsClient = MemjsModule.Client<string | Buffer, Buffer | null>

/**
 * Memcached as a store of the version scheme (versioned-driver.ts: Memcached has no scan and no
 * sets). Pattern invalidation is refused with a typed error.
 *
 * Where a key lives does not depend on how the server list is written: each key goes to the
 * server that ranks highest for it by rendezvous hashing over the servers' names, so instances
 * that list the servers in another order agree, and adding or removing a server moves only
 * the keys that rank it first (about 1/n of them). Versions (what invalidation moves on) are
 * written to every server an instance knows and read from their key's own: an instance whose
 * list differs from another's during a rolling change still sees every invalidation made by
 * instances that know its server, and a server coming back into the list never serves versions
 * older than the invalidations made meanwhile.
 */
export class MemcachedStore implements VersionStore {
  readonly servers: string
  private readonly keyPrefix: string
  /** Per server (`host:port`), its clients, used in turn. */
  private readonly pools: Map<string, { clients: MemjsClient[], turn: number }>
  /** The servers' names, as placement ranks them. */
  private readonly names: string[]
  /** The largest item the servers hold, in bytes (memcached's -I, item_size_max). */
  private readonly itemBytes: number

  constructor (private readonly shared: SharedContext, options: MemcachedCacheOptions) {
    this.keyPrefix = shared.keyPrefix
    checkString('MemcachedCache.host', options.host)
    checkPositiveInteger('MemcachedCache.port', options.port)
    checkPositiveInteger('MemcachedCache.poolSize', options.poolSize)
    checkPositiveInteger('MemcachedCache.maxItemBytes', options.maxItemBytes)
    // The prefix stays readable in front of hashed keys too, so it must itself be a safe, short key.
    if (this.keyPrefix !== '' && (Buffer.byteLength(this.keyPrefix) > MAX_PREFIX_BYTES || !isSafeKey(this.keyPrefix))) {
      throw new InvalidOptionError('MemcachedCache.keyPrefix', `expected at most ${MAX_PREFIX_BYTES} bytes without spaces or control characters, got ` + describe(this.keyPrefix))
    }
    this.itemBytes = options.maxItemBytes ?? DEFAULT_ITEM_BYTES
    this.servers = serverList(options)
    this.names = [...new Set(this.servers.split(','))]
    const poolSize = options.poolSize ?? 1
    const memjs = loadMemjs()
    this.pools = new Map()
    for (const server of this.names) {
      const clients: MemjsClient[] = []
      for (let i = 0; i < poolSize; i++) {
        clients.push(memjs.Client.create(server, {
          // memjs counts in seconds; our own timer (withTimeout) is the real bound. memjs only
          // end()s a socket it times out, so each of its timeouts against a hung server leaves a
          // half-open socket behind until the server wakes: let it time out rarely, not per probe.
          timeout: (shared.commandTimeout * MEMJS_TIMEOUT_FACTOR) / 1000,
          conntimeout: shared.connectTimeout / 1000,
          retries: 1,
          // Never another server's: a key read elsewhere while its own is away comes back stale.
          failover: false,
          keepAlive: true,
          logger: { log: () => {} }
        }))
      }
      this.pools.set(server, { clients, turn: 0 })
    }
  }

  async read (storageKey: string): Promise<Buffer | null> {
    const { value } = await this.command(this.ownerOf(storageKey), (client) => client.get(storageKey))
    return value
  }

  async write (storageKey: string, value: Buffer, retention: number): Promise<void> {
    await this.command(this.ownerOf(storageKey), (client) => client.set(storageKey, value, { expires: this.expiryOf(retention) }))
  }

  async writeIfAbsent (storageKey: string, value: Buffer, retention: number): Promise<void> {
    await this.command(this.ownerOf(storageKey), (client) => client.add(storageKey, value, { expires: this.expiryOf(retention) }))
  }

  async remove (storageKey: string): Promise<void> {
    await this.command(this.ownerOf(storageKey), (client) => client.delete(storageKey))
  }

  /**
   * A version moved on: on every server. Done when its own server took it (the others matter
   * only to instances whose server list differs); a server that is down gets it no more than
   * it gets anything else, and comes back empty.
   */
  async writeVersion (storageKey: string, value: Buffer): Promise<void> {
    const others = this.spreadVersion(storageKey, value)
    await this.write(storageKey, value, VERSION_RETENTION_SECONDS)
    await others
  }

  async spreadVersion (storageKey: string, value: Buffer): Promise<void> {
    const owner = this.ownerOf(storageKey)
    await Promise.all(this.names.filter((server) => server !== owner).map((server) =>
      this.command(server, (client) => client.set(storageKey, value, { expires: this.expiryOf(VERSION_RETENTION_SECONDS) })).catch(() => {})))
  }

  async readForUpdate (storageKey: string): Promise<{ value: Buffer | null, token: unknown }> {
    return await this.command(this.ownerOf(storageKey), (client) => getsWithCas(client, storageKey))
  }

  async writeIfUnchanged (storageKey: string, value: Buffer, token: unknown): Promise<boolean> {
    return await this.command(this.ownerOf(storageKey), (client) => token === undefined
      ? client.add(storageKey, value, { expires: this.expiryOf(VERSION_RETENTION_SECONDS) }).then(() => true, () => false)
      : setWithCas(client, storageKey, value, token as Buffer))
  }

  /** Memcached keeps an item until a Unix time that must fit 32 bits (year 2106). */
  get maxRetentionSeconds (): number {
    return 0xffffffff - Math.floor(this.shared.serverNow() / 1000) - 2
  }

  get maxItemBytes (): number {
    return this.itemBytes
  }

  refusesEntry (err: unknown): boolean {
    return /too large|E2BIG/i.test((err as Error | undefined)?.message ?? '')
  }

  /** memcached's clock (its `stats` time: whole seconds), for entry ages every instance agrees on. */
  async serverTime (): Promise<number | undefined> {
    const client = (this.pools.get(this.names[0]) as { clients: MemjsClient[] }).clients[0]
    const time = await withTimeout(new Promise<string | undefined>((resolve, reject) => {
      client.stats((err, _server, stats) => { if (err !== null && err !== undefined) reject(err); else resolve(stats?.time) })
    }), this.shared.commandTimeout, 'memcached')
    // Up to two seconds behind: memcached adds whole seconds of its monotonic clock to its
    // start time in whole seconds, each floored (an entry's Age once read 3 for 5 s, with the
    // instant taken as the middle of one second). The instant is taken as the middle of two.
    return time === undefined ? undefined : Number(time) * 1000 + 1000
  }

  readonly clockMarginMs = 1_100

  async removePattern (): Promise<never> {
    throw new PatternNotSupportedError('MemcachedCache')
  }

  checkSupported (target: ParsedTarget): void {
    if (target.pattern !== undefined) throw new PatternNotSupportedError('MemcachedCache')
  }

  defaultName (): string {
    return 'memcached:' + this.keyPrefix + '@' + withoutCredentials(this.servers)
  }

  async connect (): Promise<void> {
    // memjs connects on first use: ask every server so onReady really waits.
    await Promise.all([...this.pools.values()].flatMap((pool) => pool.clients.map((client) => client.get('ember:connect-probe'))))
  }

  async disconnect (): Promise<void> {
    for (const pool of this.pools.values()) {
      for (const client of pool.clients) {
        client.close()
        // close() only end()s: a socket to a hung (SIGSTOPped) server would wait for a FIN that
        // never comes and keep the process alive. error() destroys it and fails what is pending.
        for (const server of client.servers) server.error(new Error('memcached client closed'))
      }
    }
  }

  /** The server `storageKey` lives on. */
  private ownerOf (storageKey: string): string {
    return placeKey(this.names, storageKey)
  }

  private command<T> (server: string, run: (client: MemjsClient) => Promise<T>): Promise<T> {
    const pool = this.pools.get(server) as { clients: MemjsClient[], turn: number }
    const client = pool.clients[pool.turn]
    pool.turn = (pool.turn + 1) % pool.clients.length
    return withTimeout(run(client), this.shared.commandTimeout, 'memcached')
  }

  /** Memcached's expiry for `retention` seconds (see expiryOf): absolute times on its own clock. */
  private expiryOf (retention: number): number {
    return expiryOf(retention, this.shared.serverNow())
  }

  /** Where an entry lives: readable when it can be, hashed when too long, odd or a variant. */
  entryKey (key: string, variant: string): string {
    if (variant === '') {
      const raw = this.keyPrefix + key
      // isSafeKey admits ASCII only, so its length in characters is its length in bytes.
      if (raw.length <= MAX_KEY_BYTES && isSafeKey(raw) && !key.startsWith(HASHED_ENTRY) && !key.startsWith(VERSION_MARK)) return raw
    }
    return this.keyPrefix + HASHED_ENTRY + hashOf('e\u0000' + key + '\u0000' + variant)
  }

  versionKey (name: string): string {
    return this.keyPrefix + VERSION_MARK + hashOf('v\u0000' + name)
  }
}

/** The server of `servers` a storage key lives on: the highest rendezvous rank of its name with the key. */
export function placeKey (servers: readonly string[], storageKey: string): string {
  let best = servers[0]
  let bestRank = -1
  for (const server of servers) {
    const rank = rendezvousRank(server, storageKey)
    if (rank > bestRank || (rank === bestRank && server < best)) {
      best = server
      bestRank = rank
    }
  }
  return best
}

/** A server's rank for a key (rendezvous hashing): FNV-1a of both, mixed. */
function rendezvousRank (server: string, key: string): number {
  let hash = 0x811c9dc5
  for (const text of [server, '\u0000', key]) {
    for (let i = 0; i < text.length; i++) {
      hash ^= text.charCodeAt(i)
      hash = Math.imul(hash, 0x01000193)
    }
  }
  // Finalizer (murmur3's): FNV's low bits alone rank servers poorly.
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  hash ^= hash >>> 16
  return hash >>> 0
}

/** A value and its CAS token, through memjs's request layer (its API has no gets). */
function getsWithCas (client: MemjsClient, key: string): Promise<{ value: Buffer | null, token: unknown }> {
  const raw = client as unknown as RawClient
  return new Promise((resolve, reject) => {
    raw.incrSeq()
    const request = loadMemjs().Utils.makeRequestBuffer(OP_GET, key, '', '', raw.seq)
    raw.perform(key, request, raw.seq, (err, response) => {
      if (err !== null && err !== undefined) return reject(err)
      if (response.header.status === STATUS_NOT_FOUND) return resolve({ value: null, token: undefined })
      if (response.header.status !== 0) return reject(new Error('memcached gets: status ' + String(response.header.status)))
      resolve({ value: response.val, token: Buffer.from(response.header.cas) })
    })
  })
}

/** Sets `key` only while its CAS token is `cas`; false when it changed (or went) meanwhile. */
function setWithCas (client: MemjsClient, key: string, value: Buffer, cas: Buffer): Promise<boolean> {
  const raw = client as unknown as RawClient
  return new Promise((resolve, reject) => {
    raw.incrSeq()
    const extras = Buffer.alloc(8)
    const request = loadMemjs().Utils.makeRequestBuffer(OP_SET, key, extras, value, raw.seq)
    cas.copy(request, 16)
    raw.perform(key, request, raw.seq, (err, response) => {
      if (err !== null && err !== undefined) return reject(err)
      const status = response.header.status
      if (status === 0) return resolve(true)
      if (status === STATUS_EXISTS || status === STATUS_NOT_FOUND) return resolve(false)
      reject(new Error('memcached cas: status ' + String(status)))
    })
  })
}

/** What is used of memjs's request layer (binary protocol). */
interface RawClient {
  seq: number
  incrSeq: () => void
  perform: (key: string, request: Buffer, seq: number, callback: (err: Error | null | undefined, response: { header: { status: number, cas: Buffer }, val: Buffer }) => void) => void
}

const OP_GET = 0x00
const OP_SET = 0x01
const STATUS_NOT_FOUND = 0x0001
const STATUS_EXISTS = 0x0002

/** memcached's default item size (1 MiB), the bound of what one entry may weigh. */
const DEFAULT_ITEM_BYTES = 1024 * 1024

/**
 * maxEntryBytes, by default, within one item: an entry's envelope (headers, codings) and key
 * take room besides the body.
 */
export function withItemDefaults (options: MemcachedCacheOptions): MemcachedCacheOptions {
  if (options === null || typeof options !== 'object' || options.maxEntryBytes !== undefined) return options
  const item = typeof options.maxItemBytes === 'number' ? options.maxItemBytes : DEFAULT_ITEM_BYTES
  return { ...options, maxEntryBytes: Math.max(1, item - ITEM_OVERHEAD_BYTES) }
}

/** Room kept in an item for the envelope's headers and the key. */
const ITEM_OVERHEAD_BYTES = 16 * 1024

/** A server list for names and logs: credentials (`user:pass@host`) left out. */
function withoutCredentials (servers: string): string {
  return servers.split(',').map((server) => server.replace(/^[^@]*@/, '')).join(',')
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
 * Beyond 30 days memcached reads an absolute Unix time: `now` is its clock's.
 */
function expiryOf (retention: number, now: number): number {
  if (retention === 0) return 0
  const seconds = retention + 1
  if (seconds <= MAX_RELATIVE_EXPIRY) return seconds
  return Math.floor(now / 1000) + seconds
}
