// The Web API surface agents see, in the shape the WHATWG standards define
// and Cloudflare Workers and Hono expect. Parsing that must match a
// standard exactly (URLs, form encoding) is delegated to the host's Rust
// implementations through `__phalanxHost`, which this script removes from
// the global object before any agent code runs.
const host = globalThis.__phalanxHost;
delete globalThis.__phalanxHost;
const define = (name, value) =>
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

// ---- console: captured per call, drained by the host ----
// Per call: at most LOG_LINES_MAX lines and LOG_CHARS_MAX characters in
// all; past either, one notice line says how much was dropped.
const logs = [];
const LOG_LINES_MAX = 1000, LOG_LINE_CHARS_MAX = 8192, LOG_CHARS_MAX = 256 * 1024;
let logChars = 0, logsDropped = 0;
const show = (v) => {
  if (typeof v === "string") return v;
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  try { return JSON.stringify(v) ?? String(v); } catch { return String(v); }
};
const log = (level) => (...args) => {
  if (logsDropped > 0 || logs.length >= LOG_LINES_MAX || logChars >= LOG_CHARS_MAX) { logsDropped++; return; }
  const line = args.map(show).join(" ").slice(0, Math.min(LOG_LINE_CHARS_MAX, LOG_CHARS_MAX - logChars));
  logChars += line.length;
  logs.push([level, line]);
};
const pendingLogs = () => logs.length > 0 || logsDropped > 0;
const drainLogs = () => {
  const out = logs.splice(0, logs.length);
  if (logsDropped > 0)
    out.push(["warn", `[phalanx] console output over the limit (${LOG_LINES_MAX} lines, ${LOG_CHARS_MAX} characters per call): ${logsDropped} more lines dropped`]);
  logChars = 0; logsDropped = 0;
  return out;
};
define("console", Object.freeze({
  log: log("log"), info: log("info"), debug: log("debug"), warn: log("warn"), error: log("error"),
}));
Object.defineProperty(globalThis, "__phalanxDrainLogs", { value: drainLogs });

// ---- TextEncoder / TextDecoder (UTF-8) ----
class TextEncoder {
  get encoding() { return "utf-8"; }
  // Lone surrogates become U+FFFD, as the Encoding Standard says; the host encodes.
  encode(input = "") { return host.utf8Encode(String(input).toWellFormed()); }
  encodeInto(input, destination) {
    const bytes = this.encode(input);
    let written = bytes.length;
    if (written > destination.length) {
      written = destination.length;
      while (written > 0 && (bytes[written] & 0xc0) === 0x80) written--;
    }
    destination.set(bytes.subarray(0, written));
    return { read: decoder.decode(bytes.subarray(0, written)).length, written };
  }
}
const toBytes = (input) => {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new TypeError("expected an ArrayBuffer or a typed array");
};
class TextDecoder {
  #fatal; #ignoreBOM; #pending = null; #started = false;
  constructor(label = "utf-8", options = {}) {
    if (!["utf-8", "utf8", "unicode-1-1-utf-8"].includes(String(label).toLowerCase().trim()))
      throw new RangeError(`TextDecoder: unsupported encoding ${label}; only utf-8 is available`);
    this.#fatal = !!options?.fatal; this.#ignoreBOM = !!options?.ignoreBOM;
  }
  get encoding() { return "utf-8"; }
  get fatal() { return this.#fatal; }
  get ignoreBOM() { return this.#ignoreBOM; }
  // The WHATWG UTF-8 decoder (the host's, which replaces maximal invalid
  // subparts exactly as the Encoding Standard says), with streaming: an
  // incomplete sequence at the end of a `stream: true` chunk waits for the next.
  decode(input = undefined, options = {}) {
    let b = input === undefined ? new Uint8Array(0) : toBytes(input);
    if (this.#pending !== null) {
      const joined = new Uint8Array(this.#pending.length + b.length);
      joined.set(this.#pending); joined.set(b, this.#pending.length);
      b = joined; this.#pending = null;
    }
    const stream = !!options?.stream;
    if (stream) {
      let k = b.length - 1, continuation = 0;
      while (k >= 0 && continuation < 3 && (b[k] & 0xc0) === 0x80) { k--; continuation++; }
      if (k >= 0) {
        const c = b[k];
        const need = c >= 0xf0 && c <= 0xf4 ? 3 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xc2 && c <= 0xdf ? 1 : 0;
        if (need > continuation) { this.#pending = b.slice(k); b = b.subarray(0, k); }
      }
    }
    if (!this.#started && !this.#ignoreBOM && b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) b = b.subarray(3);
    if (b.length > 0 || !stream) this.#started = stream;
    if (b.length === 0) return "";
    const text = host.utf8Decode(b, this.#fatal);
    if (typeof text !== "string") throw new TypeError("The encoded data was not valid utf-8");
    return text;
  }
}
define("TextEncoder", TextEncoder);
define("TextDecoder", TextDecoder);
const encoder = new TextEncoder(), decoder = new TextDecoder();

// ---- Headers ----
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Validated names and values are remembered (bounded): agents use the same
// few headers over and over, and validation is the costly part of Headers.
const CACHE_MAX = 512;
const knownNames = new Map(), knownValues = new Map();
const remember = (cache, key, value) => {
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(key, value);
  return value;
};
const headerName = (n) => {
  const known = knownNames.get(n);
  if (known !== undefined) return known;
  const name = String(n);
  if (!TOKEN.test(name)) throw new TypeError(`Invalid header name: ${JSON.stringify(name)}`);
  return typeof n === "string" ? remember(knownNames, n, name.toLowerCase()) : name.toLowerCase();
};
const headerValue = (v) => {
  if (typeof v === "string") {
    const known = knownValues.get(v);
    if (known !== undefined) return known;
  }
  const value = String(v).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
  if (/[\0\r\n]/.test(value)) throw new TypeError("Invalid header value: contains NUL, CR or LF");
  return typeof v === "string" && v.length <= 256 ? remember(knownValues, v, value) : value;
};
let trustedHeaders, flatHeaders, setTrusted;
class Headers {
  #map = new Map();
  static {
    // From the host's flat [name, value, ...] list of already valid, lowercased names.
    trustedHeaders = (flat) => {
      const h = new Headers(), map = h.#map;
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const l = map.get(flat[i]);
        if (l) l.push(flat[i + 1]); else map.set(flat[i], [flat[i + 1]]);
      }
      return h;
    };
    // To the host: flat [name, value, ...], sorted by name.
    flatHeaders = (h) => {
      const map = h.#map, out = [];
      const names = map.size > 1 ? [...map.keys()].sort() : map.keys();
      for (const n of names) {
        const values = map.get(n);
        if (n === "set-cookie") for (const v of values) out.push(n, v);
        else out.push(n, values.length === 1 ? values[0] : values.join(", "));
      }
      return out;
    };
    // A header the prelude itself sets (name and value known valid).
    setTrusted = (h, name, value) => { h.#map.set(name, [value]); };
  }
  constructor(init) {
    if (init instanceof Headers) { for (const [k, vs] of init.#map) this.#map.set(k, [...vs]); }
    else if (init != null && typeof init[Symbol.iterator] === "function") {
      for (const pair of init) {
        const p = [...pair];
        if (p.length !== 2) throw new TypeError("Headers: each pair must have two items");
        this.append(p[0], p[1]);
      }
    } else if (init != null && typeof init === "object") { for (const k of Object.keys(init)) this.append(k, init[k]); }
    else if (init !== undefined && init !== null) throw new TypeError("Headers: invalid init");
  }
  append(n, v) { n = headerName(n); v = headerValue(v); const l = this.#map.get(n); if (l) l.push(v); else this.#map.set(n, [v]); }
  set(n, v) { this.#map.set(headerName(n), [headerValue(v)]); }
  get(n) { const l = this.#map.get(headerName(n)); return l ? l.join(", ") : null; }
  getSetCookie() { return [...(this.#map.get("set-cookie") ?? [])]; }
  has(n) { return this.#map.has(headerName(n)); }
  delete(n) { this.#map.delete(headerName(n)); }
  *entries() {
    for (const n of [...this.#map.keys()].sort()) {
      if (n === "set-cookie") for (const v of this.#map.get(n)) yield [n, v];
      else yield [n, this.#map.get(n).join(", ")];
    }
  }
  *keys() { for (const [k] of this.entries()) yield k; }
  *values() { for (const [, v] of this.entries()) yield v; }
  forEach(cb, thisArg) { for (const [k, v] of this.entries()) cb.call(thisArg, v, k, this); }
  [Symbol.iterator]() { return this.entries(); }
}
define("Headers", Headers);
