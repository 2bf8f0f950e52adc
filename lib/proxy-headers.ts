// The caching reverse proxy forwards what its key covers, or what it sets itself. A client's
// forwarding headers (`X-Forwarded-Host: evil.example`, `Forwarded: host=...`) reach an upstream
// that trusts them (Fastify with trustProxy, as apps behind a proxy are) and come back in links
// the cache then stores for everyone; URL overrides (`X-Original-URL: /admin`) make an upstream
// answer another path under this one's key. As nginx does with `proxy_set_header`, the proxy
// states them from its own view, which is what its key holds (the host and protocol it was
// asked for), and drops the rest.

/** Request headers a client could use to tell an upstream another host, protocol, address, path or method. */
const REPLACED = new Set([
  'forwarded', 'x-real-ip', 'x-client-ip', 'true-client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'x-cluster-client-ip',
  'x-original-url', 'x-rewrite-url', 'x-original-uri', 'x-original-host', 'x-host',
  'x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-method'
])

/** What is read of the request: the proxy's own view of it (any Fastify request, HTTP/1 or 2). */
export interface ProxiedRequest {
  host: string
  protocol: string
  ip: string
}

export interface ProxyHeadersOptions {
  /**
   * Tell the upstream the client's address (`X-Forwarded-For`, `for=` in `Forwarded`). The
   * address is no part of the cache's key: an upstream that shapes its answer by it must say so
   * (`Cache-Control: private`, or `Vary`), or another client gets that answer. Default false.
   */
  forwardFor?: boolean
}

/**
 * A `rewriteRequestHeaders` for @fastify/reply-from (`reply.from(url, { rewriteRequestHeaders:
 * proxyRequestHeaders() })`): forwarding headers restated from the proxy's own view
 * (`X-Forwarded-Host`, `X-Forwarded-Proto`, `Forwarded`), URL and method overrides dropped.
 */
export function proxyRequestHeaders (options: ProxyHeadersOptions = {}): <H extends Record<string, unknown>>(request: ProxiedRequest, headers: H) => H {
  const forwardFor = options.forwardFor === true
  return function rewriteRequestHeaders<H extends Record<string, unknown>> (request: ProxiedRequest, given: H): H {
    const headers = given as Record<string, unknown>
    for (const name of Object.keys(headers)) {
      if (REPLACED.has(name) || name.startsWith('x-forwarded-')) delete headers[name]
    }
    const host = request.host
    const proto = request.protocol
    headers['x-forwarded-host'] = host
    headers['x-forwarded-proto'] = proto
    let forwarded = 'host="' + host.replace(/["\\]/g, '') + '";proto=' + proto
    if (forwardFor) {
      headers['x-forwarded-for'] = request.ip
      forwarded = 'for="' + String(request.ip) + '";' + forwarded
    }
    headers.forwarded = forwarded
    return given
  }
}
