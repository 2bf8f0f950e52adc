import type { FastifyReply, HookHandlerDoneFunction } from 'fastify'
import { BYPASS } from '../caches/cache'
import { ENTRY_RESPONSE, freshUntil, type CacheEntry } from '../entry'
import { setStatusHeaders } from '../replay'
import { matchesVariant } from './variants'
import { startMiss } from './miss'
import { SERVED, unexpected, type CacheRequest } from './request-state'
import { serveEntry } from './serve'

// Stampede protection: concurrent misses on one key and variant run the handler once. In this
// process through the cache's single-flight map; across instances through the backend's fill
// lock (Redis). Every step fails open: a lock that cannot be taken means we run the handler.

/** A miss on a usable-nothing lookup: wait for a running flight, or lead one and run the handler. */
export function joinOrLead (state: CacheRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const { settings } = state
  // RFC 9111 §5.2.1.7: only-if-cached with nothing usable stored answers 504.
  if (state.directives.has('only-if-cached')) {
    state.phase = SERVED
    setStatusHeaders(reply, settings, 'MISS', 'fwd=miss', state.key)
    reply.code(504).send({ statusCode: 504, error: 'Gateway Timeout', message: 'Not in cache (only-if-cached)' })
    return
  }
  // collapseWait 0: every miss runs its own handler, nobody waits for anybody.
  if (settings.collapseWait === 0) return startMiss(state, reply, done)
  const { cache } = settings
  const flight = state.key + '\u0000' + state.variant
  const waiting = cache.flights.wait(flight, settings.collapseWait)
  if (waiting !== undefined) {
    waiting.then((shared) => {
      // The leader's response could not be shared (not cacheable, failed, too slow): run ours.
      if (shared === undefined || !matchesVariant(settings, shared, state.variant)) return startMiss(state, reply, done)
      serveEntry(state, reply, shared, 'HIT', 'hit; collapsed')
    }, done).catch((err: unknown) => unexpected(state, reply, done, err))
    return
  }
  // A HEAD request never stores (its payload is empty), so it must not make GETs wait on it.
  if (state.isHead) return startMiss(state, reply, done)
  cache.flights.lead(flight)
  state.flight = flight
  const lock = cache.fillLock
  if (lock === undefined) return startMiss(state, reply, done)
  // The lock is fail-open: a lock command that fails means we run the handler ourselves.
  const runOurs = (): void => startMiss(state, reply, done)
  const { key, variant } = state
  lock.acquire(key, variant).then(async (token) => {
    if (token !== undefined) {
      // Read again under the lock: an instance that stored and released between our first
      // read and our lock must not make us run the handler a second time.
      const stored = await cache.lookup(key, variant)
      if (stored !== BYPASS && stored !== undefined && stored.kind === ENTRY_RESPONSE && Date.now() < freshUntil(stored) && matchesVariant(settings, stored, variant)) {
        lock.release(key, variant, token)
        return shareAndServe(state, reply, stored)
      }
      state.lockToken = token
      return startMiss(state, reply, done)
    }
    // Another instance runs the handler: wait for what it stores.
    return lock.waitForEntry(key, variant).then((entry) => {
      if (entry === undefined || !matchesVariant(settings, entry, variant)) return runOurs()
      shareAndServe(state, reply, entry)
    }, runOurs)
  }, runOurs).catch((err: unknown) => unexpected(state, reply, done, err))
}

/** The leader got its answer from another instance: hand it to this process's waiters too. */
function shareAndServe (state: CacheRequest, reply: FastifyReply, entry: CacheEntry): void {
  state.settings.cache.flights.settle(state.flight, entry)
  state.flight = ''
  serveEntry(state, reply, entry, 'HIT', 'hit; collapsed')
}
