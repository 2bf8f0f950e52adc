'use strict'

// The example's database: SQLite through better-sqlite3, seeded on open. DB_FILE names a file
// (instances sharing one file share the data, as a fleet shares a database); the default is a
// private in-memory database. Every query is counted, so you can see what the cache spared.

const Database = require('better-sqlite3')

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, token TEXT NOT NULL UNIQUE, role TEXT NOT NULL DEFAULT 'member'
);
CREATE TABLE IF NOT EXISTS projects (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
  id INTEGER PRIMARY KEY,
  project_id INTEGER NOT NULL REFERENCES projects(id),
  owner_id INTEGER NOT NULL REFERENCES users(id),
  title TEXT NOT NULL,
  done INTEGER NOT NULL DEFAULT 0,
  updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_project ON tasks(project_id);
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks(owner_id);
`

const SEED_USERS = [
  ['Ada', 'ada-token', 'admin'],
  ['Linus', 'linus-token', 'member'],
  ['Grace', 'grace-token', 'member']
]
const SEED_PROJECTS = ['Website', 'Mobile app', 'Billing']
const SEED_TASKS = [
  [1, 1, 'Write the landing page'], [1, 2, 'Set up the CDN'], [1, 3, 'Accessibility review'],
  [2, 2, 'Offline mode'], [2, 3, 'Push notifications'],
  [3, 1, 'Invoice PDFs'], [3, 3, 'Dunning emails'], [3, 2, 'Tax rates by country']
]

function openDb (file = process.env.DB_FILE ?? ':memory:') {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec(SCHEMA)
  if (db.prepare('SELECT COUNT(*) AS n FROM users').get().n === 0) seed(db)

  const statements = {
    userByToken: db.prepare('SELECT id, name, role FROM users WHERE token = ?'),
    projects: db.prepare('SELECT p.id, p.name, COUNT(t.id) AS tasks FROM projects p LEFT JOIN tasks t ON t.project_id = p.id GROUP BY p.id ORDER BY p.id'),
    project: db.prepare('SELECT id, name FROM projects WHERE id = ?'),
    insertProject: db.prepare('INSERT INTO projects (name) VALUES (?)'),
    tasksOfProject: db.prepare('SELECT id, project_id AS projectId, owner_id AS ownerId, title, done, updated_at AS updatedAt FROM tasks WHERE project_id = ? ORDER BY id'),
    tasksOfOwner: db.prepare('SELECT id, project_id AS projectId, owner_id AS ownerId, title, done, updated_at AS updatedAt FROM tasks WHERE owner_id = ? ORDER BY id'),
    task: db.prepare('SELECT id, project_id AS projectId, owner_id AS ownerId, title, done, updated_at AS updatedAt FROM tasks WHERE id = ?'),
    insertTask: db.prepare('INSERT INTO tasks (project_id, owner_id, title, updated_at) VALUES (?, ?, ?, ?)'),
    updateTask: db.prepare('UPDATE tasks SET title = COALESCE(?, title), done = COALESCE(?, done), updated_at = ? WHERE id = ?'),
    deleteTask: db.prepare('DELETE FROM tasks WHERE id = ?'),
    summary: db.prepare('SELECT COUNT(*) AS total, COALESCE(SUM(done), 0) AS done FROM tasks')
  }

  let queries = 0
  // Every read goes through here, so `queries` counts what reached the database.
  const run = (statement, method, ...args) => {
    queries++
    return statements[statement][method](...args)
  }
  const asTask = (row) => row === undefined ? undefined : { ...row, done: row.done === 1 }

  return {
    get queries () { return queries },
    userByToken: (token) => run('userByToken', 'get', token),
    listProjects: () => run('projects', 'all'),
    getProject: (id) => run('project', 'get', id),
    createProject: (name) => {
      const { lastInsertRowid } = run('insertProject', 'run', name)
      return run('project', 'get', Number(lastInsertRowid))
    },
    tasksOfProject: (projectId) => run('tasksOfProject', 'all', projectId).map(asTask),
    tasksOfOwner: (ownerId) => run('tasksOfOwner', 'all', ownerId).map(asTask),
    getTask: (id) => asTask(run('task', 'get', id)),
    createTask: (projectId, ownerId, title) => {
      const { lastInsertRowid } = run('insertTask', 'run', projectId, ownerId, title, new Date().toISOString())
      return asTask(run('task', 'get', Number(lastInsertRowid)))
    },
    // Fields as the route's schema checked them: title a non-empty string, done a boolean.
    updateTask: (id, { title, done }) => {
      const { changes } = run('updateTask', 'run', title ?? null, done === undefined ? null : (done ? 1 : 0), new Date().toISOString(), id)
      return changes === 0 ? undefined : asTask(run('task', 'get', id))
    },
    deleteTask: (id) => run('deleteTask', 'run', id).changes > 0,
    summary: () => run('summary', 'get'),
    close: () => db.close()
  }
}

function seed (db) {
  const insertUser = db.prepare('INSERT INTO users (name, token, role) VALUES (?, ?, ?)')
  const insertProject = db.prepare('INSERT INTO projects (name) VALUES (?)')
  const insertTask = db.prepare('INSERT INTO tasks (project_id, owner_id, title, updated_at) VALUES (?, ?, ?, ?)')
  db.transaction(() => {
    for (const user of SEED_USERS) insertUser.run(...user)
    for (const name of SEED_PROJECTS) insertProject.run(name)
    const now = new Date().toISOString()
    for (const [project, owner, title] of SEED_TASKS) insertTask.run(project, owner, title, now)
  })()
}

module.exports = { openDb }
