'use strict'

// npm run bench [-- --rounds 3 --duration 5 --warmup 2 --connections 50 --only a,b --no-pin]
//
// Starts Redis and Memcached, one server process per configuration (bench/configs.js) on
// core 0, and drives them with autocannon from this process on core 1. After a discarded
// warm-up per configuration, every round runs every configuration once, in the same order
// (A B C ... A B C ...), so drift hits all of them alike. Reports per configuration the
// median req/s, the median p99 and the ratio to the plain route of the same run.

const procs = require('./procs')
const {
  NOISY_PCT, isAborted, installCleanup, startBackends, check, measure, waitForQuiet, median, roundTo, escapeCell, fmtInt, parseOptions, writeResults, gitDescribe, machine
} = require('./sample')

const { CONFIGS, REFERENCE, TARGETS } = require('./configs')
const { payload } = require('./fixture')

// Pinned runs re-execute this file under `taskset -c 1`; the outer copy only waits for it.
procs.runPinned(__filename, 'bench', main)

async function main () {
  const options = parseArgs(process.argv.slice(2))
  if (options.list) {
    for (const config of CONFIGS) console.log(config.name.padEnd(28) + config.what)
    return
  }
  installCleanup()
  const selected = selectConfigs(options.only)
  const minutes = options.reuse
    ? selected.length * (options.warmup + options.rounds * (options.duration + 0.5)) / 60
    : selected.length * options.rounds * (options.warmup + options.duration + 1) / 60
  console.log(`bench: ${selected.length} configurations, ${options.rounds} rounds x ${options.duration} s, warm-up ${options.warmup} s ` +
    `${options.reuse ? 'once per server' : 'per sample on a fresh server process'}, ${options.connections} connections; about ${Math.ceil(minutes)} min` +
    (procs.isPinned() ? '; servers on core 0, load generator on core 1' : '; unpinned'))

  const { env, pids: backendPids } = await startBackends(selected)
  options.backendPids = backendPids
  const envOf = (config) => ({ ...env, ...config.env })
  const runnable = () => selected.filter((config) => config.broken === undefined && !isAborted())
  const started = Date.now()
  const servers = new Map()
  if (options.reuse) {
    for (const config of selected) {
      try {
        servers.set(config.name, await procs.startServer(config.script, envOf(config)))
      } catch (err) {
        config.broken = 'start: ' + err.message
      }
      if (config.broken === undefined) config.broken = await check(config, servers.get(config.name))
      if (config.broken !== undefined) console.warn(`  ${config.name}: BROKEN (${config.broken}); left out`)
    }
    for (const config of runnable()) {
      await measure(config, servers.get(config.name), options.warmup, { ...options, quietWait: 0 })
    }
  }
  const rounds = new Map(selected.map((config) => [config.name, []]))
  for (let round = 1; round <= options.rounds; round++) {
    if (isAborted()) break
    // --shuffle: a new order every round, so no configuration always follows the same one.
    const order = options.shuffle ? shuffled(runnable()) : runnable()
    for (const config of order) {
      const sample = options.reuse
        ? await measure(config, servers.get(config.name), options.duration, options)
        : await freshSample(config, envOf(config), options)
      if (config.broken !== undefined) console.warn(`  ${config.name}: BROKEN (${config.broken}); left out`)
      if (sample === undefined) continue
      sample.round = round
      rounds.get(config.name).push(sample)
      console.log(`  round ${round}/${options.rounds}  ${config.name.padEnd(26)} ${fmtInt(sample.rps).padStart(8)} req/s  p99 ${sample.p99} ms` +
        `  srv ${sample.serverUsPerRequest ?? '?'} µs/req  cpu srv ${sample.cpu.server ?? '?'}% cli ${sample.cpu.client ?? '?'}% other ${sample.cpu.foreign ?? '?'}%` +
        (sample.quietWaitMs >= 1000 ? `  (waited ${Math.round(sample.quietWaitMs / 1000)} s for quiet)` : '') +
        (sample.noisy ? '  (noisy)' : '') + (sample.problem === undefined ? '' : '  ! ' + sample.problem))
    }
  }
  if (isAborted()) return
  const report = summarize(selected, rounds, options, Date.now() - started)
  const markdown = toMarkdown(report)
  console.log('\n' + markdown)
  const base = options.only === undefined ? 'latest' : 'partial'
  writeResults('bench', base, report, markdown)
  await procs.killAll()
}

/**
 * One sample on a server process of its own: start, check, warm up, measure, stop. The same
 * script differs by up to ~15% from one process to the next (JIT and memory layout), so a
 * process per sample turns that into noise the median absorbs instead of a bias that sticks.
 */
async function freshSample (config, env, options) {
  const waited = await waitForQuiet([], options)
  let server
  try {
    server = await procs.startServer(config.script, env)
  } catch (err) {
    config.broken = 'start: ' + err.message
    return undefined
  }
  try {
    const broken = await check(config, server)
    if (broken !== undefined) {
      config.broken = broken
      return undefined
    }
    await measure(config, server, options.warmup, { ...options, quietWait: 0 })
    const sample = await measure(config, server, options.duration, { ...options, quietWait: 0 })
    if (sample !== undefined) sample.quietWaitMs = waited
    return sample
  } finally {
    await procs.stopServer(server)
  }
}

function parseArgs (args) {
  return parseOptions(args, {
    defaults: { rounds: 3, duration: 5, warmup: 2, connections: 50, quietWait: 2, only: undefined, list: false, shuffle: false, reuse: false },
    numbers: { '--rounds': [1, 50], '--duration': [1, 600], '--warmup': [0, 600], '--connections': [1, 1000], '--quiet-wait': [0, 600] },
    lists: ['--only'],
    flags: ['--shuffle', '--reuse', '--list'],
    usage: 'usage: node bench/run.js [--rounds N] [--duration S] [--warmup S] [--connections N] [--quiet-wait S] [--only a,b] [--shuffle] [--reuse] [--list] [--no-pin]'
  })
}

/** The configurations asked for, plus the ones they are compared with (plain always). */
function selectConfigs (only) {
  const fresh = CONFIGS.map((config) => ({ ...config }))
  if (only === undefined) return fresh
  const byName = new Map(fresh.map((config) => [config.name, config]))
  for (const name of only) if (!byName.has(name)) throw new Error('--only: no configuration ' + name + ' (try --list)')
  const wanted = new Set([REFERENCE, ...only])
  return fresh.filter((config) => wanted.has(config.name))
}

function shuffled (items) {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    const swap = out[i]
    out[i] = out[j]
    out[j] = swap
  }
  return out
}

/**
 * a/b within each round where both had a quiet sample: the two ran minutes apart at most, so
 * slow drift cancels. Their spread shows how far one run's ratio can be trusted.
 */
function perRoundRatios (a, b) {
  const ratios = []
  for (const sample of a.samples) {
    const other = b.samples.find((s) => s.round === sample.round)
    if (other === undefined || sample.noisy || other.noisy || other.rps === 0) continue
    ratios.push(sample.rps / other.rps)
  }
  return ratios.length === 0 ? undefined : { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), rounds: ratios.length }
}

function medianCpu (samples) {
  const out = {}
  for (const name of ['server', 'client', 'backends', 'foreign']) {
    const values = samples.map((s) => s.cpu?.[name]).filter((v) => v !== undefined)
    const value = median(values)
    out[name] = value === undefined ? undefined : Math.round(value)
  }
  return out
}

function summarize (selected, rounds, options, elapsedMs) {
  const results = selected.map((config) => {
    const samples = rounds.get(config.name)
    // Medians over the quiet samples when there are at least two: a neighbour's test run
    // says nothing about us. Otherwise over all of them (and the table says so).
    const quiet = samples.filter((s) => !s.noisy)
    const used = quiet.length >= 2 || (quiet.length === samples.length) ? quiet : samples
    return {
      name: config.name,
      what: config.what,
      broken: config.broken,
      rps: median(used.map((s) => s.rps)),
      p99: roundTo(median(used.map((s) => s.p99)), 1),
      cpu: medianCpu(used),
      serverUsPerRequest: roundTo(median(used.map((s) => s.serverUsPerRequest).filter((v) => v !== undefined)), 1),
      basis: used === quiet ? `${quiet.length}/${samples.length} quiet` : `all ${samples.length} (only ${quiet.length} quiet)`,
      samples,
      problems: samples.map((s) => s.problem).filter(Boolean)
    }
  })
  const byName = new Map(results.map((r) => [r.name, r]))
  const reference = byName.get(REFERENCE)?.rps
  const ratio = (a, b) => {
    const x = byName.get(a)?.rps
    const y = byName.get(b)?.rps
    return x === undefined || y === undefined || y === 0 ? undefined : x / y
  }
  for (const result of results) {
    result.ratio = reference === undefined || result.rps === undefined ? undefined : result.rps / reference
    const vs = selected.find((c) => c.name === result.name).vs
    if (vs !== undefined && byName.has(vs)) result.vs = { name: vs, ratio: ratio(result.name, vs) }
  }
  const targets = TARGETS
    .filter(([a, b]) => byName.has(a) && byName.has(b))
    .map(([name, against, min, source = 'issue 6']) => {
      const value = ratio(name, against)
      return { name, against, min, source, ratio: value, pass: value === undefined ? undefined : value >= min, perRound: perRoundRatios(byName.get(name), byName.get(against)) }
    })
  return {
    date: new Date().toISOString(),
    machine: machine(),
    git: gitDescribe(),
    settings: { rounds: options.rounds, duration: options.duration, warmup: options.warmup, connections: options.connections, pipelining: 1, quietWait: options.quietWait, shuffle: options.shuffle, freshProcessPerSample: !options.reuse, only: options.only },
    bodyBytes: Buffer.byteLength(JSON.stringify(payload)),
    elapsedSeconds: Math.round(elapsedMs / 1000),
    results,
    targets
  }
}

function toMarkdown (report) {
  const { machine, settings } = report
  const lines = []
  lines.push(`### Benchmark (${report.date.slice(0, 10)}, ${report.git ?? 'no git'})`, '')
  lines.push(`Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), ${machine.pinned ? 'server pinned to core 0, autocannon + Redis + Memcached to core 1' : 'unpinned'}; ` +
    `${settings.connections} connections, pipelining 1, ${report.bodyBytes} B JSON body; ` +
    (settings.freshProcessPerSample ? `every sample on a fresh server process warmed ${settings.warmup} s, ` : `warm-up ${settings.warmup} s per server, `) +
    `median of ${settings.rounds} interleaved rounds x ${settings.duration} s${settings.shuffle ? ' (order shuffled per round)' : ''}. CPU: median % of one core used by the server / by autocannon ` +
    '(a server below ~95% was not the bottleneck: the load generator, a backend round trip or a neighbour was); ' +
    'srv µs/req: server CPU time per request. samples: rounds the medians use; a sample during which other processes ' +
    `used more than ${NOISY_PCT}% of a core is left out when at least two quiet ones remain.`, '')
  lines.push('| configuration | req/s | p99 ms | x plain | vs anchor | CPU % srv/cli | srv µs/req | samples | what |')
  lines.push('|---|--:|--:|--:|---|--:|--:|---|---|')
  for (const r of report.results) {
    if (r.broken !== undefined || r.rps === undefined) {
      lines.push(`| ${r.name} | - | - | - | - | - | - | - | BROKEN: ${escapeCell(r.broken ?? 'no samples')} |`)
      continue
    }
    const vs = r.vs?.ratio === undefined ? '' : `${r.vs.ratio.toFixed(2)}x ${r.vs.name}`
    const flag = r.problems.length > 0 ? ' (!)' : ''
    const usage = `${r.cpu.server ?? '?'}/${r.cpu.client ?? '?'}`
    lines.push(`| ${r.name}${flag} | ${fmtInt(r.rps)} | ${r.p99} | ${r.ratio === undefined ? '-' : r.ratio.toFixed(2) + 'x'} | ${vs} | ${usage} | ${r.serverUsPerRequest ?? '-'} | ${r.basis} | ${r.what} |`)
  }
  const flagged = report.results.filter((r) => r.problems.length > 0)
  if (flagged.length > 0) {
    lines.push('', '(!) samples to distrust:')
    for (const r of flagged) lines.push(`- ${r.name}: ${[...new Set(r.problems)].join('; ')}`)
  }
  if (report.targets.length > 0) {
    lines.push('', 'ratio: of the median req/s (what the targets are judged on); per round: the median, lowest and highest of the ratios within each round.', '')
    lines.push('| target | ratio | needed | | per round: median (min-max) | set by |', '|---|--:|--:|---|--:|---|')
    for (const t of report.targets) {
      const verdict = t.pass === undefined ? 'n/a' : t.pass ? 'pass' : '**miss**'
      const perRound = t.perRound === undefined ? '-' : `${t.perRound.median.toFixed(2)}x (${t.perRound.min.toFixed(2)}-${t.perRound.max.toFixed(2)})`
      lines.push(`| ${t.name} / ${t.against} | ${t.ratio === undefined ? '-' : t.ratio.toFixed(2) + 'x'} | >= ${t.min}x | ${verdict} | ${perRound} | ${t.source} |`)
    }
  }
  lines.push('', `Per-round req/s (* = noisy): ${report.results.filter((r) => r.samples.length > 0).map((r) => `${r.name} ${r.samples.map((s) => fmtInt(s.rps) + (s.noisy ? '*' : '')).join('/')}`).join('; ')}.`, '')
  return lines.join('\n')
}
