// ---- crypto.subtle (the Web Cryptography API) ----
// Arguments are normalized here; every operation runs on the host
// (`subtle.rs`, on RustCrypto). A CryptoKey holds an opaque host handle in
// a private field: its material never enters this heap unless the key is
// extractable and exported.
const { notInCommand, resolved, rejected } = internals;
const KEY_TOKEN = Symbol("CryptoKey");
let keyHandle; // a CryptoKey's handle, or null for anything else
class CryptoKey {
  #handle; #type; #extractable; #algorithm; #usages;
  constructor(token, [handle, type, extractable, algorithm, usages]) {
    if (token !== KEY_TOKEN) throw new TypeError("Illegal constructor");
    this.#handle = handle; this.#type = type; this.#extractable = extractable;
    if (algorithm.hash) Object.freeze(algorithm.hash);
    this.#algorithm = Object.freeze(algorithm);
    this.#usages = Object.freeze(usages);
  }
  get type() { return this.#type; }
  get extractable() { return this.#extractable; }
  get algorithm() { return this.#algorithm; }
  get usages() { return this.#usages; }
  get [Symbol.toStringTag]() { return "CryptoKey"; }
  static { keyHandle = (key) => (key !== null && typeof key === "object" && #handle in key) ? key.#handle : null; }
}
const handleOf = (key, what = "key") => {
  const handle = keyHandle(key);
  if (handle === null) throw new TypeError(`${what} is not a CryptoKey`);
  return handle;
};
const newKey = (parts) => new CryptoKey(KEY_TOKEN, parts);
const newKeyOrPair = (result) => Array.isArray(result)
  ? newKey(result)
  : { publicKey: newKey(result.publicKey), privateKey: newKey(result.privateKey) };

// Host errors carry the spec's names; they become DOMExceptions (or TypeErrors).
const rethrow = (e) => {
  if (e !== null && typeof e === "object" && e.webcrypto === true) {
    throw e.name === "TypeError" ? new TypeError(e.message) : new DOMException(e.message, e.name);
  }
  throw e;
};
const hostCall = (f) => {
  try { host.cryptoBudget(); return f(); } catch (e) { rethrow(e); }
};

// A view of a BufferSource's bytes. The spec copies them because its
// operations run in parallel; here the host reads them during the call,
// before any JavaScript runs again, so a view is as good as a copy.
const copyBytes = (what, value) => {
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return toBytes(value);
  throw new TypeError(`${what} must be an ArrayBuffer or an ArrayBufferView`);
};
const unsignedLong = (what, value) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 0xffffffff) throw new TypeError(`${what} is out of range for an unsigned long`);
  return Math.trunc(n);
};
const BUFFER_MEMBERS = ["iv", "counter", "additionalData", "label", "salt", "info", "publicExponent"];
const NUMBER_MEMBERS = ["length", "modulusLength", "tagLength", "iterations", "saltLength"];
// An algorithm dictionary, normalized for the host.
const normalize = (algorithm) => {
  if (typeof algorithm === "string") return { name: algorithm };
  if (algorithm === null || typeof algorithm !== "object") throw new TypeError("Algorithm: expected a string or an object");
  if (algorithm.name === undefined) throw new TypeError("Algorithm: name is required");
  const out = { name: String(algorithm.name) };
  const hash = algorithm.hash;
  if (hash !== undefined) {
    if (typeof hash === "string") out.hash = hash;
    else if (hash !== null && typeof hash === "object" && hash.name !== undefined) out.hash = String(hash.name);
    else throw new TypeError("Algorithm: hash must be a string or an object with a name");
  }
  if (algorithm.namedCurve !== undefined) out.namedCurve = String(algorithm.namedCurve);
  for (const m of NUMBER_MEMBERS) if (algorithm[m] !== undefined && algorithm[m] !== null) out[m] = unsignedLong(`algorithm.${m}`, algorithm[m]);
  for (const m of BUFFER_MEMBERS) if (algorithm[m] !== undefined) out[m] = copyBytes(`algorithm.${m}`, algorithm[m]);
  if (algorithm.public !== undefined) out.public = handleOf(algorithm.public, "algorithm.public");
  return out;
};
const usageList = (usages) => {
  if (usages === null || typeof usages !== "object" || typeof usages[Symbol.iterator] !== "function") throw new TypeError("keyUsages must be a sequence");
  return Array.from(usages, String);
};
const isNamed = (a, ...names) => { const upper = a.name.toUpperCase(); return names.includes(upper); };
// Operations of host.cryptoOperate (which checks the CPU budget itself).
const ENCRYPT = 0, DECRYPT = 1, SIGN = 2, VERIFY = 3;
const operate = (op, a, key, data, signature) => {
  try { return host.cryptoOperate(op, a, handleOf(key), copyBytes("data", data), signature); } catch (e) { rethrow(e); }
};
// Operations that need randomness cannot run in command(): it must give
// the same answer on every worker.
const randomized = (what) => notInCommand(`crypto.subtle.${what}`);

class SubtleCrypto {
  constructor(token) { if (token !== KEY_TOKEN) throw new TypeError("Illegal constructor"); }
  // The hot operations settle a promise without an async function's frame.
  digest(algorithm, data) {
    try {
      const a = normalize(algorithm);
      return resolved(hostCall(() => host.digest(a.name, copyBytes("data", data))));
    } catch (e) { return rejected(e); }
  }
  encrypt(algorithm, key, data) {
    try {
      const a = normalize(algorithm);
      if (isNamed(a, "RSA-OAEP")) randomized("encrypt with RSA-OAEP");
      return resolved(operate(ENCRYPT, a, key, data));
    } catch (e) { return rejected(e); }
  }
  decrypt(algorithm, key, data) {
    try { return resolved(operate(DECRYPT, normalize(algorithm), key, data)); } catch (e) { return rejected(e); }
  }
  sign(algorithm, key, data) {
    try {
      const a = normalize(algorithm);
      if (isNamed(a, "ECDSA", "RSA-PSS")) randomized(`sign with ${a.name}`);
      return resolved(operate(SIGN, a, key, data));
    } catch (e) { return rejected(e); }
  }
  verify(algorithm, key, signature, data) {
    try { return resolved(operate(VERIFY, normalize(algorithm), key, data, copyBytes("signature", signature))); }
    catch (e) { return rejected(e); }
  }
  async generateKey(algorithm, extractable, keyUsages) {
    const a = normalize(algorithm);
    randomized("generateKey");
    return newKeyOrPair(hostCall(() => host.cryptoGenerate(a, !!extractable, usageList(keyUsages))));
  }
  async importKey(format, keyData, algorithm, extractable, keyUsages) {
    format = String(format);
    let data;
    if (format === "jwk") {
      if (keyData === null || typeof keyData !== "object" || ArrayBuffer.isView(keyData) || keyData instanceof ArrayBuffer) throw new TypeError("importKey: a jwk must be a JsonWebKey object");
      data = JSON.stringify(keyData);
    } else data = copyBytes("keyData", keyData);
    const a = normalize(algorithm);
    return newKey(hostCall(() => host.cryptoImport(format, data, a, !!extractable, usageList(keyUsages))));
  }
  async exportKey(format, key) {
    const out = hostCall(() => host.cryptoExport(String(format), handleOf(key)));
    return typeof out === "string" ? JSON.parse(out) : out;
  }
  async deriveBits(algorithm, baseKey, length = null) {
    const a = normalize(algorithm);
    const bits = length === null || length === undefined ? undefined : unsignedLong("length", length);
    return hostCall(() => host.cryptoDeriveBits(a, handleOf(baseKey, "baseKey"), bits));
  }
  async deriveKey(algorithm, baseKey, derivedKeyType, extractable, keyUsages) {
    const a = normalize(algorithm), derived = normalize(derivedKeyType);
    return newKey(hostCall(() => host.cryptoDeriveKey(a, handleOf(baseKey, "baseKey"), derived, !!extractable, usageList(keyUsages))));
  }
  async wrapKey(format, key, wrappingKey, wrapAlgorithm) {
    const a = normalize(wrapAlgorithm);
    if (isNamed(a, "RSA-OAEP")) randomized("wrapKey with RSA-OAEP");
    return hostCall(() => host.cryptoWrap(String(format), handleOf(key), handleOf(wrappingKey, "wrappingKey"), a));
  }
  async unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm, extractable, keyUsages) {
    const a = normalize(unwrapAlgorithm), imported = normalize(unwrappedKeyAlgorithm);
    return newKey(hostCall(() => host.cryptoUnwrap(String(format), copyBytes("wrappedKey", wrappedKey),
      handleOf(unwrappingKey, "unwrappingKey"), a, imported, { extractable: !!extractable, usages: usageList(keyUsages) })));
  }
  // Cloudflare Workers' extension: compares in time independent of the contents.
  timingSafeEqual(a, b) {
    return hostCall(() => host.timingSafeEqual(copyBytes("a", a), copyBytes("b", b)));
  }
  get [Symbol.toStringTag]() { return "SubtleCrypto"; }
}
const subtle = new SubtleCrypto(KEY_TOKEN);
define("CryptoKey", CryptoKey);
define("SubtleCrypto", SubtleCrypto);
