// Collapses concurrent work on one key: the first caller (the leader) does it, the others
// wait for its result. A leader that never settles cannot hold waiters past `maxWaitMs`.

// The promise is made only when somebody waits: most misses have no waiter, and a miss path
// that allocates a promise and two closures per request for nobody is measurably slower.
class Flight<T> {
  private deferred: Promise<T | undefined> | undefined
  private resolveDeferred: ((value: T | undefined) => void) | undefined

  get promise (): Promise<T | undefined> {
    this.deferred ??= new Promise<T | undefined>((resolve) => { this.resolveDeferred = resolve })
    return this.deferred
  }

  /** Called once the flight has left the map: a flight nobody waited on has nobody to tell. */
  resolve (value: T | undefined): void {
    this.resolveDeferred?.(value)
  }
}

export class SingleFlight<T> {
  private readonly flights = new Map<string, Flight<T>>()

  /** Becomes leader for `key` and returns true, or returns false when a leader already runs. */
  lead (key: string): boolean {
    if (this.flights.has(key)) return false
    this.flights.set(key, new Flight<T>())
    return true
  }

  /** The pending flight for `key`, or undefined when nobody leads it. */
  pending (key: string): Promise<T | undefined> | undefined {
    return this.flights.get(key)?.promise
  }

  /**
   * Waits for the leader's result. Resolves undefined when the leader could not share one
   * (not cacheable, failed) or took longer than `maxWaitMs`: the waiter then runs on its own.
   */
  wait (key: string, maxWaitMs: number): Promise<T | undefined> | undefined {
    const flight = this.flights.get(key)
    if (flight === undefined) return undefined
    if (maxWaitMs <= 0) return flight.promise
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // A leader that never settles (hijacked reply, lost response) must not hold the key for
        // good: end its flight so every waiter runs on its own and the next request leads anew.
        if (this.flights.get(key) === flight) this.settle(key, undefined)
        resolve(undefined)
      }, maxWaitMs)
      flight.promise.then((value) => {
        clearTimeout(timer)
        resolve(value)
      }, () => {
        clearTimeout(timer)
        resolve(undefined)
      })
    })
  }

  /** Hands the leader's result to every waiter and ends the flight. */
  settle (key: string, value: T | undefined): void {
    const flight = this.flights.get(key)
    if (flight === undefined) return
    this.flights.delete(key)
    flight.resolve(value)
  }

  get size (): number {
    return this.flights.size
  }
}
