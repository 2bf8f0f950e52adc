import { CONFLICTING, deltaSeconds, parseCacheControl, type Directives } from './http-semantics'

// How long a response may be used, as a shared cache reads it (RFC 9111 §4.2), for routes with
// `ttl: 'from-response'`. Pure functions of the response's headers and the exchange's times.

/** RFC 9110 §15.1: statuses a cache may store with heuristic freshness (without explicit freshness). */
export const HEURISTIC_STATUSES: ReadonlySet<number> = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501])

/** RFC 9110 §15: the statuses this cache knows the caching rules of (for must-understand). */
const UNDERSTOOD_STATUSES: ReadonlySet<number> = new Set([
  200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 305, 307, 308,
  400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426,
  500, 501, 502, 503, 504, 505
])

/** The entry may only be used after a successful revalidation (response no-cache, RFC 9111 §5.2.2.4). */
export const FLAG_NO_CACHE = 1
/** Once stale, the entry is never served without revalidation (must-revalidate, proxy-revalidate, s-maxage). */
export const FLAG_MUST_REVALIDATE = 2
/** The entry was stale when stored (zero freshness, or older than its lifetime). */
export const FLAG_STALE = 4
/** The entry's ETag was computed by us, not given by the origin: never sent to it in a conditional request. */
export const FLAG_COMPUTED_ETAG = 8
/**
 * Kept past its freshness (from-response routes): a revalidation can reuse it (it has origin
 * validators), or it may answer while the origin fails (nothing forbids serving it stale).
 */
export const FLAG_KEEP_STALE = 16

/**
 * The body may be kept in the route's codings, made when a hit first asks for one (issue 30:
 * codings made at every store cost a miss-only load 1.43x; most entries are never read again).
 */
export const FLAG_ENCODE_LATER = 32

/** How long a FLAG_KEEP_STALE entry is kept beyond its freshness. */
export const KEEP_STALE_SECONDS = 3600
/** Heuristic freshness: this fraction of the time since Last-Modified (RFC 9111 §4.2.2), at most a day. */
const HEURISTIC_FRACTION = 0.1
const HEURISTIC_MAX_SECONDS = 86400

/** What a response says about its own freshness, for a shared cache. */
export interface ResponseFreshness {
  /** Freshness lifetime in seconds; undefined when the response gives no explicit or heuristic one. */
  lifetime: number | undefined
  /** The lifetime came from s-maxage, max-age, Expires or Surrogate-Control (not a heuristic). */
  explicit: boolean
  /** Seconds the response was already old when it arrived (RFC 9111 §4.2.3); MAX_AGE_SECONDS when its Age is unreadable. */
  initialAge: number
  /** FLAG_* bits for the entry. */
  flags: number
  /** Response stale-while-revalidate / stale-if-error windows (RFC 5861), when the response gives them. */
  staleWhileRevalidate: number | undefined
  staleIfError: number | undefined
  /** Why the response may not be stored by a shared cache, or undefined. */
  refusal: string | undefined
}

export interface Exchange {
  /** Epoch ms when the request went to the origin. */
  requestTime: number
  /** Epoch ms when the response arrived. */
  responseTime: number
  /** Our token in Surrogate-Control targets (`max-age=60;token`). */
  surrogateToken: string
  /** Heuristic freshness from Last-Modified is allowed. */
  heuristic: boolean
  /** The directives come from a targeted field (RFC 9213): Expires is ignored with Cache-Control. */
  targeted?: boolean
}

type Headers = Record<string, unknown>

/**
 * RFC 9111 §3, §4.2, §5.2.2 for a shared cache, with Surrogate-Control (Edge Architecture 1.0)
 * directives for us taking the place of Cache-Control's, as surrogates do.
 */
export function responseFreshness (status: number, headers: Headers, cacheControl: Directives, exchange: Exchange): ResponseFreshness {
  const surrogate = surrogateDirectives(headers['surrogate-control'], exchange.surrogateToken)
  const result: ResponseFreshness = {
    lifetime: undefined,
    explicit: false,
    initialAge: initialAge(headers, exchange),
    flags: 0,
    staleWhileRevalidate: deltaSeconds(cacheControl, 'stale-while-revalidate'),
    staleIfError: deltaSeconds(cacheControl, 'stale-if-error'),
    refusal: undefined
  }
  // RFC 9111 §5.2.2.3: must-understand: store only statuses whose caching rules we know, and
  // then no-store does not apply (it is there for caches that do not understand).
  // Surrogate-Control (Edge Architecture 1.0) speaks to us in place of Cache-Control only in
  // what it says: a freshness of its own lets us store what browsers may not (Cache-Control
  // no-store), and its no-store keeps us out; one without either (`content="ESI/1.0"`, an ESI
  // capability every page of an ESI origin carries) leaves Cache-Control's restrictions in
  // force. `private` always keeps us out: a personal answer is never shared (README, "Security").
  const mustUnderstand = cacheControl.has('must-understand')
  const surrogateFreshness = surrogate?.has('max-age') === true
  if (mustUnderstand && !UNDERSTOOD_STATUSES.has(status)) result.refusal = 'must-understand'
  else if (surrogate?.has('no-store') === true) result.refusal = 'no-store'
  else if (cacheControl.has('no-store') && !surrogateFreshness && !mustUnderstand) result.refusal = 'no-store'
  else if (cacheControl.has('private')) result.refusal = 'private'
  // RFC 9111 §5.2.2.4, §5.2.2.2, §5.2.2.8: no-cache, must-revalidate, proxy-revalidate.
  if (cacheControl.has('no-cache')) result.flags |= FLAG_NO_CACHE
  if (cacheControl.has('must-revalidate') || cacheControl.has('proxy-revalidate')) result.flags |= FLAG_MUST_REVALIDATE

  if (surrogate !== undefined && surrogate.has('max-age')) {
    result.lifetime = lifetimeOf(surrogate, 'max-age')
    result.explicit = true
  } else if (cacheControl.has('s-maxage')) {
    // RFC 9111 §5.2.2.10: s-maxage also means proxy-revalidate.
    result.lifetime = lifetimeOf(cacheControl, 's-maxage')
    result.explicit = true
    result.flags |= FLAG_MUST_REVALIDATE
  } else if (cacheControl.has('max-age')) {
    result.lifetime = lifetimeOf(cacheControl, 'max-age')
    result.explicit = true
  } else if (headers.expires !== undefined && exchange.targeted !== true) {
    // RFC 9111 §5.3: an invalid Expires (such as "0") means already expired.
    const expires = httpDate(headers.expires)
    const date = httpDate(headers.date) ?? exchange.responseTime
    result.lifetime = expires === undefined ? 0 : Math.max(0, (expires - date) / 1000)
    result.explicit = true
  } else if (exchange.heuristic && (HEURISTIC_STATUSES.has(status) || cacheControl.has('public'))) {
    // RFC 9111 §4.2.2: a fraction of the time since the last modification.
    const lastModified = httpDate(headers['last-modified'])
    const date = httpDate(headers.date) ?? exchange.responseTime
    if (lastModified !== undefined && lastModified < date) {
      result.lifetime = Math.min(HEURISTIC_MAX_SECONDS, Math.floor(((date - lastModified) / 1000) * HEURISTIC_FRACTION))
    }
  }
  if (result.lifetime === 0 || (result.lifetime !== undefined && result.initialAge >= result.lifetime)) result.flags |= FLAG_STALE
  return result
}

/** A lifetime directive's seconds: absent or malformed (or given twice differently) counts as 0, stale. */
function lifetimeOf (directives: Directives, name: string): number {
  if (directives.get(name) === CONFLICTING) return 0
  return deltaSeconds(directives, name) ?? 0
}

/**
 * RFC 9111 §4.2.3: the corrected initial age. Age is read as a cache reads a field that allows
 * one value: its first line, and of that line its first member (a proxy in between may have
 * joined two); a value that is not one non-negative integer (a fraction, a negative number,
 * letters) is ignored (RFC 9111 §5.1: "a cache SHOULD ignore" an invalid Age), parameters after
 * `;` aside. Today's cache-tests ask exactly this; until 2026 we took any doubtful Age as too
 * old, which no other cache did.
 */
export function initialAge (headers: Headers, exchange: Exchange): number {
  const ageValue = ageOf(headers.age)
  const date = httpDate(headers.date)
  const apparentAge = date === undefined ? 0 : Math.max(0, (exchange.responseTime - date) / 1000)
  const responseDelay = Math.max(0, (exchange.responseTime - exchange.requestTime) / 1000)
  return Math.max(apparentAge, ageValue + responseDelay)
}

/** The seconds an Age field says, capped at MAX_AGE_SECONDS; 0 when absent or invalid. */
export function ageOf (field: unknown): number {
  if (field === undefined || field === null) return 0
  const line = Array.isArray(field) ? String(field[0]) : String(field)
  const member = line.split(',', 1)[0].split(';', 1)[0].trim()
  if (!/^\d+$/.test(member)) return 0
  return Math.min(Number(member), MAX_AGE_SECONDS)
}

/** RFC 9111 §1.2.2: ages are capped at 2^31 seconds. */
export const MAX_AGE_SECONDS = 2147483648

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']
const LONG_DAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday']
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']
// RFC 9110 §5.6.7: the three forms, exactly (names compared without case, as most caches do).
const IMF_FIXDATE = /^(?<day>[a-z]{3}), (?<date>\d{2}) (?<month>[a-z]{3}) (?<year>\d{4}) (?<hour>\d{2}):(?<minute>\d{2}):(?<second>\d{2}) gmt$/i
const RFC850_DATE = /^(?<day>[a-z]{6,9}), (?<date>\d{2})-(?<month>[a-z]{3})-(?<year>\d{2}) (?<hour>\d{2}):(?<minute>\d{2}):(?<second>\d{2}) gmt$/i
const ASCTIME_DATE = /^(?<day>[a-z]{3}) (?<month>[a-z]{3}) (?<date>[ \d]\d) (?<hour>\d{2}):(?<minute>\d{2}):(?<second>\d{2}) (?<year>\d{4})$/i

/**
 * An HTTP-date (RFC 9110 §5.6.7) as epoch ms, or undefined when absent or invalid: IMF-fixdate,
 * or the obsolete RFC 850 and asctime forms; anything else (another zone than GMT, no comma,
 * doubled spaces, dashes in an IMF date, a one-digit hour, two field lines) is invalid, and an
 * invalid Expires means already expired (RFC 9111 §5.3). Date.parse read all of those as dates.
 */
export function httpDate (value: unknown): number | undefined {
  if (value === undefined || value === null || Array.isArray(value)) return undefined
  const text = String(value).trim()
  const imf = IMF_FIXDATE.exec(text)?.groups
  if (imf !== undefined) return dateOf(DAYS, imf, Number(imf.year))
  const rfc850 = RFC850_DATE.exec(text)?.groups
  if (rfc850 !== undefined) return dateOf(LONG_DAYS, rfc850, fullYear(Number(rfc850.year)))
  const asctime = ASCTIME_DATE.exec(text)?.groups
  if (asctime !== undefined) return dateOf(DAYS, asctime, Number(asctime.year))
  return undefined
}

/** The instant a matched date names, or undefined when a name or a field is out of range. */
function dateOf (days: string[], fields: Record<string, string>, year: number): number | undefined {
  const month = MONTHS.indexOf(fields.month.toLowerCase())
  const [date, hour, minute, second] = [fields.date, fields.hour, fields.minute, fields.second].map(Number)
  if (!days.includes(fields.day.toLowerCase()) || month === -1 || date < 1 || date > 31 || hour > 23 || minute > 59 || second > 60) return undefined
  return Date.UTC(year, month, date, hour, minute, Math.min(second, 59))
}

/** RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is the most recent past one. */
function fullYear (twoDigits: number): number {
  const now = new Date().getUTCFullYear()
  const year = now - (now % 100) + twoDigits
  return year > now + 50 ? year - 100 : year
}

/**
 * Surrogate-Control directives meant for us: untargeted ones, and those targeted at `token`
 * (`max-age=60;token`). Undefined when the header is absent or holds none for us.
 */
export function surrogateDirectives (header: unknown, token: string): Directives | undefined {
  if (header === undefined) return undefined
  const text = Array.isArray(header) ? header.join(',') : String(header)
  const ours: string[] = []
  for (const part of text.split(',')) {
    const semicolon = part.indexOf(';')
    if (semicolon === -1) ours.push(part)
    else if (part.slice(semicolon + 1).trim() === token) ours.push(part.slice(0, semicolon))
  }
  if (ours.length === 0) return undefined
  const directives = parseCacheControl(ours.join(','))
  return directives.size === 0 ? undefined : directives
}
