import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CacheEntry } from '../entry'
import { ifNoneMatchHits, notModifiedSince } from '../http-semantics'
import { ageSeconds, setHeaderCopies, setReplayHeaders, setStatusHeaders } from '../replay'
import { SERVED, type CacheRequest } from './request-state'

// Answers built from a stored entry: hits, stale answers and collapsed answers.

export type OnSendDone = (err: Error | null, payload?: unknown) => void

/** Answers from an entry: stored bytes, stored headers, freshness computed now. */
export function serveEntry (state: CacheRequest, reply: FastifyReply, entry: CacheEntry, shortStatus: string, cacheStatus: string): void {
  state.phase = SERVED
  reply.code(entry.status)
  setReplayHeaders(reply, state.settings, entry, Date.now(), shortStatus, cacheStatus, state.key)
  if (notModified(state.request, entry.headers)) {
    reply.code(304).send()
    return
  }
  reply.send(entry.body)
}

/** RFC 9110 §13.2.2: If-None-Match takes precedence; If-Modified-Since only without it. */
export function notModified (request: FastifyRequest, headers: Record<string, unknown>): boolean {
  const ifNoneMatch = request.headers['if-none-match']
  if (ifNoneMatch !== undefined) return typeof headers.etag === 'string' && ifNoneMatchHits(ifNoneMatch, headers.etag)
  const ifModifiedSince = request.headers['if-modified-since']
  return ifModifiedSince !== undefined && notModifiedSince(ifModifiedSince, headers['last-modified'] as string | undefined)
}

/** RFC 5861 §4: replaces an origin error, already on its way through onSend, with a stale entry. */
export function replaceWithStale (state: CacheRequest, reply: FastifyReply, entry: CacheEntry, done: OnSendDone): void {
  reply.code(entry.status)
  reply.removeHeader('content-type')
  // A compression hook that ran before ours coded the error body; the entry's body is identity.
  reply.removeHeader('content-encoding')
  setHeaderCopies(reply, entry.headers)
  reply.header('age', ageSeconds(entry, Date.now()))
  setStatusHeaders(reply, state.settings, 'STALE', 'hit; fwd=stale; detail=stale-if-error', state.key)
  done(null, entry.body)
}
