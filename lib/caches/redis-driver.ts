import type { Redis, Cluster, RedisOptions, ClusterNode, ClusterOptions } from 'ioredis'
import { createHash, randomUUID } from 'node:crypto'
import { ENTRY_RESPONSE, ENVELOPE_FLAGS_OFFSET, ENVELOPE_LAYOUT, ENVELOPE_SWR_OFFSET, SOFT_STALE_MAX_SECONDS, SOFT_STALE_WINDOW, type CacheEntry } from '../entry'
import { FLAG_STALE } from '../http-freshness'
import { escapeGlob } from '../cache-key'
import { InvalidOptionError } from '../errors'
import { checkBoolean, checkObject, checkPositiveInteger, checkString, describe } from '../validate'
import { BYPASS, type Fence, type FillLock, type ParsedTarget } from './cache'
import type { BusConnections, SharedContext, SharedDriver } from './shared-driver'
import type { BusPublisher, BusSubscriber } from './bus'
import { loadIoredis } from './backend-modules'
import type { ClusterNodeLike, RedisClientLike } from './redis-client'
import { OPAQUE_CONNECTION_ERRORS, probeNodes } from './connect-probe'
import { withTimeout } from './shared-tier'
import type { RedisCacheOptions } from './redis-cache'

// Every name a cache keeps starts with its prefix and a NUL: a cache owns exactly its own keys,
// whatever prefixes others on the server use (`api:` and `api:v2:` are `api:\0...` and
// `api:v2:\0...`: clearing one never touches the other, nor anything that is not ours). An
// entry is `<prefix>\0<key>`; tag sets and fill locks are `<prefix>\0\0tag:...` and
// `<prefix>\0\0fill:...`: no key holds a NUL (URL keys cannot; template values are escaped; a
// keyFn's or cache-aside key with one is refused), so no request reaches them (a URL with
// `#fill:` in it once planted a hash at another key's lock). Entries are hashes, tag sets sets
// and locks strings, so pattern invalidation (SCAN ... TYPE hash) never takes one for an entry.
const OWN = '\u0000'
const TAG_INFIX = OWN + '\u0000tag:'
/**
 * The invalidation epoch: a counter every tag invalidation moves on (a key without expiry, which
 * noeviction and volatile-ttl never evict), and per tag the epoch of its last invalidation. A
 * miss notes the epoch when it begins; when it stores, a tag of its entry invalidated at a
 * later epoch withdraws it (exact: one counter, no clocks).
 */
const EPOCH_NAME = OWN + '\u0000epoch'
const TAG_EPOCH_INFIX = OWN + '\u0000tagv:'
/** Eviction policies that never drop a tag set before the entries it names. */
const SAFE_EVICTION = new Set(['noeviction', 'volatile-ttl'])
/** How long a tag's last invalidation epoch is kept: longer than any miss runs. */
const TAG_EPOCH_KEEP_SECONDS = 600
// A miss's fill lock is a field of its entry's hash, `\0lock:<variant>` = `<expiry ms on the
// server's clock>:<token>`: one key, so the fence, the lock and the read the holder must make
// before it runs the handler go in one script and one round trip (one slot on a Cluster).
// Invalidating the key removes the hash, lock included (a miss then in flight does not store:
// its fence went too). Variants never start with a NUL, so no lock field is one.
const LOCK_FIELD = '\u0000lock:'
// ARGV: fence field, new fence, fence hash ttl (s), lock field, token, lock ttl (ms), field to read.
// Returns { fence, 1 when the lock is ours, the field read }.
const FILL_SCRIPT = `local fence = redis.call('HGET', KEYS[1], ARGV[1])
if not fence then
  local existed = redis.call('EXISTS', KEYS[1])
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  if existed == 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
  fence = ARGV[2]
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local held = redis.call('HGET', KEYS[1], ARGV[4])
local taken = 0
if not held or tonumber(string.match(held, '^(%d+):') or '0') <= now then
  redis.call('HSET', KEYS[1], ARGV[4], tostring(now + tonumber(ARGV[6])) .. ':' .. ARGV[5])
  taken = 1
end
return { fence, taken, redis.call('HGET', KEYS[1], ARGV[7]) }`
// Deletes the lock only if it still holds our token: a lock that expired and was taken by
// another instance must not be released by us.
const RELEASE_SCRIPT = `local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and string.sub(held, -string.len(ARGV[2]) - 1) == ':' .. ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`
const HELD_SCRIPT = `local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then return 0 end
local time = redis.call('TIME')
if tonumber(string.match(held, '^(%d+):') or '0') > tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) then return 1 end
return 0`
// A miss's fence lives in the entry's own hash (one slot on a Cluster): invalidating the key, a
// pattern matching it, a tag of it (its key joined the tag's set when the miss began) or
// everything removes the hash and the fence with it. Concurrent misses share one fence. An
// entry's hash keeps the expiry its store gave it (its retention is a hard bound: refreshes
// that kept failing once pushed a softly invalidated entry's life back to 5 minutes each
// time); a fence alone, on a key with no entry, lives FENCE_KEEP_SECONDS.
const FENCE_FIELD = '\u0000fence'
/** A hash made for a fence lives this long: longer than any handler runs. */
const FENCE_KEEP_SECONDS = 300
const FENCE_SCRIPT = `local fence = redis.call('HGET', KEYS[1], ARGV[1])
if fence then return fence end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if existed == 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return ARGV[2]`
// Soft invalidation of one key: its fence goes (misses in flight do not store), and every
// response envelope in the hash is marked stale (FLAG_STALE) with an unbounded
// stale-while-revalidate window, in place (offsets: ENVELOPE_FLAGS_OFFSET, ENVELOPE_SWR_OFFSET),
// for what is left of its retention, and at most SOFT_STALE_MAX_SECONDS (ARGV[2]).
const SOFT_SCRIPT = softScript()

/**
 * SOFT_SCRIPT, from the envelope's own layout (entry.ts): Lua strings count from 1, so a byte at
 * offset N is `string.byte(value, N + 1)`. Built, not copied: a change of layout changes it too.
 */
function softScript (): string {
  const { magic, versions, fixedBytes, kindOffset } = ENVELOPE_LAYOUT
  const flagsAt = ENVELOPE_FLAGS_OFFSET + 1
  const swrAt = ENVELOPE_SWR_OFFSET + 1
  const window = [24, 16, 8, 0].map((shift) => (SOFT_STALE_WINDOW >>> shift) & 255).join(', ')
  return `redis.call('HDEL', KEYS[1], ARGV[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl == -1 or ttl > tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local value = fields[i + 1]
  if string.len(value) >= ${fixedBytes} and string.byte(value, 1) == ${magic[0]} and string.byte(value, 2) == ${magic[1]} and (string.byte(value, 3) == ${versions[0]} or string.byte(value, 3) == ${versions[1]}) and string.byte(value, ${kindOffset + 1}) == ${ENTRY_RESPONSE} then
    local flags = bit.bor(string.byte(value, ${flagsAt}), ${FLAG_STALE})
    redis.call('HSET', KEYS[1], fields[i], string.sub(value, 1, ${flagsAt - 1}) .. string.char(flags) .. string.sub(value, ${flagsAt + 1}, ${swrAt - 1}) .. string.char(${window}) .. string.sub(value, ${swrAt + 4}))
  end
end
return 1`
}
// Stores a variant only while the miss's fence is still in the hash.
const FENCED_STORE_SCRIPT = `if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
if ARGV[5] == '0' then redis.call('PERSIST', KEYS[1]) else redis.call('EXPIRE', KEYS[1], ARGV[5]) end
return 1`

/**
 * Entries in Redis, shared by every instance. One key per cache key: a hash whose fields are
 * the variants, so a key and all its variants expire and invalidate as one (one slot on a
 * Cluster). Tags are sets of keys. Pattern invalidation SCANs every master, never KEYS.
 */
export class RedisDriver implements SharedDriver {
  /** The ioredis client (Redis or Cluster): the one passed in, or the one this driver made. */
  readonly client: RedisClientLike
  readonly fillLock: FillLock | undefined
  readonly hasOwnBus = true
  /** Route tags too are checked when a miss stores (its fence does not hold them). */
  readonly fencesRouteTags = false
  private readonly keyPrefix: string
  private readonly ownsClient: boolean
  private readonly scanCount: number
  /**
   * Commands that need our own timer. A client passed in keeps its own options: often no
   * commandTimeout and an unbounded offline queue, so a hung or down server would stall
   * requests. A Cluster holds a command through slot refreshes and redirections before any
   * node's commandTimeout starts (found by test/faults-under-load.test.ts: reads took 1.5 s
   * while a master restarted).
   */
  private readonly timed: boolean

  constructor (private readonly shared: SharedContext, options: RedisCacheOptions) {
    this.keyPrefix = shared.keyPrefix
    checkString('RedisCache.url', options.url)
    checkObject('RedisCache.redisOptions', options.redisOptions)
    checkObject('RedisCache.clusterOptions', options.clusterOptions)
    checkBoolean('RedisCache.closeClient', options.closeClient)
    checkPositiveInteger('RedisCache.scanCount', options.scanCount)
    if (options.clusterNodes !== undefined && (!Array.isArray(options.clusterNodes) || options.clusterNodes.length === 0)) {
      throw new InvalidOptionError('RedisCache.clusterNodes', 'expected a non-empty array of cluster nodes, got ' + describe(options.clusterNodes))
    }
    this.scanCount = options.scanCount ?? 500
    const lock = lockOptions(options.lock)
    this.fillLock = lock === undefined ? undefined : this.buildFillLock(lock)
    if ('client' in options) {
      this.client = checkClient(options.client)
      this.ownsClient = options.closeClient ?? false
      this.timed = true
      this.seedNodes = isCluster(this.client) ? (this.client.startupNodes as ClusterNodeLike[] | undefined) ?? [] : []
      this.watchConnection()
      return
    }
    if (options.url === undefined && options.redisOptions === undefined && options.clusterNodes === undefined) {
      throw new InvalidOptionError('RedisCache', 'give one of url, redisOptions, clusterNodes or client')
    }
    const lib = loadIoredis()
    this.ownsClient = true
    this.timed = options.clusterNodes !== undefined
    this.seedNodes = options.clusterNodes ?? []
    const ours: RedisOptions = {
      lazyConnect: true,
      // Commands must fail fast while disconnected, not wait in an unbounded queue.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: shared.commandTimeout,
      connectTimeout: shared.connectTimeout,
      enableAutoPipelining: true,
      retryStrategy: (times) => Math.min(times * 100, 2000),
      // When QUIT fails (server down or hung), the socket is dropped after this, not after
      // ioredis' 2 s default, which kept a timer and a socket alive past app.close().
      disconnectTimeout: shared.commandTimeout
    }
    if (options.clusterNodes !== undefined) {
      this.client = new lib.Cluster(options.clusterNodes as ClusterNode[], {
        lazyConnect: true,
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        clusterRetryStrategy: (times) => Math.min(times * 100, 2000),
        ...options.clusterOptions as ClusterOptions,
        redisOptions: { ...ours, ...options.clusterOptions?.redisOptions }
      }) as unknown as RedisClientLike
    } else if (options.url !== undefined) {
      this.client = new lib.Redis(options.url, { ...ours, ...options.redisOptions }) as unknown as RedisClientLike
    } else {
      this.client = new lib.Redis({ ...ours, ...options.redisOptions }) as unknown as RedisClientLike
    }
    this.watchConnection()
  }

  /** The client, as ioredis's types describe it (inside only: the public types are structural). */
  private get redis (): Redis | Cluster {
    return this.client as unknown as Redis | Cluster
  }

  /** The connection's comings and goings: queued invalidations run when it is back, and the cache settles. */
  private watchConnection (): void {
    this.client.on('ready', () => {
      this.socketError = undefined
      this.shared.backendReady()
    })
    this.client.on('close', () => { this.shared.backendLost() })
    // ioredis emits 'error' on every failed reconnect: kept to name the cause of the failures
    // that follow (the breaker logs the incident once).
    this.client.on('error', (err: Error) => { if (!OPAQUE_CONNECTION_ERRORS.test(err.message)) this.socketError = err })
  }

  /** The last socket error of the client since it was last ready (ECONNREFUSED...). */
  private socketError: Error | undefined
  /** A Cluster's seed nodes, probed when it cannot connect (ioredis keeps the cause from us). */
  private readonly seedNodes: ClusterNodeLike[]

  /** The client's last socket error stands behind ioredis's opaque messages. */
  failureCause (err: unknown): unknown {
    if (this.socketError !== undefined && OPAQUE_CONNECTION_ERRORS.test(String((err as Error | undefined)?.message))) return this.socketError
    return err
  }

  /** A Cluster that cannot connect says no more: its seed nodes are probed. */
  async connectFailureCause (err: unknown): Promise<unknown> {
    if (this.socketError === undefined && this.seedNodes.length > 0 && OPAQUE_CONNECTION_ERRORS.test(String((err as Error | undefined)?.message))) {
      this.socketError = await probeNodes(this.seedNodes, this.shared.connectTimeout)
    }
    return this.failureCause(err)
  }

  async readBytes (key: string, variant: string): Promise<Buffer | null> {
    try {
      return await this.bounded(this.redis.hgetBuffer(this.entryName(key), variant))
    } catch (err) {
      // A key of another type under our entry's name is a miss, not a backend failure: counted
      // as one, a single such key would trip the breaker for the whole cache.
      if (isWrongType(err)) return null
      throw err
    }
  }

  /**
   * The miss's fence in the entry's hash. Tags are not touched: a miss that is never stored (a
   * 404 under a crawler) must leave nothing unbounded behind (tag sets named every such key,
   * without expiry); tag invalidations that race it are caught when it stores (tag epochs).
   */
  async beginFill (key: string): Promise<Fence> {
    if (!this.shared.breaker.allows()) return undefined
    try {
      const [fence, epoch] = await this.bounded(Promise.all([
        this.script(FENCE_SCRIPT, this.entryName(key), [FENCE_FIELD, randomUUID(), FENCE_KEEP_SECONDS]),
        this.redis.get(this.keyPrefix + EPOCH_NAME)
      ]))
      const value: RedisFence = { fence: fence as string, epoch: Number(epoch ?? 0) }
      return value
    } catch {
      // Fail open: without a fence the store is not checked, as it was before fences.
      return undefined
    }
  }

  async writeBytes (key: string, variant: string, bytes: Buffer, retention: number, entry: CacheEntry, fence?: Fence, replaced = false): Promise<boolean> {
    const redisKey = this.entryName(key)
    const writes: Array<Promise<unknown>> = []
    const fenced = (fence as RedisFence | undefined)?.fence
    if (fenced !== undefined) {
      writes.push(this.script(FENCED_STORE_SCRIPT, redisKey, [FENCE_FIELD, fenced, variant, bytes, retention]))
    } else {
      writes.push(this.redis.hset(redisKey, variant, bytes))
      // The hash lives as long as its longest-lived variant; each variant's own freshness is
      // checked from its envelope when read.
      if (retention > 0) writes.push(this.redis.expire(redisKey, retention))
      else writes.push(this.redis.persist(redisKey))
    }
    if (entry.tags.length > 0) this.warnIfTagSetsEvictable()
    for (const tag of entry.tags) {
      const tagKey = this.keyPrefix + TAG_INFIX + tag
      writes.push(this.redis.sadd(tagKey, key))
      if (retention > 0) {
        // Keep the tag set at least as long as any entry it names (GT on an existing TTL,
        // NX on a new set).
        writes.push(this.redis.expire(tagKey, retention, 'GT'), this.redis.expire(tagKey, retention, 'NX'))
      } else writes.push(this.redis.persist(tagKey))
    }
    try {
      const [stored] = await this.bounded(Promise.all(writes))
      // 0: an invalidation removed the fence since the miss began; the (older) response is not stored.
      return stored !== 0
    } catch (err) {
      if (replaced || !isWrongType(err)) throw err
      // Replace the foreign key like any stale value (once: a writer racing us keeps it).
      await this.redis.unlink(redisKey)
      return await this.writeBytes(key, variant, bytes, retention, entry, undefined, true)
    }
  }

  /** script(), with its reply's strings as Buffers (entries are binary). */
  private async scriptBuffer (lua: string, key: string, args: Array<string | number | Buffer>): Promise<unknown> {
    const sha = scriptSha(lua)
    try {
      return await (this.redis as unknown as BufferScripts).evalshaBuffer(sha, 1, key, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await (this.redis as unknown as BufferScripts).evalBuffer(lua, 1, key, ...args)
    }
  }

  /** Runs a Lua script on one key: by its SHA1 when Redis knows it, else by its text. */
  private async script (lua: string, key: string, args: Array<string | number | Buffer>): Promise<unknown> {
    const sha = scriptSha(lua)
    try {
      return await this.redis.evalsha(sha, 1, key, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await this.redis.eval(lua, 1, key, ...args)
    }
  }

  async removeKeys (keys: string[]): Promise<void> {
    // One UNLINK per key: on a Cluster, keys live in different slots.
    await this.shared.guarded(() => this.bounded(Promise.all(keys.map((key) => this.redis.unlink(this.entryName(key))))))
  }

  async removePattern (pattern: string): Promise<void> {
    const match = escapeGlob(this.keyPrefix) + OWN + pattern
    await this.shared.guarded(() => Promise.all(this.masters().map((node) => this.scanAndUnlink(node, match, 'hash'))))
  }

  /** Soft invalidation: each named key's envelopes are marked stale in place (SOFT_SCRIPT). */
  async markStale (target: ParsedTarget): Promise<void> {
    await this.shared.guarded(async () => {
      const keys: string[] = []
      if (target.keys !== undefined) keys.push(...target.keys.map((key) => this.entryName(key)))
      else if (target.tags !== undefined) {
        await this.noteTagsInvalidated(target.tags)
        for (const tag of target.tags) {
          const members = await this.bounded(this.redis.smembers(this.keyPrefix + TAG_INFIX + tag))
          keys.push(...members.map((key) => this.entryName(key)))
        }
      } else {
        const match = escapeGlob(this.keyPrefix) + OWN + (target.pattern ?? '*')
        await Promise.all(this.masters().map((node) => this.scanKeys(node, match, 'hash', async (found) => { keys.push(...found) })))
      }
      await this.bounded(Promise.all(keys.map((key) => this.script(SOFT_SCRIPT, key, [FENCE_FIELD, SOFT_STALE_MAX_SECONDS]))))
    })
  }

  /** Every key under the prefix, whatever its type: entries, tag sets and fill locks. */
  async removeAll (): Promise<void> {
    const match = escapeGlob(this.keyPrefix) + OWN + '*'
    await this.shared.guarded(() => Promise.all(this.masters().map((node) => this.scanAndUnlink(node, match, undefined))))
  }

  /**
   * Notes when these tags were invalidated, before their entries go: a miss that began earlier
   * and stores one of them later (a tag only its response named) withdraws its entry.
   */
  private async noteTagsInvalidated (tags: readonly string[]): Promise<void> {
    const epoch = String(await this.bounded(this.redis.incr(this.keyPrefix + EPOCH_NAME)))
    await this.bounded(Promise.all(tags.map((tag) => this.redis.set(this.keyPrefix + TAG_EPOCH_INFIX + tag, epoch, 'EX', TAG_EPOCH_KEEP_SECONDS))))
  }

  async tagsInvalidatedSince (tags: readonly string[], _since: number, inner: Fence): Promise<boolean> {
    const began = (inner as RedisFence | undefined)?.epoch
    if (began === undefined) return false
    const epochs = await this.bounded(Promise.all(tags.map((tag) => this.redis.get(this.keyPrefix + TAG_EPOCH_INFIX + tag))))
    return epochs.some((epoch) => epoch !== null && Number(epoch) > began)
  }

  async withdraw (key: string, variant: string): Promise<void> {
    await this.bounded(this.redis.hdel(this.entryName(key), variant))
  }

  async serverTime (): Promise<number | undefined> {
    const [seconds, micros] = await this.bounded(this.masters()[0].time())
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
  }

  /** Where the entry of `key` lives (OWN above). */
  private entryName (key: string): string {
    return this.keyPrefix + OWN + key
  }

  /** The bus publishes on the cache's own client and listens (with an L1) on a duplicate of it. */
  ownBusConnections (listen: boolean): BusConnections {
    const publisher = this.redis as unknown as BusPublisher
    if (!listen) return { publisher, subscriber: undefined, own: false }
    const subscriber = isCluster(this.client) ? (this.redis as Cluster).duplicate() : (this.redis as Redis).duplicate()
    subscriber.on('error', () => {})
    return { publisher, subscriber: subscriber as unknown as BusSubscriber, own: false }
  }

  defaultName (): string {
    const options = this.redis.options as { host?: string, port?: number } | undefined
    const where = isCluster(this.client) ? 'cluster' : String(options?.host ?? '') + ':' + String(options?.port ?? '')
    return 'redis:' + this.keyPrefix + '@' + where
  }

  async removeTags (tags: string[]): Promise<void> {
    this.warnIfTagSetsEvictable()
    await this.shared.guarded(async () => {
      await this.noteTagsInvalidated(tags)
      for (const tag of tags) {
        const tagKey = this.keyPrefix + TAG_INFIX + tag
        const keys = await this.bounded(this.redis.smembers(tagKey))
        await this.bounded(Promise.all(keys.map((key) => this.redis.unlink(this.entryName(key)))))
        // Only the members read above: deleting the set also dropped keys tagged meanwhile, which
        // then escaped every later invalidation of the tag. An emptied set is removed by Redis.
        if (keys.length > 0) await this.bounded(this.redis.srem(tagKey, ...keys))
      }
    })
  }

  async connect (): Promise<void> {
    const status = this.redis.status
    if (status === 'wait' || status === 'end') await this.redis.connect()
    else if (status !== 'ready') await waitUntilReady(this.redis)
    this.evictionPolicy = await this.bounded(this.masters()[0].config('GET', 'maxmemory-policy'))
      .then((reply) => String((reply as string[])[1] ?? 'unknown'), () => 'unknown (CONFIG GET refused)')
  }

  /** The server's maxmemory-policy, read at connect. */
  private evictionPolicy: string | undefined
  private warnedEviction = false

  /**
   * Tag invalidation finds a tag's entries through its tag set: a policy that may evict the set
   * while its entries stay (every allkeys-* policy, and volatile-lru/lfu/random: tag sets expire
   * too) makes a later tag invalidation miss them. noeviction and volatile-ttl (tag sets outlive
   * their entries) never do. Said once, when tags are first used.
   */
  private warnIfTagSetsEvictable (): void {
    if (this.warnedEviction || this.evictionPolicy === undefined || SAFE_EVICTION.has(this.evictionPolicy)) return
    this.warnedEviction = true
    this.shared.log.warn({ cache: this.shared.name, maxmemoryPolicy: this.evictionPolicy }, `ember-cache: Redis maxmemory-policy is ${this.evictionPolicy}: it may evict a tag set and keep the entries it names, which a tag invalidation then misses; use noeviction or volatile-ttl (README, "Operations")`)
  }

  async disconnect (): Promise<void> {
    if (!this.ownsClient) return
    try {
      await this.redis.quit()
    } catch {
      // Already gone (server down): make sure no reconnect timer outlives the app.
      this.redis.disconnect()
    }
  }

  private buildFillLock ({ ttl, wait, poll }: Required<LockSettings>): FillLock {
    /** Takes the lock (and the miss's fence) and reads `readField`, in one script. */
    const fill = async (key: string, variant: string, token: string, readField: string): Promise<{ taken: boolean, bytes: Buffer | null }> => {
      try {
        const [, taken, bytes] = await this.bounded(this.scriptBuffer(FILL_SCRIPT, this.entryName(key),
          [FENCE_FIELD, randomUUID(), FENCE_KEEP_SECONDS, LOCK_FIELD + variant, token, ttl, readField])) as [Buffer, number, Buffer | null]
        return { taken: taken === 1, bytes }
      } catch (err) {
        // A key of another type under our entry's name: a miss (its store replaces it), not a failing backend.
        if (isWrongType(err)) return { taken: true, bytes: null }
        throw err
      }
    }
    return {
      wait,
      poll,
      acquire: async (key, variant) => {
        if (this.shared.breaker.isOpen) return randomUUID() // backend down: nobody to collapse with
        const token = randomUUID()
        return (await fill(key, variant, token, '')).taken ? token : undefined
      },
      acquireAndRead: async (key, variant) => {
        // Backend down, or a script that fails: run the handler (fail open), nobody to wait for.
        const token = randomUUID()
        let taken = true
        const found = await this.shared.readShared(key, variant, async () => {
          const result = await fill(key, variant, token, variant)
          taken = result.taken
          return result.bytes
        }, this, undefined)
        return { token: taken || found === BYPASS ? token : undefined, found }
      },
      release: (key, variant, token) => {
        this.shared.track(this.script(RELEASE_SCRIPT, this.entryName(key), [LOCK_FIELD + variant, token]).catch(() => {
          // The lock expires by itself after `ttl`.
        }))
      },
      isHeld: async (key, variant) => await this.bounded(this.script(HELD_SCRIPT, this.entryName(key), [LOCK_FIELD + variant])) === 1
    }
  }

  /** Our own single-node client times out by itself (ioredis commandTimeout); others get ours. */
  private bounded<T> (command: Promise<T>): Promise<T> {
    return this.timed ? withTimeout(command, this.shared.commandTimeout, 'redis') : command
  }

  private masters (): Redis[] {
    return isCluster(this.client) ? (this.redis as Cluster).nodes('master') : [this.redis as Redis]
  }

  /** SCAN (never KEYS) one node for `match`, of one type or any, and unlink what it finds. */
  private async scanAndUnlink (node: Redis, match: string, type: 'hash' | undefined): Promise<void> {
    // Keys from one master may still sit in different slots: unlink them one by one, pipelined.
    await this.scanKeys(node, match, type, async (keys) => { await this.bounded(Promise.all(keys.map((key) => node.unlink(key)))) })
  }

  /** SCANs one node for `match` (of one type or any), handing each batch found to `each`. */
  private async scanKeys (node: Redis, match: string, type: 'hash' | undefined, each: (keys: string[]) => Promise<void>): Promise<void> {
    let cursor = '0'
    do {
      const [next, keys] = type === undefined
        ? await this.bounded(node.scan(cursor, 'MATCH', match, 'COUNT', this.scanCount))
        : await this.bounded(node.scan(cursor, 'MATCH', match, 'COUNT', this.scanCount, 'TYPE', type))
      cursor = next
      if (keys.length > 0) await each(keys)
    } while (cursor !== '0')
  }
}

interface LockSettings { ttl?: number, wait?: number, poll?: number }

/** ioredis has the Buffer forms of EVAL and EVALSHA; its declarations do not say so. */
interface BufferScripts {
  evalshaBuffer: (sha: string, keys: number, ...args: Array<string | number | Buffer>) => Promise<unknown>
  evalBuffer: (lua: string, keys: number, ...args: Array<string | number | Buffer>) => Promise<unknown>
}

/** A miss's fence on Redis: the fence field's value in the entry's hash, and the invalidation epoch when it began. */
interface RedisFence {
  fence: string
  epoch: number
}

function lockOptions (lock: RedisCacheOptions['lock']): Required<LockSettings> | undefined {
  if (lock === false) return undefined
  if (lock !== undefined && lock !== true) {
    if (typeof lock !== 'object' || lock === null) throw new InvalidOptionError('RedisCache.lock', 'expected a boolean or { ttl, wait, poll }, got ' + describe(lock))
    checkPositiveInteger('RedisCache.lock.ttl', lock.ttl)
    checkPositiveInteger('RedisCache.lock.wait', lock.wait)
    checkPositiveInteger('RedisCache.lock.poll', lock.poll)
  }
  const given = typeof lock === 'object' ? lock : {}
  return { ttl: given.ttl ?? 5000, wait: given.wait ?? 5000, poll: given.poll ?? 25 }
}

const shas = new Map<string, string>()
function scriptSha (lua: string): string {
  let sha = shas.get(lua)
  if (sha === undefined) {
    sha = createHash('sha1').update(lua).digest('hex')
    shas.set(lua, sha)
  }
  return sha
}

function isWrongType (err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('WRONGTYPE')
}

function waitUntilReady (client: Redis | Cluster): Promise<void> {
  return new Promise((resolve, reject) => {
    const onReady = (): void => { cleanup(); resolve() }
    const onEnd = (): void => { cleanup(); reject(new Error('redis connection ended')) }
    const cleanup = (): void => {
      client.off('ready', onReady)
      client.off('end', onEnd)
    }
    client.once('ready', onReady)
    client.once('end', onEnd)
  })
}

/** Commands (and events) the cache uses of a client it is given: checked, by what it can do. */
const CLIENT_METHODS = ['hgetBuffer', 'hset', 'hdel', 'get', 'set', 'incr', 'expire', 'persist', 'exists', 'unlink', 'sadd', 'srem', 'smembers', 'evalsha', 'eval', 'publish', 'duplicate', 'quit', 'disconnect', 'on', 'off', 'once']

/**
 * A client given in `client`: any ioredis 5 or 6 Redis or Cluster, from any copy of ioredis
 * (an `instanceof` against ours refused ioredis 5 clients, and clients from a second copy).
 */
function checkClient (client: unknown): RedisClientLike {
  if (client === undefined || client === null) {
    throw new InvalidOptionError('RedisCache.client', 'is ' + String(client) + ': when it comes from a plugin (fastify.redis from @fastify/redis), create the cache after `await app.register(...)` of that plugin, or use { mode: \'redis\' } routes, which use fastify.redis by themselves')
  }
  const missing = CLIENT_METHODS.filter((name) => typeof (client as Record<string, unknown>)[name] !== 'function')
  if (typeof client !== 'object' || missing.length > 0 || typeof (client as { status?: unknown }).status !== 'string') {
    throw new InvalidOptionError('RedisCache.client', 'expected an ioredis (5 or 6) Redis or Cluster client' + (missing.length > 0 ? ' (lacks ' + missing.join(', ') + ')' : '') + ', got ' + describe(client))
  }
  return client as RedisClientLike
}

/** ioredis's Cluster says it is one (`isCluster`), in version 5 and 6 alike. */
function isCluster (client: RedisClientLike): boolean {
  return client.isCluster === true
}
