// `fastify-ember-cache/test-suite`: the behaviour suite every backend of this project runs, for
// the authors of a store (README: Custom stores; docs/backends.md).
export { runBackendSuite, buildApp, freshPrefix, xCache, INJECT_VARIANT, type BackendFixture, type BackendTraits, type CacheSettings, type MakeCache, type App } from './backend-suite'
export { fromNodeTest, type SuiteTest, type NodeTestContext } from './harness'
