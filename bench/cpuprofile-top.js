'use strict'

// node bench/cpuprofile-top.js <file.cpuprofile> [--top 15]
//
// Aggregates a V8 .cpuprofile (node --cpu-prof) by function: self time per function name and
// location, time per area (our dist/lib, fastify, node internals, GC, idle), and the
// inclusive time of our own functions, so one sees where a request's CPU goes.

const fs = require('node:fs')
const path = require('node:path')

function load (file) {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8'))
  if (!Array.isArray(profile.nodes) || !Array.isArray(profile.samples)) throw new Error(file + ' is not a .cpuprofile')
  return profile
}

/**
 * Microseconds of self time per profile node id, counting only samples taken within
 * [from, to] (monotonic microseconds, the clock of process.hrtime; undefined = no bound).
 */
function selfTimes (profile, from, to) {
  const self = new Map()
  const { samples, timeDeltas } = profile
  let at = profile.startTime ?? 0
  // timeDeltas[i] is the gap before sample i; charge it to the sample it ends on (DevTools
  // charges the next one; over thousands of samples the difference vanishes).
  for (let i = 0; i < samples.length; i++) {
    const delta = Math.max(0, timeDeltas?.[i] ?? 0)
    at += delta
    if ((from !== undefined && at < from) || (to !== undefined && at > to)) continue
    self.set(samples[i], (self.get(samples[i]) ?? 0) + delta)
  }
  return self
}

function shortUrl (url) {
  if (!url) return ''
  const clean = url.replace(/^file:\/\//, '')
  const nm = clean.lastIndexOf('node_modules/')
  if (nm !== -1) return clean.slice(nm + 'node_modules/'.length)
  const dist = clean.indexOf('/dist/')
  if (dist !== -1) return clean.slice(dist + 1)
  const bench = clean.indexOf('/bench/')
  if (bench !== -1) return clean.slice(bench + 1)
  return clean.startsWith('node:') ? clean : path.basename(clean)
}

function areaOf (node) {
  const { functionName, url } = node.callFrame
  if (functionName === '(garbage collector)') return 'GC'
  if (functionName === '(idle)') return 'idle'
  if (functionName === '(program)') return 'program (native, unattributed)'
  if (url.includes('/dist/lib/')) return 'ours (dist/lib)'
  if (url.includes('/bench/')) return 'bench server script'
  const nm = url.lastIndexOf('node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    const pkg = rest[0].startsWith('@') ? rest[0] + '/' + rest[1] : rest[0]
    return pkg === 'fastify' ? 'fastify core' : pkg
  }
  if (url.startsWith('node:') || url === '') return 'node internals / native'
  return 'other'
}

function label (node) {
  const { functionName, url, lineNumber } = node.callFrame
  const where = shortUrl(url)
  return (functionName || '(anonymous)') + (where ? ' ' + where + ':' + (lineNumber + 1) : '')
}

/** `window`: { from, to } in monotonic microseconds, and `requests` answered in it (for µs/request). */
function summarize (profile, top, window = {}) {
  let self = selfTimes(profile, window.from, window.to)
  let windowNote = window.from === undefined ? 'whole profile' : 'measured window only (start-up and warm-up left out)'
  if (self.size === 0) {
    self = selfTimes(profile)
    windowNote = 'whole profile (the window matched no samples)'
  }
  const requests = self.size === 0 || windowNote.startsWith('whole') ? undefined : window.requests
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  let total = 0
  for (const us of self.values()) total += us
  const idle = profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').reduce((sum, n) => sum + (self.get(n.id) ?? 0), 0)
  const busy = total - idle

  const byFunction = new Map()
  const byArea = new Map()
  for (const node of profile.nodes) {
    const us = self.get(node.id) ?? 0
    if (us === 0) continue
    const key = label(node)
    byFunction.set(key, (byFunction.get(key) ?? 0) + us)
    const area = areaOf(node)
    byArea.set(area, (byArea.get(area) ?? 0) + us)
  }

  // Inclusive time of our functions: each node's subtree, counted once per function even
  // when it appears under itself (recursion) by skipping descendants with the same label.
  const inclusive = new Map()
  const subtree = (node, skipLabel) => {
    let sum = 0
    const stack = [node]
    let guard = 0
    while (stack.length > 0 && guard++ < 1e7) {
      const current = stack.pop()
      sum += self.get(current.id) ?? 0
      for (const childId of current.children ?? []) {
        const child = byId.get(childId)
        if (child !== undefined && label(child) !== skipLabel) stack.push(child)
      }
    }
    return sum
  }
  for (const node of profile.nodes) {
    if (areaOf(node) !== 'ours (dist/lib)') continue
    const key = label(node)
    inclusive.set(key, (inclusive.get(key) ?? 0) + subtree(node, key))
  }

  const pct = (us) => (100 * us / (busy || 1)).toFixed(1) + '%'
  const ms = (us) => (us / 1000).toFixed(0)
  const perRequest = requests === undefined ? undefined : (us) => (us / requests).toFixed(2)
  const head = perRequest === undefined ? '' : ' µs/req |'
  const rule = perRequest === undefined ? '' : '--:|'
  const cell = (us) => perRequest === undefined ? '' : ` ${perRequest(us)} |`
  const sorted = (map) => [...map].sort((a, b) => b[1] - a[1])
  const lines = []
  lines.push(`profile: ${windowNote}; ${ms(total)} ms sampled, ${ms(busy)} ms busy (${ms(idle)} ms idle)` +
    (requests === undefined ? '' : `, ${requests} requests (${perRequest(busy)} µs busy per request)`) + '; percentages are of busy time', '')
  lines.push(`top ${top} functions by self time:`, '', `| # | self ms | self % |${head} function |`, `|--:|--:|--:|${rule}---|`)
  sorted(byFunction).filter(([name]) => !name.startsWith('(idle)')).slice(0, top).forEach(([name, us], i) => {
    lines.push(`| ${i + 1} | ${ms(us)} | ${pct(us)} |${cell(us)} \`${name}\` |`)
  })
  lines.push('', 'self time by area:', '', `| area | ms | % |${head}`, `|---|--:|--:|${rule}`)
  for (const [area, us] of sorted(byArea)) if (area !== 'idle') lines.push(`| ${area} | ${ms(us)} | ${pct(us)} |${cell(us)}`)
  lines.push('', 'our functions, inclusive (self + callees; a hook that calls reply.send or done() also counts',
    'the rest of the reply, socket write included, so only the differences between them mean much):', '',
    `| function | ms | % |${head}`, `|---|--:|--:|${rule}`)
  const worthShowing = ([name, us]) => us >= busy / 1000 && !/^\(anonymous\) \S+:1$/.test(name)
  for (const [name, us] of sorted(inclusive).filter(worthShowing).slice(0, top)) lines.push(`| \`${name}\` | ${ms(us)} | ${pct(us)} |${cell(us)}`)
  return lines.join('\n') + '\n'
}

if (require.main === module) {
  const args = process.argv.slice(2)
  const topAt = args.indexOf('--top')
  const top = topAt === -1 ? 15 : Number(args[topAt + 1])
  const file = args.find((a, i) => !a.startsWith('--') && (topAt === -1 || i !== topAt + 1))
  if (file === undefined || !Number.isInteger(top) || top < 1) {
    console.error('usage: node bench/cpuprofile-top.js <file.cpuprofile> [--top 15]')
    process.exit(2)
  }
  process.stdout.write(summarize(load(file), top))
}

module.exports = { load, summarize }
