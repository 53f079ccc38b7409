// Fixture agent: Hono + @hono/zod-validator + zod (+ plain zod usage).
// Deliberately has NO custom notFound/onError, so hono's defaults are exercised.
import { Hono } from 'hono'
import { zValidator } from '@hono/zod-validator'
// Namespace import (zod 4's recommended form): lets esbuild tree-shake. `import { z }`
// pulls in every locale and bundles to ~820 KB instead of ~250 KB.
import * as z from 'zod'

type Env = { Bindings: { GREETING: string } }

const User = z.object({
  name: z.string().min(1),
  age: z.number().int().min(0),
  email: z.email(),
})

const SearchQuery = z.object({
  q: z.string().min(1),
  page: z.coerce.number().int().min(1).default(1),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  active: z.stringbool().optional(),
})

const ItemParam = z.object({ id: z.coerce.number().int().positive() })

const Product = z.object({
  sku: z.string().regex(/^[A-Z]{3}-\d{3}$/),
  price: z.number().positive(),
  tags: z.array(z.string()).max(3).default([]),
})

const app = new Hono<Env>()

// JSON body validation, default hook: 400 with `{ success: false, error: ZodError }`
app.post('/users', zValidator('json', User), (c) => {
  const user = c.req.valid('json')
  return c.json({ ok: true, user }, 200)
})

// JSON body validation with a custom hook producing a compact error
app.post(
  '/users/strict',
  zValidator('json', User.strict(), (result, c) => {
    if (!result.success) {
      return c.json(
        {
          ok: false,
          issues: result.error.issues.map((i) => ({ path: i.path.join('.'), code: i.code, message: i.message })),
        },
        400,
      )
    }
  }),
  (c) => c.json({ ok: true, user: c.req.valid('json') }),
)

// query validation with coercion + defaults
app.get('/search', zValidator('query', SearchQuery), (c) => {
  const q = c.req.valid('query')
  return c.json({ ok: true, query: q, types: Object.fromEntries(Object.entries(q).map(([k, v]) => [k, typeof v])) })
})

// path param validation with coercion
app.get('/items/:id', zValidator('param', ItemParam), (c) => {
  const { id } = c.req.valid('param')
  return c.json({ id, double: id * 2 })
})

// plain zod, not through hono's validator
app.post('/products/parse', async (c) => {
  const text = await c.req.text()
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return c.json({ ok: false, error: 'invalid JSON' }, 400)
  }
  const r = Product.safeParse(raw)
  if (!r.success) {
    return c.json({ ok: false, flattened: z.flattenError(r.error), pretty: z.prettifyError(r.error) }, 422)
  }
  return c.json({ ok: true, product: r.data, greeting: c.env.GREETING })
})

export default app
