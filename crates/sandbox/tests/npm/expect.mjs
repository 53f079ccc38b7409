// Ground-truth generator: runs every test case (see cases.mjs) against the esbuild bundles with
// Node's native fetch API (Request/Response/Headers/ReadableStream) and prints
// the results. Usage:
//   node expect.mjs > expected.txt        (human-readable, stdout)
// It also writes expected.json next to itself (same data, machine-readable).
// Bundles are read from ${OUT_DIR:-out}/NAME.js (relative to this file).
import { writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { CASES, BASE, ENV, runCases } from './cases.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const outDir = resolve(here, process.env.OUT_DIR ?? 'out')

const apps = {}
for (const name of new Set(CASES.map((c) => c[0]))) {
  const mod = await import(pathToFileURL(resolve(outDir, `${name}.js`)).href)
  apps[name] = mod.default
  if (typeof apps[name]?.fetch !== 'function') throw new Error(`${name}: default export has no fetch()`)
}

const results = await runCases(apps)

// ---------- text output ----------
const SELECTED = /^(content-type|location|etag|vary|www-authenticate|cache-control|transfer-encoding|x-.*|access-control-.*|content-security-policy|cross-origin-.*|origin-agent-cluster|referrer-policy|strict-transport-security)$/
const lines = []
results.forEach((r, i) => {
  lines.push(`=== #${String(i + 1).padStart(2, '0')} [${r.app}] ${r.request.method} ${r.request.url}`)
  if (r.note) lines.push(`# ${r.note}`)
  for (const [k, v] of r.request.headers) lines.push(`> ${k}: ${v}`)
  if (r.request.body !== null) lines.push(`> body: ${r.request.body}`)
  lines.push(`< status: ${r.response.status}`)
  for (const [k, v] of r.response.headers) lines.push(`< ${SELECTED.test(k) ? '' : '(other) '}${k}: ${v}`)
  lines.push(`< body (${Buffer.byteLength(r.response.body)} bytes): ${r.response.hasBody ? r.response.body : '<null>'}`)
  if (r.response.chunks.length > 1) lines.push(`< chunks: ${JSON.stringify(r.response.chunks)}`)
  if (r.response.waitUntilCalls) lines.push(`< ctx.waitUntil calls: ${r.response.waitUntilCalls}`)
  lines.push('')
})
lines.push(`# ${results.length} cases; node ${process.version}`)
process.stdout.write(lines.join('\n') + '\n')
writeFileSync(resolve(here, 'expected.json'), JSON.stringify({ base: BASE, env: ENV, cases: results }, null, 2) + '\n')
