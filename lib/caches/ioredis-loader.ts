import type * as IoredisModule from 'ioredis'

/**
 * ioredis, loaded by the first RedisCache (or coherence bus) rather than with the plugin. Once
 * ioredis is loaded, V8 takes slow property paths inside Node's own stream code on every request
 * of the process (the trigger is in ioredis' command layer, utils/Commander.js; bench/README.md):
 * a memory-only app ran its misses ~15% slower for a library it never used.
 */
let ioredis: typeof IoredisModule | undefined
export function loadIoredis (): typeof IoredisModule {
  ioredis ??= require('ioredis') as typeof IoredisModule
  return ioredis
}
