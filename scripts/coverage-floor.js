'use strict'
// The coverage floor of lib/ (tap writes .tap/report/coverage-summary.json for every file a test
// loaded; the build in dist/, the example app and the conformance runner are not counted). Prints
// lib/'s totals and the files furthest below the floor; fails under it. `npm run test:unit` runs it.

const { readFileSync } = require('node:fs')
const { join, relative, sep } = require('node:path')

const ROOT = join(__dirname, '..')
const FLOOR = { lines: 95, branches: 90 }

const summary = JSON.parse(readFileSync(join(ROOT, '.tap', 'report', 'coverage-summary.json'), 'utf8'))
const totals = { lines: { covered: 0, total: 0 }, branches: { covered: 0, total: 0 } }
const files = []
for (const [file, counts] of Object.entries(summary)) {
  const name = relative(ROOT, file)
  if (!name.startsWith('lib' + sep) || !name.endsWith('.ts')) continue
  for (const kind of ['lines', 'branches']) {
    totals[kind].covered += counts[kind].covered
    totals[kind].total += counts[kind].total
  }
  files.push({ name, lines: counts.lines.pct, branches: counts.branches.pct, missed: counts.lines.total - counts.lines.covered })
}

const pct = (kind) => totals[kind].total === 0 ? 0 : 100 * totals[kind].covered / totals[kind].total
const lines = pct('lines')
const branches = pct('branches')
console.log(`coverage of lib/ (${files.length} files): lines ${lines.toFixed(2)}% (floor ${FLOOR.lines}%), branches ${branches.toFixed(2)}% (floor ${FLOOR.branches}%)`)
for (const file of files.sort((a, b) => b.missed - a.missed).slice(0, 5)) {
  console.log(`  ${file.name}: lines ${file.lines}%, branches ${file.branches}% (${file.missed} lines not run)`)
}
if (files.length === 0 || lines < FLOOR.lines || branches < FLOOR.branches) {
  console.error('coverage of lib/ is under its floor')
  process.exit(1)
}
