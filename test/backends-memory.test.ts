// The shared backend suite on MemoryCache: the in-process reference every remote backend
// must behave like.
import t from 'tap'
import { MemoryCache } from '../lib/index'
import { runBackendSuite } from '../lib/test-suite'

runBackendSuite(t, 'memory', async ({ keyPrefix }) => ({
  cache: new MemoryCache({ keyPrefix }),
  cleanup: async () => {}
}), { shared: false, patterns: true, fillLock: false })
