import { httpDate } from '../http-freshness'
import { batches } from './tag-header'

// Purgers: one per edge endpoint, each turning a purge (edge tags, or everything) into the
// requests that edge's API documents. They only send; the forwarder (forwarder.ts) queues,
// retries, counts and reports. Credentials live in the purger and are never logged: errors name
// the edge and the status, never a header.

/** What an edge is asked to drop: entries with any of these edge tags, or all of them. */
export type EdgePurge = { tags: string[], soft: boolean } | { all: true, soft: boolean }

/** Sends purges to one edge endpoint. `purge` rejects (EdgePurgeFailure) when the edge did not confirm. */
export interface EdgePurger {
  /** Names it in reports, stats and logs: no credentials. */
  readonly name: string
  purge: (request: EdgePurge) => Promise<void>
}

/** An edge refused or did not answer; `retryAfterMs` when it said when to come back (429/503 Retry-After). */
export class EdgePurgeFailure extends Error {
  readonly retryAfterMs: number | undefined
  constructor (message: string, retryAfterMs?: number) {
    super(message)
    this.name = 'EdgePurgeFailure'
    this.retryAfterMs = retryAfterMs
  }
}

export interface HttpPurgeOptions {
  /** ms one request may take. Default 2000. */
  timeout?: number
}

/** Varnish, with the VCL this package ships (docs/varnish/default.vcl): one purger per server. */
export interface VarnishPurgerOptions extends HttpPurgeOptions {
  /** Base URLs of the Varnish servers, e.g. `['http://127.0.0.1:6081']`. */
  servers: string[]
}

/**
 * Purges by xkey (`PURGE /` with `xkey-purge` or `xkey-softpurge: tag tag ...`, batched within
 * Varnish's 8 KB request headers) and everything by `BAN /`, on each server.
 */
export function varnishPurgers (options: VarnishPurgerOptions): EdgePurger[] {
  const timeout = options.timeout ?? 2_000
  return options.servers.map((server) => {
    const base = new URL(server)
    return {
      name: 'varnish ' + base.host,
      async purge (request: EdgePurge): Promise<void> {
        if ('all' in request) return await send(this.name, new URL('/', base), { method: 'BAN' }, timeout)
        const header = request.soft ? 'xkey-softpurge' : 'xkey-purge'
        for (const batch of batches(request.tags, Infinity, 6_000)) {
          await send(this.name, new URL('/', base), { method: 'PURGE', headers: { [header]: batch.join(' ') } }, timeout)
        }
      }
    }
  })
}

/** Fastly's purge API: https://www.fastly.com/documentation/reference/api/purging/ */
export interface FastlyPurgerOptions extends HttpPurgeOptions {
  serviceId: string
  /** An API token with purge_select (and purge_all for clear()) scope. Never logged. */
  token: string
  /** Default `https://api.fastly.com` (tests point it at a local server). */
  baseUrl?: string
}

/**
 * Bulk purge by surrogate key (`POST /service/{id}/purge`, keys in the `Surrogate-Key` header, at
 * most 256 per request; `Fastly-Soft-Purge: 1` marks them stale instead), and `purge_all`.
 */
export function fastlyPurger (options: FastlyPurgerOptions): EdgePurger {
  const base = new URL(options.baseUrl ?? 'https://api.fastly.com')
  const timeout = options.timeout ?? 2_000
  const service = encodeURIComponent(options.serviceId)
  const auth = { 'fastly-key': options.token, accept: 'application/json' }
  return {
    name: 'fastly ' + options.serviceId,
    async purge (request: EdgePurge): Promise<void> {
      if ('all' in request) return await send(this.name, new URL(`/service/${service}/purge_all`, base), { method: 'POST', headers: auth }, timeout)
      for (const batch of batches(request.tags, 256, 16_000)) {
        const headers: Record<string, string> = { ...auth, 'surrogate-key': batch.join(' ') }
        if (request.soft) headers['fastly-soft-purge'] = '1'
        await send(this.name, new URL(`/service/${service}/purge`, base), { method: 'POST', headers }, timeout)
      }
    }
  }
}

/** Cloudflare's purge API: https://developers.cloudflare.com/api/resources/cache/methods/purge/ */
export interface CloudflarePurgerOptions extends HttpPurgeOptions {
  zoneId: string
  /** An API token with the Cache Purge permission. Never logged. */
  token: string
  /** Tags per request: Cloudflare's limit for your plan (30 on most, more on Enterprise). Default 30. */
  maxTagsPerRequest?: number
  /** Default `https://api.cloudflare.com` (tests point it at a local server). */
  baseUrl?: string
}

/**
 * `POST /client/v4/zones/{zone}/purge_cache` with `{"tags": [...]}` in batches, or
 * `{"purge_everything": true}`. Cloudflare has no soft purge: soft targets are purged. A 429's
 * Retry-After is honoured by the forwarder.
 */
export function cloudflarePurger (options: CloudflarePurgerOptions): EdgePurger {
  const base = new URL(options.baseUrl ?? 'https://api.cloudflare.com')
  const timeout = options.timeout ?? 2_000
  const url = new URL(`/client/v4/zones/${encodeURIComponent(options.zoneId)}/purge_cache`, base)
  const headers = { authorization: 'Bearer ' + options.token, 'content-type': 'application/json' }
  const perRequest = options.maxTagsPerRequest ?? 30
  return {
    name: 'cloudflare ' + options.zoneId,
    async purge (request: EdgePurge): Promise<void> {
      const bodies = 'all' in request ? [{ purge_everything: true }] : batches(request.tags, perRequest, Infinity).map((tags) => ({ tags }))
      for (const body of bodies) await send(this.name, url, { method: 'POST', headers, body: JSON.stringify(body) }, timeout, checkCloudflareBody)
    }
  }
}

/** Cloudflare answers 200 with `success: false` for some refusals. */
async function checkCloudflareBody (name: string, response: Response): Promise<void> {
  const body = await response.json().catch(() => undefined) as { success?: unknown } | undefined
  if (body?.success !== true) throw new EdgePurgeFailure(name + ' answered without success: true')
}

async function send (name: string, url: URL, init: RequestInit, timeout: number, check?: (name: string, response: Response) => Promise<void>): Promise<void> {
  let response: Response
  try {
    response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeout) })
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${timeout} ms` : describeFetchError(err)
    throw new EdgePurgeFailure(name + ': ' + reason)
  }
  if (response.status < 200 || response.status >= 300) {
    await response.body?.cancel()
    throw new EdgePurgeFailure(`${name} answered ${response.status}`, retryAfterMs(response.headers.get('retry-after')))
  }
  if (check !== undefined) return await check(name, response)
  await response.body?.cancel()
}

function describeFetchError (err: unknown): string {
  const cause = (err as { cause?: { code?: string, message?: string } }).cause
  return cause?.code ?? cause?.message ?? (err as Error).message
}

/** Retry-After as ms: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); undefined when absent or odd. */
export function retryAfterMs (value: string | null): number | undefined {
  if (value === null) return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const date = httpDate(value)
  return date === undefined ? undefined : Math.max(0, date - Date.now())
}
