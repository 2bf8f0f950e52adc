import { createHash } from 'node:crypto'

// The header an edge cache reads a response's tags from, and the limits each edge sets. A tag
// the edge cannot hold, or a list that does not fit, would leave an edge copy no purge can
// reach: such a response is told not to be stored at the edge instead (edge-headers.ts).

/** How one edge reads tags from a response. */
export interface TagHeaderFormat {
  /** The response header, lower case. */
  name: string
  /** What separates tags in it. */
  separator: ' ' | ','
  /** The longest header value the edge takes, in bytes. */
  maxHeaderBytes: number
  /** The longest tag the edge takes, in bytes. */
  maxTagBytes: number
}

/**
 * The edges we know, by their published limits: Fastly's Surrogate-Key (space separated, keys
 * up to 1,024 bytes, header up to 16,384 bytes); Cloudflare's Cache-Tag (comma separated, tags
 * up to 1,024 characters, 16 KB of tags per response); Varnish's xkey vmod (space separated; the
 * limit is Varnish's own response header size, http_resp_hdr_len, 8 KB by default).
 */
export const TAG_HEADER_FORMATS: Readonly<Record<'surrogate-key' | 'cache-tag' | 'xkey', TagHeaderFormat>> = {
  'surrogate-key': { name: 'surrogate-key', separator: ' ', maxHeaderBytes: 16_384, maxTagBytes: 1_024 },
  'cache-tag': { name: 'cache-tag', separator: ',', maxHeaderBytes: 16_384, maxTagBytes: 1_024 },
  xkey: { name: 'xkey', separator: ' ', maxHeaderBytes: 8_192, maxTagBytes: 1_024 }
}

/**
 * A tag as every edge spells it, in responses and in purges alike: percent-encoded where it
 * holds anything but URI-safe characters, so no separator (space, comma), control character or
 * non-ASCII byte reaches a header, and two different tags never meet.
 */
export function edgeTag (tag: string): string {
  return encodeURIComponent(tag)
}

/**
 * The tag standing for one cache key (every variant of it), so that an invalidation by key
 * reaches the edge too: a hash, since keys hold paths and queries the edge need not see.
 */
export function keyTag (key: string): string {
  return 'k-' + createHash('sha256').update(key).digest('base64url').slice(0, 22)
}

/** The header value for these edge tags, or undefined when one tag or the whole list is too long. */
export function tagHeaderValue (format: TagHeaderFormat, tags: readonly string[]): string | undefined {
  for (const tag of tags) if (tag.length > format.maxTagBytes) return undefined
  const value = tags.join(format.separator)
  return value.length > format.maxHeaderBytes ? undefined : value
}

/** Splits edge tags into lists whose joined length (with `separator`) stays within `maxBytes`, at most `maxCount` each. */
export function batches (tags: readonly string[], maxCount: number, maxBytes: number, separator = ' '): string[][] {
  const out: string[][] = []
  let current: string[] = []
  let bytes = 0
  for (const tag of tags) {
    const added = current.length === 0 ? tag.length : tag.length + separator.length
    if (current.length > 0 && (current.length >= maxCount || bytes + added > maxBytes)) {
      out.push(current)
      current = []
      bytes = 0
    }
    bytes += current.length === 0 ? tag.length : tag.length + separator.length
    current.push(tag)
  }
  if (current.length > 0) out.push(current)
  return out
}
