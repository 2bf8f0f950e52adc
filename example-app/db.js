'use strict'

// A tiny embedded "database": tasks in a Map, with a delay that stands in for a slow query,
// and a counter so you can see how often the cache spared it.
const QUERY_DELAY_MS = 30

function createDb () {
  const tasks = new Map()
  let nextId = 1
  let queries = 0

  function insert (title, owner) {
    const task = { id: nextId++, title, owner, done: false, updatedAt: new Date().toISOString() }
    tasks.set(task.id, task)
    return task
  }
  insert('Write the README', 'ada')
  insert('Measure the hit path', 'ada')
  insert('Kill Redis and watch it keep serving', 'linus')

  const slow = (value) => new Promise((resolve) => setTimeout(resolve, QUERY_DELAY_MS, value))

  return {
    get queries () { return queries },
    async list (owner) {
      queries++
      const all = [...tasks.values()]
      return slow(owner === undefined ? all : all.filter((task) => task.owner === owner))
    },
    async get (id) {
      queries++
      return slow(tasks.get(id))
    },
    async create (title, owner) {
      queries++
      return slow(insert(title, owner))
    },
    async update (id, fields) {
      queries++
      const task = tasks.get(id)
      if (task === undefined) return slow(undefined)
      Object.assign(task, fields, { updatedAt: new Date().toISOString() })
      return slow(task)
    },
    async remove (id) {
      queries++
      return slow(tasks.delete(id))
    },
    async report () {
      queries++
      const all = [...tasks.values()]
      return slow({ total: all.length, done: all.filter((task) => task.done).length, generatedAt: new Date().toISOString() })
    }
  }
}

module.exports = { createDb }
