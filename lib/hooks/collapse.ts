import type { FastifyReply, HookHandlerDoneFunction } from 'fastify'
import { BYPASS, type FillLock, type LookupResult, type SharedAnswer } from '../caches/cache'
import { ENTRY_RESPONSE, freshUntil, type CacheEntry } from '../entry'
import { setStatusHeaders } from '../replay'
import { beginFill, startMiss } from './miss'
import { SERVED, unexpected, type CacheRequest } from './request-state'
import { serveEntry } from './serve'
import { answerFits, entryFitsVariant, readEntry } from './variants'

// Stampede protection: concurrent misses on one key and variant run the handler once. In this
// process through the cache's single-flight map; across instances through the backend's fill
// lock (Redis). Every step fails open: a lock that cannot be taken means we run the handler.

/** A lookup that found nothing usable: wait for a running flight, or lead one and run the handler. */
export function joinOrLead (state: CacheRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const { settings } = state
  // RFC 9111 §5.2.1.7: only-if-cached with nothing usable stored answers 504.
  if (state.directives.has('only-if-cached')) {
    state.phase = SERVED
    state.decided('bypassRequest', 'miss')
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
      // The leader's response could not be shared (not cacheable, failed, too slow) or is
      // another variant's: run ours.
      if (shared === undefined || !answerFits(state, shared)) return startMiss(state, reply, done)
      state.decided('collapsed', 'collapsed')
      serveEntry(state, reply, shared.entry, 'HIT', 'hit; collapsed')
    }, done).catch((err: unknown) => unexpected(state, reply, done, err))
    return
  }
  // A HEAD request never stores (its payload is empty), so it must not make GETs wait on it.
  if (state.isHead) return startMiss(state, reply, done)
  cache.flights.lead(flight)
  state.flight = flight
  if (cache.fillLock === undefined) return startMiss(state, reply, done)
  leadAcrossInstances(state, reply, done).catch((err: unknown) => unexpected(state, reply, done, err))
}

/**
 * Takes the backend's fill lock, or waits for the instance that holds it. Fail-open: a lock
 * command that fails means we run the handler ourselves.
 */
async function leadAcrossInstances (state: CacheRequest, reply: FastifyReply, done: HookHandlerDoneFunction): Promise<void> {
  const lock = state.settings.cache.fillLock as FillLock
  const { key, variant } = state
  // The fence and the lock in one round trip: both commands are in flight together. Where the
  // backend can (Redis), the read the holder must make goes in the lock's own script: a miss
  // costs two round trips before the handler, the lookup and this one.
  beginFill(state)
  let token: string | undefined
  let found: LookupResult | undefined
  try {
    if (lock.acquireAndRead !== undefined) ({ token, found } = await lock.acquireAndRead(key, variant))
    else token = await lock.acquire(key, variant)
  } catch {
    return startMiss(state, reply, done)
  }
  if (token !== undefined) {
    // Read again under the lock: an instance that stored and released between our first
    // read and our lock must not make us run the handler a second time.
    const stored = usable(state, lock.acquireAndRead !== undefined ? found : await readEntry(state))
    if (stored !== undefined) {
      lock.release(key, variant, token)
      return shareAndServe(state, reply, stored)
    }
    state.lockVariant = variant
    state.lockToken = token
    return startMiss(state, reply, done)
  }
  // Another instance runs the handler: wait for what it stores.
  let entry: CacheEntry | undefined
  try {
    entry = await waitForFill(state)
  } catch {
    entry = undefined
  }
  if (entry === undefined) return startMiss(state, reply, done)
  shareAndServe(state, reply, entry)
}

/**
 * Polls for the entry the lock holder stores. Lock first, entry second: the holder stores
 * before it releases, so once the lock is seen gone the entry is there (the other order lost
 * the race when the holder stored and released between the two reads). Undefined when nothing
 * usable came in time: then run the handler.
 */
async function waitForFill (state: CacheRequest): Promise<CacheEntry | undefined> {
  const lock = state.settings.cache.fillLock as FillLock
  const deadline = Date.now() + lock.wait
  while (Date.now() < deadline) {
    await sleep(lock.poll)
    const held = await lock.isHeld(state.key, state.variant)
    const found = await readEntry(state)
    if (found === BYPASS) return undefined
    const entry = usable(state, found)
    if (entry !== undefined) return entry
    // No lock and no entry: the holder's response could not be stored; run our own.
    if (!held) return undefined
  }
  return undefined
}

/** A fresh response entry that fits the request's variant, or undefined. */
function usable (state: CacheRequest, found: Awaited<ReturnType<typeof readEntry>>): CacheEntry | undefined {
  if (found === BYPASS || found === undefined || found.kind !== ENTRY_RESPONSE) return undefined
  return Date.now() < freshUntil(found) && entryFitsVariant(found, state.variant) ? found : undefined
}

/** The leader got its answer from another instance: hand it to this process's waiters too. */
function shareAndServe (state: CacheRequest, reply: FastifyReply, entry: CacheEntry): void {
  const answer: SharedAnswer = { entry, variant: state.variant, learned: state.pointerNames }
  state.settings.cache.flights.settle(state.flight, answer)
  state.flight = ''
  state.decided('collapsed', 'collapsed')
  serveEntry(state, reply, entry, 'HIT', 'hit; collapsed')
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
