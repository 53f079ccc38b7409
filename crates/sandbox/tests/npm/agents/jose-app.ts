// Fixture agent: jose 6 (JWS/JWT/JWE on WebCrypto), used unchanged.
// Every key, claim and time comes from the request body (tests/npm/jose-fixture.json),
// so everything but ES256 signatures and JWE IVs is deterministic. Run by
// tests/npm_jose.rs in Node and in the sandbox; the answers are compared.
import {
  CompactEncrypt,
  EncryptJWT,
  SignJWT,
  base64url,
  calculateJwkThumbprint,
  compactDecrypt,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  importJWK,
  importPKCS8,
  importSPKI,
  jwtDecrypt,
  jwtVerify,
} from 'jose'

type Fixture = {
  hs256Secret: string
  ed25519: { pkcs8: string; spki: string }
  rsa: { privateJwk: Record<string, unknown>; publicJwk: Record<string, unknown> }
  p256: { privateJwk: Record<string, unknown>; publicJwk: Record<string, unknown> }
  dirKey: Record<string, unknown>
  claims: Record<string, unknown> & { iss: string; aud: string }
  iat: number
  exp: number
  now: number
}

// Tokens the other side made: verified / decrypted here.
type Peer = {
  jws: Record<string, string>
  jwt: string
  jwe: string
}

const ALGS = ['HS256', 'EdDSA', 'RS256', 'ES256'] as const

// A jose error by its stable code; anything else (a missing Web API, a
// TypeError) by name and message, so a failure says what went wrong.
function failure(e: any) {
  return { error: e?.code ?? `${e?.name}: ${e?.message}` }
}

async function settle<T>(f: () => Promise<T>) {
  try {
    return await f()
  } catch (e) {
    return failure(e)
  }
}

// Flip one character in the middle of one segment: 2 is a JWS's signature,
// 3 and 4 are a compact JWE's ciphertext and tag.
function tamper(token: string, segment: number) {
  const parts = token.split('.')
  const s = parts[segment]
  const i = s.length >> 1
  parts[segment] = s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)
  return parts.join('.')
}

async function run(f: Fixture, peer?: Peer) {
  const now = new Date(f.now * 1000)
  const opts = { issuer: f.claims.iss, audience: f.claims.aud, currentDate: now, requiredClaims: ['sub', 'iat', 'exp'] }

  const hs = base64url.decode(f.hs256Secret)
  const edPriv = await importPKCS8(f.ed25519.pkcs8, 'EdDSA')
  const edPub = await importSPKI(f.ed25519.spki, 'EdDSA', { extractable: true })
  const rsaPriv = await importJWK(f.rsa.privateJwk, 'RS256')
  const rsaPub = await importJWK(f.rsa.publicJwk, 'RS256')
  const ecPriv = await importJWK(f.p256.privateJwk, 'ES256')
  const ecPub = await importJWK(f.p256.publicJwk, 'ES256')
  const dir = (await importJWK(f.dirKey, 'dir')) as Uint8Array
  const keys: Record<string, [any, any]> = {
    HS256: [hs, hs],
    EdDSA: [edPriv, edPub],
    RS256: [rsaPriv, rsaPub],
    ES256: [ecPriv, ecPub],
  }

  const out: Record<string, any> = {
    keys: {
      ed25519PublicJwk: await exportJWK(edPub),
      rsaThumbprint: await calculateJwkThumbprint(f.rsa.publicJwk as any),
      p256Thumbprint: await calculateJwkThumbprint(f.p256.publicJwk as any, 'sha384'),
      dirKeyBytes: dir.length,
    },
    jws: {},
    rejections: {},
  }

  for (const alg of ALGS) {
    const [priv, pub] = keys[alg]
    const token = await new SignJWT(f.claims)
      .setProtectedHeader({ alg, typ: 'JWT', kid: `${alg.toLowerCase()}-1` })
      .setIssuedAt(f.iat)
      .setExpirationTime(f.exp)
      .sign(priv)
    const verified = await settle(async () => {
      const { payload, protectedHeader } = await jwtVerify(token, pub, { ...opts, algorithms: [alg] })
      return { payload, protectedHeader }
    })
    out.jws[alg] = { token, verified, header: decodeProtectedHeader(token), claims: decodeJwt(token) }
    out.rejections[`${alg} tampered signature`] = await settle(() => jwtVerify(tamper(token, 2), pub, opts))
  }

  const hsToken = out.jws.HS256.token
  const r = out.rejections
  r['HS256 expired'] = await settle(() => jwtVerify(hsToken, hs, { ...opts, currentDate: new Date((f.exp + 60) * 1000) }))
  r['HS256 wrong audience'] = await settle(() => jwtVerify(hsToken, hs, { ...opts, audience: 'urn:someone:else' }))
  r['HS256 alg not allowed'] = await settle(() => jwtVerify(hsToken, hs, { ...opts, algorithms: ['HS512'] }))
  r['HS256 wrong secret'] = await settle(() => jwtVerify(hsToken, new Uint8Array(32), opts))
  r['RS256 with EdDSA key'] = await settle(() => jwtVerify(out.jws.RS256.token, edPub, opts))
  r['EdDSA signed by other key'] = await settle(async () => {
    // The EdDSA token with 64 bytes of the RS256 signature in place of its own.
    const [h, p] = out.jws.EdDSA.token.split('.')
    const other = base64url.decode(out.jws.RS256.token.split('.')[2]).slice(0, 64)
    const forged = `${h}.${p}.${base64url.encode(other)}`
    return jwtVerify(forged, edPub, opts)
  })

  // JWE, alg "dir" + A256GCM: a JWT (EncryptJWT) and raw bytes (CompactEncrypt).
  const jwt = await new EncryptJWT(f.claims)
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', cty: 'JWT' })
    .setIssuedAt(f.iat)
    .setExpirationTime(f.exp)
    .encrypt(dir)
  const text = 'Grüße, agent ✓ — 🔐'
  const jwe = await new CompactEncrypt(new TextEncoder().encode(text))
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
    .encrypt(dir)
  out.jwe = {
    jwt,
    jwtDecrypted: await settle(async () => {
      const { payload, protectedHeader } = await jwtDecrypt(jwt, dir, opts)
      return { payload, protectedHeader }
    }),
    compact: jwe,
    compactDecrypted: await settle(async () => {
      const { plaintext, protectedHeader } = await compactDecrypt(jwe, dir)
      return { plaintext: new TextDecoder().decode(plaintext), protectedHeader }
    }),
    header: decodeProtectedHeader(jwe),
  }
  r['JWE tampered ciphertext'] = await settle(() => compactDecrypt(tamper(jwe, 3), dir))
  r['JWE tampered tag'] = await settle(() => compactDecrypt(tamper(jwe, 4), dir))
  r['JWE wrong key'] = await settle(() => jwtDecrypt(jwt, new Uint8Array(32).fill(7), opts))

  if (peer) {
    const verified: Record<string, any> = {}
    for (const alg of ALGS) {
      verified[alg] = await settle(async () => {
        const { payload, protectedHeader } = await jwtVerify(peer.jws[alg], keys[alg][1], { ...opts, algorithms: [alg] })
        return { payload, protectedHeader }
      })
      verified[`${alg} tampered`] = await settle(() => jwtVerify(tamper(peer.jws[alg], 2), keys[alg][1], opts))
    }
    verified.jwt = await settle(async () => {
      const { payload, protectedHeader } = await jwtDecrypt(peer.jwt, dir, opts)
      return { payload, protectedHeader }
    })
    verified.jwe = await settle(async () => {
      const { plaintext, protectedHeader } = await compactDecrypt(peer.jwe, dir)
      return { plaintext: new TextDecoder().decode(plaintext), protectedHeader }
    })
    verified['jwe tampered'] = await settle(() => compactDecrypt(tamper(peer.jwe, 3), dir))
    out.peer = verified
  }
  return out
}

export default {
  async fetch(request: Request) {
    try {
      const { fixture, peer } = await request.json()
      return Response.json(await run(fixture, peer))
    } catch (e: any) {
      return new Response(`${e?.name}: ${e?.message}\n${e?.stack}`, { status: 500 })
    }
  },
}
