// The three entry points export the same names: the build (dist/lib/index), the ESM wrapper
// (index.mjs, whose named exports are listed by hand) and the CommonJS types (index.d.ts, whose
// namespace re-exports them by hand). A name added to lib/index.ts and forgotten in either fails here.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const ROOT = resolve(__dirname, '..')

t.test('index.mjs exports every runtime name of the build, and the plugin as default', async (t) => {
  const built = Object.keys(require(join(ROOT, 'dist', 'lib', 'index.js')) as object).filter((name) => name !== '__esModule' && name !== 'default').sort()
  // Imported as an ESM user would, in a process of its own (this file may run as CommonJS).
  const script = `import * as esm from ${JSON.stringify(pathToFileURL(join(ROOT, 'index.mjs')).href)}
console.log(JSON.stringify({ names: Object.keys(esm), defaultIsPlugin: esm.default === esm.emberCache }))`
  const esm = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { names: string[], defaultIsPlugin: boolean }
  t.same(esm.names.filter((name) => name !== 'default').sort(), built)
  t.ok(esm.defaultIsPlugin, 'the default export is the plugin')
})

t.test('index.d.ts re-exports every name the build declares', async (t) => {
  const declared = readFileSync(join(ROOT, 'dist', 'lib', 'index.d.ts'), 'utf8')
  const names = new Set<string>()
  for (const match of declared.matchAll(/export \{([^}]*)\}/g)) {
    for (const part of match[1].split(',')) {
      const name = part.trim().replace(/^type /, '').split(' as ').pop()?.trim()
      if (name !== undefined && name !== '' && name !== 'default') names.add(name)
    }
  }
  for (const match of declared.matchAll(/export declare (?:const|function|class) (\w+)/g)) names.add(match[1])
  const cjs = readFileSync(join(ROOT, 'index.d.ts'), 'utf8')
  const reexported = new Set([...cjs.matchAll(/export import (\w+) = lib\.\w+/g)].map((match) => match[1]))
  reexported.add('emberCache')
  t.same([...reexported].sort(), [...names].sort())
})
