// The example app is part of the README's set-up: it must keep working as documented.
// It loads the package by name (the built dist/, so `npm test` builds first).
import t from 'tap'
import { createRequire } from 'node:module'
import type { FastifyInstance } from 'fastify'

const { build } = createRequire(__filename)('../example-app/app.js') as { build: () => Promise<FastifyInstance> }

t.test('example app: reads are cached, writes invalidate, auth runs before the cache', async (t) => {
  const app = await build()
  t.teardown(() => app.close())
  const queries = async (): Promise<number> => (await app.inject('/stats')).json().queries

  const first = await app.inject('/tasks')
  const second = await app.inject('/tasks')
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(second.headers['x-cache'], 'HIT')
  t.equal(second.body, first.body)
  t.equal(await queries(), 1, 'the second read did not query the store')

  t.equal((await app.inject('/me/tasks')).statusCode, 401, 'no user, no cached answer')
  const created = await app.inject({ method: 'POST', url: '/tasks', headers: { 'x-user': 'ada' }, payload: { title: 'from the test' } })
  t.equal(created.statusCode, 201)
  const after = await app.inject('/tasks')
  t.equal(after.headers['x-cache'], 'MISS', 'the POST invalidated the tasks tag')
  t.match(after.body, /from the test/)

  const put = await app.inject({ method: 'PUT', url: '/tasks/1', headers: { 'x-user': 'ada' }, payload: { done: true } })
  t.equal(put.statusCode, 200)
  const read = await app.inject('/tasks/1')
  t.equal(read.headers['x-cache'], 'HIT', 'the PUT wrote its answer through')
  t.equal(read.json().done, true)
})
