import { createHash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'

// Cache keys. The format is part of the public contract (users invalidate by key and pattern):
//   METHOD ":" path [ "?" query-with-parameters-sorted-by-name ]
// e.g. GET /tasks?page=1&limit=10 -> "GET:/tasks?limit=10&page=1". HEAD uses the GET key.
// Variants (varyHeaders, response Vary) are kept apart from the key, so invalidating a key
// drops every variant of it.

export type KeyBuilder = (request: FastifyRequest) => string

/**
 * Key of a request URL. Parameters are ordered by name with a stable sort, so repeated names
 * keep their order (`?a=2&a=1` is a different list than `?a=1&a=2`). Values stay as sent.
 */
export function urlKey (method: string, url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return method + ':' + url
  const path = url.slice(0, q)
  const query = url.slice(q + 1)
  if (query.length === 0) return method + ':' + path
  // One parameter needs no sorting: the common case stays allocation-light.
  if (query.indexOf('&') === -1) return method + ':' + path + '?' + query
  const params = query.split('&').filter(nonEmpty)
  params.sort(byName)
  return method + ':' + path + '?' + params.join('&')
}

function nonEmpty (param: string): boolean {
  return param.length > 0
}

function byName (a: string, b: string): number {
  const an = paramName(a)
  const bn = paramName(b)
  return an < bn ? -1 : an > bn ? 1 : 0
}

function paramName (param: string): string {
  const eq = param.indexOf('=')
  return eq === -1 ? param : param.slice(0, eq)
}

const PLACEHOLDER = /\{([^{}]+)\}/g

/**
 * Compiles `widget:{widgetId}` once, at route registration. Placeholders are filled from
 * route params first, then the query string; a missing value fills in as an empty string.
 * `escape`, when given, is applied to each filled value (escapeGlob for patterns).
 */
export function compileTemplate (template: string, escape?: (value: string) => string): KeyBuilder {
  const literals: string[] = []
  const names: string[] = []
  let last = 0
  for (const match of template.matchAll(PLACEHOLDER)) {
    literals.push(template.slice(last, match.index))
    names.push(match[1])
    last = (match.index ?? 0) + match[0].length
  }
  const tail = template.slice(last)
  if (names.length === 0) return () => template
  return (request) => {
    let out = ''
    for (let i = 0; i < names.length; i++) {
      const value = placeholderValue(request, names[i])
      out += literals[i] + (escape === undefined ? value : escape(value))
    }
    return out + tail
  }
}

function placeholderValue (request: FastifyRequest, name: string): string {
  const params = request.params as Record<string, unknown> | undefined
  const fromParams = params?.[name]
  if (fromParams !== undefined) return String(fromParams)
  const query = request.query as Record<string, unknown> | undefined
  const fromQuery = query?.[name]
  return fromQuery === undefined ? '' : String(fromQuery)
}

/** True when a template string has `{name}` placeholders to fill per request. */
export function hasPlaceholders (template: string): boolean {
  PLACEHOLDER.lastIndex = 0
  return PLACEHOLDER.test(template)
}

/**
 * The variant of a request: the values of the headers the response varies on, in a fixed
 * order. Empty when the route varies on nothing.
 */
export function variantOf (request: FastifyRequest, headerNames: readonly string[]): string {
  let variant = ''
  for (let i = 0; i < headerNames.length; i++) {
    const name = headerNames[i]
    const raw = request.headers[name]
    let value = raw === undefined ? '' : Array.isArray(raw) ? raw.join(',') : raw
    // Credentials select a variant but are never written to the store in clear.
    if (name === 'authorization' && value !== '') value = createHash('sha256').update(value).digest('base64url')
    variant += (i === 0 ? '' : '\n') + name + '=' + value
  }
  return variant
}

/**
 * The request headers a route's variants are made of: the configured ones, then those learned
 * from responses' Vary. The array is replaced, never mutated, when it grows, so a lookup that
 * read it keeps a consistent list.
 */
export interface VariantHeaders {
  names: readonly string[]
}

/** Adds header names not yet known (except `*`); true when the list grew. */
export function learnVariantHeaders (headers: VariantHeaders, names: readonly string[]): boolean {
  let grown: string[] | undefined
  for (const name of names) {
    if (name === '*' || headers.names.includes(name) || grown?.includes(name) === true) continue
    grown ??= [...headers.names]
    grown.push(name)
  }
  if (grown === undefined) return false
  headers.names = grown
  return true
}

/**
 * True when a variant (as built by `variantOf`) was computed with `name` among its headers.
 * Header values cannot hold a newline, so a name right after the start or a newline and
 * followed by `=` is a name, never part of a value. No allocation: runs on hits.
 */
export function variantHas (variant: string, name: string): boolean {
  let at = variant.indexOf(name)
  while (at !== -1) {
    if ((at === 0 || variant.charCodeAt(at - 1) === 10) && variant.charCodeAt(at + name.length) === 61) return true
    at = variant.indexOf(name, at + 1)
  }
  return false
}

/** Compiles a glob (`*`, `?`, `[...]`, backslash escapes) as Redis MATCH reads it. */
export function globToRegExp (glob: string): RegExp {
  let source = '^'
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]
    if (c === '*') source += '[\\s\\S]*'
    else if (c === '?') source += '[\\s\\S]'
    else if (c === '\\' && i + 1 < glob.length) source += escapeRegExp(glob[++i])
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1)
      if (end === -1) { source += '\\['; continue }
      let set = glob.slice(i + 1, end).replace(/\\/g, '\\\\')
      if (set.startsWith('^')) set = '^' + set.slice(1)
      source += '[' + set + ']'
      i = end
    } else source += escapeRegExp(c)
  }
  return new RegExp(source + '$')
}

/** Escapes glob metacharacters so a literal string (a key prefix) matches only itself. */
export function escapeGlob (text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

function escapeRegExp (c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}
