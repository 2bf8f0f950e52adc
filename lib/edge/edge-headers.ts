import type { FastifyReply } from 'fastify'
import type { EdgeSettings } from './settings'
import { edgeTag, keyTag, tagHeaderValue } from './tag-header'

// What a stored response tells the edge in front: its tags (its key's tag first, so a purge by
// key reaches it) and, where the route gives one, how long the edge may keep it. Set on the
// reply and in the stored headers, so hits carry them too. Never on a response for one caller.

export interface EdgeHeadersContext {
  edge: EdgeSettings
  /** The route's edgeTtl (seconds), if any. */
  edgeTtl: number | undefined
  /** The response is one caller's (private): the edge must not keep it at all. */
  perCaller: boolean
  /** The cache key (all variants share its tag). */
  key: string
  tags: readonly string[]
}

export function setEdgeHeaders (reply: FastifyReply, stored: Record<string, unknown>, context: EdgeHeadersContext): void {
  const { edge } = context
  if (context.perCaller) return
  const value = tagHeaderValue(edge.format, [keyTag(context.key), ...context.tags.map(edgeTag)])
  if (value === undefined) {
    // Tags the edge cannot hold would leave a copy there no purge reaches: it keeps none.
    setHeader(reply, stored, edge.ttlHeader, 'no-store')
    return
  }
  setHeader(reply, stored, edge.format.name, value)
  // An upstream's own edge freshness (a proxy route) stands.
  if (context.edgeTtl !== undefined && reply.getHeader(edge.ttlHeader) === undefined) setHeader(reply, stored, edge.ttlHeader, 'max-age=' + String(context.edgeTtl))
}

function setHeader (reply: FastifyReply, stored: Record<string, unknown>, name: string, value: string): void {
  reply.header(name, value)
  stored[name] = value
}
