// Fixture agent: a Hono app exercising routing, request/response APIs,
// built-in middleware that only needs standard Web APIs, a mounted sub-app,
// error handling and streaming. Bundled by build.sh into ONE ES module whose
// default export has `fetch(request, env, ctx)`.
import { Hono } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { cors } from 'hono/cors'
import { secureHeaders } from 'hono/secure-headers'
import { etag } from 'hono/etag'
import { basicAuth } from 'hono/basic-auth'
import { streamText } from 'hono/streaming'

type Bindings = { GREETING: string }
type Env = { Bindings: Bindings }

const app = new Hono<Env>()

// ---- hand-written middleware (runs for every request, incl. 404/errors) ----
app.use('*', async (c, next) => {
  await next()
  c.res.headers.set('X-Agent', 'hono-app')
})

// ---- hono built-in middleware ----
app.use(
  '/api/*',
  cors({
    origin: ['https://example.com'],
    allowMethods: ['GET', 'POST', 'DELETE'],
    allowHeaders: ['Content-Type', 'X-Custom'],
    exposeHeaders: ['X-Request-Id'],
    maxAge: 600,
    credentials: true,
  }),
)
app.use('/secure/*', secureHeaders())
app.use('/etag/*', etag())

// ---- plain routes ----
app.get('/', (c) => c.text('Hello from hono-app'))

// env binding + query param with default
app.get('/hello', (c) => c.text(`${c.env.GREETING}, ${c.req.query('name') ?? 'world'}!`))

// path params
app.get('/users/:id', (c) => c.json({ id: c.req.param('id'), kind: 'user' }))
app.get('/users/:id/posts/:postId', (c) => c.json(c.req.param()))

// regex-constrained param; non-numeric ids fall through to the :slug route
app.get('/posts/:id{[0-9]+}', (c) => c.json({ postId: Number(c.req.param('id')), by: 'id' }))
app.get('/posts/:slug', (c) => c.json({ slug: c.req.param('slug'), by: 'slug' }))

// wildcard
app.get('/files/*', (c) => c.text(`file: ${c.req.path.slice('/files/'.length)}`))

// query params: single, repeated, all
app.get('/search', (c) =>
  c.json({
    q: c.req.query('q') ?? null,
    tags: c.req.queries('tag') ?? [],
    all: c.req.query(),
  }),
)

// JSON request body -> 201, malformed JSON -> 400
app.post('/echo', async (c) => {
  let body: unknown
  try {
    body = await c.req.json()
  } catch {
    return c.json({ error: 'invalid JSON' }, 400)
  }
  return c.json({ received: body, contentType: c.req.header('content-type') ?? null }, 201)
})

// 204 no content
app.delete('/items/:id', (c) => c.body(null, 204))

// request headers in, response headers out
app.get('/headers', (c) => {
  c.header('X-Custom', 'custom-value')
  c.header('Cache-Control', 'no-store')
  c.header('X-Multi', 'a')
  c.header('X-Multi', 'b', { append: true })
  return c.json({
    userAgent: c.req.header('User-Agent') ?? null,
    xFoo: c.req.header('x-foo') ?? null,
  })
})

app.get('/html', (c) => c.html('<h1>Hello, <em>hono</em></h1>'))

// redirects (302 default, explicit 301 to absolute URL)
app.get('/old', (c) => c.redirect('/new'))
app.get('/moved', (c) => c.redirect('https://example.com/elsewhere', 301))

// errors
app.get('/teapot', () => {
  throw new HTTPException(418, { message: "I'm a teapot" })
})
app.get('/boom', () => {
  throw new Error('kaboom')
})
// handler explicitly asks for the (custom) 404
app.get('/maybe/:id', (c) => (c.req.param('id') === '1' ? c.text('found 1') : c.notFound()))

// ctx.waitUntil through hono's executionCtx (throws if ctx was not passed)
app.get('/wait', (c) => {
  let ran = false
  c.executionCtx.waitUntil(
    Promise.resolve().then(() => {
      ran = true
    }),
  )
  return c.json({ waitUntil: typeof c.executionCtx.waitUntil, ranSynchronously: ran })
})

// middleware targets
app.get('/etag/data', (c) => c.text('etag me'))
app.get('/secure/page', (c) => c.text('secure page'))

// streaming: several chunks with sleeps between them
app.get('/stream', (c) =>
  streamText(c, async (stream) => {
    for (let i = 1; i <= 3; i++) {
      await stream.writeln(`chunk ${i}`)
      await stream.sleep(10)
    }
    await stream.write('done')
  }),
)

// ---- sub-app mounted at /api ----
const api = new Hono<Env>()
api.get('/status', (c) => c.json({ ok: true, greeting: c.env.GREETING }))
api.post('/items', async (c) => {
  const body = await c.req.json<{ name?: string }>()
  if (!body.name) return c.json({ error: 'name required' }, 400)
  c.header('Location', `/api/items/${encodeURIComponent(body.name)}`)
  c.header('X-Request-Id', 'req-fixed-1')
  return c.json({ created: body.name }, 201)
})
api.use('/admin/*', basicAuth({ username: 'admin', password: 'secret', realm: 'fixture' }))
api.get('/admin/stats', (c) => c.json({ users: 2, admin: true }))
app.route('/api', api)

// ---- custom 404 and error handler ----
app.notFound((c) => c.json({ error: 'not found', path: c.req.path }, 404))

app.onError((err, c) => {
  if (err instanceof HTTPException) {
    // HTTPException carrying a prepared Response (e.g. basic-auth 401)
    if (err.res) return err.getResponse()
    return c.json({ error: err.message, status: err.status }, err.status)
  }
  return c.json({ error: 'internal', message: err.message }, 500)
})

export default app
