import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { compileTemplate, escapeGlob } from './cache-key'
import type { EmberCache, InvalidationTarget } from './caches/cache'
import { InvalidOptionError, InvalidTargetError, PatternNotSupportedError } from './errors'

// Invalidation targets: compiled once per write route, and run over several caches at once
// (fastify.emberCache.invalidate, reply.cacheInvalidate). The write hook is in hooks/write.ts.

export type TargetBuilder = (request: FastifyRequest) => InvalidationTarget

/**
 * Compiles a route's `invalidate` list once. `{name}` fills from params/query; an entry with
 * glob characters is a pattern; `tags:a,b` names tags; anything else is a key.
 */
export function compileTargets (list: string[], cache: EmberCache, where: string): TargetBuilder[] {
  return list.map((text) => {
    if (text.startsWith('tags:')) {
      const builders = text.slice(5).split(',').map((tag) => compileTemplate(tag.trim()))
      return (request) => ({ tags: builders.map((build) => build(request)) })
    }
    if (/[*?[]/.test(text.replace(/\{[^{}]+\}/g, ''))) {
      if (cache.kind === 'memcached') {
        throw new InvalidOptionError(where, 'pattern ' + JSON.stringify(text) + ' cannot be used with a Memcached cache (no pattern invalidation); use keys or tags:')
      }
      // Request values fill in as literals: a param of `*` must not widen the pattern.
      const buildPattern = compileTemplate(text, escapeGlob)
      return (request) => ({ pattern: buildPattern(request) })
    }
    const build = compileTemplate(text)
    return (request) => ({ key: build(request) })
  })
}

/**
 * Invalidates on each cache. Backend failures are logged, not thrown: a request must not fail
 * because the cache is down. Mistakes in the target (bad shape, a pattern on Memcached) reject.
 */
export async function invalidateAll (caches: Iterable<EmberCache>, target: InvalidationTarget, log: FastifyBaseLogger): Promise<void> {
  const results = await Promise.allSettled([...caches].map((cache) => cache.invalidate(target)))
  let usageError: unknown
  for (const result of results) {
    if (result.status === 'fulfilled') continue
    if (result.reason instanceof InvalidTargetError || result.reason instanceof PatternNotSupportedError) usageError ??= result.reason
    else logInvalidationFailure(log, result.reason)
  }
  if (usageError !== undefined) throw usageError
}

export function logInvalidationFailure (log: FastifyBaseLogger, err: unknown): void {
  log.warn({ err }, 'ember-cache: invalidation failed; entries may stay until they expire')
}
