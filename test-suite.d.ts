// Types of `fastify-ember-cache/test-suite` for resolvers that read no `exports` (node10).
export * from './dist/lib/test-suite/index'
