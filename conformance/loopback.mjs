// Preloaded (`node --import`) into the suite's origin server, which listens on a bare port (every
// interface): listens that name no host are pinned to 127.0.0.1, as every server here must be.
import net from 'node:net'

const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    const port = Number(args[0])
    const callback = args.find((arg) => typeof arg === 'function')
    return listen.call(this, { port, host: '127.0.0.1' }, callback)
  }
  return listen.apply(this, args)
}
