import type { FastifyRequest } from 'fastify'
import type { EmberCache } from './caches/cache'
import { InvalidOptionError } from './errors'
import type { KeyBuilder } from './cache-key'
import type { RouteSettings } from './options'

// Which entry a write route updates by default: the entry its read route (GET, same URL)
// stores for that URL, however that route keys it. A read route keyed by a template
// (`key: 'k:{id}'`) is filled from the write's params; one keyed by URL gets the URL key; one
// keyed by a keyFn cannot be evaluated for every caller's entry by one write (the writer's own
// key is not the others'), so a write route without targets of its own is refused at start-up.
// Routes are matched once, when the app is ready: write routes may be declared first.

/** Where a write's own entry lives: a read route's cache, key and settings. */
export interface OwnTarget {
  cache: EmberCache
  keyOf: KeyBuilder
  /** The read route whose entry this is; undefined when no read route has the write's URL. */
  reader: RouteSettings | undefined
}

/** The read routes of an app, by path. */
export class ReadRoutes {
  private readonly byPath = new Map<string, RouteSettings[]>()

  add (settings: RouteSettings): void {
    const list = this.byPath.get(settings.path)
    if (list === undefined) this.byPath.set(settings.path, [settings])
    else list.push(settings)
  }

  /**
   * The entries a write route invalidates (or writes through) by default. Throws, naming both
   * routes, when its read route is keyed by a keyFn and the write has nothing else to go by.
   */
  ownTargets (write: RouteSettings): OwnTarget[] {
    // A key or keyFn on the write route itself says which entry it writes.
    if (write.keyGiven) return [{ cache: write.cache, keyOf: write.keyOf, reader: undefined }]
    const readers = this.byPath.get(write.path)
    if (readers === undefined) return [{ cache: write.cache, keyOf: write.keyOf, reader: undefined }]
    const targets: OwnTarget[] = []
    for (const reader of readers) {
      if (reader.callerKey !== 'keyFn') {
        targets.push({ cache: reader.cache, keyOf: reader.keyOf, reader })
        continue
      }
      if (write.writeThrough || write.invalidate.length === 0) {
        throw new InvalidOptionError(write.label + ' config.cache', `its read route ${reader.label} is keyed by a keyFn, which one write cannot evaluate for every caller's entry (it would reach the writer's own only); give this route invalidate targets (tags: are the usual way), a key of its own, or key the read route with a key template` + (write.writeThrough ? ', and drop writeThrough' : ''))
      }
    }
    return targets
  }
}

/** The keys a write request's own targets name, each on its cache; undefined keys could not be made. */
export function ownKeysOf (targets: readonly OwnTarget[], request: FastifyRequest, onError: (err: unknown) => void): Array<{ target: OwnTarget, key: string }> {
  const keys: Array<{ target: OwnTarget, key: string }> = []
  for (const target of targets) {
    try {
      keys.push({ target, key: target.keyOf(request) })
    } catch (err) {
      onError(err)
    }
  }
  return keys
}
