// The backend's clock against ours, alone.
import t from 'tap'
import { BackendClock } from '../../lib/caches/backend-clock'
import { capturingLogger } from '../helpers/logs'

function clock (serverOffsetMs: number | undefined, marginMs = 100): { clock: BackendClock, lines: ReturnType<typeof capturingLogger>['lines'] } {
  const { logger, lines } = capturingLogger()
  return {
    clock: new BackendClock({ serverTime: async () => serverOffsetMs === undefined ? undefined : Date.now() + serverOffsetMs, marginMs, name: () => 'x', log: () => logger }),
    lines
  }
}

t.test('an offset beyond what the measurement can tell is kept, and warned about past 2 s', async (t) => {
  const { clock: c, lines } = clock(30_000)
  await c.measure()
  t.ok(Math.abs(c.offset - 30_000) < 50, `offset ${c.offset}`)
  t.ok(Math.abs(c.now() - (Date.now() + 30_000)) < 50)
  t.equal(lines.filter((line) => line.level === 'warn').length, 1)
  await c.measure()
  t.equal(lines.filter((line) => line.level === 'warn').length, 1, 'warned once while it stays skewed')
})

t.test('within the margin the offset is 0; a backend without a clock leaves it alone', async (t) => {
  const near = clock(50).clock
  await near.measure()
  t.equal(near.offset, 0)
  const none = clock(undefined).clock
  await none.measure()
  t.equal(none.offset, 0)
  await none.start()
  none.stop()
})
