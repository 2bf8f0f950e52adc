'use strict'
// Writes the README's options tables from the option spec (lib/option-spec.ts, read from the
// build): `npm run docs:options`. test/docs.test.ts renders them the same way and fails when the
// README holds anything else between the markers.
//
//   <!-- options-table: plugin -->   ...generated...   <!-- /options-table -->

const { readFileSync, writeFileSync } = require('node:fs')
const { join } = require('node:path')

const UNITS = { s: 'seconds', ms: 'ms', bytes: 'bytes', fraction: 'fraction' }
const CACHE_SCOPES = [
  ['cache', 'every cache'],
  ['local', 'Memory, Static'],
  ['remote', 'Redis, Memcached, Store'],
  ['redis', 'Redis'],
  ['mode-redis', "plugin's `redis`"],
  ['memcached', 'Memcached'],
  ['store', 'Store']
]

function cell (text) {
  return text.replace(/\|/g, '\\|')
}

function row (option, extra) {
  return '| `' + option.name + '` | ' + [...extra, option.default, UNITS[option.unit] ?? '', option.doc].map(cell).join(' | ') + ' |'
}

/** The tables, by name: plugin (options only the plugin takes), route, cache. */
function renderTables (spec) {
  const plugin = spec.filter((option) => option.scopes.includes('plugin') && !option.scopes.includes('route') && !option.scopes.includes('cache'))
  const route = spec.filter((option) => option.scopes.includes('route'))
  const cache = spec.filter((option) => !option.scopes.includes('route') && !option.scopes.includes('plugin') && CACHE_SCOPES.some(([scope]) => option.scopes.includes(scope)))
  const shared = spec.filter((option) => option.scopes.includes('plugin') && option.scopes.includes('cache') && !option.scopes.includes('route'))
  const where = (option) => option.scopes.filter((scope) => scope !== 'route').join(', ') || 'route only'
  const cacheKind = (option) => CACHE_SCOPES.filter(([scope]) => option.scopes.includes(scope)).map(([, label]) => label).join(', ')
  return {
    plugin: [
      '| option | default | unit | meaning |',
      '| --- | --- | --- | --- |',
      ...plugin.map((option) => row(option, []))
    ].join('\n'),
    route: [
      '| option | also on | default | unit | meaning |',
      '| --- | --- | --- | --- | --- |',
      ...route.map((option) => row(option, [where(option)]))
    ].join('\n'),
    cache: [
      '| option | cache | default | unit | meaning |',
      '| --- | --- | --- | --- | --- |',
      ...[...shared, ...cache].map((option) => row(option, [cacheKind(option) + (option.scopes.includes('plugin') ? ', plugin' : '')]))
    ].join('\n')
  }
}

const MARKER = /<!-- options-table: (\w+) -->\n([\s\S]*?)<!-- \/options-table -->/g

/** The markdown with every marked table replaced by the rendering; `found` lists the names met. */
function syncTables (markdown, tables) {
  const found = []
  const text = markdown.replace(MARKER, (_, name) => {
    found.push(name)
    if (tables[name] === undefined) throw new Error('no options table named ' + name)
    return '<!-- options-table: ' + name + ' -->\n' + tables[name] + '\n<!-- /options-table -->'
  })
  return { text, found }
}

module.exports = { renderTables, syncTables }

if (require.main === module) {
  const { OPTION_SPEC } = require(join(__dirname, '..', 'dist', 'lib', 'option-spec.js'))
  const file = join(__dirname, '..', 'README.md')
  const { text, found } = syncTables(readFileSync(file, 'utf8'), renderTables(OPTION_SPEC))
  writeFileSync(file, text)
  console.log('README.md: wrote the options tables ' + found.join(', '))
}
