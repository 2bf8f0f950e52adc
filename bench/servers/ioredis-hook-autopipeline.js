'use strict'
// (6) Anchor: the hand-written ioredis GET preHandler with enableAutoPipelining on.
process.env.AUTO_PIPELINING = '1'
require('./ioredis-hook')
