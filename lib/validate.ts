import { InvalidOptionError } from './errors'

// Small checks shared by plugin, route and cache option validation. Each one throws an
// InvalidOptionError naming the option (with where it was given) and what was expected.

export function rejectUnknown (where: string, options: object, allowed: ReadonlySet<string>): void {
  for (const name of Object.keys(options)) {
    if (!allowed.has(name)) {
      throw new InvalidOptionError(where + name, 'unknown option; expected one of ' + [...allowed].join(', '))
    }
  }
}

export function checkObject (name: string, value: unknown): void {
  if (value !== undefined && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    throw new InvalidOptionError(name, 'expected an object, got ' + describe(value))
  }
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** A token (RFC 9110 §5.6.2): what header names, cookie names and directive names are made of. */
export function isToken (value: unknown): value is string {
  return typeof value === 'string' && TOKEN.test(value)
}

/** Seconds: a finite number >= 0. */
export function checkSeconds (name: string, value: unknown): asserts value is number | undefined {
  if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
    throw new InvalidOptionError(name, 'expected a number of seconds >= 0, got ' + describe(value))
  }
}

export function checkPositiveInteger (name: string, value: unknown): asserts value is number | undefined {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value <= 0)) {
    throw new InvalidOptionError(name, 'expected a positive integer, got ' + describe(value))
  }
}

export function checkNonNegativeInteger (name: string, value: unknown): asserts value is number | undefined {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < 0)) {
    throw new InvalidOptionError(name, 'expected an integer >= 0, got ' + describe(value))
  }
}

export function checkBoolean (name: string, value: unknown): asserts value is boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new InvalidOptionError(name, 'expected a boolean, got ' + describe(value))
  }
}

export function checkString (name: string, value: unknown): asserts value is string | undefined {
  if (value !== undefined && typeof value !== 'string') {
    throw new InvalidOptionError(name, 'expected a string, got ' + describe(value))
  }
}

export function checkFunction (name: string, value: unknown): asserts value is ((...args: any[]) => unknown) | undefined {
  if (value !== undefined && typeof value !== 'function') {
    throw new InvalidOptionError(name, 'expected a function, got ' + describe(value))
  }
}

export function checkStringArray (name: string, value: unknown): asserts value is string[] | undefined {
  if (value === undefined) return
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string' || item.length === 0)) {
    throw new InvalidOptionError(name, 'expected an array of non-empty strings, got ' + describe(value))
  }
}

/** Header names are case-insensitive; Node gives them lower-case, so we compare lower-case. */
export function lowerCaseHeaders (name: string, value: unknown): string[] | undefined {
  checkStringArray(name, value)
  return value?.map((header) => header.toLowerCase())
}

export function describe (value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'nothing'
  if (Array.isArray(value)) return 'array ' + safeJson(value)
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'object') return 'object ' + safeJson(value)
  if (typeof value === 'string') return 'string ' + JSON.stringify(value)
  return typeof value + ' ' + String(value)
}

function safeJson (value: unknown): string {
  try {
    const text = JSON.stringify(value)
    return text.length > 80 ? text.slice(0, 77) + '...' : text
  } catch {
    return '(unprintable)'
  }
}
