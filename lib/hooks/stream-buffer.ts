import { Readable } from 'node:stream'

// Stream payloads (files, proxied bodies) are stored only when they fit a size limit, and
// must reach the client intact either way.

export function isStream (payload: unknown): payload is NodeJS.ReadableStream {
  return payload !== null && typeof payload === 'object' && typeof (payload as { pipe?: unknown }).pipe === 'function'
}

/**
 * Reads a stream up to `limit` bytes. Within the limit, hands back the whole body; past it,
 * hands back a stream that replays what was read and then the rest, so nothing is lost.
 */
export function bufferStream (stream: NodeJS.ReadableStream, limit: number, then: (body: Buffer | undefined, replay: unknown) => void): void {
  const chunks: Buffer[] = []
  let size = 0
  let finished = false
  const onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    chunks.push(bytes)
    size += bytes.length
    if (size > limit) {
      finish()
      stream.pause()
      then(undefined, Readable.from(replay()))
    }
  }
  async function * replay (): AsyncGenerator<Buffer> {
    yield * chunks
    for await (const chunk of stream as AsyncIterable<Buffer>) yield chunk
  }
  const onEnd = (): void => {
    finish()
    then(Buffer.concat(chunks), undefined)
  }
  const onError = (err: Error): void => {
    finish()
    then(undefined, Readable.from((async function * () { yield * chunks; throw err })()))
  }
  function finish (): void {
    if (finished) return
    finished = true
    stream.removeListener('data', onData)
    stream.removeListener('end', onEnd)
    stream.removeListener('error', onError)
  }
  stream.on('data', onData)
  stream.on('end', onEnd)
  stream.on('error', onError)
}
