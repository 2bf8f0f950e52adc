// The package as its users get it: `npm pack`, unpacked into throwaway projects, imported from
// ESM and CommonJS, in JavaScript and in TypeScript (compiled with tsc, then run by Node), and
// checked the way the ecosystem checks packages (@arethetypeswrong/cli, publint). The projects
// live under .tap/ inside the repository, so fastify and typescript resolve from its
// node_modules, as they would from a user's.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = resolve(__dirname, '..')
const BIN = join(ROOT, 'node_modules', '.bin')

/** A Fastify app with one cached route, injected twice: prints the two x-cache values. */
const PROGRAM = (imports: string, ts: boolean): string => `${imports}
const app = Fastify()
${ts ? 'async function main (): Promise<void> {' : 'async function main () {'}
  await app.register(emberCache, { defaultTtl: 60 })
  const cache = new MemoryCache({ ttl: 30 })
  app.get('/tasks', { config: { cache: { cache, tags: ['tasks'] } } }, async () => [{ id: 1 }])
  const first = await app.inject('/tasks')
  const second = await app.inject('/tasks')
  const report = await app.emberCache.invalidate({ tags: ['tasks'] })
  console.log(JSON.stringify([first.headers['x-cache'], second.headers['x-cache'], report.ok, typeof named, typeof StaticCache]))
  await app.close()
}
main().catch((err) => { console.error(err); process.exit(1) })
`

const CONSUMERS: Array<{ name: string, file: string, type: 'module' | 'commonjs', source: string, tsconfig?: object, runs: string }> = [
  {
    name: 'ESM JavaScript',
    file: 'main.mjs',
    type: 'module',
    source: PROGRAM("import Fastify from 'fastify'\nimport emberCache, { MemoryCache, StaticCache, emberCache as named } from 'fastify-ember-cache'", false),
    runs: 'main.mjs'
  },
  {
    name: 'CommonJS JavaScript',
    file: 'main.cjs',
    type: 'commonjs',
    source: PROGRAM("const Fastify = require('fastify')\nconst emberCache = require('fastify-ember-cache')\nconst { MemoryCache, StaticCache, emberCache: named } = emberCache", false),
    runs: 'main.cjs'
  },
  {
    name: 'ESM TypeScript (module nodenext)',
    file: 'main.mts',
    type: 'module',
    source: PROGRAM("import Fastify from 'fastify'\nimport emberCache, { MemoryCache, StaticCache, emberCache as named } from 'fastify-ember-cache'", true),
    tsconfig: { compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, skipLibCheck: true, types: ['node'], outDir: 'out' }, files: ['main.mts'] },
    runs: 'out/main.mjs'
  },
  {
    name: 'CommonJS TypeScript (module commonjs, esModuleInterop)',
    file: 'main.ts',
    type: 'commonjs',
    source: PROGRAM("import Fastify from 'fastify'\nimport emberCache, { MemoryCache, StaticCache, emberCache as named } from 'fastify-ember-cache'", true),
    tsconfig: { compilerOptions: { target: 'ES2022', module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true, strict: true, skipLibCheck: true, types: ['node'], outDir: 'out', ignoreDeprecations: '5.0' }, files: ['main.ts'] },
    runs: 'out/main.js'
  }
]

t.test('the packed package works for ESM and CommonJS consumers, JavaScript and TypeScript', async (t) => {
  mkdirSync(join(ROOT, '.tap'), { recursive: true })
  const work = mkdtempSync(join(ROOT, '.tap', 'consumers-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  await run('npm', ['pack', '--pack-destination', work], { cwd: ROOT })
  const tarball = readdirSync(work).find((name) => name.endsWith('.tgz'))
  if (tarball === undefined) throw new Error('npm pack made no tarball')

  const listing = (await run('tar', ['-tzf', join(work, tarball)])).stdout
  for (const file of ['package/index.js', 'package/index.mjs', 'package/index.d.ts', 'package/index.d.mts', 'package/LICENSE', 'package/dist/lib/index.js']) {
    t.ok(listing.includes(file), 'ships ' + file)
  }
  t.notOk(/\.map$/m.test(listing), 'no source maps pointing at sources it does not ship')
  t.notOk(listing.includes('package/test/') || listing.includes('package/bench/'), 'no tests or benchmarks')

  for (const consumer of CONSUMERS) {
    await t.test(consumer.name, async (t) => {
      const project = join(work, consumer.file.replace('.', '-'))
      const unpacked = join(project, 'node_modules', 'fastify-ember-cache')
      mkdirSync(unpacked, { recursive: true })
      await run('tar', ['-xzf', join(work, tarball), '-C', unpacked, '--strip-components=1'])
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: consumer.type }))
      writeFileSync(join(project, consumer.file), consumer.source)
      if (consumer.tsconfig !== undefined) {
        writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(consumer.tsconfig))
        const compiled = await run(join(BIN, 'tsc'), ['-p', project]).then(() => '', (err: { stdout: string }) => err.stdout)
        t.equal(compiled, '', 'tsc compiles it without errors')
      }
      const { stdout } = await run(process.execPath, [join(project, consumer.runs)], { cwd: project, timeout: 20_000 })
      t.same(JSON.parse(stdout.trim()), ['MISS', 'HIT', true, 'function', 'function'], 'registers, caches, invalidates; named exports present')
    })
  }

  await t.test('@arethetypeswrong/cli finds no problem in any resolution mode', async (t) => {
    const { stdout } = await run(join(BIN, 'attw'), [join(work, tarball), '--format', 'json'], { cwd: ROOT }).catch((err: { stdout: string }) => ({ stdout: err.stdout }))
    const result = JSON.parse(stdout) as { analysis: { problems: unknown[] } }
    t.same(result.analysis.problems, [], 'node10, node16 (CJS and ESM) and bundler resolve correct types')
  })

  await t.test('publint finds no error or warning', async (t) => {
    const { stdout } = await run(join(BIN, 'publint'), ['--strict'], { cwd: ROOT }).catch((err: { stdout: string }) => ({ stdout: err.stdout }))
    t.notMatch(stdout, /Errors?:|Warnings?:/, stdout)
  })
})
