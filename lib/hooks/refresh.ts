import type { FastifyRequest, InjectOptions } from 'fastify'
import type { RouteSettings } from '../options'

// stale-while-revalidate's background refresh: the route runs again through app.inject, from
// the top, so the route's auth hooks run again; one refresh per cache, key and variant at a time.

/** Marks our own background refresh requests (its value is a per-app random token). */
export const REFRESH_HEADER = 'x-ember-cache-refresh'

/** Runs a request again in the background to refresh an entry (stale-while-revalidate). */
export type Refresher = (request: FastifyRequest, settings: RouteSettings, flight: string) => void

/** Builds the refresher used by stale-while-revalidate: one background request per key. */
export function buildRefresher (inject: (options: InjectOptions) => Promise<unknown>, refreshToken: string): Refresher {
  const running = new Set<string>()
  return (request, settings, flight) => {
    const id = settings.cache.kind + '\u0000' + flight
    if (running.has(id)) return
    running.add(id)
    const headers = { ...request.headers, [REFRESH_HEADER]: refreshToken }
    delete headers['if-none-match']
    delete headers['if-modified-since']
    inject({ method: 'GET', url: request.url, headers: headers as unknown as Record<string, string> })
      .catch((err: unknown) => request.log.warn({ err }, 'ember-cache: background refresh failed'))
      .finally(() => running.delete(id))
  }
}
