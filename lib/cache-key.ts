import type { FastifyRequest } from 'fastify'

// Cache keys. The format is part of the public contract (users invalidate by key and pattern):
//   METHOD ":" path [ "?" query-with-parameters-sorted-by-name ]
// e.g. GET /tasks?page=1&limit=10 -> "GET:/tasks?limit=10&page=1". HEAD uses the GET key.
// Variants (origin, varyHeaders, response Vary: variant.ts) are kept apart from the key, so
// invalidating a key drops every variant of it.

export type KeyBuilder = (request: FastifyRequest) => string

/**
 * Key of a request URL. Parameters are ordered by (decoded) name with a stable sort, so repeated
 * names keep their order (`?a=2&a=1` is a different list than `?a=1&a=2`). Names and values stay
 * as sent.
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

/**
 * A parameter's name as the query parser sees it: `%61` and `a` are one name, and so are `a+b`
 * and `a%20b`, so their relative order is kept (the handler gets `a` as an array in that order).
 * Sorting by the raw text let `?a=evil&%61=1` share the key of `?%61=1&a=evil` while the handler
 * saw the values the other way round (found by test/safety-poisoning.test.ts).
 */
function paramName (param: string): string {
  const eq = param.indexOf('=')
  const raw = eq === -1 ? param : param.slice(0, eq)
  if (raw.indexOf('%') === -1 && raw.indexOf('+') === -1) return raw
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '))
  } catch {
    return raw
  }
}

const PLACEHOLDER = /\{([^{}]+)\}/g
const QUERY_PLACEHOLDER = 'query.'
const PARAMS_PLACEHOLDER = 'params.'

/**
 * A template placeholder without a value in this request (an absent query parameter, a
 * repeated one, an empty value). Thrown by compiled templates: a key that lacks a part could
 * be shared by requests that differ exactly there, so the request is served without cache.
 */
export class MissingPlaceholderError extends Error {
  constructor (readonly placeholder: string) {
    super('no value for {' + placeholder + '} in this request')
  }
}

/**
 * The param names of a Fastify route path: `:name` (also `:name(regex)` and `:a-:b`), and
 * `*` for a wildcard.
 */
export function routeParamNames (url: string): Set<string> {
  const names = new Set<string>()
  for (const match of url.matchAll(/:([A-Za-z0-9_$]+)/g)) {
    // '::' is an escaped colon, not a param.
    if (match.index !== undefined && match.index > 0 && url[match.index - 1] === ':') continue
    names.add(match[1])
  }
  if (url.includes('*')) names.add('*')
  return names
}

interface Placeholder {
  name: string
  fromQuery: boolean
}

/**
 * Compiles `widget:{widgetId}` once, at route registration: `{name}` (or `{params.name}`) is a
 * route param and must be one of `params`, `{query.name}` a query parameter. Throws
 * `invalid(message)` for a placeholder that names no param of the route. The compiled template
 * throws MissingPlaceholderError for a request without a value. `escape`, when given, is
 * applied to each filled value (escapeGlob for patterns).
 */
export function compileTemplate (
  template: string, params: ReadonlySet<string>, invalid: (message: string) => Error, escape?: (value: string) => string
): KeyBuilder {
  const parsed = parseTemplate(template, params, invalid)
  if (parsed.placeholders.length === 0) return () => template
  return (request) => fillTemplate(parsed, request, escape)
}

/**
 * Compiles a URL-shaped target (`GET:/users/{id}/widgets*`), whose entries are keyed on the URL
 * as the client spelled it, while a placeholder's value is what the router decoded. A client
 * may have sent `john doe` as `john%20doe` or `john+doe`, `*` as `%2A`: the compiled template
 * gives the target in each spelling clients use (`SPELLINGS`), the same one for every
 * placeholder, without duplicates; `escape` applies after spelling (escapeGlob for patterns).
 */
export function compileUrlTemplate (
  template: string, params: ReadonlySet<string>, invalid: (message: string) => Error, escape?: (value: string) => string
): (request: FastifyRequest) => string[] {
  const parsed = parseTemplate(template, params, invalid)
  if (parsed.placeholders.length === 0) return () => [template]
  return (request) => {
    const spelled = new Set<string>()
    for (const spell of SPELLINGS) {
      spelled.add(fillTemplate(parsed, request, (value, fromQuery) => {
        const text = spell(value, fromQuery)
        return escape === undefined ? text : escape(text)
      }))
    }
    return [...spelled]
  }
}

/** How clients write a value in a URL: as is, as encodeURIComponent does, every reserved character percent-encoded, and as a form (URLSearchParams) does in a query. */
const SPELLINGS: ReadonlyArray<(value: string, fromQuery: boolean) => string> = [
  (value) => value,
  (value) => encodeURIComponent(value),
  (value) => encodeURIComponent(value).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase()),
  (value, fromQuery) => fromQuery ? new URLSearchParams([['', value]]).toString().slice(1) : value
]

interface ParsedTemplate {
  literals: string[]
  placeholders: Placeholder[]
  tail: string
}

function parseTemplate (template: string, params: ReadonlySet<string>, invalid: (message: string) => Error): ParsedTemplate {
  const literals: string[] = []
  const placeholders: Placeholder[] = []
  let last = 0
  for (const match of template.matchAll(PLACEHOLDER)) {
    literals.push(template.slice(last, match.index))
    placeholders.push(placeholderOf(match[1].trim(), params, invalid))
    last = (match.index ?? 0) + match[0].length
  }
  return { literals, placeholders, tail: template.slice(last) }
}

function fillTemplate (parsed: ParsedTemplate, request: FastifyRequest, transform?: (value: string, fromQuery: boolean) => string): string {
  const { literals, placeholders } = parsed
  let out = ''
  for (let i = 0; i < placeholders.length; i++) {
    const value = placeholderValue(request, placeholders[i])
    out += literals[i] + (transform === undefined ? value : transform(value, placeholders[i].fromQuery))
  }
  return out + parsed.tail
}

function placeholderOf (text: string, params: ReadonlySet<string>, invalid: (message: string) => Error): Placeholder {
  if (text.startsWith(QUERY_PLACEHOLDER) && text.length > QUERY_PLACEHOLDER.length) {
    return { name: text.slice(QUERY_PLACEHOLDER.length), fromQuery: true }
  }
  const name = text.startsWith(PARAMS_PLACEHOLDER) ? text.slice(PARAMS_PLACEHOLDER.length) : text
  if (!params.has(name)) {
    const known = params.size === 0 ? 'the route has no params' : 'its params are ' + [...params].map((param) => '{' + param + '}').join(', ')
    throw invalid('placeholder {' + text + '} names no param of the route (' + known + '); query values are written {query.' + name + '}')
  }
  return { name, fromQuery: false }
}

function placeholderValue (request: FastifyRequest, placeholder: Placeholder): string {
  const source = (placeholder.fromQuery ? request.query : request.params) as Record<string, unknown> | undefined
  const value = source?.[placeholder.name]
  // A repeated query parameter (an array) has no single value either.
  if (value === undefined || value === null || value === '' || typeof value === 'object') {
    throw new MissingPlaceholderError((placeholder.fromQuery ? QUERY_PLACEHOLDER : '') + placeholder.name)
  }
  return String(value)
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
