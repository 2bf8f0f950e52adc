'use strict'

// Shared plumbing of the bench servers: the payload, a handler-call counter, the port, and
// the conversation with bench/run.js over the IPC channel (ready -> port, stats -> counts).
// Each server script stays a few lines of what it measures.

const path = require('node:path')
const { createHash } = require('node:crypto')
const { payloadBuffer, payloadOf } = require('../fixture')

// BODY=large: the configurations of issue 17 answer the ~4 KB body.
const payload = payloadOf(process.env.BODY)

const JSON_TYPE = 'application/json; charset=utf-8'
const ITEM_PATH = '/item'
// EMBER_DIST: another build of the plugin (an earlier commit's, for before/after pairs).
const DIST = process.env.EMBER_DIST !== undefined && process.env.EMBER_DIST !== '' ? process.env.EMBER_DIST : path.join(__dirname, '..', '..', 'dist', 'lib', 'index.js')

/** How many times the origin handler ran: run.js checks a hit config stays near zero. */
const stats = { handlerCalls: 0 }

/** The route handler every Fastify configuration uses. */
function handler () {
  stats.handlerCalls++
  return payload
}

/** The built plugin (npm run build first). */
function ember () {
  return require(DIST)
}

// The equal-headers anchors: what a hand-written hook adds to send the headers every hit of
// ours carries (ETag computed at store time, Age, Cache-Control with the freshness left,
// x-cache, Cache-Status), so the price of those headers is told apart from the price of our code.
const HAND_TTL = 3600

function weakEtag (body) {
  return 'W/"' + createHash('sha1').update(body).digest('base64url') + '"'
}

/** Age, Cache-Control, x-cache and Cache-Status of a hit on a body stored at `storedAt`. */
function setHitHeaders (reply, storedAt) {
  const age = Math.floor((Date.now() - storedAt) / 1000)
  reply.header('age', String(age))
  reply.header('cache-control', 'public, max-age=' + (HAND_TTL - age))
  reply.header('x-cache', 'HIT')
  reply.header('cache-status', 'hand; hit; ttl=' + (HAND_TTL - age))
}

/** Cache-Control, x-cache and Cache-Status of a miss that was stored. */
function setMissHeaders (reply) {
  reply.header('cache-control', 'public, max-age=' + HAND_TTL)
  reply.header('x-cache', 'MISS')
  reply.header('cache-status', 'hand; fwd=uri-miss; stored; ttl=' + HAND_TTL)
}

/** A remote hand hook's stored value with the ETag and store time: `<storedAt> <etag>\n<body>`. */
function packWithMeta (payload) {
  return Date.now() + ' ' + weakEtag(payload) + '\n' + payload
}

/** Sends a value packed by packWithMeta with the hit headers. */
function sendWithMeta (reply, stored) {
  const newline = stored.indexOf(10)
  const meta = stored.toString('latin1', 0, newline)
  const space = meta.indexOf(' ')
  reply.header('etag', meta.slice(space + 1))
  setHitHeaders(reply, Number(meta.slice(0, space)))
  return reply.send(stored.subarray(newline + 1))
}

function portFromEnv () {
  const raw = process.env.PORT ?? process.argv[2] ?? '0'
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('bad port ' + raw)
  return port
}

function requireEnv (name) {
  const value = process.env[name]
  if (value === undefined || value === '') throw new Error(name + ' must be set (bench/run.js sets it)')
  return value
}

/** Listens on 127.0.0.1 and reports the port; `close` is called on SIGTERM or when run.js goes away. */
async function announce (port, close) {
  let closing = false
  const shutdown = () => {
    if (closing) return
    closing = true
    // A server that hangs on close must still go: run.js waits for the exit.
    setTimeout(() => process.exit(0), 2000).unref()
    Promise.resolve(close()).then(() => process.exit(0), () => process.exit(1))
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
  if (typeof process.send === 'function') {
    process.on('message', (message) => {
      if (message?.type === 'stats') process.send({ type: 'stats', id: message.id, ...stats })
    })
    process.on('disconnect', shutdown)
    process.send({ type: 'ready', port })
  } else {
    console.log('listening on http://127.0.0.1:' + port + ITEM_PATH)
  }
}

/** Starts a Fastify app built by `build(app)` and announces it. */
async function serveFastify (build) {
  const fastify = require('fastify')
  const app = fastify({ logger: false })
  await build(app)
  await app.listen({ host: '127.0.0.1', port: portFromEnv() })
  await announce(app.server.address().port, () => app.close())
}

/** Starts a node:http server and announces it. */
function serveHttp (server) {
  server.listen(portFromEnv(), '127.0.0.1', () => {
    announce(server.address().port, () => new Promise((resolve) => server.close(resolve)))
  })
}

function run (main) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

module.exports = {
  JSON_TYPE,
  ITEM_PATH,
  HAND_TTL,
  payload,
  payloadBuffer,
  stats,
  handler,
  ember,
  requireEnv,
  serveFastify,
  serveHttp,
  run,
  weakEtag,
  setHitHeaders,
  setMissHeaders,
  packWithMeta,
  sendWithMeta
}
