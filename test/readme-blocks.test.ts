// Every TypeScript and JavaScript block of README.md and docs/*.md, used as a reader would use it. The HTML
// comment before a block says what it is:
//   <!-- readme-test: run [MISS HIT] --> a complete program: compiled, run, must exit 0 (and print
//                                       these x-cache values, in this order, when given)
//   <!-- readme-test: serve /path -->   a complete program that listens on PORT: GET /path twice
//                                       over HTTP, expect 200 with x-cache MISS then HIT
//   <!-- readme-test: fragment -->      part of a program: compiled (TypeScript) or syntax-checked
//                                       (JavaScript) with the names it leaves to the reader
//                                       declared in test/readme/globals.d.ts
// A block without a comment fails the test: every block must say what it is.
// TypeScript blocks are compiled in a throwaway ESM project (module nodenext, the default of new
// projects) that installs this package through a link; blocks using `require` run as CommonJS.
// Programs get REDIS_URL and MEMCACHED_SERVERS of servers started here.
import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs'
import { request } from 'node:http'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { freePort, startMemcached, startRedis } from './helpers/servers'
import { childEnv } from './helpers/child-env'

const run = promisify(execFile)
const ROOT = resolve(__dirname, '..')
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc')

interface Block { file: string, line: number, lang: 'ts' | 'js', code: string, mode: string, arg: string }

/** The documents whose blocks run: the README and every deep topic. */
const DOCUMENTS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => 'docs/' + name)]

function blocksOf (file: string, markdown: string): Block[] {
  const blocks: Block[] = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(ts|typescript|js|javascript)\s*$/.exec(lines[i])
    if (fence === null) continue
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && !lines[i].startsWith('```'); i++) body.push(lines[i])
    // The directive is the last non-blank line before the fence.
    const before = lines.slice(0, start).reverse().find((line) => line.trim() !== '') ?? ''
    const match = /<!--\s*readme-test:\s*(\w+)\s*(.*?)\s*-->/.exec(before)
    blocks.push({ file, line: start + 1, lang: fence[1].startsWith('t') ? 'ts' : 'js', code: body.join('\n'), mode: match?.[1] ?? '', arg: match?.[2] ?? '' })
  }
  return blocks
}

/** GETs `path` from a local port; resolves with status and x-cache. */
function get (port: number, path: string): Promise<{ status: number, cache: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cache: res.headers['x-cache'] as string | undefined }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** The messages of the log lines at warn or above (Fastify's logger writes JSON lines). */
function warnings (output: string): string[] {
  return output.split('\n').filter((line) => line.startsWith('{"level":')).map((line) => JSON.parse(line) as { level: number, msg?: string }).filter((line) => line.level >= 40).map((line) => String(line.msg))
}

t.test('README and docs code blocks run as written', async (t) => {
  const blocks = DOCUMENTS.flatMap((file) => blocksOf(file, readFileSync(join(ROOT, file), 'utf8')))
  t.ok(blocks.length >= 10, `${blocks.length} blocks found`)
  for (const block of blocks) t.ok(['run', 'serve', 'fragment'].includes(block.mode), `${block.file}:${block.line} says what it is (${block.mode || 'no readme-test comment'})`)

  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const memcached = await startMemcached()
  t.teardown(() => memcached.stop())

  mkdirSync(join(ROOT, '.tap'), { recursive: true })
  const project = mkdtempSync(join(ROOT, '.tap', 'readme-'))
  t.teardown(() => rmSync(project, { recursive: true, force: true }))
  mkdirSync(join(project, 'node_modules'))
  // The package as a dependency: a link to the repository (its exports, its built dist).
  symlinkSync(ROOT, join(project, 'node_modules', 'fastify-ember-cache'), 'dir')
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'readme-reader', private: true, type: 'module' }))
  copyFileSync(join(ROOT, 'test', 'readme', 'globals.d.ts'), join(project, 'globals.d.ts'))

  const env = childEnv({ REDIS_URL: redis.url, MEMCACHED_SERVERS: memcached.servers })
  // Compile every TypeScript block at once: one file per block, each its own module.
  const tsFiles: string[] = []
  const name = (block: Block, ext: string): string => `block-${block.file.replace(/\W/g, '-')}-${block.line}.${ext}`
  for (const block of blocks.filter((b) => b.lang === 'ts')) {
    const file = name(block, 'mts')
    writeFileSync(join(project, file), block.code + '\nexport {}\n')
    tsFiles.push(file)
  }
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, skipLibCheck: true, types: ['node'], outDir: 'out' },
    files: ['globals.d.ts', ...tsFiles]
  }))
  const compiled = await run(TSC, ['-p', project], { env }).then(() => '', (err: { stdout: string }) => err.stdout)
  t.equal(compiled, '', 'every TypeScript block compiles (module nodenext, strict)')

  for (const block of blocks) {
    if (block.lang === 'js') {
      const cjs = /\brequire\(/.test(block.code)
      const file = join(project, name(block, cjs ? 'cjs' : 'mjs'))
      writeFileSync(file, block.code + '\n')
      if (block.mode === 'fragment') {
        await t.resolves(run(process.execPath, ['--check', file], { env }), `${block.file}:${block.line} (JavaScript fragment) parses`)
        continue
      }
    }
    if (block.mode === 'fragment') continue
    const program = block.lang === 'ts' ? join(project, 'out', name(block, 'mjs')) : join(project, name(block, /\brequire\(/.test(block.code) ? 'cjs' : 'mjs'))
    if (block.mode === 'run') {
      await t.test(`${block.file}:${block.line} runs`, async (t) => {
        let stdout = ''
        const result = await run(process.execPath, [program], { cwd: project, env, timeout: 30_000 }).then((out) => { stdout = out.stdout; return 'exit 0' }, (err: { code: number, stderr: string }) => `exit ${err.code}: ${err.stderr}`)
        t.equal(result, 'exit 0')
        t.same(warnings(stdout), [], 'it logs no warning')
        if (block.arg !== '') t.equal((stdout.match(/\b(MISS|HIT|STALE|BYPASS)\b/g) ?? []).join(' '), block.arg, 'prints the x-cache values it promises')
      })
      continue
    }
    await t.test(`${block.file}:${block.line} serves ${block.arg}`, async (t) => {
      const port = await freePort()
      const child = spawn(process.execPath, [program], { cwd: project, env: { ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] })
      let stderr = ''
      let stdout = ''
      child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
      child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
      t.teardown(() => { child.kill('SIGKILL') })
      const deadline = Date.now() + 15_000
      let first: { status: number, cache: string | undefined } | undefined
      while (first === undefined && Date.now() < deadline && child.exitCode === null) {
        first = await get(port, block.arg).catch(async () => { await new Promise((resolve) => setTimeout(resolve, 100)); return undefined })
      }
      if (first === undefined) return t.fail('it never answered: ' + stderr)
      const second = await get(port, block.arg)
      t.same([first.status, first.cache, second.status, second.cache], [200, 'MISS', 200, 'HIT'], 'a miss, then a hit')
      t.same(warnings(stdout), [], 'it logs no warning')
    })
  }
})
