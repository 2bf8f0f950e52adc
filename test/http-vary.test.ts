// Variants (issue 4): the stored response's own Vary adds request headers to the variant
// automatically, Vary: * is never stored, and Accept-Encoding never splits the cache.
import t from 'tap'
import { responseEntry } from './helpers/entries'
import { MemoryCache, RedisCache } from '../lib/index'
import { countingApp as build, emberApp, type Handler } from './helpers/apps'
import { startRedis } from './helpers/servers'

/** Answers in the language the request asks for, and says so in Vary. */
const byLanguage: Handler = (request, reply) => {
  reply.header('vary', 'X-Lang')
  return 'hello in ' + String(request.headers['x-lang'] ?? 'default')
}

const lang = (value?: string, url = '/r'): { url: string, headers: Record<string, string> } =>
  ({ url, headers: value === undefined ? {} : { 'x-lang': value } })

t.test('RFC 9111 §4.1: a response with Vary is not served to a request with another value of that header', async (t) => {
  const { app, calls } = await build(t, byLanguage)
  const fr = await app.inject(lang('fr'))
  t.equal(fr.body, 'hello in fr')
  t.equal(fr.headers['x-cache'], 'MISS')
  const en = await app.inject(lang('en'))
  t.equal(en.headers['x-cache'], 'MISS', 'the fr entry must not answer en')
  t.equal(en.body, 'hello in en')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §4.1: an optimal cache reuses a Vary response when the request matches', async (t) => {
  const { app, calls } = await build(t, byLanguage)
  await app.inject(lang('fr'))
  await app.inject(lang('en'))
  const fr = await app.inject(lang('fr'))
  const en = await app.inject(lang('en'))
  t.equal(fr.headers['x-cache'], 'HIT')
  t.equal(fr.body, 'hello in fr')
  t.equal(fr.headers.vary, 'X-Lang', 'the Vary header is replayed as sent')
  t.equal(en.headers['x-cache'], 'HIT')
  t.equal(en.body, 'hello in en')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §4.1: a Vary response stored without the header is not served to a request that has it', async (t) => {
  const { app, calls } = await build(t, byLanguage)
  await app.inject(lang(undefined))
  const fr = await app.inject(lang('fr'))
  t.equal(fr.headers['x-cache'], 'MISS')
  t.equal(fr.body, 'hello in fr')
  const none = await app.inject(lang(undefined))
  t.equal(none.headers['x-cache'], 'HIT')
  t.equal(none.body, 'hello in default')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §4.1: a Vary response stored with the header is not served to a request without it', async (t) => {
  const { app, calls } = await build(t, byLanguage)
  await app.inject(lang('fr'))
  const none = await app.inject(lang(undefined))
  t.equal(none.headers['x-cache'], 'MISS')
  t.equal(none.body, 'hello in default')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §4.1: a two-way Vary matches regardless of the order the names are listed in', async (t) => {
  let flip = false
  const { app, calls } = await build(t, (request, reply) => {
    flip = !flip
    reply.header('vary', flip ? 'X-A, X-B' : 'x-b,x-a')
    return String(request.headers['x-a']) + String(request.headers['x-b'])
  })
  const ab = { url: '/r', headers: { 'x-a': '1', 'x-b': '2' } }
  await app.inject(ab)
  t.equal((await app.inject(ab)).headers['x-cache'], 'HIT')
  const other = await app.inject({ url: '/r', headers: { 'x-a': '1', 'x-b': '3' } })
  t.equal(other.headers['x-cache'], 'MISS', 'differs on one of the two')
  t.equal(other.body, '13')
  t.equal((await app.inject({ url: '/r', headers: { 'x-a': '1', 'x-b': '3' } })).headers['x-cache'], 'HIT')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §4.1: headers not listed in Vary do not split the cache', async (t) => {
  const { app, calls } = await build(t, byLanguage)
  await app.inject({ url: '/r', headers: { 'x-lang': 'fr', 'x-other': '1' } })
  const res = await app.inject({ url: '/r', headers: { 'x-lang': 'fr', 'x-other': '2' } })
  t.equal(res.headers['x-cache'], 'HIT')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §4.1: a Vary learned on one URL applies to the other URLs of the route', async (t) => {
  const app = await emberApp(t)
  let calls = 0
  app.get('/items/:id', { config: { cache: { mode: 'memory' } } }, async (request, reply) => {
    calls++
    reply.header('vary', 'x-lang')
    return String((request.params as { id: string }).id) + ':' + String(request.headers['x-lang'])
  })
  await app.inject(lang('fr', '/items/1'))
  await app.inject(lang('fr', '/items/2'))
  const en = await app.inject(lang('en', '/items/2'))
  t.equal(en.body, '2:en')
  t.equal((await app.inject(lang('fr', '/items/2'))).body, '2:fr')
  t.equal(calls, 3)
})

t.test('RFC 9111 §4.1: an entry stored under a variant without its Vary header (another writer) is a miss', async (t) => {
  // What an instance that has not learned the Vary yet finds in a shared cache: an entry stored
  // by another writer without the x-lang value in its variant.
  const cache = new MemoryCache()
  const foreign = responseEntry({
    headers: { vary: 'x-lang', 'content-type': 'text/plain; charset=utf-8', etag: '"fr"' },
    body: Buffer.from('hello in fr')
  })
  cache.store('GET:/r', '', foreign)
  const { app, calls } = await build(t, byLanguage, cache)
  const en = await app.inject(lang('en'))
  t.equal(en.headers['x-cache'], 'MISS', 'the stored fr response was not served to en')
  t.equal(en.body, 'hello in en')
  const again = await app.inject(lang('en'))
  t.equal(again.headers['x-cache'], 'HIT', 'the route learned x-lang and stored the en variant')
  t.equal(again.body, 'hello in en')
  t.equal(calls(), 1)
})

t.test('RFC 9111 §4.1: an automatic HEAD route shares the variants its GET route learned', async (t) => {
  const { app, calls } = await build(t, byLanguage)
  await app.inject(lang('fr'))
  const frHead = await app.inject({ method: 'HEAD', url: '/r', headers: { 'x-lang': 'fr' } })
  t.equal(frHead.headers['x-cache'], 'HIT')
  t.equal(frHead.headers['content-length'], String('hello in fr'.length))
  const enHead = await app.inject({ method: 'HEAD', url: '/r', headers: { 'x-lang': 'en' } })
  t.equal(enHead.headers['x-cache'], 'MISS', 'the fr entry does not answer an en HEAD')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §4.1: configured varyHeaders and a response Vary combine', async (t) => {
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('vary', 'x-lang')
    return String(request.headers['x-tenant']) + '/' + String(request.headers['x-lang'])
  }, { mode: 'memory', varyHeaders: ['X-Tenant'] })
  await app.inject({ url: '/r', headers: { 'x-tenant': 'a', 'x-lang': 'fr' } })
  const otherTenant = await app.inject({ url: '/r', headers: { 'x-tenant': 'b', 'x-lang': 'fr' } })
  const otherLang = await app.inject({ url: '/r', headers: { 'x-tenant': 'a', 'x-lang': 'en' } })
  t.equal(otherTenant.body, 'b/fr')
  t.equal(otherLang.body, 'a/en')
  const same = await app.inject({ url: '/r', headers: { 'x-tenant': 'a', 'x-lang': 'fr' } })
  t.equal(same.headers['x-cache'], 'HIT')
  t.equal(same.body, 'a/fr')
  t.equal(calls(), 3)
})

t.test('RFC 9110 §12.5.5: a response with Vary: * is never stored', async (t) => {
  for (const vary of ['*', 'x-lang, *']) {
    const { app, calls } = await build(t, (request, reply) => {
      reply.header('vary', vary)
      return 'body'
    })
    const first = await app.inject('/r')
    t.equal(first.body, 'body')
    t.match(first.headers['cache-status'], /detail=vary-star/, vary)
    t.equal((await app.inject('/r')).headers['x-cache'], 'MISS', vary)
    t.equal(calls(), 2)
  }
})

t.test('RFC 9110 §12.5.3: Vary: Accept-Encoding does not split the cache', async (t) => {
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('vary', 'Accept-Encoding')
    return 'same for everyone'
  })
  await app.inject({ url: '/r', headers: { 'accept-encoding': 'gzip' } })
  for (const encoding of ['br', 'identity', 'gzip, deflate, br', undefined]) {
    const res = await app.inject({ url: '/r', headers: encoding === undefined ? {} : { 'accept-encoding': encoding } })
    t.equal(res.headers['x-cache'], 'HIT', String(encoding))
    t.equal(res.body, 'same for everyone')
    t.equal(res.headers.vary, 'Accept-Encoding', 'replayed as the handler set it')
  }
  t.equal(calls(), 1)
})

t.test('RFC 9110 §12.5.5: Vary names are case-insensitive', async (t) => {
  const { app, calls } = await build(t, (request, reply) => {
    reply.header('vary', 'X-LANG')
    return String(request.headers['x-lang'])
  })
  await app.inject(lang('fr'))
  t.equal((await app.inject(lang('fr'))).headers['x-cache'], 'HIT')
  t.equal((await app.inject(lang('en'))).body, 'en')
  t.equal(calls(), 2)
})

t.test('RFC 9111 §4.1: two instances sharing Redis never serve one language to the other', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const keyPrefix = 'vary-' + String(process.pid) + ':'
  // A stored fr response must not reach en on an instance that learned nothing yet.
  const one = await build(t, byLanguage, new RedisCache({ url: redis.url, keyPrefix }))
  const two = await build(t, byLanguage, new RedisCache({ url: redis.url, keyPrefix }))
  await one.app.ready()
  await two.app.ready()
  t.equal((await one.app.inject(lang('fr'))).body, 'hello in fr')
  const en = await two.app.inject(lang('en'))
  t.equal(en.body, 'hello in en')
  t.equal(en.headers['x-cache'], 'MISS')
  const fr = await two.app.inject(lang('fr'))
  t.equal(fr.headers['x-cache'], 'HIT', "instance two now finds instance one's fr entry")
  t.equal(fr.body, 'hello in fr')
  t.equal((await one.app.inject(lang('en'))).body, 'hello in en')
  t.equal(one.calls() + two.calls(), 2)
})
