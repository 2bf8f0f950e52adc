// Runs the public HTTP cache test suite (http-tests/cache-tests, on npm as http-cache-tests,
// the suite behind cache-tests.fyi) against the caching reverse proxy of example-app/proxy.js,
// and prints its pass counts per kind beside the results the suite ships for other caches.
//
//   npm run test:http-cache                  # build, run, print, write conformance/results/
//   node conformance/run.mjs --id <test-id>  # one test, with the suite's request/response dump
//   node conformance/run.mjs --summary       # print our counts as JSON, write nothing (tests)
//
// The suite's origin server and the proxy each run in their own process on a free 127.0.0.1
// port; the suite's client runs at its default concurrency. We only drive the suite: its code
// is used as installed, never copied here.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const suiteDir = dirname(createRequire(import.meta.url).resolve('http-cache-tests/package.json'))
const onlyId = process.argv.includes('--id') ? process.argv[process.argv.indexOf('--id') + 1] : ''
const summaryOnly = process.argv.includes('--summary')

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
function start (name, args, env, ready) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
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

function runClient (base) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-warnings', join(suiteDir, 'cli.mjs')], {
      cwd: suiteDir,
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
  const work = mkdtempSync(join(tmpdir(), 'ember-cache-tests-'))
  const originPort = await freePort()
  const proxyPort = await freePort()
  const origin = await start('origin', ['--import', join(here, 'loopback.mjs'), join(suiteDir, 'server', 'server.mjs')],
    { npm_config_protocol: 'http', npm_config_port: String(originPort), npm_config_pidfile: join(work, 'server.pid') }, /Listening on/)
  const proxy = await start('proxy', [join(root, 'example-app', 'proxy.js')],
    { UPSTREAM: `http://127.0.0.1:${originPort}`, PORT: String(proxyPort) }, /caching proxy on/)
  let stdout
  try {
    stdout = await runClient(`http://127.0.0.1:${proxyPort}`)
  } finally {
    origin.kill('SIGTERM')
    proxy.kill('SIGTERM')
    rmSync(work, { recursive: true, force: true })
  }
  if (onlyId !== '') {
    process.stdout.write(stdout)
    return
  }
  const results = JSON.parse(stdout)
  await report(results)
}

async function report (ours) {
  const { default: tests } = await import(join(suiteDir, 'tests', 'index.mjs'))
  const { default: surrogate } = await import(join(suiteDir, 'tests', 'surrogate-control.mjs'))
  const { default: index } = await import(join(suiteDir, 'results', 'index.mjs'))
  const { determineTestResult } = await import(join(suiteDir, 'lib', 'display.mjs'))
  // The client runs the surrogate-control tests too (cli.mjs adds them).
  const suites = [...tests, surrogate]
  const all = suites.flatMap((suite) => suite.tests.filter((test) => test.browser_only !== true).map((test) => ({ ...test, suite: suite.name })))
  const kindOf = (test) => test.kind ?? 'required'
  const counts = (results) => {
    const count = { required: 0, optimal: 0 }
    for (const test of all) {
      const kind = kindOf(test)
      if ((kind === 'required' || kind === 'optimal') && determineTestResult(suites, test.id, results)[2] === '✅') count[kind]++
    }
    return count
  }
  const totals = { required: all.filter((test) => kindOf(test) === 'required').length, optimal: all.filter((test) => kindOf(test) === 'optimal').length }
  const rows = [{ name: 'fastify-ember-cache (example-app/proxy.js)', version: JSON.parse(readFileSync(join(root, 'package.json'))).version, ...counts(ours) }]
  for (const item of index) {
    if (item.type !== 'rev-proxy' && item.type !== 'cdn') continue
    const shipped = JSON.parse(readFileSync(join(suiteDir, 'results', item.file)))
    rows.push({ name: item.name, version: item.version, ...counts(shipped) })
  }
  const failed = all.filter((test) => ['required', 'optimal'].includes(kindOf(test)) && determineTestResult(suites, test.id, ours)[2] !== '✅')
    .map((test) => ({ id: test.id, kind: kindOf(test), suite: test.suite, name: test.name, result: ours[test.id] === undefined ? 'untested' : ours[test.id] === true ? 'dependency failed' : ours[test.id][1] }))

  if (summaryOnly) {
    console.log(JSON.stringify({ totals, ours: rows[0], best: { required: Math.max(...rows.slice(1).map((row) => row.required)), optimal: Math.max(...rows.slice(1).map((row) => row.optimal)) }, failed: failed.map((test) => test.id) }))
    return
  }
  let md = `| cache | version | required (of ${totals.required}) | optimal (of ${totals.optimal}) |\n| --- | --- | --: | --: |\n`
  for (const row of rows) md += `| ${row.name} | ${row.version} | ${row.required} | ${row.optimal} |\n`
  console.log(md)
  console.log(`${failed.filter((f) => f.kind === 'required').length} required and ${failed.filter((f) => f.kind === 'optimal').length} optimal tests not passed:`)
  for (const test of failed) console.log(`  [${test.kind}] ${test.id}: ${test.name} -- ${test.result}`)
  writeFileSync(join(here, 'results', 'latest.json'), JSON.stringify({ suite: 'http-cache-tests@' + JSON.parse(readFileSync(join(suiteDir, 'package.json'))).version, totals, rows, failed, results: ours }, null, 2) + '\n')
  writeFileSync(join(here, 'results', 'latest.md'), md + '\nNot passed:\n\n' + failed.map((test) => `- [${test.kind}] \`${test.id}\` ${test.name}: ${test.result}`).join('\n') + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
