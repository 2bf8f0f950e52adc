// Property-based tests (fast-check, issue 19): the key builder, the envelope, Accept-Encoding
// negotiation and the Cache-Control parser, on generated input rather than hand-picked cases.
// A failure prints the smallest input that breaks the property (and its seed, to replay it).
import t from 'tap'
import fc from 'fast-check'
import { urlKey } from '../lib/cache-key'
import { decodeEntry, encodeEntry, ENTRY_RESPONSE, type CacheEntry } from '../lib/entry'
import { chooseCoding, CODINGS, type EncodedBody } from '../lib/content-coding'
import { deltaSeconds, parseCacheControl, refusalReason } from '../lib/http-semantics'
import { responseFreshness } from '../lib/http-freshness'

const RUNS = { numRuns: 500 }

/** A query parameter as clients send it: name, optional value (any text, URL-encoded or not). */
const paramArb = fc.record({
  name: fc.stringMatching(/^[a-z0-9_.[\]%-]{1,8}$/),
  value: fc.option(fc.string({ maxLength: 12 }).map((value) => value.replace(/[&#]/g, '')), { nil: undefined })
})
const pathArb = fc.array(fc.stringMatching(/^[A-Za-z0-9._~%:@!$'()*+,;=-]{0,10}$/), { maxLength: 4 }).map((parts) => '/' + parts.join('/'))
const paramText = (param: { name: string, value: string | undefined }): string => param.value === undefined ? param.name : param.name + '=' + param.value

t.test('keys: the order of differently named parameters never matters', async () => {
  fc.assert(fc.property(pathArb, fc.uniqueArray(paramArb, { selector: (param) => param.name, maxLength: 8 }), fc.context(), (path, params, ctx) => {
    const shuffled = [...params].reverse()
    const a = urlKey('GET', path + '?' + params.map(paramText).join('&'))
    const b = urlKey('GET', path + '?' + shuffled.map(paramText).join('&'))
    ctx.log(a + ' / ' + b)
    return a === b
  }), RUNS)
})

t.test('keys: requests that differ in path, a value, or the order of a repeated name never share a key', async () => {
  fc.assert(fc.property(pathArb, pathArb, fc.array(paramArb, { maxLength: 6 }), fc.array(paramArb, { maxLength: 6 }), (pathA, pathB, paramsA, paramsB) => {
    const urlA = pathA + (paramsA.length > 0 ? '?' + paramsA.map(paramText).join('&') : '')
    const urlB = pathB + (paramsB.length > 0 ? '?' + paramsB.map(paramText).join('&') : '')
    // What the rules say is the same request: same path, same parameters once sorted stably by name.
    const canonical = (path: string, params: typeof paramsA): string => path + '?' + [...params].filter((param) => param.name !== '')
      .map((param, i) => ({ param, i })).sort((x, y) => x.param.name < y.param.name ? -1 : x.param.name > y.param.name ? 1 : x.i - y.i).map(({ param }) => paramText(param)).join('&')
    const same = canonical(pathA, paramsA) === canonical(pathB, paramsB)
    return same === (urlKey('GET', urlA) === urlKey('GET', urlB))
  }), RUNS)
})

t.test('keys: user text in a URL stays inside its key (the method prefix and path are kept as sent)', async () => {
  fc.assert(fc.property(fc.string({ maxLength: 40 }), (text) => {
    const key = urlKey('GET', '/items/' + text)
    return key.startsWith('GET:/items/')
  }), RUNS)
})

const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/).filter((name) => name !== 'content-length')
const entryArb: fc.Arbitrary<CacheEntry> = fc.record({
  kind: fc.constant(ENTRY_RESPONSE),
  status: fc.integer({ min: 100, max: 599 }),
  headers: fc.dictionary(headerName, fc.oneof(fc.string({ maxLength: 30 }), fc.array(fc.string({ maxLength: 10 }), { minLength: 2, maxLength: 3 })), { maxKeys: 8 }),
  body: fc.uint8Array({ maxLength: 2000 }).map((bytes) => Buffer.from(bytes)),
  storedAt: fc.integer({ min: 0, max: 4_000_000_000_000 }),
  ttl: fc.integer({ min: 0, max: 0xffffffff }),
  initialAge: fc.integer({ min: 0, max: 2 ** 31 }),
  flags: fc.integer({ min: 0, max: 31 }),
  staleWhileRevalidate: fc.integer({ min: 0, max: 0xffffffff }),
  staleIfError: fc.integer({ min: 0, max: 0xffffffff }),
  tags: fc.constant([] as string[]),
  tagVersions: fc.constant([] as string[]),
  encodings: fc.uniqueArray(fc.record({ coding: fc.constantFrom(...CODINGS), body: fc.uint8Array({ maxLength: 500 }).map((bytes) => Buffer.from(bytes)) }), { selector: (encoded) => encoded.coding, maxLength: 3 })
}).chain((entry) => fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }).map((tags) => ({ ...entry, tags, tagVersions: tags.map((_, i) => String(i)) })))

t.test('envelope: any status, headers, body, tags and codings round-trip exactly', async () => {
  fc.assert(fc.property(entryArb, (entry) => {
    const decoded = decodeEntry(encodeEntry(entry))
    if (decoded === undefined) return false
    const { encodings, ...rest } = decoded
    const { encodings: sent, ...expected } = entry
    return JSON.stringify(rest) === JSON.stringify(expected) &&
      JSON.stringify(encodings ?? []) === JSON.stringify(sent ?? [])
  }), RUNS)
})

t.test('envelope: arbitrary, truncated or bit-flipped bytes read as a miss or an entry, never a throw', async () => {
  fc.assert(fc.property(entryArb, fc.nat(), fc.integer({ min: 0, max: 255 }), (entry, at, flip) => {
    const bytes = encodeEntry(entry)
    const truncated = bytes.subarray(0, at % (bytes.length + 1))
    const flipped = Buffer.from(bytes)
    flipped[at % bytes.length] ^= flip
    for (const candidate of [truncated, flipped]) {
      const decoded = decodeEntry(candidate)
      // A decoded entry is one a hit can replay: a real status, a body.
      if (decoded !== undefined && decoded.kind === ENTRY_RESPONSE && (decoded.status < 100 || decoded.status > 599 || !Buffer.isBuffer(decoded.body))) return false
    }
    return truncated.length === bytes.length || decodeEntry(truncated) === undefined
  }), RUNS)
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
    decodeEntry(Buffer.from(bytes))
    return true
  }), RUNS)
})

const held: EncodedBody[] = [{ coding: 'br', body: Buffer.from('b') }, { coding: 'gzip', body: Buffer.from('g') }]
const codingArb = fc.constantFrom('br', 'gzip', 'deflate', 'identity', '*', 'x-gzip', 'compress', 'zstd', 'BR', '')
const memberArb = fc.tuple(codingArb, fc.option(fc.constantFrom('0', '0.1', '0.5', '1', '1.0', '0.001', 'abc', '2'), { nil: undefined }))
  .map(([coding, q]) => q === undefined ? coding : coding + ';q=' + q)

t.test('Accept-Encoding: never a coding the client refused, never a throw', async () => {
  fc.assert(fc.property(fc.array(memberArb, { maxLength: 6 }), (members) => {
    const header = members.join(', ')
    const chosen = chooseCoding(header, held)
    if (chosen === undefined) return true
    // The chosen coding was accepted: named with q > 0, or covered by `*` with q > 0 and not named.
    const weights = members.map((member) => {
      const [name, q] = member.split(';q=')
      return { name: name.trim().toLowerCase() === 'x-gzip' ? 'gzip' : name.trim().toLowerCase(), q: q === undefined ? 1 : /^[01](\.\d{0,3})?$/.test(q) ? Number(q) : 0 }
    })
    const named = weights.filter((weight) => weight.name === chosen.coding)
    if (named.length > 0) return Math.max(...named.map((weight) => weight.q)) > 0
    const any = weights.filter((weight) => weight.name === '*')
    return any.length > 0 && any[any.length - 1].q > 0
  }), RUNS)
})

// Cache-Control values as they come: known directives with good and bad arguments, unknown
// ones, quoted strings (closed or not), stray separators and whitespace.
const directiveArb = fc.oneof(
  fc.constantFrom('no-store', 'no-cache', 'private', 'public', 'must-revalidate', 'proxy-revalidate', 'no-transform', 'immutable'),
  fc.tuple(fc.constantFrom('max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error'), fc.oneof(fc.nat({ max: 100000 }).map(String), fc.constantFrom('-1', '1.5', '', '"60"', 'abc', '99999999999999999999'))).map(([name, value]) => name + '=' + value),
  fc.stringMatching(/^[a-z-]{1,10}(=[a-z0-9"]{0,6})?$/),
  fc.constantFrom('foo="unterminated', 'x="a,b"', ',', ' ', '=', '"', 'max-age="60"', 'no-cache="set-cookie"', 'private="x, y"')
)
const headerArb = fc.array(directiveArb, { maxLength: 6 }).map((parts) => parts.join(', '))

t.test('Cache-Control: parsing never throws; delta-seconds are whole, bounded numbers', async () => {
  fc.assert(fc.property(fc.oneof(headerArb, fc.string({ maxLength: 80 })), (header) => {
    const directives = parseCacheControl(header)
    for (const name of ['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error']) {
      const seconds = deltaSeconds(directives, name)
      if (seconds !== undefined && (!Number.isInteger(seconds) || seconds < 0 || seconds > 2 ** 31)) return false
    }
    return true
  }), RUNS)
})

const exchange = { requestTime: 1_700_000_000_000, responseTime: 1_700_000_000_000, surrogateToken: 'ember', heuristic: false }

t.test('Cache-Control: no-store or private anywhere in the list always refuses storing, whatever surrounds it', async () => {
  fc.assert(fc.property(headerArb, fc.constantFrom('no-store', 'private'), headerArb, (before, forbidding, after) => {
    const header = [before, forbidding, after].filter((part) => part !== '').join(', ')
    const directives = parseCacheControl(header)
    return refusalReason(200, new Set([200]), {}, directives) !== undefined &&
      responseFreshness(200, {}, directives, exchange).refusal !== undefined
  }), RUNS)
})

t.test('Cache-Control: more directives never make a response fresher than max-age alone said', async () => {
  fc.assert(fc.property(fc.nat({ max: 100000 }), headerArb, (maxAge, extra) => {
    const alone = responseFreshness(200, {}, parseCacheControl('max-age=' + String(maxAge)), exchange)
    const more = responseFreshness(200, {}, parseCacheControl('max-age=' + String(maxAge) + ', ' + extra), exchange)
    // s-maxage (quoted or not: RFC 9111 §5.2) takes precedence for a shared cache (§5.2.2.10): the only way up.
    if (extra.includes('s-maxage')) return true
    return (more.lifetime ?? 0) <= (alone.lifetime ?? 0)
  }), RUNS)
})
