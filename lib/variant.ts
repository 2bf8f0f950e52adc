import { createHash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'

// A request's variant: which of the responses stored under one key it may be answered with.
// Lines joined by '\n', in a fixed order:
//   ':origin=' protocol '://' host     unless the route shares entries across hosts
//   name '=' value                      one per configured vary header (varyHeaders) or cookie
//                                       (varyCookies, named 'cookie:' name)
//   name '=' value                      one per header (or cookie) a key's stored response
//                                       varies on: named in its Vary, or read by its handler
// Header values cannot hold a newline, and header and cookie names cannot hold ':' or '=', so
// no value can pass for another line. Variants are kept apart from the key, so invalidating a key drops them all.

/** What a route's variants are made of, fixed at registration. */
export interface VariantPlan {
  /** Requests for different hosts or protocols never share an entry. */
  origin: boolean
  /** Configured request headers, lower-case. */
  names: readonly string[]
}

const ORIGIN = ':origin='

/** The origin a request is for, as Fastify resolves it (forwarded headers with trustProxy). */
export function originOf (request: FastifyRequest): string {
  return request.protocol + '://' + String(request.host ?? '').toLowerCase()
}

/**
 * The variant from the route's plan: origin and configured headers. `origin` replaces the
 * request's own (a background refresh runs through inject, which has neither TLS nor the
 * original socket).
 */
export function baseVariant (request: FastifyRequest, plan: VariantPlan, origin?: string): string {
  let variant = plan.origin ? ORIGIN + (origin ?? originOf(request)) : ''
  const names = plan.names
  for (let i = 0; i < names.length; i++) variant = withHeader(variant, request, names[i])
  return variant
}

/** `base` plus the values of the headers a stored response varies on (RFC 9111 §4.1). */
export function extendVariant (base: string, request: FastifyRequest, names: readonly string[]): string {
  let variant = base
  for (let i = 0; i < names.length; i++) variant = withHeader(variant, request, names[i])
  return variant
}

/** The prefix of a cookie's name among a variant's names. */
export const COOKIE_NAME_PREFIX = 'cookie:'

function withHeader (variant: string, request: FastifyRequest, name: string): string {
  let value: string
  if (name.startsWith(COOKIE_NAME_PREFIX)) value = cookieValues(request.headers.cookie, name.slice(COOKIE_NAME_PREFIX.length))
  else {
    const raw = request.headers[name]
    value = raw === undefined ? '' : normalized(Array.isArray(raw) ? raw.join(',') : raw)
    // Credentials select a variant but are never written to the store in clear.
    if ((name === 'authorization' || name === 'cookie') && value !== '') value = secret(value)
  }
  return (variant === '' ? '' : variant + '\n') + name + '=' + value
}

function secret (value: string): string {
  return createHash('sha256').update(value).digest('base64url')
}

/**
 * One cookie's value as a variant sees it: every pair of that name in the Cookie header, in
 * order, so that two requests share a variant only when they hold exactly the same pairs,
 * whichever of them a cookie parser hands the handler (the first, the last, all). Hashed:
 * cookies are credentials often. '' when the request has none.
 */
function cookieValues (header: string | string[] | undefined, name: string): string {
  if (header === undefined) return ''
  const text = Array.isArray(header) ? header.join('; ') : header
  const values: string[] = []
  for (const pair of text.split(';')) {
    const eq = pair.indexOf('=')
    const pairName = (eq === -1 ? pair : pair.slice(0, eq)).trim()
    if (pairName === name) values.push(eq === -1 ? '' : pair.slice(eq + 1).trim())
  }
  return values.length === 0 ? '' : secret(JSON.stringify(values))
}

/**
 * RFC 9110 §5.6.1: whitespace around the commas of a list is not part of its members, and
 * several lines of a field are one list: `a, b`, `a,b` and two lines `a` and `b` select one variant.
 */
function normalized (value: string): string {
  if (value.indexOf(',') === -1) return value.trim()
  return value.split(',').map((member) => member.trim()).filter((member) => member !== '').join(',')
}

/**
 * True when a variant was computed with `name` among its headers. A name right after the start
 * or a newline and followed by `=` is a name, never part of a value. No allocation: runs on hits.
 */
export function variantHas (variant: string, name: string): boolean {
  let at = variant.indexOf(name)
  while (at !== -1) {
    if ((at === 0 || variant.charCodeAt(at - 1) === 10) && variant.charCodeAt(at + name.length) === 61) return true
    at = variant.indexOf(name, at + 1)
  }
  return false
}
