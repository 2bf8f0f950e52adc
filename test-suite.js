'use strict'

// `require('fastify-ember-cache/test-suite')` for resolvers that read no `exports` (node10).
module.exports = require('./dist/lib/test-suite/index.js')
