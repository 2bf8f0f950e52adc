// An ESM TypeScript consumer (module nodenext): default and named imports, as the README shows.
import Fastify from 'fastify'
import emberCache, { MemoryCache, RedisCache, cacheConfig, emberCache as named, type InvalidationReport } from 'fastify-ember-cache'

const app = Fastify()
await app.register(emberCache, { defaultTtl: 60 })
await app.register(named, { enabled: true })
const tasks = new MemoryCache({ ttl: 30, max: 10_000 })
app.get('/tasks', { config: { cache: { cache: tasks, tags: ['tasks'] } } }, async () => [])
app.get<{ Params: { id: string } }>('/tasks/:id', { config: { cache: { cache: tasks, tags: (request) => ['task:' + request.params.id] } } }, async () => ({}))
app.get('/typed/:id', { config: { cache: cacheConfig<{ Params: { id: string } }>({ mode: 'memory', keyFn: (request) => 'typed:' + request.params.id }) } }, async () => ({}))
// @ts-expect-error a typo is a type error through cacheConfig
app.get('/typo', { config: { cache: cacheConfig({ mode: 'memory', tll: 30 }) } }, async () => ({}))
// @ts-expect-error and so is a wrong value, with a readable message
cacheConfig({ mode: 'memory', ttl: '30' })
// @ts-expect-error params the route does not have
cacheConfig<{ Params: { id: string } }>({ mode: 'memory', tags: (request) => [request.params.nope] })
// @ts-expect-error a route with explicit generics checks config.cache strictly too
app.get<{ Params: { id: string } }>('/strict/:id', { config: { cache: { mode: 'memory', tll: 30 } } }, async () => ({}))
const report: InvalidationReport = await app.emberCache.invalidate({ tags: ['tasks'] })
void report.ok
void RedisCache
