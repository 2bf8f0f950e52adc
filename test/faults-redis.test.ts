// Real faults against a real redis-server: down at start-up, SIGKILL and SIGSTOP
// mid-traffic, log once per incident, and nothing left behind after app.close().
import t from 'tap'
import { RedisCache } from '../lib/index'
import { startRedis } from './helpers/servers'
import { FAULT_OPTIONS, runFaultSuite } from './helpers/fault-suite'

runFaultSuite(t, 'redis', {
  start: startRedis,
  makeCache: (server, keyPrefix) => new RedisCache({ url: server.url, keyPrefix, ...FAULT_OPTIONS })
})
