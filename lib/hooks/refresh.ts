import type { InjectOptions } from 'fastify'
import { channels, keyHash, trace } from '../observe'
import { originOf } from '../variant'
import type { CacheRequest } from './request-state'

// stale-while-revalidate's background refresh: the route runs again through app.inject, from
// the top, so the route's auth hooks run again; one refresh per cache, key and variant at a time.

/** Marks our own background refresh requests (its value is a per-app random token). */
export const REFRESH_HEADER = 'x-ember-cache-refresh'
/** The origin (protocol and host) of the request a refresh stands in for; read only with the token. */
export const REFRESH_ORIGIN_HEADER = 'x-ember-cache-origin'

/** Runs a request again in the background to refresh an entry (stale-while-revalidate). */
export type Refresher = (state: CacheRequest) => void

/** Builds the refresher used by stale-while-revalidate: one background request per key. */
export function buildRefresher (inject: (options: InjectOptions) => Promise<unknown>, refreshToken: string): Refresher {
  const running = new Set<string>()
  return (state) => {
    const { request, settings } = state
    const id = settings.cache.name + '\u0000' + state.key + '\u0000' + state.variant
    if (running.has(id)) return
    running.add(id)
    const headers = { ...request.headers, [REFRESH_HEADER]: refreshToken, [REFRESH_ORIGIN_HEADER]: originOf(request) }
    delete headers['if-none-match']
    delete headers['if-modified-since']
    const run = (): Promise<unknown> => inject({ method: 'GET', url: request.url, headers: headers as unknown as Record<string, string> })
    const refreshing = channels.refresh.hasSubscribers
      ? trace(channels.refresh, { cache: settings.cache.name, route: settings.label, keyHash: keyHash(state.key) }, run, () => 'refreshed') as Promise<unknown>
      : run()
    settings.cache.track(refreshing
      .catch((err: unknown) => request.log.warn({ err, cache: settings.cache.name, route: settings.label }, 'ember-cache: background refresh failed'))
      .finally(() => running.delete(id)))
  }
}
