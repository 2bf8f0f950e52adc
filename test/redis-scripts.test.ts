// RedisCache's soft-invalidation script is built from the envelope layout entry.ts defines
// (issue 28: no copies that can drift); here it must do to stored bytes exactly what
// softenedEnvelope() does in TypeScript, on a real Redis.
import t from 'tap'
import { responseEntry } from './helpers/entries'
import Redis from 'ioredis'
import { RedisCache } from '../lib/index'
import { encodeEntry, softenedEnvelope } from '../lib/entry'
import { freshPrefix } from '../lib/test-suite'
import { entryName } from './helpers/redis-raw'
import { startRedis } from './helpers/servers'

t.test('SOFT_SCRIPT and softenedEnvelope agree byte for byte', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const raw = new Redis(redis.url)
  t.teardown(() => raw.disconnect())
  const keyPrefix = freshPrefix('soft')
  const cache = new RedisCache({ url: redis.url, keyPrefix })
  t.teardown(() => cache.close())
  const entry = responseEntry({ headers: { 'content-type': 'text/plain' }, staleWhileRevalidate: 5, staleIfError: 7, tags: ['a'] })
  const bytes = encodeEntry(entry)
  // A response envelope, a non-envelope value and a field of another kind sit side by side.
  await raw.hset(entryName(keyPrefix, 'k'), 'v1', bytes, 'other', 'not an envelope')
  await cache.invalidate({ key: 'k', soft: true })
  const after = await raw.hgetallBuffer(entryName(keyPrefix, 'k'))
  t.same(after.v1, softenedEnvelope(bytes), 'the script rewrote the envelope as softenedEnvelope does')
  t.not(after.v1.equals(bytes), 'and it did change it')
  t.equal(after.other.toString(), 'not an envelope', 'anything else is left alone')
})
