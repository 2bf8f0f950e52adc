// Steady load against a fleet of app instances listening on 127.0.0.1, for faults under load
// and the soak: readers loop over a set of items, a writer changes one item now and then; every
// answer is recorded with when it started and what it held, so a run can be judged afterwards
// (non-2xx, latency before and during a fault, when hits came back, stale reads).
//
// The data source is versioned: each write bumps an item's version, and a read that started
// after a write had been answered must hold that version or a later one. Bounded in time
// (stop()) and in connections (one keep-alive agent per instance).

import { Agent, request as httpRequest } from 'node:http'
import type { FastifyInstance } from 'fastify'
import emberCache, { type EmberCache } from '../../lib/index'

/** The versioned "database" the instances share, with a read that takes a moment, as a real one does. */
export class VersionedData {
  private readonly versions: number[]
  constructor (readonly items: number) {
    this.versions = new Array<number>(items).fill(1)
  }

  async read (item: number): Promise<number> {
    await new Promise((resolve) => setTimeout(resolve, 1))
    return this.versions[item]
  }

  bump (item: number): number {
    return ++this.versions[item]
  }
}

/** One fleet member: GET /item/:id cached on `cache`, PUT /item/:id writes and invalidates it. */
export async function fleetMember (app: FastifyInstance, cache: EmberCache, data: VersionedData, route: { ttl: number, staleWhileRevalidate?: number } = { ttl: 30 }): Promise<void> {
  await app.register(emberCache)
  app.get('/item/:id', { config: { cache: { cache, ...route } } }, async (request) => {
    const item = Number((request.params as { id: string }).id)
    return { item, version: await data.read(item) }
  })
  app.put('/item/:id', { config: { cache: { cache } } }, async (request) => {
    const item = Number((request.params as { id: string }).id)
    return { item, version: data.bump(item) }
  })
}

export interface Sample {
  /** ms since the load began, when the request was sent and when it was answered. */
  start: number
  end: number
  instance: number
  item: number
  status: number
  xCache: string
  /** The version the body held (-1 when it held none). */
  version: number
  /** Set when the read held data a write had already replaced. */
  stale?: true
}

export interface Write { item: number, version: number, instance: number, start: number, end: number, status: number }

export interface LoadOptions {
  /** `http://127.0.0.1:port` of each instance. */
  bases: string[]
  items: number
  /** Readers at once, spread over the instances (each waits for its answer, then asks again). */
  readers: number
  /** A write every this many ms (0: none). */
  writeEveryMs: number
  /** Keep every answer in `samples` (default); a long soak only counts them in `totals`. */
  keepSamples?: boolean
}

/** Running counts of every read, judged as it is answered. */
export interface Totals {
  reads: number
  hits: number
  non2xx: number
  /** Reads holding a version older than one a write had answered before the read began. */
  stale: number
  /** Reads answered with another item's data. */
  wrongItem: number
}

// Every request names the same site, as behind a load balancer, so the instances share entries.
const HOST = 'api.example'

/** Runs readers and a writer until stop(); each answer is kept in `samples` / `writes`. */
export class Load {
  readonly samples: Sample[] = []
  readonly writes: Write[] = []
  readonly totals: Totals = { reads: 0, hits: 0, non2xx: 0, stale: 0, wrongItem: 0 }
  /** Per item, the answered writes' ends and the highest version known at each. */
  private readonly known = new Map<number, Array<{ end: number, version: number }>>()
  private readonly began = performance.now()
  private running = true
  private readonly agents: Agent[]
  private readonly workers: Array<Promise<void>> = []

  constructor (private readonly options: LoadOptions) {
    const perInstance = Math.ceil(options.readers / options.bases.length) + 1
    this.agents = options.bases.map(() => new Agent({ keepAlive: true, maxSockets: perInstance }))
    for (let r = 0; r < options.readers; r++) this.workers.push(this.reader(r))
    if (options.writeEveryMs > 0) this.workers.push(this.writer())
  }

  /** ms since the load began. */
  now (): number {
    return performance.now() - this.began
  }

  async stop (): Promise<void> {
    this.running = false
    await Promise.all(this.workers)
    for (const agent of this.agents) agent.destroy()
  }

  private async reader (r: number): Promise<void> {
    let turn = r
    while (this.running) {
      const instance = turn++ % this.options.bases.length
      const item = Math.floor(Math.random() * this.options.items)
      const start = this.now()
      const res = await this.send(instance, 'GET', item)
      const sample: Sample = { start, end: this.now(), instance, item, status: res.status, xCache: res.xCache, version: res.version }
      this.count(sample, res.item)
      if (this.options.keepSamples !== false) this.samples.push(sample)
    }
  }

  private async writer (): Promise<void> {
    let turn = 0
    while (this.running) {
      await new Promise((resolve) => setTimeout(resolve, this.options.writeEveryMs))
      const instance = turn++ % this.options.bases.length
      const item = Math.floor(Math.random() * this.options.items)
      const start = this.now()
      const res = await this.send(instance, 'PUT', item)
      const end = this.now()
      this.writes.push({ item, version: res.version, instance, start, end, status: res.status })
      if (res.status === 200) {
        const list = this.known.get(item) ?? []
        list.push({ end, version: Math.max(res.version, list.at(-1)?.version ?? 0) })
        this.known.set(item, list)
      }
    }
  }

  /**
   * Judges one read as it is answered. Stale: it holds a version older than one a write had
   * answered before the read began (writes are recorded as they are answered, so by now every
   * such write is known).
   */
  private count (sample: Sample, bodyItem: number): void {
    const totals = this.totals
    totals.reads++
    if (sample.status < 200 || sample.status > 299) {
      totals.non2xx++
      return
    }
    if (sample.xCache === 'HIT') totals.hits++
    if (bodyItem !== sample.item) totals.wrongItem++
    const list = this.known.get(sample.item)
    if (list === undefined) return
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i].end > sample.start) continue
      if (sample.version < list[i].version) {
        totals.stale++
        sample.stale = true
      }
      return
    }
  }

  private send (instance: number, method: string, item: number): Promise<{ status: number, xCache: string, version: number, item: number }> {
    const url = new URL(`/item/${item}`, this.options.bases[instance])
    return new Promise((resolve) => {
      const req = httpRequest(url, { method, agent: this.agents[instance], headers: { host: HOST }, timeout: 10_000 }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { body += chunk })
        res.on('end', () => {
          let parsed = { version: -1, item: -1 }
          try { parsed = JSON.parse(body) as typeof parsed } catch {}
          resolve({ status: res.statusCode ?? 0, xCache: String(res.headers['x-cache']), version: parsed.version, item: parsed.item })
        })
      })
      // A request that fails outright counts as status 0: a failure the judge reports.
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', () => resolve({ status: 0, xCache: 'none', version: -1, item: -1 }))
      req.end()
    })
  }
}

export interface Judged {
  sent: number
  non2xx: number
  writes: number
  /** Reads that started after a write of their item was answered, holding an older version. */
  stale: number
  p50: number
  p99: number
}

function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

/** The reads (and writes) that started within [from, to): counts, latency percentiles and stale reads. */
export function judge (load: Load, from: number, to: number): Judged {
  const reads = load.samples.filter((s) => s.start >= from && s.start < to)
  const writes = load.writes.filter((w) => w.start >= from && w.start < to)
  const times = reads.map((s) => s.end - s.start).sort((a, b) => a - b)
  return {
    sent: reads.length + writes.length,
    non2xx: reads.filter((s) => s.status < 200 || s.status > 299).length + writes.filter((w) => w.status < 200 || w.status > 299).length,
    writes: writes.length,
    stale: reads.filter((s) => s.stale === true).length,
    p50: percentile(times, 0.5),
    p99: percentile(times, 0.99)
  }
}

/** Seconds from `from` until every instance has answered a HIT again (Infinity when one never did). */
export function hitsResumeAfter (load: Load, from: number, instances: number): number {
  let last = 0
  for (let i = 0; i < instances; i++) {
    const hit = load.samples.find((s) => s.instance === i && s.start >= from && s.xCache === 'HIT')
    if (hit === undefined) return Infinity
    last = Math.max(last, hit.end)
  }
  return (last - from) / 1000
}
