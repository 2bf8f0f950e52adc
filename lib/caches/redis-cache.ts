import type { Redis, Cluster, RedisOptions, ClusterNode, ClusterOptions } from 'ioredis'
import type * as IoredisModule from 'ioredis'
import { randomUUID } from 'node:crypto'
import type { CacheEntry } from '../entry'
import { escapeGlob } from '../cache-key'
import { InvalidOptionError, InvalidTargetError } from '../errors'
import { checkBoolean, checkObject, checkPositiveInteger, checkString, describe } from '../validate'
import type { FillLock, ParsedTarget } from './cache'
import { RemoteCache, withTimeout, type RemoteCacheOptions } from './remote-cache'

/**
 * ioredis, loaded by the first RedisCache rather than with the plugin. Once ioredis is loaded,
 * V8 takes slow property paths inside Node's own stream code on every request of the process
 * (the trigger is in ioredis' command layer, utils/Commander.js; bench/README.md): a
 * memory-only app ran its misses ~15% slower for a library it never used.
 */
let ioredis: typeof IoredisModule | undefined
function loadIoredis (): typeof IoredisModule {
  ioredis ??= require('ioredis') as typeof IoredisModule
  return ioredis
}

export interface RedisCacheOptions extends RemoteCacheOptions {
  /** `redis://[:password@]host:port[/db]`. */
  url?: string
  /** ioredis connection options (host, port, password, tls, ...), merged over ours. */
  redisOptions?: RedisOptions
  /** Redis Cluster seed nodes; the cache then uses an ioredis Cluster client. */
  clusterNodes?: ClusterNode[]
  /** ioredis Cluster options, with `clusterNodes`. */
  clusterOptions?: ClusterOptions
  /** An existing ioredis Redis or Cluster client (for example `fastify.redis`). Not closed by us. */
  client?: Redis | Cluster
  /** Close a client passed in `client` when the app closes. Default false. */
  closeClient?: boolean
  /** Keys asked per SCAN step during pattern invalidation. Default 500. */
  scanCount?: number
  /**
   * Cross-instance stampede protection: one instance runs the handler per key, the others wait
   * for its entry. false turns it off. Default { ttl: 5000, wait: 5000, poll: 25 } (ms): a
   * holder that dies frees the key after `ttl`; a waiter runs the handler itself after `wait`.
   */
  lock?: boolean | { ttl?: number, wait?: number, poll?: number }
}

const REDIS_OPTIONS = ['url', 'redisOptions', 'clusterNodes', 'clusterOptions', 'client', 'closeClient', 'scanCount', 'lock']
// Tag sets live beside the entries. Entries are hashes and tag sets are sets, so pattern
// invalidation (SCAN ... TYPE hash) never takes a tag set for an entry.
const TAG_INFIX = '#tag:'
const LOCK_INFIX = '#fill:'
// Deletes the lock only if it still holds our token: a lock that expired and was taken by
// another instance must not be released by us.
const RELEASE_SCRIPT = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

/**
 * Entries in Redis, shared by every instance. One key per cache key: a hash whose fields are
 * the variants, so a key and all its variants expire and invalidate as one (one slot on a
 * Cluster). Tags are sets of keys. Pattern invalidation SCANs every master, never KEYS.
 */
export class RedisCache extends RemoteCache {
  readonly kind = 'redis'
  /** The ioredis client (Redis or Cluster). */
  readonly client: Redis | Cluster
  private readonly ownsClient: boolean
  private readonly scanCount: number
  /**
   * A client passed in keeps its own options: often no commandTimeout and an unbounded offline
   * queue, so a hung or down server would stall requests. Its commands get our timeout instead.
   */
  private readonly foreign: boolean

  constructor (options: RedisCacheOptions) {
    checkObject('RedisCache', options)
    super('RedisCache', options, REDIS_OPTIONS)
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
    if (lock !== undefined) this.fillLock = this.buildFillLock(lock)
    const lib = loadIoredis()
    if (options.client !== undefined) {
      if (!(options.client instanceof lib.Redis) && !(options.client instanceof lib.Cluster)) {
        throw new InvalidOptionError('RedisCache.client', 'expected an ioredis Redis or Cluster client, got ' + describe(options.client))
      }
      this.client = options.client
      this.ownsClient = options.closeClient ?? false
      this.foreign = true
      return
    }
    if (options.url === undefined && options.redisOptions === undefined && options.clusterNodes === undefined) {
      throw new InvalidOptionError('RedisCache', 'give one of url, redisOptions, clusterNodes or client')
    }
    this.ownsClient = true
    this.foreign = false
    const ours: RedisOptions = {
      lazyConnect: true,
      // Commands must fail fast while disconnected, not wait in an unbounded queue.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: this.commandTimeout,
      connectTimeout: this.connectTimeout,
      enableAutoPipelining: true,
      retryStrategy: (times) => Math.min(times * 100, 2000),
      // When QUIT fails (server down or hung), the socket is dropped after this, not after
      // ioredis' 2 s default, which kept a timer and a socket alive past app.close().
      disconnectTimeout: this.commandTimeout
    }
    if (options.clusterNodes !== undefined) {
      this.client = new lib.Cluster(options.clusterNodes, {
        lazyConnect: true,
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        clusterRetryStrategy: (times) => Math.min(times * 100, 2000),
        ...options.clusterOptions,
        redisOptions: { ...ours, ...options.clusterOptions?.redisOptions }
      })
    } else if (options.url !== undefined) {
      this.client = new lib.Redis(options.url, { ...ours, ...options.redisOptions })
    } else {
      this.client = new lib.Redis({ ...ours, ...options.redisOptions })
    }
    // ioredis emits 'error' on every failed reconnect; the breaker logs incidents instead.
    this.client.on('error', () => {})
  }

  protected async readBytes (key: string, variant: string): Promise<Buffer | null> {
    try {
      return await this.bounded(this.client.hgetBuffer(this.keyPrefix + key, variant))
    } catch (err) {
      // A key of another type under our entry's name is a miss, not a backend failure: counted
      // as one, a single such key would trip the breaker for the whole cache.
      if (isWrongType(err)) return null
      throw err
    }
  }

  protected async writeBytes (key: string, variant: string, bytes: Buffer, retention: number, entry: CacheEntry, replaced = false): Promise<void> {
    const redisKey = this.keyPrefix + key
    const writes: Array<Promise<unknown>> = [this.client.hset(redisKey, variant, bytes)]
    // The hash lives as long as its longest-lived variant; each variant's own freshness is
    // checked from its envelope when read.
    if (retention > 0) writes.push(this.client.expire(redisKey, retention))
    else writes.push(this.client.persist(redisKey))
    for (const tag of entry.tags) {
      const tagKey = this.keyPrefix + TAG_INFIX + tag
      writes.push(this.client.sadd(tagKey, key))
      if (retention > 0) {
        // Keep the tag set at least as long as any entry it names (GT on an existing TTL,
        // NX on a new set).
        writes.push(this.client.expire(tagKey, retention, 'GT'), this.client.expire(tagKey, retention, 'NX'))
      } else writes.push(this.client.persist(tagKey))
    }
    try {
      await this.bounded(Promise.all(writes))
    } catch (err) {
      if (replaced || !isWrongType(err)) throw err
      // Replace the foreign key like any stale value (once: a writer racing us keeps it).
      await this.client.unlink(redisKey)
      await this.writeBytes(key, variant, bytes, retention, entry, true)
    }
  }

  protected async removeKeys (keys: string[]): Promise<void> {
    // One UNLINK per key: on a Cluster, keys live in different slots.
    await this.guarded(() => this.bounded(Promise.all(keys.map((key) => this.client.unlink(this.keyPrefix + key)))))
  }

  protected async removePattern (pattern: string): Promise<void> {
    const match = escapeGlob(this.keyPrefix) + pattern
    await this.guarded(() => Promise.all(this.masters().map((node) => this.scanAndUnlink(node, match, 'hash'))))
  }

  /** Every key under the prefix, whatever its type: entries, tag sets and fill locks. */
  protected async removeAll (): Promise<void> {
    const match = escapeGlob(this.keyPrefix) + '*'
    await this.guarded(() => Promise.all(this.masters().map((node) => this.scanAndUnlink(node, match, undefined))))
  }

  protected override checkSupported (target: ParsedTarget): void {
    if (target.clear === true && !this.canClear()) {
      throw new InvalidTargetError('clear() on a RedisCache without a keyPrefix would remove every hash on the server; give the cache a keyPrefix of its own')
    }
  }

  protected override canClear (): boolean {
    return this.keyPrefix !== ''
  }

  protected override defaultName (): string {
    const options = this.client.options as { host?: string, port?: number } | undefined
    const where = this.client instanceof loadIoredis().Cluster ? 'cluster' : String(options?.host ?? '') + ':' + String(options?.port ?? '')
    return 'redis:' + this.keyPrefix + '@' + where
  }

  protected async removeTags (tags: string[]): Promise<void> {
    await this.guarded(async () => {
      for (const tag of tags) {
        const tagKey = this.keyPrefix + TAG_INFIX + tag
        const keys = await this.bounded(this.client.smembers(tagKey))
        await this.bounded(Promise.all(keys.map((key) => this.client.unlink(this.keyPrefix + key))))
        // Only the members read above: deleting the set also dropped keys tagged meanwhile, which
        // then escaped every later invalidation of the tag. An emptied set is removed by Redis.
        if (keys.length > 0) await this.bounded(this.client.srem(tagKey, ...keys))
      }
    })
  }

  protected async connectBackend (): Promise<void> {
    const status = this.client.status
    if (status === 'wait' || status === 'end') await this.client.connect()
    else if (status !== 'ready') await waitUntilReady(this.client)
  }

  protected async disconnectBackend (): Promise<void> {
    if (!this.ownsClient) return
    try {
      await this.client.quit()
    } catch {
      // Already gone (server down): make sure no reconnect timer outlives the app.
      this.client.disconnect()
    }
  }

  private buildFillLock ({ ttl, wait, poll }: Required<LockSettings>): FillLock {
    const lockKey = (key: string, variant: string): string => this.keyPrefix + key + LOCK_INFIX + variant
    return {
      wait,
      poll,
      acquire: async (key, variant) => {
        if (this.breaker.isOpen) return randomUUID() // backend down: nobody to collapse with
        const token = randomUUID()
        const taken = await this.bounded(this.client.set(lockKey(key, variant), token, 'PX', ttl, 'NX'))
        return taken === 'OK' ? token : undefined
      },
      release: (key, variant, token) => {
        this.client.eval(RELEASE_SCRIPT, 1, lockKey(key, variant), token).catch(() => {
          // The lock expires by itself after `ttl`.
        })
      },
      isHeld: async (key, variant) => await this.bounded(this.client.exists(lockKey(key, variant))) === 1
    }
  }

  /** Our own client times out by itself (ioredis commandTimeout); a foreign one gets ours. */
  private bounded<T> (command: Promise<T>): Promise<T> {
    return this.foreign ? withTimeout(command, this.commandTimeout, 'redis') : command
  }

  private masters (): Redis[] {
    return this.client instanceof loadIoredis().Cluster ? this.client.nodes('master') : [this.client]
  }

  /** SCAN (never KEYS) one node for `match`, of one type or any, and unlink what it finds. */
  private async scanAndUnlink (node: Redis, match: string, type: 'hash' | undefined): Promise<void> {
    let cursor = '0'
    do {
      const [next, keys] = type === undefined
        ? await this.bounded(node.scan(cursor, 'MATCH', match, 'COUNT', this.scanCount))
        : await this.bounded(node.scan(cursor, 'MATCH', match, 'COUNT', this.scanCount, 'TYPE', type))
      cursor = next
      // Keys from one master may still sit in different slots: unlink them one by one, pipelined.
      if (keys.length > 0) await this.bounded(Promise.all(keys.map((key) => node.unlink(key))))
    } while (cursor !== '0')
  }
}

interface LockSettings { ttl?: number, wait?: number, poll?: number }

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
