// A test clock: Date.now moves forward on demand, so entries age without waiting.

import type { Scope } from './apps'

/**
 * Moves Date.now forward on demand; the real clock is back when `t` ends. Early refresh (XFetch)
 * is kept from firing meanwhile: its draw, near an expiry a test jumps to, refreshed the entry
 * now and then and moved the very boundary the test checks (1.8% of runs at 8 s of a 10 s
 * entry). Math.random then draws just below 1, still distinct values (random versions stay unique).
 */
export function useClock (t: Scope): { advance: (seconds: number) => void } {
  const realNow = Date.now
  const realRandom = Math.random
  let offset = 0
  Date.now = () => realNow() + offset
  Math.random = () => 1 - realRandom() * 1e-9
  t.teardown(() => {
    Date.now = realNow
    Math.random = realRandom
  })
  return { advance: (seconds) => { offset += seconds * 1000 } }
}
