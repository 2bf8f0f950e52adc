// The invalidation log alone: a miss asks whether anything recorded since it began names its key.
import t from 'tap'
import { InvalidationLog } from '../../lib/invalidation-log'

t.test('only what was recorded after the mark counts, by key, tag, pattern or clear', async (t) => {
  const log = new InvalidationLog()
  log.record({ keys: ['GET:/a'] })
  const mark = log.mark()
  t.notOk(log.touches(mark, 'GET:/a', []), 'recorded before the mark')
  log.record({ keys: ['GET:/b'] })
  log.record({ tags: ['t1'] })
  log.record({ pattern: 'GET:/c*' })
  t.notOk(log.touches(mark, 'GET:/a', ['t2']), 'other keys, tags and patterns')
  t.ok(log.touches(mark, 'GET:/b', []), 'its key')
  t.ok(log.touches(mark, 'GET:/x', ['t2', 't1']), 'one of its tags')
  t.ok(log.touches(mark, 'GET:/c/1', []), 'a pattern matching its key')
  t.notOk(log.touches(mark, 'GET:/x', []), 'a key with no tags is not touched by tags')
  const later = log.mark()
  log.record({ clear: true })
  t.ok(log.touches(later, 'anything', []), 'clear touches everything')
})

t.test('a miss that outlived the log cannot tell, so it counts as touched', async (t) => {
  const log = new InvalidationLog()
  const mark = log.mark()
  for (let i = 0; i < 1024; i++) log.record({ keys: ['other:' + i] })
  t.ok(log.touches(mark, 'mine', []), '1,024 invalidations later')
  const recent = log.mark()
  log.record({ keys: ['other'] })
  t.notOk(log.touches(recent, 'mine', []), 'a recent mark still reads the ring')
})
