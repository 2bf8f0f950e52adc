// A TCP proxy to a server on 127.0.0.1 that holds bytes back: `toServerMs` delays what clients
// send, `toClientMs` what the server answers. Each direction keeps its order. For backends
// slower than a timeout, and for replies that arrive after some other event.
import { createServer, connect, type Socket } from 'node:net'

export interface DelayProxy {
  port: number
  url: string
  toServerMs: number
  toClientMs: number
  close: () => Promise<void>
}

/** Forwards `from` to `to`, each chunk no earlier than `delay()` ms after it came, in order. */
function forward (from: Socket, to: Socket, delay: () => number): void {
  let lastDue = 0
  from.on('data', (chunk) => {
    const due = Math.max(Date.now() + delay(), lastDue)
    lastDue = due
    if (due <= Date.now()) to.write(chunk)
    else setTimeout(() => { if (!to.destroyed) to.write(chunk) }, due - Date.now())
  })
}

export async function delayProxy (port: number): Promise<DelayProxy> {
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1')
    sockets.add(client).add(upstream)
    forward(client, upstream, () => proxy.toServerMs)
    forward(upstream, client, () => proxy.toClientMs)
    const end = (): void => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream) }
    client.on('close', end).on('error', end)
    upstream.on('close', end).on('error', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const listening = (server.address() as { port: number }).port
  const proxy: DelayProxy = {
    port: listening,
    url: `redis://127.0.0.1:${listening}`,
    toServerMs: 0,
    toClientMs: 0,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    }
  }
  return proxy
}
