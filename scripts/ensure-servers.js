'use strict'

// npm pretest: make sure the binaries that test/helpers/servers.ts spawns exist.
// It starts nothing: each test file starts its own servers on free ports, so a system
// redis on 6379 (which apt may start on install) is neither needed nor used.

const { spawnSync } = require('node:child_process')
const { accessSync, constants } = require('node:fs')
const { delimiter, join } = require('node:path')

const BINARIES = ['redis-server', 'redis-cli', 'memcached']
const PACKAGES = ['redis-server', 'memcached']

function onPath (name) {
  for (const dir of (process.env.PATH || '').split(delimiter)) {
    if (dir === '') continue
    try {
      accessSync(join(dir, name), constants.X_OK)
      return true
    } catch {}
  }
  return false
}

const missing = () => BINARIES.filter((name) => !onPath(name))

function main () {
  // External servers (CI service containers) make local binaries unnecessary.
  if (process.env.REDIS_URL && process.env.MEMCACHED_URL) return 0

  let absent = missing()
  if (absent.length === 0) return 0
  console.error(`ensure-servers: missing ${absent.join(', ')}`)

  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  if (isRoot && onPath('apt-get')) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const run = (args) => spawnSync('apt-get', args, { stdio: 'inherit', env }).status === 0
    if (run(['update']) && run(['install', '-y', ...PACKAGES])) absent = missing()
  }
  if (absent.length === 0) return 0

  console.error(`ensure-servers: still missing ${absent.join(', ')}. Install them with:\n\n` +
    `  sudo apt-get install -y ${PACKAGES.join(' ')}\n\n` +
    'or point the tests at running servers with REDIS_URL=redis://host:6379 and MEMCACHED_URL=host:11211.')
  return 1
}

process.exitCode = main()
