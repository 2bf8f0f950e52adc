'use strict'

// Where the CPU went during a sample (Linux /proc; elsewhere every figure is undefined):
// the server under test, this process (autocannon), our backends, and everything else on
// the machine ("foreign": other people's tests and builds). A sample whose server did not
// use its whole core, or that shared the machine with a busy neighbour, is worth distrusting.

const fs = require('node:fs')

const TICK_MS = 10 // USER_HZ is 100 on Linux

function machineTicks () {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]
    // irq and softirq time is not charged to any process (loopback traffic lands there), so
    // it stays out of "busy": foreign is then only other processes' user and system time.
    const [user, nice, system, , , , , steal] = line.trim().split(/\s+/).slice(1).map(Number)
    return { busy: user + nice + system, steal }
  } catch {
    return undefined
  }
}

function processTicks (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return undefined
  }
}

/**
 * Starts a meter over the server pid (undefined: none) and the helper pids (backends);
 * `stop()` gives percents of one core, and the server's CPU milliseconds.
 */
function startMeter (serverPid, helperPids) {
  const serverTicks = () => serverPid === undefined ? 0 : processTicks(serverPid)
  const started = { at: process.hrtime.bigint(), machine: machineTicks(), self: process.cpuUsage(), server: serverTicks(), helpers: sumTicks(helperPids) }
  return {
    stop () {
      const ms = Number(process.hrtime.bigint() - started.at) / 1e6
      const machine = machineTicks()
      const self = process.cpuUsage(started.self)
      const selfMs = (self.user + self.system) / 1000
      const server = serverTicks()
      const helpers = sumTicks(helperPids)
      const pct = (value) => value === undefined || ms <= 0 ? undefined : Math.round(100 * value / ms)
      const serverMs = server === undefined || started.server === undefined ? undefined : (server - started.server) * TICK_MS
      const helpersMs = helpers === undefined || started.helpers === undefined ? undefined : (helpers - started.helpers) * TICK_MS
      let foreignMs
      let stealMs
      if (machine !== undefined && started.machine !== undefined && serverMs !== undefined && helpersMs !== undefined) {
        foreignMs = Math.max(0, (machine.busy - started.machine.busy) * TICK_MS - serverMs - helpersMs - selfMs)
        stealMs = (machine.steal - started.machine.steal) * TICK_MS
      }
      return { server: pct(serverMs), client: pct(selfMs), backends: pct(helpersMs), foreign: pct(foreignMs), steal: pct(stealMs), serverMs }
    }
  }
}

function sumTicks (pids) {
  let sum = 0
  for (const pid of pids) {
    const ticks = processTicks(pid)
    if (ticks === undefined) return undefined
    sum += ticks
  }
  return sum
}

/** Percent of a core used by processes other than `ownPids` and this one, over `ms`. */
async function foreignLoad (ownPids, ms) {
  const meter = startMeter(ownPids[0], ownPids.slice(1))
  await new Promise((resolve) => setTimeout(resolve, ms))
  return meter.stop().foreign
}

module.exports = { startMeter, foreignLoad }
