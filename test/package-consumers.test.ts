// The package as its users get it: `npm pack`, unpacked into throwaway projects, imported from
// ESM and CommonJS, in JavaScript and in TypeScript (compiled with tsc, then run by Node), and
// checked the way the ecosystem checks packages (@arethetypeswrong/cli, publint). The projects
// live under .tap/ inside the repository, so fastify and typescript resolve from its
// node_modules, as they would from a user's.
import t from 'tap'
import { execFile, execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { startRedis } from './helpers/servers'
import { childEnv } from './helpers/child-env'

/** Child processes run without tap's loader (helpers/child-env.ts), unless a test gives its own env. */
const execFileAsync = promisify(execFile)
async function run (file: string, args: string[], options: { cwd?: string, timeout?: number, env?: NodeJS.ProcessEnv } = {}): Promise<{ stdout: string, stderr: string }> {
  return await execFileAsync(file, args, { ...options, encoding: 'utf8', env: childEnv(options.env) })
}
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
  for (const file of ['package/index.js', 'package/dist/index.mjs', 'package/dist/index.d.ts', 'package/dist/index.d.mts', 'package/LICENSE', 'package/dist/lib/index.js']) {
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

  await t.test('projects that install only what they use (issue 27)', async (t) => {
    const redis = await startRedis()
    t.teardown(() => redis.stop())
    for (const consumer of ISOLATED) {
      await t.test(consumer.name, async (t) => {
        const project = isolatedProject(work, tarball, consumer)
        if (consumer.tsconfig !== undefined) {
          writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(consumer.tsconfig))
          const compiled = await run(join(BIN, 'tsc'), ['-p', project]).then(() => '', (err: { stdout: string }) => err.stdout)
          t.equal(compiled, '', 'tsc compiles it without errors')
        }
        for (const absent of consumer.absent) {
          const found = await run(process.execPath, ['-e', `require.resolve(${JSON.stringify(absent)})`], { cwd: project }).then(() => true, () => false)
          t.notOk(found, absent + ' is not installed')
        }
        const { stdout } = await run(process.execPath, [join(project, consumer.runs)], { cwd: project, timeout: 20_000, env: { REDIS_URL: redis.url } })
        t.same(JSON.parse(stdout.trim()), consumer.prints)
      })
    }
  })

  await t.test('a store author runs the shipped behaviour suite on their own store, with node:test', async (t) => {
    const project = isolatedProject(work, tarball, { name: 'store suite', file: 'store.test.mjs', type: 'module', source: STORE_SUITE_PROGRAM, runs: 'store.test.mjs', links: {}, absent: [], prints: null })
    const result = await run(process.execPath, ['--test', '--test-reporter=tap', join(project, 'store.test.mjs')], { cwd: project, timeout: 180_000 })
      .then((out) => ({ code: 0, out: out.stdout }), (err: { code: number, stdout: string }) => ({ code: err.code, out: err.stdout }))
    t.equal(result.code, 0, 'node --test passes: ' + result.out.slice(-3000))
    t.match(result.out, /# fail 0/)
    const passed = Number(/# pass (\d+)/.exec(result.out)?.[1] ?? 0)
    t.ok(passed >= 12, `${passed} tests of the suite ran and passed`)
  })

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

/**
 * A project outside the repository (so nothing resolves from its node_modules by accident),
 * with the packed package unpacked and only `links` installed (symlinks to this repository's
 * copies, under the names the project imports them by).
 */
function isolatedProject (work: string, tarball: string, consumer: IsolatedConsumer): string {
  const project = mkdtempSync(join(tmpdir(), 'ember-consumer-'))
  process.once('exit', () => { rmSync(project, { recursive: true, force: true }) })
  const unpacked = join(project, 'node_modules', 'fastify-ember-cache')
  mkdirSync(unpacked, { recursive: true })
  execFileSync('tar', ['-xzf', join(work, tarball), '-C', unpacked, '--strip-components=1'])
  for (const [name, target] of Object.entries({ ...BASE_LINKS, ...consumer.links })) {
    const link = join(project, 'node_modules', name)
    mkdirSync(dirname(link), { recursive: true })
    symlinkSync(join(ROOT, 'node_modules', target), link, 'dir')
  }
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: consumer.type }))
  writeFileSync(join(project, consumer.file), consumer.source)
  return project
}

interface IsolatedConsumer {
  name: string
  file: string
  type: 'module' | 'commonjs'
  source: string
  tsconfig?: object
  runs: string
  /** node_modules entries besides fastify and the package's own dependencies: name -> this repository's copy. */
  links: Record<string, string>
  /** Packages that must not resolve in the project. */
  absent: string[]
  prints: unknown
}

/** What every project has: Fastify, the package's dependencies, Node's types. */
const BASE_LINKS = { fastify: 'fastify', 'fastify-plugin': 'fastify-plugin', '@fastify/error': '@fastify/error', 'lru-cache': 'lru-cache', '@types/node': '@types/node' }

const strictTs = (module: 'nodenext' | 'commonjs', file: string, skipLibCheck: boolean): object => ({
  compilerOptions: {
    target: 'ES2022',
    module,
    moduleResolution: module === 'nodenext' ? 'nodenext' : 'node10',
    ...(module === 'commonjs' ? { esModuleInterop: true, ignoreDeprecations: '5.0' } : {}),
    strict: true,
    skipLibCheck,
    types: ['node'],
    outDir: 'out'
  },
  files: [file]
})

/** A Redis-backed app: `client` is how it gets its client; prints the two x-cache values and what the cache is. */
const REDIS_PROGRAM = (imports: string, setup: string): string => `${imports}
async function main () {
  const app = Fastify()
${setup}
  app.get('/tasks', { config: { cache: { ...route, ttl: 60 } } }, async () => [{ id: 1 }])
  const first = await app.inject('/tasks')
  const second = await app.inject('/tasks')
  const cache = app.emberCache.caches[0]
  console.log(JSON.stringify([first.headers['x-cache'], second.headers['x-cache'], cache instanceof RedisCache, cache instanceof RedisCache ? cache.client.status : null]))
  await app.close()
}
main().catch((err) => { console.error(err); process.exit(1) })
`

/** A user's store (a Map with expiry and globs), checked by the shipped suite under node:test. */
const STORE_SUITE_PROGRAM = `import { test } from 'node:test'
import { StoreCache } from 'fastify-ember-cache'
import { runBackendSuite, fromNodeTest } from 'fastify-ember-cache/test-suite'

const items = new Map()
const live = (key) => {
  const item = items.get(key)
  if (item === undefined || (item.expires !== 0 && item.expires <= Date.now())) return undefined
  return item
}
const glob = (pattern) => new RegExp('^' + pattern.replace(/[.+^$(){}|]/g, '\\\\$&').replace(/\\*/g, '[\\\\s\\\\S]*').replace(/\\?/g, '[\\\\s\\\\S]') + '$')
const store = {
  get: (key) => live(key)?.value,
  set: (key, value, ttl) => { items.set(key, { value, expires: ttl === 0 ? 0 : Date.now() + ttl * 1000 }) },
  add: (key, value, ttl) => { if (live(key) === undefined) store.set(key, value, ttl) },
  delete: (key) => { items.delete(key) },
  deletePattern: (pattern) => { const matcher = glob(pattern); for (const key of [...items.keys()]) if (matcher.test(key)) items.delete(key) }
}

test('a Map store passes the behaviour suite', async (t) => {
  await runBackendSuite(fromNodeTest(t), 'map-store', async ({ keyPrefix }) => ({ cache: new StoreCache({ store, keyPrefix }), cleanup: async () => {} }), { shared: true, patterns: true, fillLock: false })
})
`

const ISOLATED: IsolatedConsumer[] = [
  {
    name: 'memory only, ESM TypeScript, strict, skipLibCheck false, no ioredis or memjs installed',
    file: 'main.mts',
    type: 'module',
    source: PROGRAM("import Fastify from 'fastify'\nimport emberCache, { MemoryCache, StaticCache, emberCache as named } from 'fastify-ember-cache'", true),
    tsconfig: strictTs('nodenext', 'main.mts', false),
    runs: 'out/main.mjs',
    links: {},
    absent: ['ioredis', 'memjs'],
    prints: ['MISS', 'HIT', true, 'function', 'function']
  },
  {
    name: 'memory only, CommonJS TypeScript, strict, skipLibCheck false, no ioredis or memjs installed',
    file: 'main.ts',
    type: 'commonjs',
    source: PROGRAM("import Fastify from 'fastify'\nimport emberCache, { MemoryCache, StaticCache, emberCache as named } from 'fastify-ember-cache'", true),
    tsconfig: strictTs('commonjs', 'main.ts', false),
    runs: 'out/main.js',
    links: {},
    absent: ['ioredis', 'memjs'],
    prints: ['MISS', 'HIT', true, 'function', 'function']
  },
  {
    name: 'a RedisCache without ioredis installed says what to install',
    file: 'main.cjs',
    type: 'commonjs',
    source: `const { RedisCache, MemcachedCache } = require('fastify-ember-cache')
const messages = []
for (const make of [() => new RedisCache({ url: 'redis://127.0.0.1:1' }), () => new MemcachedCache({ servers: ['127.0.0.1:1'] })]) {
  try { make() } catch (err) { messages.push(err.message) }
}
console.log(JSON.stringify(messages))
`,
    runs: 'main.cjs',
    links: {},
    absent: ['ioredis', 'memjs'],
    prints: [
      'Invalid option "RedisCache": needs the ioredis package, which is not installed: npm install ioredis (versions 5 and 6 both work; @fastify/redis\'s client can be passed as `client`)',
      'Invalid option "MemcachedCache": needs the memjs package, which is not installed: npm install memjs'
    ]
  },
  {
    name: 'Redis with ioredis 5, ESM TypeScript, strict, skipLibCheck false: its client, and { url }',
    file: 'main.mts',
    type: 'module',
    source: REDIS_PROGRAM("import Fastify from 'fastify'\nimport { Redis } from 'ioredis'\nimport emberCache, { RedisCache, type RouteCacheOptions } from 'fastify-ember-cache'",
      "  const client = new Redis(process.env.REDIS_URL!)\n  const route: RouteCacheOptions = { cache: new RedisCache({ client, keyPrefix: 'c5:' + Date.now() + ':', closeClient: true }) }\n  await app.register(emberCache, { redis: { url: process.env.REDIS_URL! } })\n  app.get('/own', { config: { cache: { mode: 'redis' } } }, async () => 'own')"),
    tsconfig: strictTs('nodenext', 'main.mts', false),
    runs: 'out/main.mjs',
    links: { ioredis: 'ioredis-5' },
    absent: ['memjs'],
    prints: ['MISS', 'HIT', true, 'ready']
  },
  {
    name: 'Redis with ioredis 6, CommonJS JavaScript: its client',
    file: 'main.cjs',
    type: 'commonjs',
    source: REDIS_PROGRAM("const Fastify = require('fastify')\nconst { Redis } = require('ioredis')\nconst { emberCache, RedisCache } = require('fastify-ember-cache')",
      "  const route = { cache: new RedisCache({ client: new Redis(process.env.REDIS_URL), keyPrefix: 'c6:' + Date.now() + ':', closeClient: true }) }\n  await app.register(emberCache)"),
    runs: 'main.cjs',
    links: { ioredis: 'ioredis' },
    absent: ['memjs'],
    prints: ['MISS', 'HIT', true, 'ready']
  },
  {
    name: '@fastify/redis 7 (ioredis 5), ESM JavaScript: { mode: \'redis\' } uses fastify.redis, no ioredis of its own',
    file: 'main.mjs',
    type: 'module',
    source: REDIS_PROGRAM("import Fastify from 'fastify'\nimport fastifyRedis from '@fastify/redis'\nimport emberCache, { RedisCache } from 'fastify-ember-cache'",
      "  await app.register(fastifyRedis, { url: process.env.REDIS_URL })\n  await app.register(emberCache, { keyPrefix: 'r7:' + Date.now() + ':' })\n  const route = { mode: 'redis' }"),
    runs: 'main.mjs',
    links: { '@fastify/redis': 'fastify-redis-7' },
    absent: ['ioredis', 'memjs'],
    prints: ['MISS', 'HIT', true, 'ready']
  },
  {
    name: '@fastify/redis 9 (ioredis 6), CommonJS TypeScript: client: fastify.redis',
    file: 'main.ts',
    type: 'commonjs',
    source: REDIS_PROGRAM("import Fastify from 'fastify'\nimport fastifyRedis from '@fastify/redis'\nimport emberCache, { RedisCache, type RouteCacheOptions } from 'fastify-ember-cache'",
      "  await app.register(fastifyRedis, { url: process.env.REDIS_URL })\n  await app.register(emberCache)\n  const route: RouteCacheOptions = { cache: new RedisCache({ client: app.redis, keyPrefix: 'r9:' + Date.now() + ':' }) }"),
    // ioredis 6's own declarations fail under skipLibCheck: false (TS7016 'redis-errors'), ours are not involved.
    tsconfig: strictTs('commonjs', 'main.ts', true),
    runs: 'out/main.js',
    links: { '@fastify/redis': '@fastify/redis' },
    absent: ['memjs'],
    prints: ['MISS', 'HIT', true, 'ready']
  }
]
