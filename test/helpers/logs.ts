import type { FastifyBaseLogger } from 'fastify'

export interface CapturedLine { level: string, msg: string, fields: Record<string, unknown> }

/** A logger object (as `fastify.log` is) that keeps what it is told, for modules tested alone. */
export function capturingLogger (): { logger: FastifyBaseLogger, lines: CapturedLine[] } {
  const lines: CapturedLine[] = []
  const at = (level: string) => (fields: unknown, msg?: string): void => {
    if (typeof fields === 'string') lines.push({ level, msg: fields, fields: {} })
    else lines.push({ level, msg: msg ?? '', fields: fields as Record<string, unknown> })
  }
  const logger = {
    level: 'trace',
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    silent: () => {},
    child: () => logger
  } as unknown as FastifyBaseLogger
  return { logger, lines }
}
