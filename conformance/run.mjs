// Runs the HTTP cache test suite behind cache-tests.fyi (github.com/http-tests/cache-tests)
// against the caching reverse proxy of example-app/proxy.js, and prints its counts per kind
// beside the results the suite ships for other caches.
//
//   npm run test:http-cache                  # build, run today's suite, print, write conformance/results/
//   node conformance/run.mjs --id <test-id>  # one test, with the suite's request/response dump
//   node conformance/run.mjs --summary       # print our counts as JSON, write nothing (tests)
//   node conformance/run.mjs --suite 2021    # the npm release (0.4.5) instead of today's snapshot
//
// The suite's origin server and the proxy each run in their own process on a free 127.0.0.1
// port; the suite's client runs at its default concurrency. We only drive the suite: its code
// is used where it is (suite.mjs), never copied here.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { prepareSuite } from './suite.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const argument = (name) => process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined
const onlyId = argument('--id') ?? ''
const edition = argument('--suite') ?? 'today'
const summaryOnly = process.argv.includes('--summary')
const KINDS = ['required', 'optimal', 'check']

function freePort () {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Starts a process and resolves once `ready` matches its output. */
function start (name, args, options, ready) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(name + ' did not start: ' + output)) }, 15_000)
    const onData = (chunk) => {
      output += chunk.toString()
      if (ready.test(output)) {
        clearTimeout(timer)
        resolve(child)
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited (${code}): ${output}`)) })
  })
}

function runClient (suite, base) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-warnings', suite.cli], {
      cwd: suite.cwd,
      env: { ...process.env, npm_config_base: base, npm_config_id: onlyId, npm_package_config_id: onlyId },
      stdio: ['ignore', 'pipe', 'inherit']
    })
    let stdout = ''
    child.stdout.on('data', (chunk) => { stdout += chunk.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('the suite did not finish within 10 minutes')) }, 600_000)
    child.once('exit', () => { clearTimeout(timer); resolve(stdout) })
  })
}

async function main () {
  const suite = prepareSuite(edition)
  if (suite === undefined) {
    console.log(JSON.stringify({ unavailable: 'no cache-tests snapshot at ../shared/cache-tests (or CACHE_TESTS_DIR)' }))
    return
  }
  const work = mkdtempSync(join(tmpdir(), 'ember-cache-tests-'))
  let stdout
  try {
    const originPort = await freePort()
    const proxyPort = await freePort()
    const origin = await start('origin', ['--import', join(here, 'loopback.mjs'), suite.server],
      { cwd: suite.cwd, env: { npm_config_protocol: 'http', npm_config_port: String(originPort), npm_config_pidfile: join(work, 'server.pid') } }, /Listening on/)
    const proxy = await start('proxy', [join(root, 'example-app', 'proxy.js')],
      { cwd: root, env: { UPSTREAM: `http://127.0.0.1:${originPort}`, PORT: String(proxyPort) } }, /caching proxy on/)
    try {
      stdout = await runClient(suite, `http://127.0.0.1:${proxyPort}`)
    } finally {
      origin.kill('SIGTERM')
      proxy.kill('SIGTERM')
    }
    if (onlyId !== '') {
      process.stdout.write(stdout)
      return
    }
    await report(suite, JSON.parse(stdout))
  } finally {
    rmSync(work, { recursive: true, force: true })
    suite.cleanup()
  }
}

async function report (suite, ours) {
  const { default: tests } = await import(suite.tests)
  const extra = await Promise.all(suite.extraSuites.map(async (file) => (await import(file)).default))
  const { default: index } = await import(suite.results)
  const { determineTestResult } = await import(suite.logic)
  const suites = [...tests, ...extra]
  const all = suites.flatMap((group) => group.tests.filter((test) => test.browser_only !== true).map((test) => ({ ...test, suite: group.name })))
  const kindOf = (test) => test.kind ?? 'required'
  // As cache-tests.fyi shows them: ✅ passes a required or optimal test, Y a check; a test
  // whose dependency failed does not pass.
  const passed = (test, results) => ['✅', 'Y'].includes(determineTestResult(suites, test.id, results)[2])
  const counts = (results) => Object.fromEntries(KINDS.map((kind) => [kind, all.filter((test) => kindOf(test) === kind && passed(test, results)).length]))
  const totals = Object.fromEntries(KINDS.map((kind) => [kind, all.filter((test) => kindOf(test) === kind).length]))
  const rows = [{ name: 'fastify-ember-cache (example-app/proxy.js' + ')', version: JSON.parse(readFileSync(join(root, 'package.json'))).version, ...counts(ours) }]
  for (const item of index) {
    if (item.type !== 'rev-proxy' && item.type !== 'cdn') continue
    const shipped = JSON.parse(readFileSync(join(suite.resultsDir, item.file)))
    rows.push({ name: item.name, version: item.version, ...counts(shipped) })
  }
  const failed = all.filter((test) => !passed(test, ours))
    .map((test) => ({ id: test.id, kind: kindOf(test), suite: test.suite, name: test.name, result: ours[test.id] === undefined ? 'untested' : ours[test.id] === true ? 'dependency failed' : String(ours[test.id][1]) }))
  const best = Object.fromEntries(KINDS.map((kind) => [kind, Math.max(...rows.slice(1).map((row) => row[kind]))]))

  if (summaryOnly) {
    console.log(JSON.stringify({ suite: suite.version, totals, ours: rows[0], best, failed: failed.map((test) => test.id) }))
    return
  }
  let md = `${suite.version}\n\n| cache | version | required (of ${totals.required}) | optimal (of ${totals.optimal}) | checks (of ${totals.check}) |\n| --- | --- | --: | --: | --: |\n`
  for (const row of rows) md += `| ${row.name} | ${row.version} | ${row.required} | ${row.optimal} | ${row.check} |\n`
  console.log(md)
  console.log(KINDS.map((kind) => `${failed.filter((f) => f.kind === kind).length} ${kind}`).join(', ') + ' tests not passed:')
  for (const test of failed) console.log(`  [${test.kind}] ${test.id}: ${test.name} -- ${test.result}`)
  const name = (edition === 'today' ? 'latest' : 'suite-' + edition)
  writeFileSync(join(here, 'results', name + '.json'), JSON.stringify({ suite: suite.version, totals, rows, failed, results: ours }, null, 2) + '\n')
  writeFileSync(join(here, 'results', name + '.md'), md + '\nNot passed:\n\n' + failed.map((test) => `- [${test.kind}] \`${test.id}\` ${test.name}: ${test.result}`).join('\n') + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
