import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { ReadObserver } from './read-observer'
import type { RefreshRecord } from './refresh'
import type { Fence, SharedAnswer } from '../caches/cache'
import type { CacheEntry } from '../entry'
import { channels, type RouteCounters, type TraceContext } from '../observe'
import type { Directives } from '../http-semantics'
import type { RouteSettings } from '../options'

// One object per request on a cached read route: what the lookup found out and decided, for
// the store hook (onSend) to act on. Created once, in the lookup hook; nothing else carries
// per-request cache state.

export const kState = Symbol('ember-cache.state')

/** The lookup has not decided yet (or failed): onSend leaves the response alone. */
export const PENDING = 0
/** The request was answered by the cache: onSend leaves the response alone. */
export const SERVED = 1
/** The cache is not used for this request (backend down, credentials, request no-store...). */
export const BYPASSED = 2
/** The handler runs; its response may be stored. */
export const MISSED = 3

export class CacheRequest {
  phase = PENDING
  key = ''
  /** The variant made of the route's plan: origin and configured headers. */
  baseVariant = ''
  /** The variant the entry was read at: the base, or the one a Vary pointer there selects. */
  variant = ''
  directives: Directives
  /** RFC 9211 fwd= reason of a miss: uri-miss, request (the client's no-cache), stale (a refresh). */
  forward = 'fwd=uri-miss'
  /** The flight this request leads (other requests wait for its entry), or '' when none. */
  flight = ''
  /** The cross-instance fill lock this request holds, or '' when none. */
  lockToken = ''
  /** The variant the fill lock was taken for (reads may move `variant` meanwhile). */
  lockVariant = ''
  /** A remote cache answered from its in-process tier (L1). */
  fromL1 = false
  /** The backend failed during the lookup: answer BYPASS and do not store. */
  backendDown = false
  /** An expired entry that may still replace an origin error (stale-if-error). */
  stale: CacheEntry | undefined = undefined
  /**
   * From-response routes: an expired entry that may answer if the origin cannot be reached or
   * fails (RFC 9111 §4.2.4: a disconnected cache may serve stale), and whether it did (onError).
   */
  staleIfFailed: CacheEntry | undefined = undefined
  originFailed = false
  /** Serves `stale` when the handler takes longer than staleIfErrorTimeout. */
  timer: NodeJS.Timeout | undefined = undefined
  /** The cache's invalidation log position when the miss started (an invalidation since wins the race). */
  mark = 0
  /** The shared backend's fence for this miss (beginFill), checked when it stores; or its promise. */
  fence: Fence | Promise<Fence> | undefined = undefined
  /** Epoch ms when the request went to the handler (the request_time of RFC 9111 §4.2.3). */
  requestTime = 0
  /**
   * A stored entry being revalidated: the handler got a conditional request for it, and a 304
   * refreshes it (RFC 9111 §4.3). The client's own conditionals are answered by us afterwards.
   */
  revalidating: CacheEntry | undefined = undefined
  /** The client's If-None-Match / If-Modified-Since, replaced by ours while revalidating. */
  clientIfNoneMatch: string | undefined = undefined
  clientIfModifiedSince: string | undefined = undefined
  /**
   * The request carried Authorization on a route that did not opt in, with `ttl: 'from-response'`:
   * its response is stored only if it says a shared cache may (RFC 9111 §3.5).
   */
  credentialed = false
  /** A background refresh (stale-while-revalidate) of ours, not a client's request. */
  refreshing = false
  /** The refresh's record, told when its answer is stored. */
  refresh: RefreshRecord | undefined = undefined
  /** What the handler reads of its caller during this miss (read-observer.ts); none on public routes. */
  observer: ReadObserver | undefined = undefined
  /** The header names of the Vary pointer the lookup followed (learned per key). */
  pointerNames: readonly string[] | undefined = undefined
  /** The reply's own methods while the miss watches for its answer (answer.ts). */
  replySend: FastifyReply['send'] | undefined = undefined
  replyHijack: FastifyReply['hijack'] | undefined = undefined
  replyFrom: ((...args: unknown[]) => unknown) | undefined = undefined

  constructor (readonly settings: RouteSettings, readonly request: FastifyRequest, directives: Directives) {
    this.directives = directives
  }

  get isHead (): boolean {
    return this.request.method === 'HEAD'
  }

  /** The lookup's trace context, when the ember-cache:lookup channel has subscribers. */
  trace: TraceContext | undefined = undefined

  /**
   * What the lookup decided: counted on the route (`counter`), and, when traced, the end of
   * the lookup span (asyncStart/asyncEnd after a remote read).
   */
  decided (counter: CountedOutcome, outcome: string): void {
    const counters = this.settings.counters
    if (counters !== undefined) {
      counters[counter]++
      this.counted = counter
    }
    const context = this.trace
    if (context === undefined || context.outcome !== undefined) return
    context.outcome = outcome
    if (context.async === true) {
      channels.lookup.asyncStart.publish(context)
      channels.lookup.asyncEnd.publish(context)
    } else channels.lookup.end.publish(context)
  }

  /** The route counter this request was counted in, if any. */
  counted: CountedOutcome | undefined = undefined

  /**
   * The answer changed after the lookup decided (the handler failed and a stale entry answers):
   * the request moves to `counter`, so that each request is counted once, by how it was answered.
   */
  recount (counter: CountedOutcome): void {
    const counters = this.settings.counters
    if (counters === undefined) return
    if (this.counted !== undefined) counters[this.counted]--
    counters[counter]++
    this.counted = counter
  }

  /**
   * The miss was answered (or the reply hijacked): what ran for it stops. A hijacked reply is
   * ours no more: waiters run their own handler at once, and nothing is stored.
   */
  answered (reply: FastifyReply, hijacked: boolean): void {
    this.unwatch(reply)
    clearTimeout(this.timer)
    this.timer = undefined
    this.observer?.stop()
    if (hijacked) {
      this.settle(undefined)
      this.phase = SERVED
    }
  }

  /** Puts back the reply's own methods that answer.ts shadowed. */
  private unwatch (reply: FastifyReply): void {
    const bag = reply as unknown as Record<string, unknown>
    if (this.replySend !== undefined) bag.send = this.replySend
    if (this.replyHijack !== undefined) bag.hijack = this.replyHijack
    if (this.replyFrom !== undefined) bag.from = this.replyFrom
    this.replySend = undefined
    this.replyHijack = undefined
    this.replyFrom = undefined
  }

  /** Ends this request's flight: waiters get the entry, or undefined to run the handler themselves. */
  settle (answer: SharedAnswer | undefined): void {
    const { cache } = this.settings
    if (this.flight !== '') {
      cache.flights.settle(this.flight, answer)
      this.flight = ''
    }
    if (this.lockToken !== '') {
      cache.fillLock?.release(this.key, this.lockVariant, this.lockToken)
      this.lockToken = ''
    }
  }
}

type StateBag = Record<typeof kState, CacheRequest | null>

/** The request's cache state, or undefined/null when the lookup did not run or set none. */
export function stateOf (request: FastifyRequest): CacheRequest | null | undefined {
  return (request as unknown as StateBag)[kState]
}

export function setState (request: FastifyRequest, state: CacheRequest | null): void {
  (request as unknown as StateBag)[kState] = state
}

/**
 * A bug of ours (or a throwing user hook) inside a promise callback: answer the request with
 * the error rather than leave it hanging, and never answer twice.
 */
export function unexpected (state: CacheRequest, reply: FastifyReply, done: HookHandlerDoneFunction, err: unknown): void {
  state.request.log.error({ err }, 'ember-cache: unexpected error in cache lookup')
  if (!reply.sent && state.phase !== SERVED) done(err as Error)
}

/** The route counters a lookup decision adds one to. */
export type CountedOutcome = Exclude<keyof RouteCounters, 'refusals' | 'stores' | 'notStored'>
