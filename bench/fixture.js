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

module.exports = { payload, payloadJson, payloadBuffer }

if (require.main === module) console.log(payloadBuffer.length + ' bytes')
