'use strict'

// The one response body every configuration answers: a ~1 KB JSON object, the same
// object everywhere so ratios compare the path, not the payload.

const payload = {
  id: 'catalog-42',
  title: 'Ember benchmark catalog page',
  updatedAt: '2024-06-01T12:00:00.000Z',
  page: { number: 1, size: 7, total: 240 },
  tags: ['bench', 'cache', 'fastify', 'json'],
  items: []
}
for (let i = 1; i <= 7; i++) {
  payload.items.push({
    id: i,
    sku: 'SKU-' + String(1000 + i),
    name: 'Catalog item number ' + i,
    price: Math.round(i * 7.31 * 100) / 100,
    inStock: i % 3 !== 0,
    rating: { average: 4.2, count: 10 * i }
  })
}

const payloadJson = JSON.stringify(payload)
const payloadBuffer = Buffer.from(payloadJson)

// The ~4 KB body of the compression configurations (BODY=large): the same page with more items,
// the size issue 17 measured @fastify/compress at.
const largePayload = { ...payload, page: { number: 1, size: 18, total: 240 }, items: [] }
for (let i = 1; i <= 18; i++) {
  largePayload.items.push({
    id: i,
    sku: 'SKU-' + String(1000 + i),
    name: 'Catalog item number ' + i,
    description: 'A short description of catalog item ' + i + ', as a shop would list it.',
    price: Math.round(i * 7.31 * 100) / 100,
    inStock: i % 3 !== 0,
    rating: { average: 4.2, count: 10 * i }
  })
}

/** The body a configuration answers: the large one when it says `body: 'large'` (BODY=large). */
function payloadOf (body) {
  return body === 'large' ? largePayload : payload
}

module.exports = { payload, payloadJson, payloadBuffer, largePayload, payloadOf }

if (require.main === module) console.log(payloadBuffer.length + ' bytes; large ' + Buffer.byteLength(JSON.stringify(largePayload)) + ' bytes')
