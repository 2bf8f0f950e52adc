// Types for ESM consumers (index.mjs): the build's named exports, and the plugin as default.
import { emberCache } from './dist/lib/index.js'

export * from './dist/lib/index.js'
export default emberCache
