// Byte ranges served from a stored full response (RFC 9110 §14). One range per request: a
// request for several is answered with the whole representation, as the RFC allows.

export interface ByteRange {
  start: number
  /** Inclusive. */
  end: number
}

/**
 * The range a Range header asks of a representation of `size` bytes: a ByteRange, 'unsatisfiable'
 * (RFC 9110 §15.5.17: answer 416), or undefined to ignore the header and send everything
 * (not a single bytes range, malformed, or more than one range).
 */
export function parseRange (header: string, size: number): ByteRange | 'unsatisfiable' | undefined {
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header)
  if (match === null) return undefined
  const [, first, last] = match
  if (first === '' && last === '') return undefined
  if (first === '') {
    // A suffix: the last N bytes (RFC 9110 §14.1.1).
    const length = Number(last)
    if (length === 0 || size === 0) return 'unsatisfiable'
    return { start: Math.max(0, size - length), end: size - 1 }
  }
  const start = Number(first)
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1)
  if (last !== '' && Number(last) < start) return undefined
  if (start >= size) return 'unsatisfiable'
  return { start, end }
}

/**
 * RFC 9110 §13.1.5: If-Range lets the range through only when it names the current
 * representation: a strong ETag equal to the stored one, or the exact stored Last-Modified date.
 */
export function ifRangeHolds (ifRange: string | undefined, etag: unknown, lastModified: unknown): boolean {
  if (ifRange === undefined) return true
  const value = ifRange.trim()
  if (value.startsWith('"') || value.startsWith('W/')) {
    return typeof etag === 'string' && !etag.startsWith('W/') && !value.startsWith('W/') && etag === value
  }
  return typeof lastModified === 'string' && lastModified === value
}

/** The Content-Range of a range, or of an unsatisfiable request (`bytes *\/size`). */
export function contentRange (range: ByteRange | undefined, size: number): string {
  return range === undefined ? 'bytes */' + size : 'bytes ' + range.start + '-' + range.end + '/' + size
}
