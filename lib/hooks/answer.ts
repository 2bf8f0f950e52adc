import type { FastifyReply } from 'fastify'
import { stateOf, type CacheRequest } from './request-state'

// The moment a miss is answered. A miss's handler may answer (reply.send, also how Fastify sends
// what an async handler returns), take the reply over (reply.hijack), or forward the request
// (reply.from, on a from-response route). Each ends what the miss had running: the observation
// of per-caller reads, the stale-if-error timer; a hijack also releases the requests waiting
// for this miss at once (they run their own handler). The reply's own methods are shadowed for
// this one reply by functions shared by every miss (no closure per request), and put back at once.

type Bag = Record<string, unknown>

/** Shadows the reply's send and hijack (and reply-from's from on a from-response route) for this miss. */
export function watchAnswer (state: CacheRequest, reply: FastifyReply): void {
  const bag = reply as unknown as Bag
  state.replySend = reply.send
  bag.send = sendAnswer
  state.replyHijack = reply.hijack
  bag.hijack = hijackReply
  if (state.observer !== undefined && state.settings.ttlFromResponse && typeof bag.from === 'function') {
    state.replyFrom = bag.from as CacheRequest['replyFrom']
    bag.from = forwardRequest
  }
}

function sendAnswer (this: FastifyReply, payload?: unknown): FastifyReply {
  stateOf(this.request)?.answered(this, false)
  return this.send(payload)
}

function hijackReply (this: FastifyReply): FastifyReply {
  stateOf(this.request)?.answered(this, true)
  return this.hijack()
}

/**
 * reply-from copies every request header into the upstream request: forwarding is not reading.
 * Only what the handler read before it forwarded shaped the answer.
 */
function forwardRequest (this: FastifyReply, ...args: unknown[]): unknown {
  const state = stateOf(this.request)
  state?.observer?.stop()
  const bag = this as unknown as Bag
  if (state?.replyFrom !== undefined) {
    bag.from = state.replyFrom
    state.replyFrom = undefined
  }
  return (bag.from as (...rest: unknown[]) => unknown).apply(this, args)
}
