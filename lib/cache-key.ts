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
  return method + ':' + path + '?' + sortedQuery(query)
}

/**
 * The key of a request target as sent, query order included: a proxy's upstream may apply
 * parameters in order (`?upper=1&replace=x` is not `?replace=x&upper=1` to it).
 */
export function targetKey (method: string, url: string): string {
  return method + ':' + url
}

/**
 * The parameters sorted by name as the query parser decodes them, stably. Each name is decoded
 * once, before the sort (decoding inside the comparator cost 250 ms for 3,200 parameters named
 * `%3`: one request a second kept a core busy).
 */
function sortedQuery (query: string): string {
  const params = query.split('&')
  const named: Array<{ name: string, index: number, param: string }> = []
  for (let i = 0; i < params.length; i++) {
    if (params[i].length > 0) named.push({ name: paramName(params[i]), index: i, param: params[i] })
  }
  named.sort(byName)
  let out = ''
  for (let i = 0; i < named.length; i++) out += (i === 0 ? '' : '&') + named[i].param
  return out
}

function byName (a: { name: string, index: number }, b: { name: string, index: number }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.index - b.index
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
  return decodeName(raw)
}

/**
 * Percent-decoding that never throws (an exception per malformed name cost 5 µs: 3,200 of them
 * a request kept a core busy): malformed escapes stay as they are, invalid UTF-8 becomes U+FFFD.
 * It may take two names the query parser tells apart for one (their order is then kept, which
 * is safe); it never tells apart two the parser takes for one.
 */
function decodeName (raw: string): string {
  const bytes: number[] = []
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i)
    if (c === 0x25 && i + 2 < raw.length && isHex(raw.charCodeAt(i + 1)) && isHex(raw.charCodeAt(i + 2))) {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16))
      i += 2
    } else if (c === 0x2b) bytes.push(0x20)
    else if (c < 0x80) bytes.push(c)
    else for (const b of Buffer.from(raw[i], 'utf8')) bytes.push(b)
  }
  return Buffer.from(bytes).toString('utf8')
}

function isHex (code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x46) || (code >= 0x61 && code <= 0x66)
}

/**
 * A value as a key template holds it: letters, digits and `-._~` as they are, every other
 * character percent-encoded (its UTF-8 bytes). A value can then hold none of the characters
 * that separate the parts of keys (`:`, `/`, `?`, `#`, NUL, glob characters...): what a client
 * sends in a param or query value never reaches another key. Build keys by hand with it too.
 */
export function escapeKeyPart (value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
}

/** The characters an escaped value is made of. */
export const KEY_PART_CHAR = /[A-Za-z0-9\-._~%]/

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
 * throws MissingPlaceholderError for a request without a value. Each filled value goes through
 * `transform`: escapeKeyPart for keys (the default), escapeKeyPart then escapeGlob for patterns,
 * nothing for tags (they are matched exactly, never parsed).
 */
export function compileTemplate (
  template: string, params: ReadonlySet<string>, invalid: (message: string) => Error, transform: ((value: string) => string) | null = escapeKeyPart
): KeyBuilder {
  const parsed = parseTemplate(template, params, invalid)
  if (parsed.placeholders.length === 0) return () => template
  return (request) => fillTemplate(parsed, request, transform === null ? undefined : transform)
}

/** The parts of a template: literal text and placeholders, in order. */
export function templateParts (template: string): Array<string | null> {
  const parts: Array<string | null> = []
  let last = 0
  for (const match of template.matchAll(PLACEHOLDER)) {
    if (match.index > last) parts.push(template.slice(last, match.index))
    parts.push(null)
    last = match.index + match[0].length
  }
  if (last < template.length) parts.push(template.slice(last))
  return parts
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

/**
 * Compiles a glob (`*`, `?`, `[...]`, backslash escapes) as Redis MATCH reads it. Never throws:
 * a set is rebuilt character by character (a reversed range such as `[z-a]` is swapped, as
 * Redis does), so no glob Redis accepts can break a regular expression here.
 */
export function globToRegExp (glob: string): RegExp {
  let source = '^'
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]
    if (c === '*') source += '[\\s\\S]*'
    else if (c === '?') source += '[\\s\\S]'
    else if (c === '\\' && i + 1 < glob.length) source += escapeChar(glob[++i])
    else if (c === '[') {
      const set = readSet(glob, i + 1)
      if (set === undefined) { source += '\\['; continue }
      source += set.source
      i = set.end
    } else source += escapeChar(c)
  }
  return new RegExp(source + '$')
}

/** A `[...]` set from `start` (just after `[`): its RegExp source, and the index of its `]`. */
function readSet (glob: string, start: number): { source: string, end: number } | undefined {
  let i = start
  let negate = false
  if (glob[i] === '^') {
    negate = true
    i++
  }
  let items = ''
  while (i < glob.length && glob[i] !== ']') {
    let c = glob[i]
    if (c === '\\' && i + 1 < glob.length) c = glob[++i]
    if (glob[i + 1] === '-' && i + 2 < glob.length && glob[i + 2] !== ']') {
      let end = glob[i + 2]
      let next = i + 3
      if (end === '\\' && i + 3 < glob.length) {
        end = glob[i + 3]
        next = i + 4
      }
      const [low, high] = c <= end ? [c, end] : [end, c]
      items += escapeChar(low) + '-' + escapeChar(high)
      i = next
      continue
    }
    items += escapeChar(c)
    i++
  }
  if (i >= glob.length) return undefined
  // An empty set matches nothing in Redis.
  if (items === '') return { source: negate ? '[\\s\\S]' : '(?!)', end: i }
  return { source: '[' + (negate ? '^' : '') + items + ']', end: i }
}

/** One character as a RegExp literal (also inside a set). */
function escapeChar (c: string): string {
  return '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')
}

/**
 * Why a pattern cannot be used, or undefined: checked once, where a pattern comes in
 * (invalidate(), a bus message), before anything is sent or matched.
 */
export function checkPattern (pattern: unknown): string | undefined {
  if (typeof pattern !== 'string' || pattern.length === 0) return 'a pattern is a non-empty string'
  if (pattern.includes('\u0000')) return 'a pattern holds no NUL'
  try {
    globToRegExp(pattern)
  } catch (err) {
    return 'not a glob: ' + (err as Error).message
  }
  return undefined
}

/** Escapes glob metacharacters so a literal string (a key prefix) matches only itself. */
export function escapeGlob (text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}
