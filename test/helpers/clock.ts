// A test clock: Date.now moves forward on demand, so entries age without waiting.

import type { Scope } from './apps'

/** Moves Date.now forward on demand; the real clock is back when `t` ends. */
export function useClock (t: Scope): { advance: (seconds: number) => void } {
  const realNow = Date.now
  let offset = 0
  Date.now = () => realNow() + offset
  t.teardown(() => { Date.now = realNow })
  return { advance: (seconds) => { offset += seconds * 1000 } }
}
