// A request's variant, on its own: what selects one, what never shows in one.
import t from 'tap'
import type { FastifyRequest } from 'fastify'
import { baseVariant, extendVariant, originOf, variantHas } from '../../lib/variant'

function request (headers: Record<string, string | string[]>, host = 'Example.COM', protocol = 'https'): FastifyRequest {
  return { headers, host, protocol } as unknown as FastifyRequest
}

t.test('origin, then configured headers, then learned ones; lists normalised', async (t) => {
  const req = request({ 'x-lang': ' fr ', accept: 'a, b', 'x-extra': 'e' })
  t.equal(originOf(req), 'https://example.com', 'host lower-cased')
  const base = baseVariant(req, { origin: true, names: ['x-lang', 'accept'] })
  t.equal(base, ':origin=https://example.com\nx-lang=fr\naccept=a,b')
  t.equal(baseVariant(request({ accept: ['a', 'b'] }), { origin: false, names: ['accept'] }), 'accept=a,b', 'two lines are one list')
  t.equal(extendVariant(base, req, ['x-extra']), base + '\nx-extra=e')
  t.equal(baseVariant(req, { origin: true, names: [] }, 'http://refresh'), ':origin=http://refresh', 'a given origin wins (refreshes)')
  t.equal(baseVariant(request({}), { origin: false, names: ['x-lang'] }), 'x-lang=', 'an absent header is an empty value')
})

t.test('credentials and cookies are hashed, never kept in clear', async (t) => {
  const variant = baseVariant(request({ authorization: 'Bearer secret', cookie: 'sid=abc; theme=dark' }), { origin: false, names: ['authorization', 'cookie:sid'] })
  t.notMatch(variant, /secret|abc/)
  const same = baseVariant(request({ authorization: 'Bearer secret', cookie: 'theme=light; sid=abc' }), { origin: false, names: ['authorization', 'cookie:sid'] })
  t.equal(variant, same, 'other cookies do not matter')
  const twice = baseVariant(request({ cookie: 'sid=abc; sid=evil' }), { origin: false, names: ['cookie:sid'] })
  t.not(twice, baseVariant(request({ cookie: 'sid=abc' }), { origin: false, names: ['cookie:sid'] }), 'a repeated cookie is another variant')
})

t.test('variantHas finds names, never values', async (t) => {
  const variant = ':origin=https://a\nx-lang=accept\naccept=x'
  t.ok(variantHas(variant, 'x-lang'))
  t.ok(variantHas(variant, 'accept'))
  t.notOk(variantHas(variant, 'lang'), 'part of a name')
  t.notOk(variantHas('x-lang=accept', 'accept'), 'a value equal to a name')
})
