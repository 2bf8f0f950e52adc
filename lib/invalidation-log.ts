import { globToRegExp } from './cache-key'

// "An invalidation wins the race": a miss that started before an invalidation must not store its
// (older) response afterwards. Each cache records its recent invalidations here; a miss notes
// where the log stood when it started, and at store time asks whether anything recorded since
// names its key, one of its tags, a pattern matching its key, or everything. Misses that no
// invalidation touched store as usual, however busy the cache is with other invalidations.

/** What one invalidation removed. */
export interface LoggedTarget {
  keys?: string[]
  pattern?: string
  tags?: string[]
  clear?: true
}

interface Logged extends LoggedTarget {
  /** The pattern compiled, on first use. */
  matcher?: RegExp
}

/** Invalidations remembered. A miss that outlives this many later invalidations does not store. */
const LOG_SIZE = 1024

export class InvalidationLog {
  private seq = 0
  private readonly entries: Array<Logged | undefined> = new Array(LOG_SIZE)

  /** The log's position now, to hand back to `touches` later. */
  mark (): number {
    return this.seq
  }

  record (target: LoggedTarget): void {
    this.seq++
    this.entries[this.seq % LOG_SIZE] = { ...target }
  }

  /**
   * True when an invalidation recorded after `mark` applies to `key` or any of `tags`, or when
   * the log no longer reaches back to `mark` (then nobody can tell: the miss does not store).
   */
  touches (mark: number, key: string, tags: readonly string[]): boolean {
    if (this.seq === mark) return false
    if (this.seq - mark >= LOG_SIZE) return true
    for (let seq = mark + 1; seq <= this.seq; seq++) {
      const logged = this.entries[seq % LOG_SIZE] as Logged
      if (logged.clear === true) return true
      if (logged.keys !== undefined && logged.keys.includes(key)) return true
      if (logged.tags !== undefined && tags.length > 0 && logged.tags.some((tag) => tags.includes(tag))) return true
      if (logged.pattern !== undefined) {
        logged.matcher ??= globToRegExp(logged.pattern)
        if (logged.matcher.test(key)) return true
      }
    }
    return false
  }
}
