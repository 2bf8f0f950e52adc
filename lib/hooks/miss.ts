import type { FastifyReply, HookHandlerDoneFunction } from 'fastify'
import { MISSED, type CacheRequest } from './request-state'
import { tagsOf } from './response-entry'
import { serveEntry } from './serve'

/**
 * Lets the request through to the handler. With a stale-if-error entry and a
 * staleIfErrorTimeout, the stale entry answers if the handler is too slow.
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
    // the handler's send, not the end of the response: onSend hooks may still be running then,
    // and serving stale on top of them mixed two responses. Only requests with a timer pay this.
    const send = reply.send
    reply.send = function (payload?: unknown) {
      clearTimeout(state.timer)
      reply.send = send
      return send.call(reply, payload)
    }
    state.timer = setTimeout(() => {
      if (reply.sent) return
      reply.send = send
      state.settle(undefined)
      state.recount('staleIfError')
      serveEntry(state, reply, stale, 'STALE', 'hit; fwd=stale; detail=origin-timeout')
    }, state.settings.staleIfErrorTimeout)
  }
  const fence = state.fence
  if (!(fence instanceof Promise)) return done()
  fence.then((value) => {
    state.fence = value
    done()
  }, () => {
    state.fence = undefined
    done()
  })
}

/** Asks the shared backend for this miss's fence (started early, beside the fill lock, when it can be). */
export function beginFill (state: CacheRequest): void {
  state.fence = state.settings.cache.beginFill(state.key, tagsOf(state.request, state.settings))
}
