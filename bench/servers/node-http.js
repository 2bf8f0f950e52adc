'use strict'
// (2) Ceiling: bare node:http writing the prebuilt bytes, no framework.
const http = require('node:http')
const { JSON_TYPE, payloadBuffer, stats, serveHttp } = require('./common')

const length = String(payloadBuffer.length)
serveHttp(http.createServer((request, response) => {
  stats.handlerCalls++
  response.writeHead(200, { 'content-type': JSON_TYPE, 'content-length': length })
  response.end(payloadBuffer)
}))
