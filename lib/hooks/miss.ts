import type { FastifyReply, HookHandlerDoneFunction } from 'fastify'
import { watchAnswer } from './answer'
import { ReadObserver } from './read-observer'
import { MISSED, type CacheRequest } from './request-state'
import { tagsOf } from './response-entry'
import { serveEntry } from './serve'

/**
 * Lets the request through to the handler, observing what it reads of its caller. With a
 * stale-if-error entry and a staleIfErrorTimeout, the stale entry answers if the handler is too slow.
 */
export function startMiss (state: CacheRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  state.phase = MISSED
  if (state.backendDown) state.decided('bypassBackendDown', 'bypass')
  else if (state.refreshing) state.decided('refreshes', 'refresh')
  else if (state.credentialed) state.decided('bypassAuthorization', 'bypass')
  else state.decided('misses', state.revalidating === undefined ? 'miss' : 'revalidate')
  state.mark = state.settings.cache.invalidations.mark()
  state.requestTime = Date.now()
  // Edge Architecture 1.0: a proxy cache tells the origin it reads Surrogate-Control (with
  // reply-from, the upstream sees this header; an ordinary handler may ignore it).
  if (state.settings.ttlFromResponse) {
    const headers = state.request.headers
    const ours = state.settings.surrogateToken + '="Surrogate/1.0"'
    const given = headers['surrogate-capability']
    headers['surrogate-capability'] = given === undefined ? ours : given + ', ' + ours
  }
  // The fence goes up before the handler reads anything: an invalidation anywhere in the fleet
  // from here on wins over this response (a HEAD never stores, a bypass stores nothing).
  if (state.fence === undefined && !state.isHead && !state.backendDown) beginFill(state)
  const { stale } = state
  if (stale !== undefined && state.settings.staleIfErrorTimeout > 0) {
    // RFC 5861 §4 counts an origin that does not answer in time as an error too. "Answered" is
    // the handler's send (answer.ts), not the end of the response: onSend hooks may still be
    // running then, and serving stale on top of them mixed two responses.
    state.timer = setTimeout(() => {
      if (reply.sent) return
      state.answered(reply, false)
      state.settle(undefined)
      state.recount('staleIfError')
      serveEntry(state, reply, stale, 'STALE', 'hit; fwd=stale; detail=origin-timeout')
    }, state.settings.staleIfErrorTimeout)
  }
  // What the handler reads of its caller decides whether its answer may be shared; a HEAD or a
  // miss the backend cannot take stores nothing, and a public route says its answer is everyone's.
  const plan = state.settings.observe
  if (plan !== undefined && !state.isHead && !state.backendDown) state.observer = new ReadObserver(plan, state.request)
  watchAnswer(state, reply)
  const fence = state.fence
  if (!(fence instanceof Promise)) return toHandler(state, done)
  fence.then((value) => {
    state.fence = value
    toHandler(state, done)
  }, () => {
    state.fence = undefined
    toHandler(state, done)
  })
}

/** Hands the request on to the handler (and whatever hooks run before it), observed from here. */
function toHandler (state: CacheRequest, done: HookHandlerDoneFunction): void {
  state.observer?.start()
  done()
}

/** Asks the shared backend for this miss's fence (started early, beside the fill lock, when it can be). */
export function beginFill (state: CacheRequest): void {
  state.fence = state.settings.cache.beginFill(state.key, tagsOf(state.request, state.settings))
}
