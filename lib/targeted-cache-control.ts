import type { Directives } from './http-semantics'

// RFC 9213 targeted cache control: a response may carry, beside Cache-Control, fields addressed
// to some caches only (CDN-Cache-Control to every CDN, a product's own name to one product).
// A cache with a target list uses the first listed field that is present and valid, in place
// of Cache-Control and Expires (§2.1). A targeted field is a Structured Field Dictionary
// (RFC 8941 §3.2) of cache directives: one that fails to parse is as good as absent.

/** The targeted field every CDN obeys (RFC 9213 §3): the default target list of a proxy cache. */
export const CDN_CACHE_CONTROL = 'cdn-cache-control'

/** The directives of the first field of `names` (lower case) present and valid, or undefined. */
export function targetedDirectives (headers: Record<string, unknown>, names: readonly string[]): Directives | undefined {
  for (const name of names) {
    const field = headers[name]
    if (field === undefined) continue
    const directives = parseDictionary(Array.isArray(field) ? field.join(', ') : String(field))
    // Valid and not empty: it decides, even when none of its directives is one we can use.
    if (directives !== undefined) return directives
  }
  return undefined
}

const KEY_START = /[a-z*]/
const KEY_CHAR = /[a-z0-9_\-.*]/
const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z:/]/

/**
 * An RFC 8941 Dictionary as cache directives: `max-age=60` gives '60', a bare key (`no-store`,
 * boolean true) gives '', a token its text. A value of another type (a string, a decimal, a
 * byte sequence, an inner list, false) drops that directive, as RFC 9213 §2.1 reads a wrong
 * type. Parameters are read and ignored. Keys are compared without case (a deviation from
 * RFC 8941: Cache-Control's directive names are case-insensitive, and origins write them so).
 * Undefined when the field is not a valid Dictionary.
 */
export function parseDictionary (text: string): Directives | undefined {
  const directives: Directives = new Map()
  const input = { text, at: skipSpaces(text, 0) }
  if (input.at === text.length) return undefined
  while (input.at < text.length) {
    const key = readKey(input)
    if (key === undefined) return undefined
    let value: string | undefined = ''
    if (text[input.at] === '=') {
      input.at++
      const item = readItemOrInnerList(input)
      if (item === null) return undefined
      value = item
    }
    if (!skipParameters(input)) return undefined
    // RFC 8941 §4.2.2: a later member of the same key replaces the earlier one.
    if (value === undefined) directives.delete(key)
    else directives.set(key, value)
    input.at = skipOws(text, input.at)
    if (input.at === text.length) break
    if (text[input.at] !== ',') return undefined
    input.at = skipOws(text, input.at + 1)
    if (input.at === text.length) return undefined
  }
  return directives
}

interface Input { text: string, at: number }

function readKey (input: Input): string | undefined {
  const start = input.at
  if (start >= input.text.length || !KEY_START.test(input.text[start].toLowerCase())) return undefined
  let end = start + 1
  while (end < input.text.length && KEY_CHAR.test(input.text[end].toLowerCase())) end++
  input.at = end
  return input.text.slice(start, end).toLowerCase()
}

/** The directive value of an item ('' for true, digits, a token), undefined for another type, null when malformed. */
function readItemOrInnerList (input: Input): string | undefined | null {
  const { text } = input
  const first = text[input.at]
  if (first === '(') return readInnerList(input) ? undefined : null
  if (first === '-' || (first !== undefined && first >= '0' && first <= '9')) {
    const match = /^-?\d{1,15}(\.\d{1,3})?/.exec(text.slice(input.at))
    if (match === null || (match[1] === undefined && match[0].replace('-', '').length > 15) || (match[1] !== undefined && match[0].split('.')[0].replace('-', '').length > 12)) return null
    input.at += match[0].length
    return match[1] === undefined ? match[0] : undefined
  }
  if (first === '"') return readString(input) ? undefined : null
  if (first === ':') {
    const end = text.indexOf(':', input.at + 1)
    if (end === -1 || !/^[A-Za-z0-9+/=]*$/.test(text.slice(input.at + 1, end))) return null
    input.at = end + 1
    return undefined
  }
  if (first === '?') {
    const bit = text[input.at + 1]
    if (bit !== '0' && bit !== '1') return null
    input.at += 2
    return bit === '1' ? '' : undefined
  }
  if (first !== undefined && /[A-Za-z*]/.test(first)) {
    const start = input.at
    input.at++
    while (input.at < text.length && TOKEN_CHAR.test(text[input.at])) input.at++
    return text.slice(start, input.at)
  }
  return null
}

function readString (input: Input): boolean {
  const { text } = input
  for (let i = input.at + 1; i < text.length; i++) {
    const char = text[i]
    if (char === '\\') {
      if (text[i + 1] !== '"' && text[i + 1] !== '\\') return false
      i++
    } else if (char === '"') {
      input.at = i + 1
      return true
    } else if (char < ' ' || char > '~') {
      return false
    }
  }
  return false
}

function readInnerList (input: Input): boolean {
  input.at++
  while (input.at < input.text.length) {
    input.at = skipSpaces(input.text, input.at)
    if (input.text[input.at] === ')') {
      input.at++
      return skipParameters(input)
    }
    if (input.text[input.at] === '(' || readItemOrInnerList(input) === null) return false
    if (!skipParameters(input)) return false
    if (input.text[input.at] !== ' ' && input.text[input.at] !== ')') return false
  }
  return false
}

function skipParameters (input: Input): boolean {
  while (input.text[input.at] === ';') {
    input.at = skipSpaces(input.text, input.at + 1)
    if (readKey(input) === undefined) return false
    if (input.text[input.at] === '=') {
      input.at++
      if (input.text[input.at] === '(' || readItemOrInnerList(input) === null) return false
    }
  }
  return true
}

function skipSpaces (text: string, at: number): number {
  while (text[at] === ' ') at++
  return at
}

function skipOws (text: string, at: number): number {
  while (text[at] === ' ' || text[at] === '\t') at++
  return at
}
