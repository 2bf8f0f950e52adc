'use strict'

const { build } = require('./app')

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

async function main () {
  const app = await build({ logger: true, redisUrl: process.env.REDIS_URL })
  await app.listen({ port, host })
  const base = `http://${host}:${port}`
  console.log(`
fastify-ember-cache example on ${base}
  curl -i ${base}/tasks                  # x-cache: MISS, then HIT
  curl -i ${base}/tasks/1                # key template task:{id}
  curl -i -H 'x-user: ada' ${base}/me/tasks
  curl -i -X POST -H 'x-user: ada' -H 'content-type: application/json' -d '{"title":"new"}' ${base}/tasks
  curl -i ${base}/tasks                  # MISS again: the POST invalidated the 'tasks' tag
  curl -s ${base}/stats                  # how many slow queries actually ran
${process.env.REDIS_URL ? '' : '  (set REDIS_URL=redis://127.0.0.1:6379 to add the shared /tasks-shared route)\n'}`)
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => { app.close().then(() => process.exit(0)) })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
