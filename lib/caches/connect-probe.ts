import { connect } from 'node:net'
import type { ClusterNodeLike } from './redis-client'

// ioredis names a failed connection by what it sees last, not by its cause: a connect() to a
// port nothing listens on rejects with "Connection is closed." (ioredis 5 and 6), a Cluster's
// with "None of startup nodes is available", and the socket error behind either (ECONNREFUSED)
// reaches only a single client's 'error' events. The most common first mistake, a wrong or
// unstarted server, was logged as "the server closed the connection".

/** Messages of ioredis that hide the failure behind them. */
export const OPAQUE_CONNECTION_ERRORS = /Connection is closed|None of startup nodes is available|Failed to refresh slots cache|Stream isn't writeable/

/**
 * Opens (and at once closes) a TCP connection to each node in turn: the first socket error, or
 * undefined when one answered (the failure was something else than reaching it).
 */
export async function probeNodes (nodes: ClusterNodeLike[], timeoutMs: number): Promise<Error | undefined> {
  let first: Error | undefined
  for (const node of nodes.slice(0, 3)) {
    const { host, port } = hostAndPort(node)
    const error = await probe(host, port, timeoutMs)
    if (error === undefined) return undefined
    first ??= error
  }
  return first
}

function probe (host: string, port: number, timeoutMs: number): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    const done = (error: Error | undefined): void => {
      socket.destroy()
      resolve(error)
    }
    socket.setTimeout(timeoutMs, () => { done(Object.assign(new Error(`connect to ${host}:${port} timed out`), { code: 'ETIMEDOUT' })) })
    socket.once('connect', () => { done(undefined) })
    socket.once('error', done)
  })
}

function hostAndPort (node: ClusterNodeLike): { host: string, port: number } {
  if (typeof node === 'number') return { host: '127.0.0.1', port: node }
  if (typeof node === 'string' && node.includes('://')) {
    const url = new URL(node)
    return { host: url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(url.port) || 6379 }
  }
  if (typeof node === 'string') {
    const at = node.lastIndexOf(':')
    if (at < 0) return { host: node, port: 6379 }
    return { host: node.slice(0, at).replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(node.slice(at + 1)) || 6379 }
  }
  return { host: node.host ?? '127.0.0.1', port: node.port ?? 6379 }
}
