// RFC 9110 §14 byte ranges, on their own.
import t from 'tap'
import { contentRange, ifRangeHolds, parseRange } from '../../lib/http-range'

t.test('parseRange: one bytes range, suffixes, open ends, and what is ignored or unsatisfiable', async (t) => {
  const size = 100
  t.same(parseRange('bytes=0-9', size), { start: 0, end: 9 })
  t.same(parseRange('bytes=90-', size), { start: 90, end: 99 }, 'open end')
  t.same(parseRange('bytes=90-500', size), { start: 90, end: 99 }, 'end past the size is clipped')
  t.same(parseRange('bytes=-10', size), { start: 90, end: 99 }, 'suffix')
  t.same(parseRange('bytes=-500', size), { start: 0, end: 99 }, 'suffix longer than the body')
  t.same(parseRange(' BYTES = 1 - 2 ', size), { start: 1, end: 2 }, 'case and spaces')
  t.equal(parseRange('bytes=100-', size), 'unsatisfiable', 'starts past the end')
  t.equal(parseRange('bytes=-0', size), 'unsatisfiable', 'an empty suffix')
  t.equal(parseRange('bytes=-5', 0), 'unsatisfiable', 'an empty body')
  for (const ignored of ['bytes=5-1', 'bytes=0-1,5-6', 'items=0-1', 'bytes=-', 'bytes=a-b', '']) {
    t.equal(parseRange(ignored, size), undefined, `${JSON.stringify(ignored)} is ignored: the whole body`)
  }
})

t.test('ifRangeHolds: a strong ETag equal to the stored one, or the exact Last-Modified', async (t) => {
  const date = 'Tue, 15 Nov 1994 08:12:31 GMT'
  t.ok(ifRangeHolds(undefined, '"a"', date), 'no If-Range')
  t.ok(ifRangeHolds('"a"', '"a"', date))
  t.notOk(ifRangeHolds('"b"', '"a"', date))
  t.notOk(ifRangeHolds('W/"a"', 'W/"a"', date), 'weak validators never hold (§13.1.5)')
  t.notOk(ifRangeHolds('"a"', 'W/"a"', date))
  t.ok(ifRangeHolds(date, '"a"', date))
  t.notOk(ifRangeHolds('Tue, 15 Nov 1994 08:12:32 GMT', '"a"', date))
  t.notOk(ifRangeHolds(date, '"a"', undefined))
})

t.test('contentRange', async (t) => {
  t.equal(contentRange({ start: 0, end: 9 }, 100), 'bytes 0-9/100')
  t.equal(contentRange(undefined, 100), 'bytes */100')
})
