// The documentation as a reader meets it: a README short enough to read, options tables that say
// what the option spec says, and links that lead somewhere. (The code blocks run in
// test/readme-blocks.test.ts.)
import t from 'tap'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { OPTION_SPEC, nestedNames, optionNames } from '../lib/option-spec'

const ROOT = resolve(__dirname, '..')

const { renderTables, syncTables } = require('../scripts/options-tables.js') as {
  renderTables: (spec: typeof OPTION_SPEC) => Record<string, string>
  syncTables: (markdown: string, tables: Record<string, string>) => { text: string, found: string[] }
}

const DOCUMENTS = ['README.md', 'CHANGELOG.md', 'bench/README.md', 'conformance/README.md', ...readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => 'docs/' + name)]

function read (file: string): string {
  return readFileSync(join(ROOT, file), 'utf8')
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function slug (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
}

function anchorsOf (markdown: string): Set<string> {
  const anchors = new Set<string>()
  let fenced = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    const heading = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line)
    if (heading !== null) anchors.add(slug(heading[1]))
  }
  return anchors
}

t.test('the README is short, with a table of contents, and links out for the deep topics', async (t) => {
  const readme = read('README.md')
  const lines = readme.split('\n').length - 1
  t.ok(lines <= 450, `README.md has ${lines} lines (at most 450)`)
  t.match(readme, /\n## Contents\n/)
  for (const doc of readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md'))) {
    t.ok(readme.includes('](docs/' + doc), `the README links docs/${doc}`)
  }
})

t.test('the README options tables are the option spec, rendered', async (t) => {
  const readme = read('README.md')
  const { text, found } = syncTables(readme, renderTables(OPTION_SPEC))
  t.same(found.sort(), ['cache', 'plugin', 'route'])
  t.ok(text === readme, 'README.md holds the tables the spec renders (npm run docs:options writes them)')
  for (const option of OPTION_SPEC) t.ok(readme.includes('| `' + option.name + '` |'), `${option.name} has a row`)
})

t.test('the option spec: each option once, with a unit where it is not a count or seconds', async (t) => {
  const names = OPTION_SPEC.map((option) => option.name)
  t.same(names.filter((name, i) => names.indexOf(name) !== i), [], 'no option twice')
  for (const option of OPTION_SPEC) {
    t.ok(option.doc.length > 10 && option.default.length > 0, `${option.name} has a doc line and a default`)
    if (option.name.includes('.')) t.ok(names.includes(option.name.slice(0, option.name.lastIndexOf('.'))), `${option.name}'s parent is an option`)
    // The names that say a unit must have it (cooldownMs, minBytes, maxEntryBytes...).
    if (/Ms$/.test(option.name)) t.equal(option.unit, 'ms', `${option.name} is in ms`)
    if (/Bytes$/.test(option.name)) t.equal(option.unit, 'bytes', `${option.name} is in bytes`)
  }
  t.same(optionNames('redis').sort(), ['client', 'closeClient', 'clusterNodes', 'clusterOptions', 'lock', 'redisOptions', 'scanCount', 'url'])
  t.same([...nestedNames('lock')].sort(), ['poll', 'ttl', 'wait'])
})

t.test('every relative link leads to a file, and every anchor to a heading in it', async (t) => {
  for (const file of DOCUMENTS) {
    if (!existsSync(join(ROOT, file))) {
      t.fail(file + ' exists')
      continue
    }
    const markdown = read(file)
    for (const match of markdown.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1]
      if (/^[a-z]+:/.test(target)) continue
      const [path, anchor] = target.split('#')
      const resolved = path === '' ? file : join(dirname(file), path)
      if (!existsSync(join(ROOT, resolved))) {
        t.fail(`${file}: link ${target} leads to no file`)
        continue
      }
      if (anchor !== undefined && resolved.endsWith('.md')) {
        t.ok(anchorsOf(read(resolved)).has(anchor), `${file}: ${target} names a heading of ${resolved}`)
      }
    }
  }
})
