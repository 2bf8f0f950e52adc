import { nestedNames } from '../option-spec'
import type { FastifyBaseLogger } from 'fastify'
import { InvalidOptionError } from '../errors'
import { checkNonNegativeInteger, checkObject, describe, isToken, rejectUnknown } from '../validate'
import { EdgeForwarder } from './forwarder'
import type { EdgePurger } from './purgers'
import { TAG_HEADER_FORMATS, type TagHeaderFormat } from './tag-header'

// The plugin's `edge` option: the CDN or Varnish in front of the app. Responses carry their
// tags in the header that edge reads (and an edge TTL where a route gives one); invalidations
// are forwarded to its purge API.

export interface EdgeOptions {
  /**
   * The header the edge reads a response's tags from: 'xkey' (Varnish with vmod-xkey),
   * 'surrogate-key' (Fastly), 'cache-tag' (Cloudflare), or a format of your own
   * (`{ name, separator, maxHeaderBytes, maxTagBytes }`).
   */
  tagHeader: 'xkey' | 'surrogate-key' | 'cache-tag' | TagHeaderFormat
  /** The header carrying a route's `edgeTtl`: 'cdn-cache-control' (RFC 9213, default) or 'surrogate-control'. */
  ttlHeader?: 'cdn-cache-control' | 'surrogate-control'
  /** Where invalidations go: `varnishPurgers()`, `fastlyPurger()`, `cloudflarePurger()`, or `{ name, purge }` of your own. */
  purgers?: Array<EdgePurger | EdgePurger[]>
  /**
   * ms a write route waits for its edge purges before it answers, so the writer's next read
   * through the edge is fresh. Default 0: the purge goes out as the answer does.
   */
  wait?: number
}

/** The edge, as routes and the plugin use it. */
export interface EdgeSettings {
  format: TagHeaderFormat
  ttlHeader: 'cdn-cache-control' | 'surrogate-control'
  wait: number
  forwarder: EdgeForwarder
}

const EDGE_OPTIONS: ReadonlySet<string> = nestedNames('edge')
const FORMAT_FIELDS: ReadonlySet<string> = new Set(['name', 'separator', 'maxHeaderBytes', 'maxTagBytes'])

/** Checks the option (at registration) and builds the edge; undefined when none is given. */
export function edgeSettings (options: EdgeOptions | undefined, log: FastifyBaseLogger): EdgeSettings | undefined {
  if (options === undefined) return undefined
  checkObject('edge', options)
  rejectUnknown('edge.', options, EDGE_OPTIONS)
  const format = tagFormat(options.tagHeader)
  if (options.ttlHeader !== undefined && options.ttlHeader !== 'cdn-cache-control' && options.ttlHeader !== 'surrogate-control') {
    throw new InvalidOptionError('edge.ttlHeader', "expected 'cdn-cache-control' or 'surrogate-control', got " + describe(options.ttlHeader))
  }
  checkNonNegativeInteger('edge.wait', options.wait)
  if (options.purgers !== undefined && !Array.isArray(options.purgers)) throw new InvalidOptionError('edge.purgers', 'expected an array of purgers, got ' + describe(options.purgers))
  const purgers = (options.purgers ?? []).flat()
  purgers.forEach((purger, i) => {
    if (purger === null || typeof purger !== 'object' || typeof purger.name !== 'string' || typeof purger.purge !== 'function') {
      throw new InvalidOptionError(`edge.purgers[${i}]`, 'expected { name: string, purge(request) }, as varnishPurgers(), fastlyPurger() and cloudflarePurger() make, got ' + describe(purger))
    }
  })
  return {
    format,
    ttlHeader: options.ttlHeader ?? 'cdn-cache-control',
    wait: options.wait ?? 0,
    forwarder: new EdgeForwarder(purgers, log)
  }
}

function tagFormat (given: unknown): TagHeaderFormat {
  if (typeof given === 'string' && Object.hasOwn(TAG_HEADER_FORMATS, given)) return TAG_HEADER_FORMATS[given as keyof typeof TAG_HEADER_FORMATS]
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw new InvalidOptionError('edge.tagHeader', "expected 'xkey', 'surrogate-key', 'cache-tag' or { name, separator, maxHeaderBytes, maxTagBytes }, got " + describe(given))
  }
  rejectUnknown('edge.tagHeader.', given, FORMAT_FIELDS)
  const format = given as TagHeaderFormat
  if (!isToken(format.name)) throw new InvalidOptionError('edge.tagHeader.name', 'expected a header name, got ' + describe(format.name))
  if (format.separator !== ' ' && format.separator !== ',') throw new InvalidOptionError('edge.tagHeader.separator', "expected ' ' or ',', got " + describe(format.separator))
  for (const name of ['maxHeaderBytes', 'maxTagBytes'] as const) {
    checkNonNegativeInteger('edge.tagHeader.' + name, format[name])
    if (format[name] === undefined || format[name] === 0) throw new InvalidOptionError('edge.tagHeader.' + name, 'expected a positive integer, got ' + describe(format[name]))
  }
  return { ...format, name: format.name.toLowerCase() }
}
