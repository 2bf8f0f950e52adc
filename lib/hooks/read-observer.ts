import type { FastifyRequest } from 'fastify'

// What a handler reads of its caller during a miss. A response is stored for sharing only when
// every per-caller input that shaped it is in its key (README, "Security"): request headers by
// name (or all of them, when enumerated), cookies by name, the session, the user, named request
// properties, and the caller's address. Observation starts when a miss goes to the handler and
// stops when the handler answers (reply.send), hijacks the reply, or forwards the request
// (reply.from, whose copying of every header is not a read of them): hooks/answer.ts. Hits
// never pay for it.
//
// How, without slowing the miss or breaking what is observed:
// - headers, rawHeaders and parsed cookies are plain objects: for the miss, the request holds a
//   Proxy of each in their place (an assignment, no change to any object's shape), put back
//   when observation stops;
// - the session, the user and named properties may be class instances with private fields (a
//   Proxy breaks them) or plain strings: they are observed by accessors defined once on the
//   route's request prototype, which keep the value in a slot of the request and tell the
//   request's observer, when it has one, that it was read;
// - request.ip / ips: wrappers of Fastify's getters, on the same prototype; the socket's own
//   address: an accessor put once on each socket.
// Redefining a property of a request (or of Node's message) per miss cost a fifth of the miss:
// V8 turned each into a slow dictionary object that Fastify and Node then read.

/** What a route's observation needs, fixed at registration. */
export interface ObservePlan {
  /** Header names whose reads are not per-caller inputs: keyed already, answered by the cache, or declared unkeyed. */
  unobservedHeaders: ReadonlySet<string>
  /** Cookie names already in the key (varyCookies). */
  keyedCookies: ReadonlySet<string>
  /** Request properties that hold the caller's identity: session, user and the callerProperties option. */
  identities: readonly string[]
  /**
   * The route answers with what an upstream says (ttl: 'from-response'): copying every header
   * (to forward them) is not a read of them, and ends header observation; the upstream's Vary
   * says what shaped its answer. Headers read by name before that count.
   */
  forwarding: boolean
}

/** Headers a handler may read without them shaping a stored answer: the cache answers them itself. */
export const CACHE_ANSWERED_HEADERS: readonly string[] = [
  'host', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range', 'surrogate-capability'
]

/** The request's observer, while a miss of it is observed (decorated null on every request: one shape). */
export const kObserver = Symbol('ember-cache.read-observer')
const kSocketObserver = Symbol('ember-cache.socket-observer')
const kSocketAddress = Symbol('ember-cache.socket-address')
const ADDRESS = 'ip'

type Bag = Record<PropertyKey, unknown>

/**
 * One miss's observation. It is also the handler of the Proxies that stand for the request's
 * headers, rawHeaders and parsed cookies (one object for the three: misses allocate little);
 * a trap tells them apart by their target.
 */
export class ReadObserver implements ProxyHandler<Bag> {
  /** False while a getter whose reads are in the key runs (host, protocol), and once stopped. */
  active = true
  /** Header names read (lower-case), in first-read order; undefined until one is. */
  headers: string[] | undefined = undefined
  /** Every header was read (enumerated). */
  allHeaders = false
  /** The headers were copied to be forwarded (from-response routes): no header read counts from here. */
  headersForwarded = false
  /** Cookie names read; undefined until one is. */
  cookies: string[] | undefined = undefined
  /** Identities read (session, user, a named property, 'ip'); undefined until one is. */
  identities: string[] | undefined = undefined
  private readonly originalHeaders: Bag
  private readonly headersProxy: Bag
  private originalCookies: Bag | undefined = undefined
  private cookiesProxy: Bag | undefined = undefined
  private originalRawHeaders: Bag | undefined = undefined
  private rawHeadersProxy: Bag | undefined = undefined
  private socket: Bag | undefined = undefined

  constructor (readonly plan: ObservePlan, readonly request: FastifyRequest) {
    const raw = request.raw as unknown as Bag
    this.originalHeaders = raw.headers as Bag
    this.headersProxy = new Proxy(this.originalHeaders, this)
  }

  // The traps: a read by name, a presence check, an own-property check, or an enumeration.
  get (target: Bag, name: PropertyKey): unknown {
    if (typeof name === 'string') this.readName(target, name)
    return target[name]
  }

  has (target: Bag, name: PropertyKey): boolean {
    if (typeof name === 'string') this.readName(target, name)
    return name in target
  }

  getOwnPropertyDescriptor (target: Bag, name: PropertyKey): PropertyDescriptor | undefined {
    if (typeof name === 'string') this.readName(target, name)
    return Reflect.getOwnPropertyDescriptor(target, name)
  }

  ownKeys (target: Bag): ArrayLike<string | symbol> {
    if (target === this.originalCookies) this.readHeader('cookie')
    else this.readAllHeaders()
    return Reflect.ownKeys(target)
  }

  private readName (target: Bag, name: string): void {
    if (target === this.originalHeaders) this.readHeader(name)
    else if (target === this.originalCookies) this.readCookie(name)
    // Any read of Node's raw header lines (or of headersDistinct, built from them) is every header.
    else this.readAllHeaders()
  }

  readHeader (name: string): void {
    if (!this.active || this.headersForwarded || this.plan.unobservedHeaders.has(name) || !isHeaderName(name)) return
    this.headers = added(this.headers, name)
  }

  readAllHeaders (): void {
    if (!this.active || this.headersForwarded) return
    if (this.plan.forwarding) this.headersForwarded = true
    else this.allHeaders = true
  }

  readCookie (name: string): void {
    // A key on the whole Cookie header (private routes) covers every cookie in it.
    if (!this.active || this.plan.keyedCookies.has(name) || this.plan.unobservedHeaders.has('cookie') || ignoredName(name)) return
    this.cookies = added(this.cookies, name)
  }

  readIdentity (name: string): void {
    if (this.active) this.identities = added(this.identities, name)
  }

  /** Starts observing (the handler is about to run). */
  start (): void {
    const request = this.request as unknown as Bag
    const { perRequest } = prepare(Object.getPrototypeOf(request) as Bag, this.plan.identities)
    for (let i = 0; i < perRequest.length; i++) Object.defineProperty(request, perRequest[i][0], perRequest[i][1])
    // A request made before its prototype was prepared holds its identities itself.
    for (const name of this.plan.identities) if (Object.hasOwn(request, name)) adopt(request, name)
    request[kObserver] = this
    const raw = request.raw as Bag
    raw.headers = this.headersProxy
    const rawHeaders = raw.rawHeaders
    if (Array.isArray(rawHeaders)) {
      this.originalRawHeaders = rawHeaders as unknown as Bag
      this.rawHeadersProxy = new Proxy(this.originalRawHeaders, this)
      raw.rawHeaders = this.rawHeadersProxy
    }
    const cookies = request.cookies
    if (cookies !== null && typeof cookies === 'object') {
      this.originalCookies = cookies as Bag
      this.cookiesProxy = new Proxy(this.originalCookies, this)
      request.cookies = this.cookiesProxy
    }
    this.observeSocket()
  }

  /** The handler answered: reads from now on do not shape the answer. Puts back what we replaced. */
  stop (): void {
    if (!this.active) return
    this.active = false
    const request = this.request as unknown as Bag
    if (request[kObserver] === this) request[kObserver] = null
    const raw = request.raw as Bag
    if (raw.headers === this.headersProxy) raw.headers = this.originalHeaders
    if (this.rawHeadersProxy !== undefined && raw.rawHeaders === this.rawHeadersProxy) raw.rawHeaders = this.originalRawHeaders
    if (this.cookiesProxy !== undefined && request.cookies === this.cookiesProxy) request.cookies = this.originalCookies
    if (this.socket !== undefined) this.socket[kSocketObserver] = undefined
  }

  /**
   * The socket's address, read directly (`request.socket.remoteAddress`). The accessor is put on
   * a socket once and stays (keep-alive sockets serve request after request, one at a time);
   * it observes only while a miss on it is observed. HTTP/2 streams share one socket at once:
   * their address is observed through request.ip only.
   */
  private observeSocket (): void {
    const raw = this.request.raw as unknown as Bag
    if (raw.stream !== undefined) return
    const socket = raw.socket as Bag | null | undefined
    if (socket === null || typeof socket !== 'object') return
    if (!(kSocketObserver in socket)) {
      const own = Object.getOwnPropertyDescriptor(socket, 'remoteAddress')
      if (own !== undefined && !own.configurable) return
      if (own !== undefined) socket[kSocketAddress] = own.value
      Object.defineProperty(socket, 'remoteAddress', own === undefined ? SOCKET_ADDRESS_FROM_PROTOTYPE : SOCKET_ADDRESS_OWN)
    }
    socket[kSocketObserver] = this
    this.socket = socket
  }
}

/** `list` with `name` in it (a new list for the first name). */
function added (list: string[] | undefined, name: string): string[] {
  if (list === undefined) return [name]
  if (!list.includes(name)) list.push(name)
  return list
}

/** The observer of a request while one of its misses is observed. */
function observing (request: Bag): ReadObserver | undefined {
  const observer = request[kObserver]
  return observer === null ? undefined : observer as ReadObserver | undefined
}

// Prototype accessors. Prepared once per request prototype (a Fastify encapsulation context's
// Request class, shared by its routes) and per name, at the first observed miss on it: by then
// every plugin has decorated the request (a decoration after ours would collide with them).
// Requests of that context pay one call per read of these properties, cached route or not.

/** What was done to a prototype: the identities prepared, and the getters each request must get of its own. */
interface Prepared {
  names: Set<string>
  /**
   * Getters the prototype holds as its own, unconfigurable properties (Fastify's trustProxy
   * request class defines ip, ips, host and protocol so): wrapped on each observed request
   * instead (a new property on it; not a redefinition, which would slow it down).
   */
  perRequest: Array<[string, PropertyDescriptor]>
}

const prepared = new WeakMap<object, Prepared>()

function prepare (proto: Bag, identities: readonly string[]): Prepared {
  let done = prepared.get(proto)
  if (done === undefined) {
    done = { names: new Set(), perRequest: [] }
    prepared.set(proto, done)
    wrapGetter(proto, 'ip', addressGetter, done)
    // Only a request built with trustProxy has ips; its host and protocol read the socket's
    // address (to check the proxy is trusted): they are in the key and are not an address read.
    if ('ips' in proto) {
      wrapGetter(proto, 'ips', addressGetter, done)
      wrapGetter(proto, 'host', unobservedGetter, done)
      wrapGetter(proto, 'protocol', unobservedGetter, done)
    }
  }
  for (const name of identities) {
    if (done.names.has(name)) continue
    done.names.add(name)
    defineIdentity(proto, name)
  }
  return done
}

/** Where a request keeps the value of an identity property while our accessor stands for it. */
const slots = new Map<string, symbol>()
function slotOf (name: string): symbol {
  let slot = slots.get(name)
  if (slot === undefined) {
    slot = Symbol('ember-cache.identity.' + name)
    slots.set(name, slot)
  }
  return slot
}

/**
 * An identity on the prototype: a getter the chain already has (a decorator with a getter) keeps
 * computing it; anything else (a value decorator, a property set by a hook) lives in the
 * request's slot. Assignments, the constructor's own included, go to the slot.
 */
function defineIdentity (proto: Bag, name: string): void {
  const inherited = findDescriptor(proto, name)
  if (inherited !== undefined && inherited.configurable === false && Object.hasOwn(proto, name)) return
  if (inherited?.get !== undefined) {
    const { get, set } = inherited
    Object.defineProperty(proto, name, {
      get (this: Bag) {
        observing(this)?.readIdentity(name)
        return get.call(this)
      },
      set (this: Bag, value: unknown) {
        if (set !== undefined) set.call(this, value)
      },
      enumerable: inherited.enumerable,
      configurable: true
    })
    return
  }
  const slot = slotOf(name)
  const fallback = inherited?.value
  Object.defineProperty(proto, name, {
    get (this: Bag) {
      observing(this)?.readIdentity(name)
      return slot in this ? this[slot] : fallback
    },
    set (this: Bag, value: unknown) {
      this[slot] = value
    },
    enumerable: true,
    configurable: true
  })
}

/** Moves a request's own identity value into its slot, so the prototype's accessor sees reads of it. */
function adopt (request: Bag, name: string): void {
  const own = Object.getOwnPropertyDescriptor(request, name)
  if (own === undefined || own.configurable === false || !('value' in own)) return
  delete request[name]
  request[name] = own.value
}

function wrapGetter (proto: Bag, name: string, make: (name: string, get: () => unknown) => () => unknown, done: Prepared): void {
  const inherited = findDescriptor(proto, name)
  if (inherited?.get === undefined) return
  const descriptor = { get: make(name, inherited.get), enumerable: inherited.enumerable, configurable: true }
  if (Object.hasOwn(proto, name) && inherited.configurable === false) done.perRequest.push([name, descriptor])
  else Object.defineProperty(proto, name, descriptor)
}

function addressGetter (_name: string, get: () => unknown): () => unknown {
  return function (this: Bag) {
    observing(this)?.readIdentity(ADDRESS)
    return get.call(this)
  }
}

/** A getter whose reads are in the key (host, protocol), run with observation paused. */
function unobservedGetter (_name: string, get: () => unknown): () => unknown {
  return function (this: Bag) {
    const observer = observing(this)
    if (observer === undefined || !observer.active) return get.call(this)
    observer.active = false
    try {
      return get.call(this)
    } finally {
      observer.active = true
    }
  }
}

function findDescriptor (object: object, name: string): PropertyDescriptor | undefined {
  for (let at: object | null = object; at !== null; at = Object.getPrototypeOf(at) as object | null) {
    const descriptor = Object.getOwnPropertyDescriptor(at, name)
    if (descriptor !== undefined) return descriptor
  }
  return undefined
}

function observedSocketAddress (socket: Bag): void {
  const observer = socket[kSocketObserver] as ReadObserver | undefined
  observer?.readIdentity(ADDRESS)
}

const socketAddressGetters = new WeakMap<object, (() => unknown) | undefined>()
const SOCKET_ADDRESS_FROM_PROTOTYPE: PropertyDescriptor = {
  get (this: Bag) {
    observedSocketAddress(this)
    const proto = Object.getPrototypeOf(this) as object
    let get = socketAddressGetters.get(proto)
    if (get === undefined) {
      get = findDescriptor(proto, 'remoteAddress')?.get
      socketAddressGetters.set(proto, get)
    }
    return get?.call(this)
  },
  configurable: true
}

/** A socket whose address is an own value (light-my-request's): kept in a slot of ours. */
const SOCKET_ADDRESS_OWN: PropertyDescriptor = {
  get (this: Bag) {
    observedSocketAddress(this)
    return this[kSocketAddress]
  },
  set (this: Bag, value: unknown) {
    this[kSocketAddress] = value
  },
  configurable: true
}

const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/

/** A lower-case field name (RFC 9110 §5.1), not a name every object answers to. */
function isHeaderName (name: string): boolean {
  return HEADER_NAME.test(name) && !ignoredName(name)
}

/** Names code asks any object for (constructor checks, thenable checks): not reads of a header or cookie. */
function ignoredName (name: string): boolean {
  return name in Object.prototype || name === 'then'
}
