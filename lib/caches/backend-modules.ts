import type * as IoredisModule from 'ioredis'
import type * as MemjsModule from 'memjs'
import { InvalidOptionError } from '../errors'

// The backends' client libraries are optional peers: an app that caches in memory installs
// neither, and never loads nor type-checks them (the public types are structural:
// redis-client.ts). Each is loaded by the first cache that needs it. Loading ioredis with the
// plugin also made every request of a memory-only process slower: once ioredis is loaded, V8
// takes slow property paths inside Node's own stream code (the trigger is in ioredis' command
// layer, utils/Commander.js; bench/README.md).

let ioredis: typeof IoredisModule | undefined
let memjs: typeof MemjsModule | undefined

/** ioredis (5 or 6), or an error saying what to install. */
export function loadIoredis (who = 'RedisCache'): typeof IoredisModule {
  ioredis ??= load<typeof IoredisModule>('ioredis', who, "npm install ioredis (versions 5 and 6 both work; @fastify/redis's client can be passed as `client`)")
  return ioredis
}

/** memjs, or an error saying what to install. */
export function loadMemjs (): typeof MemjsModule {
  memjs ??= load<typeof MemjsModule>('memjs', 'MemcachedCache', 'npm install memjs')
  return memjs
}

function load<T> (name: string, who: string, install: string): T {
  try {
    return require(name) as T
  } catch (err) {
    if ((err as { code?: string }).code !== 'MODULE_NOT_FOUND') throw err
    throw new InvalidOptionError(who, `needs the ${name} package, which is not installed: ${install}`)
  }
}
