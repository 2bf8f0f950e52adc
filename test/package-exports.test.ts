// The entry points export the same names as the build of lib/index.ts: the ESM wrapper
// (dist/index.mjs) and the CommonJS types (dist/index.d.ts), both written from the build by
// scripts/entry-points.js, so the export list has one source. Checked here as a user meets them.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { childEnv } from './helpers/child-env'

const ROOT = resolve(__dirname, '..')

t.test('dist/index.mjs exports every runtime name of the build, and the plugin as default', async (t) => {
  const built = Object.keys(require(join(ROOT, 'dist', 'lib', 'index.js')) as object).filter((name) => name !== '__esModule' && name !== 'default').sort()
  // Imported as an ESM user would, in a process of its own (this file may run as CommonJS).
  const script = `import * as esm from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'index.mjs')).href)}
console.log(JSON.stringify({ names: Object.keys(esm), defaultIsPlugin: esm.default === esm.emberCache }))`
  const esm = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: childEnv() })) as { names: string[], defaultIsPlugin: boolean }
  t.same(esm.names.filter((name) => name !== 'default').sort(), built)
  t.ok(esm.defaultIsPlugin, 'the default export is the plugin')
})

t.test('dist/index.d.ts re-exports every name the build declares', async (t) => {
  const declared = readFileSync(join(ROOT, 'dist', 'lib', 'index.d.ts'), 'utf8')
  const names = new Set<string>()
  for (const match of declared.matchAll(/export \{([^}]*)\}/g)) {
    for (const part of match[1].split(',')) {
      const name = part.trim().replace(/^type /, '').split(' as ').pop()?.trim()
      if (name !== undefined && name !== '' && name !== 'default') names.add(name)
    }
  }
  for (const match of declared.matchAll(/export declare (?:const|function|class) (\w+)/g)) names.add(match[1])
  const cjs = readFileSync(join(ROOT, 'dist', 'index.d.ts'), 'utf8')
  const reexported = new Set([...cjs.matchAll(/export import (\w+) = lib\.\w+/g)].map((match) => match[1]))
  reexported.add('emberCache')
  t.same([...reexported].sort(), [...names].sort())
})

t.test('the shipped declarations hold no internal member of a cache', async (t) => {
  // What the hooks use lives behind @internal (stripInternal): changing it breaks nobody.
  const internal = ['flights', 'fillLock', 'invalidations', 'counters', 'track', 'lookup', 'store', 'beginFill', 'snapshot', 'connect', 'codingsAdded', 'serverNow', 'defaults', 'inProcess', 'readBytes', 'writeBytes', 'breaker', 'guarded']
  for (const file of ['cache', 'local-cache', 'redis-cache', 'memcached-cache', 'store-cache']) {
    const declared = readFileSync(join(ROOT, 'dist', 'lib', 'caches', file + '.d.ts'), 'utf8')
    const classes = [...declared.matchAll(/^export declare (?:abstract )?class [\s\S]*?^\}/gm)].map((match) => match[0]).join('\n')
    const members = [...classes.matchAll(/^ {4}(?:(?:protected|readonly|abstract|get|static) )*(\w+)\??[(<:]/gm)].map((match) => match[1])
    t.same(members.filter((name) => internal.includes(name)), [], `${file}.d.ts declares none of them`)
  }
  const api = readFileSync(join(ROOT, 'etc', 'fastify-ember-cache.api.md'), 'utf8')
  t.notMatch(api, /\bflights\b|\bfillLock\b|\btrack\(/, 'the committed API report holds none either')
})
