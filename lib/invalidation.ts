import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { compileTemplate, escapeGlob, variantOf } from './cache-key'
import type { EmberCache, InvalidationTarget } from './caches/cache'
import type { CacheEntry } from './entry'
import { InvalidOptionError, InvalidTargetError, PatternNotSupportedError } from './errors'
import { computeEtag, parseCacheControl, refusalReason, storableHeaders } from './http-semantics'
import type { RouteSettings } from './options'
import { responseEntryOf, tagsOf } from './route-hooks'

// Invalidation: declarative (write routes clear what they change) and imperative
// (reply.cacheInvalidate, cache.invalidate).

type TargetBuilder = (request: FastifyRequest) => InvalidationTarget

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
 * The onSend hook of a write route (POST/PUT/PATCH/DELETE): after a 2xx answer, invalidate the
 * GET entry of the same URL and the declared targets; with writeThrough, store the answer as
 * that GET entry instead. Nothing happens when the handler failed.
 */
export function buildWriteHook (settings: RouteSettings, targets: TargetBuilder[], writeThrough: boolean) {
  const { cache } = settings
  return function emberCacheWrite (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void): void {
    const status = reply.statusCode
    if (status < 200 || status >= 300) return done(null, payload)
    let key: string
    try {
      key = settings.keyOf(request)
    } catch (err) {
      request.log.warn({ err }, 'ember-cache: key could not be computed; nothing invalidated')
      return done(null, payload)
    }
    const work: Array<Promise<void>> = []
    const entry = writeThrough ? responseEntry(reply, payload, settings, request) : undefined
    if (entry !== undefined) {
      const variant = settings.varyHeaders.length > 0 ? variantOf(request, settings.varyHeaders) : ''
      // Every other variant of the key (other varyHeaders values, Vary learned by the GET route)
      // holds the old representation: drop them all, then store. invalidate() bumps the epoch,
      // so older misses in flight do not overwrite what this write stores.
      work.push(cache.invalidate({ key }).then(() => cache.store(key, variant, entry)))
    } else {
      work.push(cache.invalidate({ key }))
    }
    for (const target of targets) work.push(cache.invalidate(target(request)))
    Promise.all(work).then(() => done(null, payload), (err: unknown) => {
      logInvalidationFailure(request.log, err)
      done(null, payload)
    })
  }
}

/** The 2xx response of a PUT/PATCH as a GET entry, or undefined when it may not be stored. */
function responseEntry (reply: FastifyReply, payload: unknown, settings: RouteSettings, request: FastifyRequest): CacheEntry | undefined {
  // RFC 9111 §3.5: an answer to a credentialed request is not shared unless the route vouches
  // (private, key, keyFn or varyHeaders with authorization), as on the read side.
  if (!settings.allowsAuthorization && request.headers.authorization !== undefined) return undefined
  const body = typeof payload === 'string' ? Buffer.from(payload) : Buffer.isBuffer(payload) ? payload : undefined
  if (body === undefined || body.length > settings.maxEntryBytes) return undefined
  const headers = reply.getHeaders()
  if (refusalReason(reply.statusCode, settings.statusCodes, headers, parseCacheControl(headers['cache-control'])) !== undefined) return undefined
  const stored = storableHeaders(headers, settings.header, settings.perRequestHeaders)
  if (typeof stored.etag !== 'string') stored.etag = computeEtag(body)
  // A 201 Created to a PUT is a 200 to the GET that reads it back.
  return responseEntryOf(settings, 200, stored, body, settings.ttl, tagsOf(request, settings))
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

function logInvalidationFailure (log: FastifyBaseLogger, err: unknown): void {
  log.warn({ err }, 'ember-cache: invalidation failed; entries may stay until they expire')
}
