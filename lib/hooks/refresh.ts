import { IncomingMessage } from 'node:http'
import type { FastifyRequest, InjectOptions } from 'fastify'
import { channels, keyHash, trace } from '../observe'
import { originOf } from '../variant'
import type { CacheRequest } from './request-state'

// stale-while-revalidate's background refresh: the route runs again through app.inject, from
// the top, so the route's auth hooks run again; one refresh per cache, key and variant at a time.
//
// A refresh is told apart by what no client can send: its request object is of a class of ours
// (light-my-request's `Request` option), which also carries the origin (protocol and host) of
// the request it stands for (inject has neither TLS nor the original socket). Nothing is added
// to its headers: a handler, a hook or an upstream behind reply-from sees the client's own.

/** The class of every refresh's request; each refresh makes a subclass carrying its origin. */
class RefreshRequest extends IncomingMessage {}
const kOrigin = Symbol('ember-cache.refresh-origin')

/** The origin a background refresh stands in for, or undefined for any other request. */
export function refreshOrigin (request: FastifyRequest): string | undefined {
  const raw = request.raw
  if (!(raw instanceof RefreshRequest)) return undefined
  for (let proto = Object.getPrototypeOf(raw) as object | null; proto !== null; proto = Object.getPrototypeOf(proto) as object | null) {
    const origin = (proto.constructor as unknown as Record<symbol, string | undefined>)[kOrigin]
    if (origin !== undefined) return origin
  }
  return undefined
}

/** Runs a request again in the background to refresh an entry (stale-while-revalidate). */
export type Refresher = (state: CacheRequest) => void

/** Builds the refresher used by stale-while-revalidate: one background request per key. */
export function buildRefresher (inject: (options: InjectOptions) => Promise<unknown>): Refresher {
  const running = new Set<string>()
  return (state) => {
    const { request, settings } = state
    const id = settings.cache.name + '\u0000' + state.key + '\u0000' + state.variant
    if (running.has(id)) return
    running.add(id)
    const headers = { ...request.headers }
    delete headers['if-none-match']
    delete headers['if-modified-since']
    const Request = class extends RefreshRequest {
      static [kOrigin] = originOf(request)
    }
    const run = (): Promise<unknown> => inject({ method: 'GET', url: request.url, headers: headers as Record<string, string>, Request } as InjectOptions)
    const refreshing = channels.refresh.hasSubscribers
      ? trace(channels.refresh, { cache: settings.cache.name, route: settings.label, keyHash: keyHash(state.key) }, run, () => 'refreshed') as Promise<unknown>
      : run()
    settings.cache.track(refreshing
      .catch((err: unknown) => request.log.warn({ err, cache: settings.cache.name, route: settings.label }, 'ember-cache: background refresh failed'))
      .finally(() => running.delete(id)))
  }
}
