import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { MissingPlaceholderError, targetKey, urlKey } from '../cache-key'
import type { CacheEntry } from '../entry'
import { FLAG_COMPUTED_ETAG, FLAG_ENCODE_LATER } from '../http-freshness'
import { computeEtag, parseCacheControl, refusalReason, storableHeaders, type Directives } from '../http-semantics'
import { logInvalidationFailure, type TargetBuilder } from '../invalidation'
import type { RouteSettings } from '../options'
import type { InvalidationTarget } from '../caches/cache'
import type { EdgeSettings } from '../edge/settings'
import { markWrite } from '../read-your-writes'
import { ownKeysOf, type OwnTarget } from '../read-routes'
import { COOKIE_NAME_PREFIX, baseVariant, originOf } from '../variant'
import { CacheRequest, setState, stateOf } from './request-state'
import { ReadObserver, type ObservePlan } from './read-observer'
import { watchAnswer } from './answer'
import { bodyOf, responseEntryOf, tagsOf } from './response-entry'
import type { OnSendDone } from './serve'
import { mayEncode, varyWithEncoding } from './encode'

/**
 * The preHandler of a writeThrough route: what its handler reads of its caller decides whether
 * its answer may become the read route's shared entry (it is observed as a read's miss is).
 */
export function buildWriteObserverHook (settings: RouteSettings, plan: ObservePlan) {
  return function emberCacheWriteObserver (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const state = new CacheRequest(settings, request, NO_DIRECTIVES)
    state.observer = new ReadObserver(plan, request)
    setState(request, state)
    watchAnswer(state, reply)
    state.observer.start()
    done()
  }
}

const NO_DIRECTIVES: Directives = new Map()

/** A write route's own targets, resolved once the app is ready (read-routes.ts). */
export interface OwnTargets {
  targets: readonly OwnTarget[]
}

/**
 * The onSend hook of a write route (any unsafe method): after a non-error answer (2xx, 3xx;
 * RFC 9111 §4.4), invalidate the entry its read route keeps for the same URL (however that route
 * keys it), those its Location and Content-Location name on the same origin, and the declared
 * targets; with writeThrough, a 2xx is stored as the read route's entry instead, when the
 * handler read nothing of its caller that the read route's key lacks. Nothing happens when the
 * handler failed.
 */
export function buildWriteHook (settings: RouteSettings, targets: TargetBuilder[], own: OwnTargets) {
  const { cache } = settings
  return function emberCacheWrite (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: OnSendDone): void {
    const status = reply.statusCode
    if (status < 200 || status >= 400) return done(null, payload)
    const work: Array<Promise<void>> = []
    /** What the edge in front must drop too (a write-through key included: its edge copy is old). */
    const edgeTargets: InvalidationTarget[] = []
    const writeThrough = settings.writeThrough && status < 300
    const ownKeys = ownKeysOf(own.targets, request, (err) => warnOwnKey(request, err))
    for (const { target, key } of ownKeys) {
      const written = writeThrough && readNothingUnkeyed(request, target) ? responseEntry(reply, payload, settings, target, request) : undefined
      work.push(written === undefined ? target.cache.invalidate({ key }) : writeEntry(request, target.reader ?? settings, target, key, written))
      edgeTargets.push({ key })
    }
    // RFC 9111 §4.4: the URIs in Location and Content-Location, when on our origin.
    for (const name of ['location', 'content-location']) {
      const target = sameOriginKey(request, reply.getHeader(name), settings.ttlFromResponse)
      if (target !== undefined && !ownKeys.some((own) => own.key === target && own.target.cache === cache)) {
        work.push(cache.invalidate({ key: target }))
        edgeTargets.push({ key: target })
      }
    }
    for (const build of targets) {
      for (const target of build(request)) {
        work.push(cache.invalidate(target))
        edgeTargets.push(target)
      }
    }
    if (settings.edge !== undefined && edgeTargets.length > 0) {
      const purged = purgeEdge(settings.edge, edgeTargets, request)
      // Read-your-write through the edge: the answer waits (bounded) until the edge confirmed.
      if (settings.edge.wait > 0) work.push(purged)
    }
    const answer = (): void => {
      // Read your own writes: the writer's reads skip entries stored before now (once the
      // invalidations ran: what a racing miss stored before them is older too), anywhere.
      if (settings.readYourWrites !== undefined) markWrite(reply, settings.readYourWrites, cache.serverNow(), settings.hashKey, request.protocol === 'https')
      done(null, payload)
    }
    Promise.all(work).then(answer, (err: unknown) => {
      // The cache queued what it could not do and serves no hits until it has run it; the
      // write itself succeeded, so the client still gets its answer, told in Cache-Status.
      logInvalidationFailure(request.log, cache.name, err)
      if (settings.cacheStatus !== false) reply.header('cache-status', settings.cacheStatus + '; fwd=request; detail=invalidation-queued')
      answer()
    })
  }
}

/**
 * Sends a write's targets to the edge; resolves once the edge confirmed all of them (queued
 * ones included) or `edge.wait` ms have passed, whichever is first. Never rejects.
 */
async function purgeEdge (edge: EdgeSettings, targets: InvalidationTarget[], request: FastifyRequest): Promise<void> {
  // The forwarder logs what it had to queue.
  const purged = edge.forwarder.forward(targets).then(async (report) => {
    if (report.queued.length > 0 && edge.wait > 0) await edge.forwarder.settled()
  }, (err: unknown) => { request.log.warn({ err }, 'ember-cache: edge purge could not be sent') })
  if (edge.wait === 0) return await purged
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<void>((resolve) => { timer = setTimeout(resolve, edge.wait) })
  await Promise.race([purged, deadline])
  clearTimeout(timer)
}

/** A write's answer as the read route's entry, and whether it is stored with codings. */
interface Written {
  entry: CacheEntry
  encodable: boolean
}

/**
 * Every other variant of the key (other varyHeaders values, hosts, Vary learned by the read
 * route) holds the old representation: drop them all, then store. invalidate() is recorded
 * first, so older misses in flight do not overwrite what this write stores. `entrySettings` are
 * the read route's (the write route's when no read route has its URL).
 */
async function writeEntry (request: FastifyRequest, entrySettings: RouteSettings, target: OwnTarget, key: string, { entry, encodable }: Written): Promise<void> {
  const variant = baseVariant(request, entrySettings.variants)
  await target.cache.invalidate({ key })
  // Its codings are made when a hit first asks for one (encode.ts).
  if (encodable) entry.flags |= FLAG_ENCODE_LATER
  await target.cache.store(key, variant, entry)
}

/**
 * Whether the write's handler read nothing of its caller that the read route's key lacks: its
 * answer is then the entry a read would have stored. Otherwise the write only invalidates.
 */
function readNothingUnkeyed (request: FastifyRequest, target: OwnTarget): boolean {
  const observer = stateOf(request)?.observer
  if (observer === undefined) return true
  observer.stop()
  const keyed = target.reader?.variants.names ?? []
  return observer.identities === undefined && !observer.allHeaders &&
    (observer.headers ?? []).every((name) => keyed.includes(name)) &&
    (observer.cookies ?? []).every((name) => keyed.includes(COOKIE_NAME_PREFIX + name) || keyed.includes('cookie'))
}

function warnOwnKey (request: FastifyRequest, err: unknown): void {
  if (err instanceof MissingPlaceholderError) request.log.warn({ placeholder: err.placeholder }, 'ember-cache: the key template has no value for a placeholder in this write; its own entry is not invalidated')
  else request.log.warn({ err }, 'ember-cache: key could not be computed; its own entry is not invalidated')
}

/** The GET key of a Location/Content-Location URI on the request's own origin, or undefined (`asSent`: a proxy's keys). */
function sameOriginKey (request: FastifyRequest, value: unknown, asSent: boolean): string | undefined {
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
  return (asSent ? targetKey : urlKey)('GET', target.pathname + target.search)
}

/**
 * The 2xx response of a PUT/PATCH as the read route's entry, or undefined when it may not be
 * stored. Freshness, size bound and codings are the read route's (the entry is its); tags are
 * both routes'.
 */
function responseEntry (reply: FastifyReply, payload: unknown, write: RouteSettings, target: OwnTarget, request: FastifyRequest): Written | undefined {
  const settings = target.reader ?? write
  // RFC 9111 §3.5: an answer to a credentialed request is not shared unless the route vouches
  // (private, key, keyFn or varyHeaders with authorization), as on the read side.
  if (!write.allowsAuthorization && request.headers.authorization !== undefined) return undefined
  // No payload (a 204) is nothing to read back: invalidate instead.
  const body = payload === null || payload === undefined ? undefined : bodyOf(payload)
  if (body === undefined || body.length > settings.maxEntryBytes) return undefined
  const headers = reply.getHeaders()
  const cacheControl = parseCacheControl(headers['cache-control'])
  if (refusalReason(reply.statusCode, settings.statusCodes, headers, cacheControl) !== undefined) return undefined
  const stored = storableHeaders(headers, settings.header, settings.perRequestHeaders)
  let flags = 0
  if (typeof stored.etag !== 'string') {
    stored.etag = computeEtag(body)
    flags = FLAG_COMPUTED_ETAG
  }
  const tags = target.reader === undefined ? tagsOf(request, write) : [...new Set([...tagsOf(request, write), ...tagsOf(request, target.reader)])]
  // A 201 Created to a PUT is a 200 to the GET that reads it back.
  const entry = responseEntryOf(settings, 200, stored, body, {
    ttl: settings.ttl, initialAge: 0, flags, staleWhileRevalidate: settings.staleWhileRevalidate, staleIfError: settings.staleIfError
  }, tags)
  const encodable = mayEncode(settings, 200, stored, body, cacheControl)
  if (encodable) stored.vary = varyWithEncoding(stored.vary)
  return { entry, encodable }
}
