// The cache-aside API on in-process caches: get / set / delete / has / wrap.
import t from 'tap'
import { responseEntry } from './helpers/entries'
import { MemoryCache, StaticCache } from '../lib/index'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

for (const [label, make] of [
  ['MemoryCache', () => new MemoryCache()],
  ['StaticCache', () => new StaticCache()]
] as Array<[string, () => MemoryCache | StaticCache]>) {
  t.test(`${label}: get / set / has / delete`, async (t) => {
    const cache = make()
    t.equal(await cache.get('k'), undefined)
    t.equal(await cache.has('k'), false)
    const value = { id: 1, name: 'ünïcode', list: [1, 'two', null], nested: { ok: true } }
    await cache.set('k', value)
    t.same(await cache.get('k'), value)
    t.not(await cache.get('k'), value, 'a copy, not the same object')
    t.equal(await cache.has('k'), true)
    await cache.set('n', 0)
    t.equal(await cache.get('n'), 0, 'falsy values round-trip')
    t.equal(await cache.has('n'), true)
    await cache.set('s', '')
    t.equal(await cache.get('s'), '')
    await cache.set('k', 'replaced')
    t.equal(await cache.get('k'), 'replaced')
    await cache.delete('k')
    t.equal(await cache.get('k'), undefined)
    t.equal(await cache.has('k'), false)
    t.equal(await cache.get('n'), 0, 'delete touches only its key')
  })

  t.test(`${label}: set rejects values that are not JSON`, async (t) => {
    const cache = make()
    await t.rejects(cache.set('k', undefined), TypeError)
    await t.rejects(cache.set('k', () => 1), TypeError)
    await t.rejects(cache.set('k', 1, { ttl: -1 }), { code: 'FST_EMBER_CACHE_INVALID_OPTION' })
    t.equal(await cache.has('k'), false)
  })

  t.test(`${label}: values are invalidated by key, pattern and tags`, async (t) => {
    const cache = make()
    await cache.set('user:1', 1, { tags: ['users'] })
    await cache.set('user:2', 2, { tags: ['users'] })
    await cache.set('post:1', 3, { tags: ['posts'] })
    await cache.set('post:2', 4)
    await cache.invalidate({ tags: 'users' })
    t.equal(await cache.has('user:1'), false)
    t.equal(await cache.has('user:2'), false)
    t.equal(await cache.get('post:1'), 3)
    await cache.invalidate({ pattern: 'post:*' })
    t.equal(await cache.has('post:1'), false)
    t.equal(await cache.has('post:2'), false)
  })

  t.test(`${label}: wrap runs fn once for concurrent callers`, async (t) => {
    const cache = make()
    let runs = 0
    const fn = async (): Promise<{ value: number }> => {
      runs++
      await sleep(30)
      return { value: 42 }
    }
    const results = await Promise.all(Array.from({ length: 20 }, () => cache.wrap('w', fn)))
    t.equal(runs, 1)
    for (const result of results) t.same(result, { value: 42 })
    t.same(await cache.wrap('w', fn), { value: 42 }, 'later calls read the stored value')
    t.equal(runs, 1)
    t.same(await cache.get('w'), { value: 42 })
  })

  t.test(`${label}: wrap keeps keys apart and does not store a failure`, async (t) => {
    const cache = make()
    let runs = 0
    const a = cache.wrap('a', async () => { runs++; await sleep(10); return 'A' })
    const b = cache.wrap('b', async () => { runs++; await sleep(10); return 'B' })
    t.same(await Promise.all([a, b]), ['A', 'B'])
    t.equal(runs, 2)
    await t.rejects(cache.wrap('fail', async () => { throw new Error('nope') }), /nope/)
    t.equal(await cache.has('fail'), false)
    t.equal(await cache.wrap('fail', () => 'recovered'), 'recovered', 'the next call runs fn again')
  })

  t.test(`${label}: waiters of a failed wrap leader run fn themselves`, async (t) => {
    const cache = make()
    let runs = 0
    const fn = async (): Promise<string> => {
      runs++
      await sleep(20)
      if (runs === 1) throw new Error('first run fails')
      return 'second'
    }
    const results = await Promise.allSettled([cache.wrap('x', fn), cache.wrap('x', fn), cache.wrap('x', fn)])
    t.equal(results[0].status, 'rejected', 'the leader sees its own failure')
    const values = results.slice(1).map((result) => result.status === 'fulfilled' ? result.value : 'rejected')
    t.same(values, ['second', 'second'], 'waiters do not inherit the leader failure: they run fn themselves')
    t.equal(await cache.get('x'), 'second', 'a successful retry is stored')
  })

  t.test(`${label}: wrap does not store an undefined result`, async (t) => {
    const cache = make()
    let runs = 0
    t.equal(await cache.wrap('u', () => { runs++; return undefined }), undefined)
    t.equal(await cache.wrap('u', () => { runs++; return undefined }), undefined)
    t.equal(runs, 2)
  })

  t.test(`${label}: an invalidation during wrap wins over the slower result`, async (t) => {
    const cache = make()
    const pending = cache.wrap('k', async () => {
      await sleep(30)
      return 'old'
    })
    await sleep(5)
    await cache.invalidate('k')
    t.equal(await pending, 'old', 'the caller still gets its value')
    t.equal(await cache.has('k'), false, 'but it was not stored')
  })
}

t.test('MemoryCache values expire after their ttl', async (t) => {
  const cache = new MemoryCache({ ttl: 60 })
  await cache.set('short', 1, { ttl: 1 })
  await cache.set('default', 2)
  const viaWrap = await cache.wrap('wrapped', () => 3, { ttl: 1 })
  t.equal(viaWrap, 3)
  t.equal(await cache.get('short'), 1)
  await sleep(1100)
  t.equal(await cache.get('short'), undefined, 'set ttl 1 s expired')
  t.equal(await cache.has('short'), false)
  t.equal(await cache.get('wrapped'), undefined, 'wrap ttl 1 s expired')
  t.equal(await cache.get('default'), 2, 'the cache ttl of 60 s did not')
  let runs = 0
  t.equal(await cache.wrap('wrapped', () => { runs++; return 4 }), 4, 'wrap runs fn again after expiry')
  t.equal(runs, 1)
})

t.test('StaticCache values never expire by default', async (t) => {
  const cache = new StaticCache()
  await cache.set('k', 'forever')
  const cacheWithTtl = new MemoryCache({ ttl: 1 })
  await cacheWithTtl.set('k', 'brief')
  await sleep(1100)
  t.equal(await cache.get('k'), 'forever')
  t.equal(await cacheWithTtl.get('k'), undefined)
})

t.test('values and responses do not mix: get() ignores a stored response', async (t) => {
  const cache = new MemoryCache()
  cache.store('GET:/x', '', responseEntry({ headers: {}, body: Buffer.from('"response"') }))
  t.equal(await cache.get('GET:/x'), undefined)
  t.equal(await cache.has('GET:/x'), false)
})
