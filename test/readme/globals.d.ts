// What README fragments leave to the reader: an app, a data layer, a cache and the objects a
// handler has. Declared here so that the fragments compile as written (test/readme-blocks.test.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { EmberCache, InvalidationTarget } from 'fastify-ember-cache'

declare global {
  const app: FastifyInstance
  const db: any
  const cache: EmberCache
  const request: FastifyRequest
  const reply: FastifyReply
  const target: InvalidationTarget
  const buildInfo: unknown
  const requireAdmin: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
}
