// The shared backend suite on a StoreCache over a user-written store (files in a directory):
// the documented extension point gets everything the built-in backends get.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { InvalidOptionError, PatternNotSupportedError, StoreCache } from '../lib/index'
import { buildApp, freshPrefix, runBackendSuite, xCache } from '../lib/test-suite'
import { fileStore } from './helpers/fs-store'

t.test('StoreCache over a file-system store', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ember-fs-store-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = fileStore(dir)

  runBackendSuite(t, 'fs-store', async ({ keyPrefix }) => ({ cache: new StoreCache({ store, keyPrefix }), cleanup: async () => {} }), {
    shared: true,
    patterns: true,
    fillLock: false
  })

  t.test('fs-store: a store without deletePattern refuses patterns with PatternNotSupportedError; keys and tags work', async (t) => {
    const { deletePattern: _unused, ...withoutPatterns } = store
    const cache = new StoreCache({ store: withoutPatterns, keyPrefix: freshPrefix('nopattern') })
    const { app } = await buildApp(t, cache)
    await app.inject('/items/1')
    await t.rejects(cache.invalidate({ pattern: 'GET:/items/*' }), PatternNotSupportedError)
    t.equal(xCache(await app.inject('/items/1')), 'HIT')
    await cache.invalidate('GET:/items/1')
    t.equal(xCache(await app.inject('/items/1')), 'MISS')
  })

  t.test('fs-store: a store that throws is a miss, never a failed request', async (t) => {
    const broken = { get: () => { throw new Error('disk on fire') }, set: async () => { throw new Error('disk on fire') }, delete: () => {} }
    const { app, calls } = await buildApp(t, new StoreCache({ store: broken, circuitBreaker: { threshold: 1, cooldownMs: 60_000 } }))
    for (let i = 0; i < 3; i++) {
      const res = await app.inject('/json')
      t.equal(res.statusCode, 200)
      t.equal(xCache(res), 'BYPASS')
    }
    t.equal(calls('json'), 3)
  })

  t.test('fs-store: a store missing a method fails at construction, naming it', async (t) => {
    t.throws(() => new StoreCache({ store: { get: () => null, set: () => {} } as never }), InvalidOptionError)
    t.throws(() => new StoreCache({ store: { get: () => null, set: () => {}, delete: () => {}, clear: 'yes' } as never }), { message: /StoreCache\.store\.clear/ })
  })
})

t.test('fs-store: clear() ends the cache\'s entries and frees their files, never another prefix\'s', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ember-fs-clear-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = fileStore(dir)
  const a = new StoreCache({ store, keyPrefix: 'a:' })
  const b = new StoreCache({ store, keyPrefix: 'b:' })
  await a.set('x', 1)
  await b.set('x', 2)
  const before = await store.files()
  await a.clear()
  t.equal(await a.get('x'), undefined)
  t.equal(await b.get('x'), 2, 'the other prefix on the same store is untouched')
  t.ok(await store.files() < before, 'the cleared prefix\'s files are gone')
  await a.close()
  await b.close()
})
