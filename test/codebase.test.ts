// Rules of the codebase that review would otherwise have to remember.
import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'

const LIB = resolve(__dirname, '..', 'lib')

function sources (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => entry.isDirectory()
    ? sources(join(dir, entry.name))
    : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [])
}

t.test('composition over inheritance: no class of ours extends a class of ours that extends another', async (t) => {
  const parents = new Map<string, string>()
  for (const file of sources(LIB)) {
    for (const match of readFileSync(file, 'utf8').matchAll(/class (\w*)\s*extends (\w+)/g)) parents.set(match[1] === '' ? file + ':anonymous' : match[1], match[2])
  }
  t.ok(parents.size >= 5, `${parents.size} classes that extend another`)
  for (const [child, parent] of parents) {
    const grandparent = parents.get(parent)
    t.equal(grandparent, undefined, `${child} extends ${parent}` + (grandparent === undefined ? '' : `, which extends ${grandparent}`))
  }
})
