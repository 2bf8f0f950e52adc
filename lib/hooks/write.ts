import type { FastifyReply, FastifyRequest } from 'fastify'
import { MissingPlaceholderError, urlKey } from '../cache-key'
import type { CacheEntry } from '../entry'
import { FLAG_COMPUTED_ETAG } from '../http-freshness'
import { computeEtag, parseCacheControl, refusalReason, storableHeaders } from '../http-semantics'
import { logInvalidationFailure, type TargetBuilder } from '../invalidation'
import type { RouteSettings } from '../options'
import { baseVariant, originOf } from '../variant'
import { bodyOf, responseEntryOf, tagsOf } from './response-entry'
import type { OnSendDone } from './serve'
import { encodeEntry, mayEncode, varyWithEncoding } from './encode'

/**
 * The onSend hook of a write route (any unsafe method): after a non-error answer (2xx, 3xx;
 * RFC 9111 §4.4), invalidate the GET entry of the same URL, those its Location and
 * Content-Location name on the same origin, and the declared targets; with writeThrough, a 2xx
 * is stored as the GET entry instead. Nothing happens when the handler failed.
 */
export function buildWriteHook (settings: RouteSettings, targets: TargetBuilder[], writeThrough: boolean) {
  const { cache } = settings
  return function emberCacheWrite (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: OnSendDone): void {
    const status = reply.statusCode
    if (status < 200 || status >= 400) return done(null, payload)
    const work: Array<Promise<void>> = []
    const key = ownKey(request, settings)
    if (key !== undefined) {
      const entry = writeThrough && status < 300 ? responseEntry(reply, payload, settings, request) : undefined
      if (entry !== undefined) {
        const encodable = mayEncode(settings, 200, entry.headers, entry.body, parseCacheControl(entry.headers['cache-control']))
        if (encodable) entry.headers.vary = varyWithEncoding(entry.headers.vary)
        // Every other variant of the key (other varyHeaders values, hosts, Vary learned by the
        // GET route) holds the old representation: drop them all, then store. invalidate()
        // is recorded first, so older misses in flight do not overwrite what this write stores.
        const variant = baseVariant(request, settings.variants)
        work.push(cache.invalidate({ key }).then(async () => {
          // The write's answer waits for its entry anyway: the codings are made first, in the pool.
          const encodings = encodable ? await encodeEntry(settings, entry) : undefined
          if (encodings !== undefined) entry.encodings = encodings
          await cache.store(key, variant, entry)
        }))
      } else {
        work.push(cache.invalidate({ key }))
      }
    }
    // RFC 9111 §4.4: the URIs in Location and Content-Location, when on our origin.
    for (const name of ['location', 'content-location']) {
      const target = sameOriginKey(request, reply.getHeader(name))
      if (target !== undefined && target !== key) work.push(cache.invalidate({ key: target }))
    }
    for (const build of targets) {
      for (const target of build(request)) work.push(cache.invalidate(target))
    }
    Promise.all(work).then(() => done(null, payload), (err: unknown) => {
      // The cache queued what it could not do and serves no hits until it has run it; the
      // write itself succeeded, so the client still gets its answer, told in Cache-Status.
      logInvalidationFailure(request.log, cache.name, err)
      if (settings.cacheStatus !== false) reply.header('cache-status', settings.cacheStatus + '; fwd=request; detail=invalidation-queued')
      done(null, payload)
    })
  }
}

/** The GET key of a Location/Content-Location URI on the request's own origin, or undefined. */
function sameOriginKey (request: FastifyRequest, value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined
  let base: URL
  let target: URL
  try {
    base = new URL(request.url, originOf(request))
    target = new URL(value, base)
  } catch {
    return undefined
  }
  if (target.origin !== base.origin) return undefined
  return urlKey('GET', target.pathname + target.search)
}

/** The key of the GET entry of the write's URL (or its template), undefined when it cannot be made. */
function ownKey (request: FastifyRequest, settings: RouteSettings): string | undefined {
  try {
    return settings.keyOf(request)
  } catch (err) {
    if (err instanceof MissingPlaceholderError) request.log.warn({ placeholder: err.placeholder }, 'ember-cache: the key template has no value for a placeholder in this write; its own entry is not invalidated')
    else request.log.warn({ err }, 'ember-cache: key could not be computed; its own entry is not invalidated')
    return undefined
  }
}

/** The 2xx response of a PUT/PATCH as a GET entry, or undefined when it may not be stored. */
function responseEntry (reply: FastifyReply, payload: unknown, settings: RouteSettings, request: FastifyRequest): CacheEntry | undefined {
  // RFC 9111 §3.5: an answer to a credentialed request is not shared unless the route vouches
  // (private, key, keyFn or varyHeaders with authorization), as on the read side.
  if (!settings.allowsAuthorization && request.headers.authorization !== undefined) return undefined
  // No payload (a 204) is nothing to read back: invalidate instead.
  const body = payload === null || payload === undefined ? undefined : bodyOf(payload)
  if (body === undefined || body.length > settings.maxEntryBytes) return undefined
  const headers = reply.getHeaders()
  if (refusalReason(reply.statusCode, settings.statusCodes, headers, parseCacheControl(headers['cache-control'])) !== undefined) return undefined
  const stored = storableHeaders(headers, settings.header, settings.perRequestHeaders)
  let flags = 0
  if (typeof stored.etag !== 'string') {
    stored.etag = computeEtag(body)
    flags = FLAG_COMPUTED_ETAG
  }
  // A 201 Created to a PUT is a 200 to the GET that reads it back.
  return responseEntryOf(settings, 200, stored, body, {
    ttl: settings.ttl, initialAge: 0, flags, staleWhileRevalidate: settings.staleWhileRevalidate, staleIfError: settings.staleIfError
  }, tagsOf(request, settings))
}
