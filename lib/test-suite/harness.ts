import assert from 'node:assert'

// What the backend suite needs of a test framework: tap's Test as it is, or node:test through
// fromNodeTest().

// Method syntax and rest messages on purpose: tap's Test is then accepted as it is.
export interface SuiteTest {
  /** A subtest; its promise settles when it has run. */
  // `any`: tap hands its own Test type to the callback.
  test (name: string, fn: (t: any) => Promise<void>): unknown
  equal (found: unknown, wanted: unknown, ...message: [] | [string]): unknown
  same (found: unknown, wanted: unknown, ...message: [] | [string]): unknown
  ok (value: unknown, ...message: [] | [string]): unknown
  match (found: unknown, pattern: RegExp, ...message: [] | [string]): unknown
  type (found: unknown, type: string, ...message: [] | [string]): unknown
  /** Runs `fn` when the test ends (closing apps and caches). */
  teardown (fn: () => unknown): void
}

/** The parts of node:test's TestContext the adapter uses. */
export interface NodeTestContext {
  test: (name: string, fn: (t: NodeTestContext) => Promise<void>) => Promise<void>
  after: (fn: () => unknown) => void
}

/** node:test's context as the suite's harness: assertions from node:assert. */
export function fromNodeTest (t: NodeTestContext): SuiteTest {
  return {
    test: async (name, fn) => await t.test(name, async (sub) => { await fn(fromNodeTest(sub)) }),
    equal: (found, wanted, message?: string) => { assert.strictEqual(found, wanted, message) },
    // tap's same(): deep and loose, as assert.deepEqual.
    same: (found, wanted, message?: string) => { assert.deepEqual(found, wanted, message) },
    ok: (value, message?: string) => { assert.ok(value, message) },
    match: (found, pattern, message?: string) => { assert.match(String(found), pattern, message) },
    type: (found, type, message?: string) => { assert.strictEqual(typeof found, type, message) },
    teardown: (fn) => { t.after(fn) }
  }
}
