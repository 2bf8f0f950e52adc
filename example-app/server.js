'use strict'

const { build } = require('./app')

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

async function main () {
  const app = await build({
    logger: true,
    redisUrl: process.env.REDIS_URL,
    memcachedServers: process.env.MEMCACHED_SERVERS,
    dbFile: process.env.DB_FILE,
    varnishUrl: process.env.VARNISH_URL
  })
  await app.listen({ port, host })
  const base = `http://${host}:${app.server.address().port}`
  console.log(`
fastify-ember-cache example on ${base} (tasks in ${process.env.REDIS_URL ? 'Redis' : 'memory'}, projects in ${process.env.MEMCACHED_SERVERS ? 'Memcached' : 'memory'})
  curl -i ${base}/projects/1/tasks                    # x-cache: MISS, then HIT
  curl -i ${base}/tasks/1                             # key template task:{taskId}
  curl -i -H 'authorization: Bearer linus-token' ${base}/me/tasks
  curl -i -X POST -H 'authorization: Bearer linus-token' -H 'content-type: application/json' -d '{"title":"new"}' ${base}/projects/1/tasks
  curl -i ${base}/projects/1/tasks                    # MISS again: the POST invalidated tag project:1
  curl -s -X POST -H 'authorization: Bearer ada-token' -H 'content-type: application/json' -d '{"tags":["projects"]}' ${base}/admin/cache/invalidate
  curl -s ${base}/db-stats                            # how many queries reached SQLite
${process.env.REDIS_URL ? '' : '  (REDIS_URL=redis://127.0.0.1:6379 puts the task routes in Redis; MEMCACHED_SERVERS=127.0.0.1:11211 the projects in Memcached)\n'}${process.env.VARNISH_URL ? `  behind Varnish at ${process.env.VARNISH_URL}: writes purge it too\n` : '  (VARNISH_URL=http://127.0.0.1:6081 purges a Varnish in front, run with docs/varnish/default.vcl)\n'}`)
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => { app.close().then(() => process.exit(0)) })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
