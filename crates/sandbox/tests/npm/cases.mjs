// Shared test-case table and runner used by expect.mjs and probe-globals.mjs.
// Each case: [app, method, path, {headers, body}?, note?]
// A header value of '__ETAG__' is replaced by the ETag of the last /etag/* response.
export const BASE = 'http://localhost'
export const ENV = { GREETING: 'Howdy' }
const basic = (u, p) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64')
const json = (v) => JSON.stringify(v)
const CT_JSON = { 'Content-Type': 'application/json' }

export const CASES = [
  // ---------------- hono-app ----------------
  ['hono-app', 'GET', '/', {}, 'plain text'],
  ['hono-app', 'GET', '/hello', {}, 'env binding GREETING, query default'],
  ['hono-app', 'GET', '/hello?name=Ada', {}, 'env binding + c.req.query'],
  ['hono-app', 'GET', '/users/42', {}, 'path param'],
  ['hono-app', 'GET', '/users/7/posts/99', {}, 'two params, c.req.param() object'],
  ['hono-app', 'GET', '/posts/123', {}, 'regex-constrained param :id{[0-9]+}'],
  ['hono-app', 'GET', '/posts/hello-world', {}, 'non-numeric falls through to :slug'],
  ['hono-app', 'GET', '/files/docs/a%20b/readme.txt', {}, 'wildcard; c.req.path is percent-decoded'],
  ['hono-app', 'GET', '/files/50%off', {}, 'malformed %-escape in path: hono getPath falls back to new URL() pathname'],
  ['hono-app', 'GET', '/search?q=hono&tag=a&tag=b&empty=&x=1', {}, 'c.req.query / c.req.queries'],
  ['hono-app', 'POST', '/echo', { headers: CT_JSON, body: json({ hello: 'world', n: [1, 2, 3], nested: { ok: true } }) }, 'JSON body -> 201'],
  ['hono-app', 'POST', '/echo', { headers: CT_JSON, body: '{"broken": ' }, 'malformed JSON -> 400'],
  ['hono-app', 'DELETE', '/items/5', {}, '204 no body'],
  ['hono-app', 'GET', '/headers', { headers: { 'User-Agent': 'fixture-agent/1.0', 'X-Foo': 'bar' } }, 'request headers in, c.header out (incl. append)'],
  ['hono-app', 'GET', '/html', {}, 'c.html'],
  ['hono-app', 'GET', '/old', {}, 'c.redirect default 302, relative Location'],
  ['hono-app', 'GET', '/moved', {}, 'c.redirect 301 absolute'],
  ['hono-app', 'GET', '/teapot', {}, 'HTTPException(418) -> onError'],
  ['hono-app', 'GET', '/boom', {}, 'plain Error -> onError 500'],
  ['hono-app', 'GET', '/does/not/exist', {}, 'custom app.notFound'],
  ['hono-app', 'GET', '/maybe/2', {}, 'handler returns c.notFound() -> custom 404'],
  ['hono-app', 'GET', '/maybe/1', {}, 'same route, found'],
  ['hono-app', 'POST', '/users/1', {}, 'method mismatch -> custom 404 (hono has no 405 by default)'],
  ['hono-app', 'HEAD', '/users/1', {}, 'HEAD on GET route: headers, empty body'],
  ['hono-app', 'GET', '/wait', {}, 'c.executionCtx.waitUntil (needs ctx)'],
  ['hono-app', 'GET', '/etag/data', {}, 'etag middleware: ETag = "sha1(body)"'],
  ['hono-app', 'GET', '/etag/data', { headers: { 'If-None-Match': '"d4a8f7f7ac41ea1b3ae8a1db22e8c4ed8d4ccd7a"' } }, 'etag mismatch -> 200'],
  ['hono-app', 'GET', '/etag/data', { headers: { 'If-None-Match': '__ETAG__' } }, 'etag match -> 304, empty body (If-None-Match filled from previous case)'],
  ['hono-app', 'GET', '/secure/page', {}, 'secureHeaders middleware'],
  ['hono-app', 'GET', '/stream', {}, 'streamText, 4 writes with sleep(10)'],
  ['hono-app', 'OPTIONS', '/api/status', { headers: { Origin: 'https://example.com', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' } }, 'CORS preflight -> 204'],
  ['hono-app', 'GET', '/api/status', { headers: { Origin: 'https://example.com' } }, 'sub-app route + CORS allowed origin + env'],
  ['hono-app', 'GET', '/api/status', { headers: { Origin: 'https://evil.example' } }, 'CORS disallowed origin: no ACAO header'],
  ['hono-app', 'POST', '/api/items', { headers: CT_JSON, body: json({ name: 'widget one' }) }, 'sub-app POST -> 201 + Location'],
  ['hono-app', 'POST', '/api/items', { headers: CT_JSON, body: json({}) }, 'sub-app POST -> 400'],
  ['hono-app', 'GET', '/api/admin/stats', {}, 'basic-auth missing -> 401 via HTTPException.res'],
  ['hono-app', 'GET', '/api/admin/stats', { headers: { Authorization: basic('admin', 'wrong') } }, 'basic-auth wrong password -> 401'],
  ['hono-app', 'GET', '/api/admin/stats', { headers: { Authorization: basic('admin', 'secret') } }, 'basic-auth ok'],
  ['hono-app', 'GET', '/api/missing', { headers: { Origin: 'https://example.com' } }, '404 under /api still gets CORS headers'],

  // ---------------- zod-app ----------------
  ['zod-app', 'POST', '/users', { headers: CT_JSON, body: json({ name: 'Ada', age: 36, email: 'ada@example.com' }) }, 'valid body -> 200 parsed object'],
  ['zod-app', 'POST', '/users', { headers: CT_JSON, body: json({ name: 'Ada', age: 36, email: 'ada@example.com', extra: 'dropped' }) }, 'unknown keys stripped'],
  ['zod-app', 'POST', '/users', { headers: CT_JSON, body: json({ name: '', age: -1.5, email: 'not-an-email' }) }, 'invalid -> 400 default hook {success:false,error}'],
  ['zod-app', 'POST', '/users', { headers: CT_JSON, body: json({ age: '36' }) }, 'missing/wrong types -> 400'],
  ['zod-app', 'POST', '/users', { headers: CT_JSON, body: '{oops' }, 'malformed JSON -> 400 from hono/validator'],
  ['zod-app', 'POST', '/users', { headers: { 'Content-Type': 'text/plain' }, body: json({ name: 'Ada', age: 1, email: 'a@b.co' }) }, 'non-JSON content-type: body ignored -> validates {} -> 400'],
  ['zod-app', 'POST', '/users/strict', { headers: CT_JSON, body: json({ name: 'Bob', age: 0, email: 'bob@example.org' }) }, 'custom hook, valid'],
  ['zod-app', 'POST', '/users/strict', { headers: CT_JSON, body: json({ name: 'Bob', age: 0, email: 'bob@example.org', admin: true }) }, 'custom hook, strict() unknown key -> 400'],
  ['zod-app', 'GET', '/search?q=shoes&page=2&limit=50&active=true', {}, 'query coercion number/stringbool'],
  ['zod-app', 'GET', '/search?q=shoes', {}, 'query defaults'],
  ['zod-app', 'GET', '/search?page=abc&limit=500&active=maybe', {}, 'query invalid -> 400'],
  ['zod-app', 'GET', '/items/17', {}, 'param coercion'],
  ['zod-app', 'GET', '/items/-3', {}, 'param invalid -> 400'],
  ['zod-app', 'POST', '/products/parse', { body: json({ sku: 'ABC-123', price: 9.5 }) }, 'plain zod safeParse ok (default tags)'],
  ['zod-app', 'POST', '/products/parse', { body: json({ sku: 'abc', price: 0, tags: ['a', 'b', 'c', 'd'] }) }, 'plain zod safeParse fail -> 422 flattenError + prettifyError'],
  ['zod-app', 'POST', '/products/parse', { body: 'nope' }, 'plain JSON.parse failure -> 400'],
  ['zod-app', 'GET', '/nope', {}, "hono default 404 (no app.notFound)"],
]

// Runs all CASES against `apps` ({ name: defaultExport }) and returns plain-data results.
// `hooks.beforeCase(index, case)` is called before each request (used by the probe).
export async function runCases(apps, hooks = {}) {
  const results = []
  let lastEtag = null
  for (const [i, kase] of CASES.entries()) {
    const [app, method, path, init = {}, note = ''] = kase
    hooks.beforeCase?.(i, kase)
    const headers = { ...(init.headers ?? {}) }
    for (const k of Object.keys(headers)) if (headers[k] === '__ETAG__') headers[k] = lastEtag
    const url = BASE + path
    const req = new Request(url, { method, headers, body: init.body })
    const waitUntil = []
    const ctx = { waitUntil: (p) => void waitUntil.push(p), passThroughOnException: () => {}, props: {} }

    const res = await apps[app].fetch(req, { ...ENV }, ctx)
    const chunks = []
    const decoder = new TextDecoder()
    let body = ''
    if (res.body) {
      const reader = res.body.getReader()
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        const piece = decoder.decode(value, { stream: true })
        chunks.push(piece)
        body += piece
      }
      body += decoder.decode()
    }
    await Promise.all(waitUntil)
    const resHeaders = [...res.headers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    if (path.startsWith('/etag/') && res.headers.get('etag')) lastEtag = res.headers.get('etag')
    results.push({
      app, note,
      request: { method, url, headers: Object.entries(headers), body: init.body ?? null },
      response: {
        status: res.status,
        headers: resHeaders,
        body,
        chunks,
        hasBody: res.body !== null,
        waitUntilCalls: waitUntil.length,
      },
    })
  }
  return results
}
