'use strict'

// CommonJS entry. require('fastify-ember-cache') returns the plugin function itself, carrying
// every named export and `default`, so `require`, `import emberCache from` and
// `import { emberCache }` all work. ESM imports go through index.mjs.
const lib = require('./dist/lib/index.js')

module.exports = lib.emberCache
for (const name of Object.keys(lib)) {
  if (name !== '__esModule') module.exports[name] = lib[name]
}
