'use strict'

// npm run bench:paired [-- --pairs 12 --duration 1 --warmup 2 --fresh 2 --connections 50 --only ember-memory,ember-redis
//                          --compare ember-early:ember-static --no-pin]
//
// Judges each target of configs.js on its own, for a machine whose speed drifts within
// seconds (run.js rounds put minutes between the two sides of a ratio). A target's two
// servers run side by side (core 0; new processes every --fresh pairs) and are measured
// alternately A B, B A, A B ... (each pair in the other order than the last, so neither side
// always goes first); every pair gives one ratio A/B. Going first or second can matter by
// itself (a backend or the CPU warming up between samples), so the ratio judged is the
// geometric mean of the median A-first and the median B-first ratio. How far to trust it: a 90%
// interval from resampling whole process pairs (pairs measured on one pair of processes share
// that pair's speed, so they are not independent); a bar inside the interval is reported as
// unclear, not as a pass or a miss. --compare a:b measures pairs of any two configurations
// instead (no verdict).

const procs = require('./procs')
const {
  NOISY_PCT, isAborted, installCleanup, startBackends, check, measure, median, escapeCell, fmtInt, parseOptions, writeResults, gitDescribe, machine
} = require('./sample')
const { CONFIGS, TARGETS } = require('./configs')
const { payload } = require('./fixture')

// The verdict's interval: 90%, from 2,000 resamples of the process pairs.
const INTERVAL = 0.9
const RESAMPLES = 2000
const RESAMPLE_SEED = 1
// Fewer process pairs than this give too few distinct resamples for an interval to mean much.
const MIN_GROUPS = 4

procs.runPinned(__filename, 'bench:paired', main)

async function main () {
  const options = parseArgs(process.argv.slice(2))
  installCleanup()
  const targets = options.compare === undefined ? selectTargets(options.only) : comparisons(options.compare)
  const byName = new Map(CONFIGS.map((config) => [config.name, { ...config }]))
  const configs = [...new Set(targets.flatMap(([a, b]) => [a, b]))].map((name) => byName.get(name))
  const starts = options.fresh > 0 ? Math.ceil(options.pairs / options.fresh) : 1
  const perTarget = starts * (options.warmup * 2 + 2) + options.pairs * 2 * (options.duration + 0.5)
  console.log(`bench:paired: ${targets.length} targets, ${options.pairs} pairs x ${options.duration} s each side, warm-up ${options.warmup} s per server, ` +
    `${options.connections} connections; about ${Math.ceil(targets.length * perTarget / 60)} min` +
    (procs.isPinned() ? '; servers on core 0, load generator on core 1' : '; unpinned'))

  const { env, pids } = await startBackends(configs)
  options.backendPids = pids
  const started = Date.now()
  const results = []
  for (const [a, b, min, source = 'issue 6'] of targets) {
    if (isAborted()) return
    results.push(await judge(byName.get(a), byName.get(b), { min, source }, env, options))
  }
  if (isAborted()) return
  const report = {
    date: new Date().toISOString(),
    machine: machine(),
    git: gitDescribe(),
    settings: { pairs: options.pairs, duration: options.duration, warmup: options.warmup, fresh: options.fresh, connections: options.connections, rate: options.rate, only: options.only, compare: options.compare },
    bodyBytes: Buffer.byteLength(JSON.stringify(payload)),
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
    targets: results
  }
  const markdown = toMarkdown(report)
  console.log('\n' + markdown)
  const base = options.only === undefined && options.compare === undefined ? 'paired' : 'paired-partial'
  writeResults('bench:paired', base, report, markdown)
  await procs.killAll()
}

/**
 * One target: the alternating pairs, on a new, checked and warmed pair of server processes
 * every `--fresh` pairs. A process settles into a speed of its own for its whole life (see
 * bench/README.md), so one process per side would bias the whole target one way.
 */
async function judge (a, b, { min, source }, env, options) {
  const result = { name: a.name, against: b.name, min, source, pairs: [], processes: 0 }
  let servers = []
  try {
    for (let i = 0; i < options.pairs && !isAborted(); i++) {
      if (i === 0 || (options.fresh > 0 && i % options.fresh === 0)) {
        for (const server of servers) if (server !== undefined) await procs.stopServer(server)
        servers = []
        // Every other process pair starts and warms B first, and measures in the other order:
        // a side that always warmed first (and so idled longest before its later samples)
        // lost 6-8% in A/A runs of the miss configurations (the same server on both sides).
        const broken = await startPair([a, b], servers, env, options, result.processes % 2 === 1)
        result.processes++
        if (broken !== undefined) {
          result.broken = broken
          console.warn(`  ${a.name} / ${b.name}: BROKEN (${result.broken}); left out`)
          return result
        }
      }
      const order = (i + result.processes - 1) % 2 === 0 ? [0, 1] : [1, 0]
      const samples = []
      for (const side of order) samples[side] = await measure([a, b][side], servers[side], options.duration, options)
      const [sa, sb] = samples
      if (sa === undefined || sb === undefined || sb.rps === 0) continue
      // cpuRatio: B's server CPU per request over A's (above 1: A does a request with less CPU).
      const cpuRatio = sa.serverUsPerRequest > 0 && sb.serverUsPerRequest > 0 ? sb.serverUsPerRequest / sa.serverUsPerRequest : undefined
      const pair = { ratio: sa.rps / sb.rps, cpuRatio, usA: sa.serverUsPerRequest, usB: sb.serverUsPerRequest, aFirst: order[0] === 0, process: result.processes, a: sa.rps, b: sb.rps, p99A: sa.p99, p99B: sb.p99, noisy: sa.noisy || sb.noisy, problem: sa.problem ?? sb.problem }
      result.pairs.push(pair)
      console.log(`  ${a.name} / ${b.name}  pair ${i + 1}/${options.pairs}  ${fmtInt(sa.rps).padStart(7)} / ${fmtInt(sb.rps).padStart(7)} req/s  = ${pair.ratio.toFixed(3)}` +
        (pair.noisy ? '  (noisy)' : '') + (pair.problem === undefined ? '' : '  ! ' + pair.problem))
    }
  } catch (err) {
    result.broken = err.message
    return result
  } finally {
    for (const server of servers) if (server !== undefined) await procs.stopServer(server)
  }
  // A server that died mid-target said why in its config.
  result.broken ??= a.broken ?? b.broken
  // Pairs with a sample to distrust (errors, a "hit" that ran the handler) never count; then
  // the quiet pairs when at least half are, otherwise all (the table says which).
  const sound = result.pairs.filter((pair) => pair.problem === undefined)
  const quiet = sound.filter((pair) => !pair.noisy)
  const used = quiet.length * 2 >= sound.length ? quiet : sound
  result.basis = (used === quiet ? `${quiet.length}/${result.pairs.length} quiet` : `all ${sound.length} of ${result.pairs.length}`) +
    (sound.length < result.pairs.length ? `, ${result.pairs.length - sound.length} with problems left out` : '')
  const ratios = used.map((pair) => pair.ratio)
  ;[result.aFirst, result.bFirst] = orderMedians(used)
  result.ratio = ratioOf(used)
  result.q1 = quantile(ratios, 0.25)
  result.q3 = quantile(ratios, 0.75)
  ;[result.low, result.high] = intervalOf(used)
  result.rpsA = median(used.map((pair) => pair.a))
  result.rpsB = median(used.map((pair) => pair.b))
  // Latency under the same load: a path that answers later shows in its p99 (issue 17's misses).
  result.p99A = median(used.map((pair) => pair.p99A))
  result.p99B = median(used.map((pair) => pair.p99B))
  // The same judgement on server CPU per request, which the load generator cannot cap.
  const withCpu = used.filter((pair) => pair.cpuRatio !== undefined).map((pair) => ({ ...pair, ratio: pair.cpuRatio }))
  if (withCpu.length > 0) {
    result.cpuRatio = ratioOf(withCpu)
    ;[result.cpuLow, result.cpuHigh] = intervalOf(withCpu)
    result.usA = median(used.map((pair) => pair.usA).filter((us) => us !== undefined))
    result.usB = median(used.map((pair) => pair.usB).filter((us) => us !== undefined))
  }
  result.verdict = verdictOf(result, min)
  result.problems = [...new Set(result.pairs.map((pair) => pair.problem).filter(Boolean))]
  return result
}

/**
 * Starts, checks and warms one server per config into `servers` (in the configs' order, kept
 * in `servers`); `bFirst` starts and warms the second one first. Returns why one is broken.
 */
async function startPair (configs, servers, env, options, bFirst = false) {
  const sides = bFirst ? [1, 0] : [0, 1]
  for (const side of sides) {
    const server = await procs.startServer(configs[side].script, { ...env, ...configs[side].env })
    servers[side] = server
    const broken = await check(configs[side], server)
    if (broken !== undefined) return `${configs[side].name}: ${broken}`
  }
  const quiet = { ...options, quietWait: 0 }
  for (const side of sides) await measure(configs[side], servers[side], options.warmup, quiet)
  return undefined
}

/** The median ratio of the pairs where A went first, and of those where B did. */
function orderMedians (pairs) {
  return [true, false].map((aFirst) => median(pairs.filter((pair) => pair.aFirst === aFirst).map((pair) => pair.ratio)))
}

/** The geometric mean of the median A-first and the median B-first ratio (one order missing: the median). */
function ratioOf (pairs) {
  const [aFirst, bFirst] = orderMedians(pairs)
  return aFirst === undefined || bFirst === undefined ? median(pairs.map((pair) => pair.ratio)) : Math.sqrt(aFirst * bFirst)
}

/**
 * The 90% bootstrap interval of ratioOf: resamples whole process pairs, since the pairs measured
 * on one pair of processes share its steady state (with --fresh 0 there is one, so single pairs
 * are resampled: the interval then leaves out process-to-process spread). Seeded: a report
 * recomputed from the same pairs gives the same interval. Undefined below MIN_GROUPS groups.
 */
function intervalOf (pairs) {
  const byProcess = new Map()
  for (const pair of pairs) {
    const group = byProcess.get(pair.process)
    if (group === undefined) byProcess.set(pair.process, [pair])
    else group.push(pair)
  }
  const groups = byProcess.size > 1 ? [...byProcess.values()] : pairs.map((pair) => [pair])
  if (groups.length < MIN_GROUPS) return [undefined, undefined]
  const random = seededRandom(RESAMPLE_SEED)
  const ratios = []
  for (let r = 0; r < RESAMPLES; r++) {
    const drawn = []
    for (let i = 0; i < groups.length; i++) drawn.push(...groups[Math.floor(random() * groups.length)])
    ratios.push(ratioOf(drawn))
  }
  return [quantile(ratios, (1 - INTERVAL) / 2), quantile(ratios, (1 + INTERVAL) / 2)]
}

/** mulberry32: a small seeded generator, so that intervals are reproducible. */
function seededRandom (seed) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** pass / miss when the whole interval is on one side of the bar; else unclear. */
function verdictOf ({ ratio, low, high }, min) {
  if (ratio === undefined || min === undefined) return undefined
  if (low === undefined) return 'unclear (too few process pairs)'
  if (low >= min) return 'pass'
  if (high < min) return 'miss'
  return ratio >= min ? 'unclear (ratio passes)' : 'unclear (ratio misses)'
}

function quantile (values, q) {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((x, y) => x - y)
  const at = (sorted.length - 1) * q
  const low = Math.floor(at)
  return sorted[low] + (sorted[Math.ceil(at)] - sorted[low]) * (at - low)
}

/** `a:b` pairs of configuration names, as targets without a bar. */
function comparisons (pairs) {
  if (pairs.length === 0) throw new Error('--compare: give at least one a:b pair')
  const known = new Set(CONFIGS.map((config) => config.name))
  return pairs.map((pair) => {
    const [a, b] = pair.split(':')
    for (const name of [a, b]) if (!known.has(name)) throw new Error('--compare: no configuration ' + name + ' in ' + pair + ' (node bench/run.js --list)')
    return [a, b, undefined, 'ad hoc']
  })
}

function selectTargets (only) {
  if (only === undefined) return TARGETS
  if (only.length === 0) throw new Error('--only: give at least one configuration (node bench/run.js --list)')
  const known = new Set(CONFIGS.map((config) => config.name))
  for (const name of only) if (!known.has(name)) throw new Error('--only: no configuration ' + name + ' (node bench/run.js --list)')
  return TARGETS.filter(([a, b]) => only.includes(a) || only.includes(b))
}

function toMarkdown (report) {
  const { machine, settings } = report
  const lines = []
  lines.push(`### Paired benchmark (${report.date.slice(0, 10)}, ${report.git ?? 'no git'})`, '')
  lines.push(`Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), ${machine.pinned ? 'servers pinned to core 0, autocannon + Redis + Memcached to core 1' : 'unpinned'}; ` +
    `${settings.connections} connections, pipelining 1, ${report.bodyBytes} B JSON body. Per target: ` +
    `${settings.fresh > 0 ? 'new server processes every ' + settings.fresh + ' pairs' : 'one server process per side'}, each warmed ${settings.warmup} s; ` +
    `${settings.pairs} pairs of ${settings.duration} s samples taken back to back in alternating order (A B, B A, ...). ` +
    'ratio: geometric mean of the median A/B req/s ratio of the pairs where A went first and of those where B did (both shown); ' +
    '90% interval: of that ratio, resampling whole process pairs; a bar inside it is "unclear". q1-q3: the middle half of all pair ratios. req/s: each side\'s own median. ' +
    `A pair during which other processes used more than ${NOISY_PCT}% of a core is left out when at least half are quiet.`, '')
  lines.push('| target | ratio | 90% interval | A first / B first | q1-q3 | needed | | req/s A / B | CPU ratio (90%) | µs/req A / B | pairs | set by |', '|---|--:|--:|--:|--:|--:|---|--:|--:|--:|---|---|')
  for (const t of report.targets) {
    if (t.broken !== undefined || t.ratio === undefined) {
      lines.push(`| ${t.name} / ${t.against} | - | - | - | - | ${needed(t)} | n/a | - | - | BROKEN: ${escapeCell(t.broken ?? 'no pairs')} |`)
      continue
    }
    const verdict = t.verdict === undefined ? '' : t.verdict === 'miss' ? '**miss**' : t.verdict
    const flag = t.problems.length > 0 ? ' (!)' : ''
    const orders = `${t.aFirst?.toFixed(2) ?? '-'} / ${t.bFirst?.toFixed(2) ?? '-'}`
    const interval = t.low === undefined ? '-' : `${t.low.toFixed(2)}-${t.high.toFixed(2)}`
    const cpu = t.cpuRatio === undefined ? '-' : `${t.cpuRatio.toFixed(2)}x` + (t.cpuLow === undefined ? '' : ` (${t.cpuLow.toFixed(2)}-${t.cpuHigh.toFixed(2)})`)
    const us = t.usA === undefined ? '-' : `${t.usA.toFixed(1)} / ${t.usB.toFixed(1)}`
    lines.push(`| ${t.name} / ${t.against}${flag} | ${t.ratio.toFixed(2)}x | ${interval} | ${orders} | ${t.q1.toFixed(2)}-${t.q3.toFixed(2)} | ${needed(t)} | ${verdict} | ${fmtInt(t.rpsA)} / ${fmtInt(t.rpsB)} | ${cpu} | ${us} | ${t.basis} | ${t.source} |`)
  }
  const withP99 = report.targets.filter((t) => t.p99A !== undefined)
  if (withP99.length > 0) {
    lines.push('', 'p99 latency, median over the pairs (ms), A / B (= ratio):')
    for (const t of withP99) lines.push(`- ${t.name} / ${t.against}: ${t.p99A} / ${t.p99B} (${(t.p99A / t.p99B).toFixed(2)})`)
  }
  const flagged = report.targets.filter((t) => t.problems?.length > 0)
  if (flagged.length > 0) {
    lines.push('', '(!) samples to distrust:')
    for (const t of flagged) lines.push(`- ${t.name} / ${t.against}: ${t.problems.join('; ')}`)
  }
  lines.push('')
  return lines.join('\n')
}

function needed (target) {
  return target.min === undefined ? '-' : `>= ${target.min}x`
}

function parseArgs (args) {
  return parseOptions(args, {
    defaults: { pairs: 12, duration: 1, warmup: 2, fresh: 2, connections: 50, quietWait: 2, rate: 0, only: undefined, compare: undefined },
    numbers: { '--pairs': [1, 100], '--duration': [1, 60], '--warmup': [0, 60], '--fresh': [0, 100], '--connections': [1, 1000], '--quiet-wait': [0, 60], '--rate': [0, 1000000] },
    lists: ['--only', '--compare'],
    usage: 'usage: node bench/paired.js [--pairs N] [--duration S] [--warmup S] [--fresh N] [--connections N] [--quiet-wait S] [--rate N] [--only a,b] [--compare a:b,c:d] [--no-pin]'
  })
}
