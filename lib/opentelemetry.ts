import { channels, type TraceContext } from './observe'

// Spans from the cache's diagnostics channels, with @opentelemetry/api's tracer (optional: you
// pass the tracer in, so this package does not depend on it). Each lookup, store, invalidation
// and background refresh becomes a span (ember-cache.lookup, ...) under whatever span is active.

/** What is used of an OpenTelemetry span. */
export interface SpanLike {
  setAttribute: (key: string, value: string | number | boolean) => unknown
  recordException: (exception: Error) => unknown
  setStatus: (status: { code: number, message?: string }) => unknown
  end: () => void
}

/** What is used of an OpenTelemetry tracer (`trace.getTracer('my-app')`). */
export interface TracerLike {
  startSpan: (name: string, options?: { attributes?: Record<string, string | number | boolean> }) => SpanLike
}

/** OpenTelemetry's SpanStatusCode.ERROR. */
const STATUS_ERROR = 2

/** Subscribes to the channels and makes spans with `tracer`; returns the unsubscriber. */
export function traceWithOpenTelemetry (tracer: TracerLike): () => void {
  const spans = new WeakMap<TraceContext, SpanLike>()
  const finish = (context: TraceContext): void => {
    const span = spans.get(context)
    if (span === undefined) return
    if (context.outcome !== undefined) span.setAttribute('ember_cache.outcome', context.outcome)
    if (context.keyHash !== undefined) span.setAttribute('ember_cache.key_hash', context.keyHash)
    span.end()
    spans.delete(context)
  }
  const unsubscribers = Object.entries(channels).map(([operation, channel]) => {
    const handlers = {
      start (context: TraceContext) {
        const attributes: Record<string, string | number | boolean> = { 'ember_cache.cache': context.cache }
        if (context.route !== undefined) attributes['ember_cache.route'] = context.route
        if (context.target !== undefined) attributes['ember_cache.target'] = context.target
        if (context.soft === true) attributes['ember_cache.soft'] = true
        spans.set(context, tracer.startSpan('ember-cache.' + operation, { attributes }))
      },
      end (context: TraceContext) {
        // A remote operation goes on: its span ends at asyncEnd.
        if (context.async !== true) finish(context)
      },
      asyncStart () {},
      asyncEnd (context: TraceContext) {
        finish(context)
      },
      error (context: TraceContext) {
        const span = spans.get(context)
        if (span === undefined) return
        const err = context.error instanceof Error ? context.error : new Error(String(context.error))
        span.recordException(err)
        span.setStatus({ code: STATUS_ERROR, message: err.message })
      }
    }
    channel.subscribe(handlers as never)
    return () => channel.unsubscribe(handlers as never)
  })
  return () => { for (const unsubscribe of unsubscribers) unsubscribe() }
}
