import { IncomingMessage } from 'node:http'
import type { FastifyRequest, InjectOptions } from 'fastify'
import { channels, trace } from '../observe'
import { originOf } from '../variant'
import type { CacheRequest } from './request-state'

// stale-while-revalidate's background refresh: the route runs again through app.inject, from
// the top, so the route's auth hooks run again; one refresh per cache, key and variant at a time.
//
// A refresh is told apart by what no client can send: its request object is of a class of ours
// (light-my-request's `Request` option), which also carries the origin (protocol and host) of
// the request it stands for (inject has neither TLS nor the original socket). Nothing is added
// to its headers: a handler, a hook or an upstream behind reply-from sees the client's own.

/** Where a refresh's request class keeps its record: on its prototype, out of any client's reach. */
const kRefresh = Symbol('ember-cache.refresh')

/** What a refresh stands for, and what came of it. */
export interface RefreshRecord {
  /** The origin (protocol and host) of the request the refresh stands for. */
  origin: string
  /** Its answer was stored (set by the store hook): the entry is fresh again. */
  stored: boolean
}

/** The record of a background refresh, or undefined for any other request. */
export function refreshOf (request: FastifyRequest): RefreshRecord | undefined {
  // light-my-request builds its own class on top of the one given: the record is found through
  // the prototype chain, whichever class it sits on.
  return (request.raw as unknown as Record<symbol, RefreshRecord | undefined>)[kRefresh]
}

/**
 * Runs a request again in the background to refresh an entry (stale-while-revalidate, early
 * refresh). With a `claim`, it runs only if this instance claims it on the backend's fill lock
 * first: one refresh of a stored entry across the fleet, whichever instance got there first.
 */
export type Refresher = (state: CacheRequest, claim?: string) => void

/** A key whose refresh did not store waits this long before the next, doubling up to REFRESH_BACKOFF_MAX_MS. */
const REFRESH_BACKOFF_MS = 1_000
const REFRESH_BACKOFF_MAX_MS = 60_000
/** Keys whose refreshes failed that are remembered (the oldest go first). */
const MAX_BACKING_OFF = 10_000

/**
 * Builds the refresher used by stale-while-revalidate: one background request per key at a
 * time, and after one that did not store (the origin failed, or answered something not to be
 * stored), none for that key for a while, doubling with each failure (1 s, 2 s, 4 s ... 60 s):
 * a failing origin once got 1,342 calls from 1,354 stale answers in 8 s.
 */
export function buildRefresher (inject: (options: InjectOptions) => Promise<unknown>): Refresher {
  const running = new Set<string>()
  const backoff = new Map<string, { failures: number, until: number }>()
  return (state, claim) => {
    const { settings } = state
    const id = settings.cache.name + '\u0000' + state.key + '\u0000' + state.variant
    if (running.has(id)) return
    const waiting = backoff.get(id)
    if (waiting !== undefined && Date.now() < waiting.until) return
    running.add(id)
    const lock = settings.cache.fillLock
    if (claim !== undefined && lock !== undefined) {
      // The claim is never released: it expires with the lock's ttl, after the refresh has stored.
      const claimed = lock.acquire(state.key, state.variant + '\u0000' + claim).then((token) => token !== undefined, () => false)
      settings.cache.track(claimed.then((mine) => {
        if (mine) return run(state, id)
        running.delete(id)
      }))
      return
    }
    run(state, id)
  }

  function run (state: CacheRequest, id: string): void {
    const { request, settings } = state
    const headers = { ...request.headers }
    delete headers['if-none-match']
    delete headers['if-modified-since']
    const record: RefreshRecord = { origin: originOf(request), stored: false }
    // Each refresh makes its own request class (one level above IncomingMessage) carrying its record.
    const Request = class extends IncomingMessage {}
    Object.defineProperty(Request.prototype, kRefresh, { value: record })
    const send = (): Promise<unknown> => inject({ method: 'GET', url: request.url, headers: headers as Record<string, string>, Request } as InjectOptions)
    const refreshing = channels.refresh.hasSubscribers
      ? trace(channels.refresh, { cache: settings.cache.name, route: settings.label, keyHash: settings.hashKey(state.key) }, send, () => 'refreshed') as Promise<unknown>
      : send()
    settings.cache.track(refreshing
      .catch((err: unknown) => request.log.warn({ err, cache: settings.cache.name, route: settings.label }, 'ember-cache: background refresh failed'))
      .finally(() => {
        running.delete(id)
        if (record.stored) {
          backoff.delete(id)
          return
        }
        const failures = (backoff.get(id)?.failures ?? 0) + 1
        backoff.delete(id)
        if (backoff.size >= MAX_BACKING_OFF) backoff.delete(backoff.keys().next().value as string)
        backoff.set(id, { failures, until: Date.now() + Math.min(REFRESH_BACKOFF_MAX_MS, REFRESH_BACKOFF_MS * 2 ** (failures - 1)) })
      }))
  }
}
