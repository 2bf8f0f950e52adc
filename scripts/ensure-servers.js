'use strict'

// npm pretest: make sure the binaries that test/helpers/servers.ts spawns exist.
// It starts nothing: each test file starts its own servers on free ports, so a system
// redis on 6379 (which apt may start on install) is neither needed nor used.

const { spawnSync } = require('node:child_process')
const { accessSync, constants, existsSync, readdirSync } = require('node:fs')
const { delimiter, join } = require('node:path')

// Each: how to tell it is here, and the Debian package that brings it.
const NEEDS = [
  { name: 'redis-server', here: () => onPath('redis-server'), pkg: 'redis-server', external: 'REDIS_URL' },
  { name: 'redis-cli', here: () => onPath('redis-cli'), pkg: 'redis-server', external: 'REDIS_URL' },
  { name: 'memcached', here: () => onPath('memcached'), pkg: 'memcached', external: 'MEMCACHED_URL' },
  // The edge tests (issue 31) run Varnish with vmod-xkey in front of the app: always local.
  { name: 'varnishd', here: () => onPath('varnishd') || existsSync('/usr/sbin/varnishd'), pkg: 'varnish' },
  { name: 'vmod-xkey', here: hasXkey, pkg: 'varnish-modules' }
]

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

function hasXkey () {
  try {
    return readdirSync('/usr/lib').some((dir) => existsSync(join('/usr/lib', dir, 'varnish', 'vmods', 'libvmod_xkey.so')))
  } catch {
    return false
  }
}

// External servers (CI service containers) make the local binaries they stand for unnecessary.
const missing = () => NEEDS.filter((need) => !(need.external !== undefined && process.env[need.external]) && !need.here())

function main () {
  let absent = missing()
  if (absent.length === 0) return 0
  console.error(`ensure-servers: missing ${absent.map((need) => need.name).join(', ')}`)
  const packages = [...new Set(absent.map((need) => need.pkg))]

  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  if (isRoot && onPath('apt-get')) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const run = (args) => spawnSync('apt-get', args, { stdio: 'inherit', env }).status === 0
    if (run(['update']) && run(['install', '-y', ...packages])) absent = missing()
  }
  if (absent.length === 0) return 0

  console.error(`ensure-servers: still missing ${absent.map((need) => need.name).join(', ')}. Install them with:\n\n` +
    `  sudo apt-get install -y ${packages.join(' ')}\n\n` +
    'or point the tests at running servers with REDIS_URL=redis://host:6379 and MEMCACHED_URL=host:11211 (Varnish always runs locally).')
  return 1
}

process.exitCode = main()
