import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { MissingPlaceholderError, compileTemplate, compileUrlTemplate, escapeGlob } from './cache-key'
import type { EmberCache, InvalidationReport, InvalidationTarget } from './caches/cache'
import { InvalidOptionError, InvalidTargetError, InvalidationFailedError, PatternNotSupportedError } from './errors'
import { describeBackendError } from './observe'
import { CLEAR } from './edge/forwarder'
import type { EdgeSettings } from './edge/settings'

// Invalidation targets: compiled once per write route, and run over several caches at once
// (fastify.emberCache.invalidate, reply.cacheInvalidate). The write hook is in hooks/write.ts.

/** A write route's targets for one request; none when a placeholder has no value in it. */
export type TargetBuilder = (request: FastifyRequest) => InvalidationTarget[]

/**
 * Compiles a route's `invalidate` list once. `{name}` fills from the route's params and
 * `{query.name}` from its query; an entry with glob characters is a pattern; `tags:a,b` names
 * tags; anything else is a key. A leading `soft:` marks the entries stale instead of removing
 * them. A placeholder that names no param fails registration.
 */
export function compileTargets (list: string[], cache: EmberCache, where: string, params: ReadonlySet<string>): TargetBuilder[] {
  return list.map((entry) => {
    if (!entry.startsWith(SOFT_PREFIX)) return compileTarget(entry, cache, where, params)
    const build = compileTarget(entry.slice(SOFT_PREFIX.length), cache, where, params)
    return (request) => build(request).map((target) => ({ ...(target as object), soft: true }) as InvalidationTarget)
  })
}

const SOFT_PREFIX = 'soft:'

function compileTarget (text: string, cache: EmberCache, where: string, params: ReadonlySet<string>): TargetBuilder {
  const invalid = (message: string): Error => new InvalidOptionError(where, JSON.stringify(text) + ': ' + message)
  if (text.startsWith('tags:')) {
    // Tags are names matched exactly: values fill in as they are.
    const builders = text.slice(5).split(',').map((tag) => compileTemplate(tag.trim(), params, invalid, null))
    return fillOrSkip(text, (request) => [{ tags: builders.map((build) => build(request)) }])
  }
  // Entries keyed on a URL (`GET:/users/{id}`) hold the client's spelling of the value.
  const urlShaped = URL_KEY.test(text)
  if (/[*?[]/.test(text.replace(/\{[^{}]+\}/g, ''))) {
    if (cache.kind === 'memcached') {
      throw new InvalidOptionError(where, 'pattern ' + JSON.stringify(text) + ' cannot be used with a Memcached cache (no pattern invalidation); use keys or tags:')
    }
    // Request values fill in as literals: a param of `*` must not widen the pattern.
    if (urlShaped) {
      const buildPatterns = compileUrlTemplate(text, params, invalid, escapeGlob)
      return fillOrSkip(text, (request) => buildPatterns(request).map((pattern) => ({ pattern })))
    }
    // Escaped values hold no glob character: a param of `*` cannot widen the pattern.
    const buildPattern = compileTemplate(text, params, invalid)
    return fillOrSkip(text, (request) => [{ pattern: buildPattern(request) }])
  }
  if (urlShaped) {
    const buildKeys = compileUrlTemplate(text, params, invalid)
    return fillOrSkip(text, (request) => [{ keys: buildKeys(request) }])
  }
  const build = compileTemplate(text, params, invalid)
  return fillOrSkip(text, (request) => [{ key: build(request) }])
}

/** The documented key form of a request: a method, a colon and a path. */
const URL_KEY = /^[A-Z]+:\//

/**
 * A target whose template lacks a value in some request cannot name the right entries: it is
 * skipped for that request, with one warning per target (not per request) so logs stay readable.
 */
function fillOrSkip (text: string, build: (request: FastifyRequest) => InvalidationTarget[]): TargetBuilder {
  let warned = false
  return (request) => {
    try {
      return build(request)
    } catch (err) {
      if (!(err instanceof MissingPlaceholderError)) throw err
      if (!warned) {
        warned = true
        request.log.warn({ target: text, placeholder: err.placeholder }, 'ember-cache: invalidation target skipped: a placeholder has no value in this request')
      }
      return []
    }
  }
}

/**
 * Invalidates on each cache, all of them even when some fail, and says what each did. Backend
 * failures are reported (and queued by the cache), not thrown: a request must not fail because
 * a cache is down. A malformed target rejects: that is the caller's bug.
 */
export async function invalidateAll (caches: Iterable<EmberCache>, target: InvalidationTarget | typeof CLEAR, log: FastifyBaseLogger, edge?: EdgeSettings): Promise<InvalidationReport> {
  const list = [...caches]
  const [results, edges] = await Promise.all([
    Promise.allSettled(list.map(async (cache) => { await (target === CLEAR ? cache.clear() : cache.invalidate(target)) })),
    edge?.forwarder.forward(target)
  ])
  const report: InvalidationReport = { ok: true, done: [], queued: [], unsupported: [] }
  if (edges !== undefined) {
    // The forwarder logged what it had to queue.
    report.edges = edges
    if (edges.queued.length > 0) report.ok = false
  }
  for (let i = 0; i < results.length; i++) {
    const result = results[i]
    const name = list[i].name
    if (result.status === 'fulfilled') {
      report.done.push(name)
      continue
    }
    const error = result.reason as Error
    if (error instanceof InvalidTargetError) throw error
    report.ok = false
    if (error instanceof PatternNotSupportedError) report.unsupported.push({ cache: name, error })
    else {
      report.queued.push({ cache: name, error })
      logInvalidationFailure(log, name, error)
    }
  }
  return report
}

/** Logs a failed invalidation, unless the cache did already (it warns once per incident, not per call). */
export function logInvalidationFailure (log: FastifyBaseLogger, cache: string, err: unknown): void {
  if (err instanceof InvalidationFailedError) return
  log.warn({ cache, reason: describeBackendError(err), err }, 'ember-cache: invalidation failed')
}
