import type { FastifyBaseLogger } from 'fastify'

// The backend's clock against ours. Every time in an entry is written on the backend's clock and
// read on ours, so that instances whose clocks differ agree on an entry's age (a writer 30 s
// ahead once had its 5 s entries served fresh for 35 s).

/** How often the backend's clock is measured against ours. */
const CLOCK_CHECK_MS = 60_000
/** A clock further off the backend's than this is warned about. */
const SKEW_WARN_MS = 2_000

export interface ClockSource {
  /** The backend's clock now (ms), or undefined for a backend that has none to tell. */
  serverTime: () => Promise<number | undefined>
  /** What two instances' views of one instant may differ by (the backend clock's resolution, and margin). */
  marginMs: number
  name: () => string
  log: () => FastifyBaseLogger
}

export class BackendClock {
  /**
   * The backend's clock minus ours, in ms. 0 until measured, and while within what the
   * measurement can tell.
   */
  offset = 0
  private timer: NodeJS.Timeout | undefined
  private warnedSkew = false

  constructor (private readonly source: ClockSource) {}

  /** Our clock translated to the backend's (ms): what "now" is in times written to it. */
  now (): number {
    return Date.now() + this.offset
  }

  /** Measures now, then every CLOCK_CHECK_MS until stop(). */
  async start (): Promise<void> {
    await this.measure().catch(() => {})
    this.timer = setInterval(() => { this.measure().catch(() => {}) }, CLOCK_CHECK_MS)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** One measurement: the round trip's middle taken as the backend's instant. */
  async measure (): Promise<void> {
    const before = Date.now()
    const server = await this.source.serverTime()
    const after = Date.now()
    if (server === undefined) return
    const offset = server - (before + after) / 2
    const error = (after - before) / 2 + this.source.marginMs
    this.offset = Math.abs(offset) > error ? Math.round(offset) : 0
    const skewed = Math.abs(offset) > SKEW_WARN_MS
    if (skewed && !this.warnedSkew) {
      this.source.log().warn({ cache: this.source.name(), offsetMs: Math.round(offset) }, `ember-cache: this process's clock is ${Math.round(Math.abs(offset) / 1000)} s ${offset > 0 ? 'behind' : 'ahead of'} the cache backend's; entry ages are counted on the backend's clock, but check NTP: other instances' may be off too`)
    }
    this.warnedSkew = skewed
  }
}
