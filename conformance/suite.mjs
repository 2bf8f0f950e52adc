// Where the cache-tests suite comes from, and how its parts are reached. Two editions:
//  - 'today': the snapshot of github.com/http-tests/cache-tests beside this repository
//    (../shared/cache-tests, or CACHE_TESTS_DIR), copied to a temporary folder where `undici`
//    (which its client loads for interim responses) resolves from our node_modules: the
//    snapshot's own folder is read-only and has no node_modules.
//  - '2021': http-cache-tests 0.4.5, the only release on npm, used as installed.
// Neither is copied into this repository: we drive the suite, its code stays its own.
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Where today's snapshot is, or undefined when this machine has none. */
export function snapshotDir () {
  const candidates = [process.env.CACHE_TESTS_DIR, join(root, '..', 'shared', 'cache-tests')].filter(Boolean)
  return candidates.find((dir) => existsSync(join(dir, 'test-engine', 'cli.mjs')))
}

/**
 * The suite's paths: `cli` (the client), `server` (its origin), `tests`, `results` (shipped
 * results index), `resultsDir`, `logic` (determineTestResult), `version`, and `cleanup()`.
 */
export function prepareSuite (edition) {
  if (edition === '2021') {
    const dir = dirname(createRequire(import.meta.url).resolve('http-cache-tests/package.json'))
    return {
      edition,
      version: 'http-cache-tests@0.4.5 (npm, January 2021)',
      cwd: dir,
      cli: join(dir, 'cli.mjs'),
      server: join(dir, 'server', 'server.mjs'),
      tests: join(dir, 'tests', 'index.mjs'),
      extraSuites: [join(dir, 'tests', 'surrogate-control.mjs')],
      results: join(dir, 'results', 'index.mjs'),
      resultsDir: join(dir, 'results'),
      logic: join(dir, 'lib', 'display.mjs'),
      cleanup: () => {}
    }
  }
  const source = snapshotDir()
  if (source === undefined) return undefined
  const dir = mkdtempSync(join(tmpdir(), 'ember-cache-tests-suite-'))
  cpSync(source, dir, { recursive: true })
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(join(root, 'node_modules', 'undici'), join(dir, 'node_modules', 'undici'), 'dir')
  return {
    edition,
    version: 'cache-tests snapshot b55b8bd (2026-07-20)',
    cwd: dir,
    cli: join(dir, 'test-engine', 'cli.mjs'),
    server: join(dir, 'test-engine', 'server', 'server.mjs'),
    tests: join(dir, 'tests', 'index.mjs'),
    extraSuites: [],
    results: join(dir, 'results', 'index.mjs'),
    resultsDir: join(dir, 'results'),
    logic: join(dir, 'test-engine', 'lib', 'results.mjs'),
    cleanup: () => { rmSync(dir, { recursive: true, force: true }) }
  }
}
