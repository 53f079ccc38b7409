// The Web API surface agents see, in the shape the WHATWG standards define
// and Cloudflare Workers and Hono expect. Parsing that must match a
// standard exactly (URLs, form encoding) is delegated to the host's Rust
// implementations through `__phalanxHost`, which this script removes from
// the global object before any agent code runs.
(() => {
  "use strict";
  const host = globalThis.__phalanxHost;
  delete globalThis.__phalanxHost;
  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

  // ---- console: captured per call, drained by the host ----
  const logs = [];
  const LOG_LINES_MAX = 1000, LOG_LINE_CHARS_MAX = 8192;
  const show = (v) => {
    if (typeof v === "string") return v;
    if (v instanceof Error) return `${v.name}: ${v.message}`;
    try { return JSON.stringify(v) ?? String(v); } catch { return String(v); }
  };
  const log = (level) => (...args) => {
    if (logs.length >= LOG_LINES_MAX) return;
    logs.push([level, args.map(show).join(" ").slice(0, LOG_LINE_CHARS_MAX)]);
  };
  define("console", Object.freeze({
    log: log("log"), info: log("info"), debug: log("debug"), warn: log("warn"), error: log("error"),
  }));
  Object.defineProperty(globalThis, "__phalanxDrainLogs", { value: () => logs.splice(0, logs.length) });

  // ---- TextEncoder / TextDecoder (UTF-8) ----
  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(input = "") {
      const s = String(input), out = [];
      for (let i = 0; i < s.length; i++) {
        let c = s.charCodeAt(i);
        if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
          const d = s.charCodeAt(i + 1);
          if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++; }
          else c = 0xfffd;
        } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
        if (c < 0x80) out.push(c);
        else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
        else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
        else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      }
      return new Uint8Array(out);
    }
  }
  const toBytes = (input) => {
    if (input instanceof Uint8Array) return input;
    if (input instanceof ArrayBuffer) return new Uint8Array(input);
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    throw new TypeError("expected an ArrayBuffer or a typed array");
  };
  class TextDecoder {
    #fatal; #ignoreBOM;
    constructor(label = "utf-8", options = {}) {
      if (!["utf-8", "utf8", "unicode-1-1-utf-8"].includes(String(label).toLowerCase().trim()))
        throw new RangeError(`TextDecoder: unsupported encoding ${label}; only utf-8 is available`);
      this.#fatal = !!options.fatal; this.#ignoreBOM = !!options.ignoreBOM;
    }
    get encoding() { return "utf-8"; }
    get fatal() { return this.#fatal; }
    decode(input) {
      if (input === undefined) return "";
      const b = toBytes(input);
      let out = "", i = 0;
      if (!this.#ignoreBOM && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) i = 3;
      const bad = () => { if (this.#fatal) throw new TypeError("The encoded data was not valid utf-8"); return "\ufffd"; };
      while (i < b.length) {
        const c = b[i];
        let need = 0, cp = 0, lower = 0x80, upper = 0xbf;
        if (c < 0x80) { out += String.fromCharCode(c); i++; continue; }
        else if (c >= 0xc2 && c <= 0xdf) { need = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { need = 2; cp = c & 0xf; if (c === 0xe0) lower = 0xa0; if (c === 0xed) upper = 0x9f; }
        else if (c >= 0xf0 && c <= 0xf4) { need = 3; cp = c & 0x7; if (c === 0xf0) lower = 0x90; if (c === 0xf4) upper = 0x8f; }
        else { out += bad(); i++; continue; }
        let j = 1, ok = true;
        for (; j <= need; j++) {
          const d = b[i + j];
          if (d === undefined || d < lower || d > upper) { ok = false; break; }
          lower = 0x80; upper = 0xbf; cp = (cp << 6) | (d & 0x3f);
        }
        if (!ok) { out += bad(); i += j; continue; }
        out += String.fromCodePoint(cp); i += need + 1;
      }
      return out;
    }
  }
  define("TextEncoder", TextEncoder);
  define("TextDecoder", TextDecoder);
  const encoder = new TextEncoder(), decoder = new TextDecoder();

  // ---- URLSearchParams (application/x-www-form-urlencoded, parsed by the host) ----
  class URLSearchParams {
    #list = []; #onChange = null;
    constructor(init = "") {
      if (typeof init === "string") this.#list = host.formParse(init.startsWith("?") ? init.slice(1) : init);
      else if (init instanceof URLSearchParams) this.#list = [...init];
      else if (init != null && typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const p = [...pair];
          if (p.length !== 2) throw new TypeError("URLSearchParams: each pair must have two items");
          this.#list.push([String(p[0]), String(p[1])]);
        }
      } else if (init != null && typeof init === "object") {
        for (const k of Object.keys(init)) this.#list.push([k, String(init[k])]);
      } else this.#list = host.formParse(String(init));
    }
    static __attach(params, onChange) { params.#onChange = onChange; }
    static __replace(params, query) { params.#list = host.formParse(query); }
    #changed() { if (this.#onChange) this.#onChange(this.toString()); }
    get size() { return this.#list.length; }
    append(n, v) { this.#list.push([String(n), String(v)]); this.#changed(); }
    delete(n, v) {
      n = String(n);
      this.#list = this.#list.filter(([k, x]) => k !== n || (v !== undefined && x !== String(v)));
      this.#changed();
    }
    get(n) { n = String(n); const e = this.#list.find(([k]) => k === n); return e ? e[1] : null; }
    getAll(n) { n = String(n); return this.#list.filter(([k]) => k === n).map(([, v]) => v); }
    has(n, v) { n = String(n); return this.#list.some(([k, x]) => k === n && (v === undefined || x === String(v))); }
    set(n, v) {
      n = String(n); v = String(v);
      const i = this.#list.findIndex(([k]) => k === n);
      if (i < 0) this.#list.push([n, v]);
      else { this.#list[i] = [n, v]; this.#list = this.#list.filter(([k], j) => j <= i || k !== n); }
      this.#changed();
    }
    sort() {
      this.#list = this.#list.map((e, i) => [e, i]).sort(([a, i], [b, j]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : i - j)).map(([e]) => e);
      this.#changed();
    }
    forEach(cb, thisArg) { for (const [k, v] of this.#list) cb.call(thisArg, v, k, this); }
    *entries() { for (const [k, v] of this.#list) yield [k, v]; }
    *keys() { for (const [k] of this.#list) yield k; }
    *values() { for (const [, v] of this.#list) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return host.formSerialize(this.#list); }
  }
  const attachParams = URLSearchParams.__attach, replaceParams = URLSearchParams.__replace;
  delete URLSearchParams.__attach; delete URLSearchParams.__replace;
  define("URLSearchParams", URLSearchParams);

  // ---- URL (WHATWG URL Standard, parsed and updated by the host's `url` crate) ----
  class URL {
    #parts; #params;
    constructor(url, base) {
      this.#parts = base === undefined ? host.urlParse(String(url)) : host.urlParse(String(url), String(base));
      this.#params = new URLSearchParams(this.#parts.search);
      attachParams(this.#params, (query) => { this.#set("search", query); });
    }
    static canParse(url, base) { try { new URL(url, base); return true; } catch { return false; } }
    static parse(url, base) { try { return new URL(url, base); } catch { return null; } }
    #set(part, value) {
      this.#parts = host.urlSet(this.#parts.href, part, String(value));
      if (part !== "search") replaceParams(this.#params, this.#parts.search.slice(1));
      else replaceParams(this.#params, this.#parts.search.slice(1));
    }
    get href() { return this.#parts.href; }
    set href(v) { this.#parts = host.urlParse(String(v)); replaceParams(this.#params, this.#parts.search.slice(1)); }
    get origin() { return this.#parts.origin; }
    get protocol() { return this.#parts.protocol; } set protocol(v) { this.#set("protocol", v); }
    get username() { return this.#parts.username; } set username(v) { this.#set("username", v); }
    get password() { return this.#parts.password; } set password(v) { this.#set("password", v); }
    get host() { return this.#parts.host; } set host(v) { this.#set("host", v); }
    get hostname() { return this.#parts.hostname; } set hostname(v) { this.#set("hostname", v); }
    get port() { return this.#parts.port; } set port(v) { this.#set("port", v); }
    get pathname() { return this.#parts.pathname; } set pathname(v) { this.#set("pathname", v); }
    get search() { return this.#parts.search; } set search(v) { this.#set("search", v); }
    get hash() { return this.#parts.hash; } set hash(v) { this.#set("hash", v); }
    get searchParams() { return this.#params; }
    toString() { return this.href; }
    toJSON() { return this.href; }
  }
  define("URL", URL);

  // ---- Headers ----
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const headerName = (n) => {
    n = String(n);
    if (!TOKEN.test(n)) throw new TypeError(`Invalid header name: ${JSON.stringify(n)}`);
    return n.toLowerCase();
  };
  const headerValue = (v) => {
    v = String(v).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
    if (/[\0\r\n]/.test(v)) throw new TypeError("Invalid header value: contains NUL, CR or LF");
    return v;
  };
  class Headers {
    #map = new Map();
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

  // ---- Body, Request, Response ----
  const extractBody = (body, headers) => {
    if (body === undefined || body === null) return null;
    let bytes, type = null;
    if (typeof body === "string") { bytes = encoder.encode(body); type = "text/plain;charset=UTF-8"; }
    else if (body instanceof URLSearchParams) { bytes = encoder.encode(body.toString()); type = "application/x-www-form-urlencoded;charset=UTF-8"; }
    else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) bytes = toBytes(body).slice();
    else { bytes = encoder.encode(String(body)); type = "text/plain;charset=UTF-8"; }
    if (type && !headers.has("content-type")) headers.set("content-type", type);
    return bytes;
  };
  const BodyMixin = (Base) => class extends Base {
    #bytes = null; #used = false;
    __setBody(bytes) { this.#bytes = bytes; }
    get bodyUsed() { return this.#used; }
    get body() { return this.#bytes === null ? null : this.#bytes; }
    async #consume() {
      if (this.#used) throw new TypeError("Body has already been consumed");
      this.#used = true;
      return this.#bytes ?? new Uint8Array(0);
    }
    async arrayBuffer() { const b = await this.#consume(); return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength); }
    async bytes() { return (await this.#consume()).slice(); }
    async text() { return decoder.decode(await this.#consume()); }
    async json() { return JSON.parse(await this.text()); }
    __bytes() { return this.#bytes; }
  };
  const METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH"];
  class Request extends BodyMixin(Object) {
    #url; #method; #headers;
    constructor(input, init = {}) {
      super();
      let source = null;
      if (input instanceof Request) { source = input; this.#url = input.url; }
      else this.#url = new URL(String(input)).href;
      let method = init.method ?? source?.method ?? "GET";
      if (!TOKEN.test(method)) throw new TypeError(`Invalid method: ${method}`);
      if (METHODS.includes(method.toUpperCase())) method = method.toUpperCase();
      this.#method = method;
      this.#headers = new Headers(init.headers ?? source?.headers);
      const body = init.body !== undefined ? extractBody(init.body, this.#headers) : source?.__bytes() ?? null;
      if (body !== null && (method === "GET" || method === "HEAD")) throw new TypeError("Request with GET/HEAD method cannot have body");
      this.__setBody(body);
    }
    get url() { return this.#url; }
    get method() { return this.#method; }
    get headers() { return this.#headers; }
    get redirect() { return "follow"; }
    clone() {
      if (this.bodyUsed) throw new TypeError("Cannot clone a Request whose body was consumed");
      return new Request(this);
    }
  }
  define("Request", Request);
  class Response extends BodyMixin(Object) {
    #status; #statusText; #headers; #type = "default"; #url = "";
    constructor(body = null, init = {}) {
      super();
      const status = init.status ?? 200;
      if (!Number.isInteger(status) || status < 200 || status > 599)
        throw new RangeError(`Response status must be an integer from 200 to 599, got ${status}`);
      this.#status = status;
      this.#statusText = String(init.statusText ?? "");
      this.#headers = new Headers(init.headers);
      const bytes = body instanceof Response ? body.__bytes() : extractBody(body, this.#headers);
      if (bytes !== null && [204, 205, 304].includes(status)) throw new TypeError(`Response with status ${status} cannot have a body`);
      this.__setBody(bytes);
    }
    static json(data, init = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      return new Response(JSON.stringify(data), { ...init, headers });
    }
    static redirect(url, status = 302) {
      if (![301, 302, 303, 307, 308].includes(status)) throw new RangeError(`Invalid redirect status ${status}`);
      return new Response(null, { status, headers: { location: new URL(String(url)).href } });
    }
    static error() { const r = new Response(null, { status: 200 }); r.#type = "error"; r.#status = 0; return r; }
    get status() { return this.#status; }
    get statusText() { return this.#statusText; }
    get ok() { return this.#status >= 200 && this.#status < 300; }
    get headers() { return this.#headers; }
    get type() { return this.#type; }
    get url() { return this.#url; }
    get redirected() { return false; }
    clone() {
      if (this.bodyUsed) throw new TypeError("Cannot clone a Response whose body was consumed");
      return new Response(this.__bytes()?.slice() ?? null, { status: this.#status, statusText: this.#statusText, headers: this.#headers });
    }
  }
  define("Response", Response);


  // ---- timers (host sleep; bounded count) ----
  const TIMERS_MAX = 10000;
  let nextTimer = 1;
  const timers = new Map();
  const startTimer = (callback, delay, args, repeat) => {
    if (typeof callback !== "function") throw new TypeError("timer callback must be a function");
    if (timers.size >= TIMERS_MAX) throw new RangeError(`at most ${TIMERS_MAX} pending timers`);
    const id = nextTimer++;
    const ms = Math.max(0, Number(delay) || 0);
    const tick = () => {
      host.sleep(ms).then(() => {
        if (!timers.has(id)) return;
        if (!repeat) timers.delete(id);
        callback(...args);
        if (repeat && timers.has(id)) tick();
      });
    };
    timers.set(id, true);
    tick();
    return id;
  };
  define("setTimeout", (callback, delay = 0, ...args) => startTimer(callback, delay, args, false));
  define("setInterval", (callback, delay = 0, ...args) => startTimer(callback, delay, args, true));
  define("clearTimeout", (id) => { timers.delete(id); });
  define("clearInterval", (id) => { timers.delete(id); });

  // ---- crypto (randomness and digests from the host) ----
  const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array];
  const subtle = Object.freeze({
    async digest(algorithm, data) {
      const name = typeof algorithm === "string" ? algorithm : algorithm?.name;
      const out = host.digest(String(name), Array.from(toBytes(data)));
      return new Uint8Array(out).buffer;
    },
  });
  const hex = (b) => b.toString(16).padStart(2, "0");
  define("crypto", Object.freeze({
    subtle,
    getRandomValues(array) {
      if (!INTEGER_ARRAYS.some((T) => array instanceof T))
        throw new TypeError("getRandomValues: expected an integer typed array");
      const random = host.randomBytes(array.byteLength);
      new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(random);
      return array;
    },
    randomUUID() {
      const b = host.randomBytes(16);
      b[6] = (b[6] & 0x0f) | 0x40;
      b[8] = (b[8] & 0x3f) | 0x80;
      const h = b.map(hex);
      return `${h.slice(0, 4).join("")}-${h.slice(4, 6).join("")}-${h.slice(6, 8).join("")}-${h.slice(8, 10).join("")}-${h.slice(10).join("")}`;
    },
  }));

  // ---- structuredClone (the HTML structured clone algorithm, for the types agents use) ----
  const cloneError = (what) => new DOMException(`${what} could not be cloned`, "DataCloneError");
  define("structuredClone", (value) => {
    const seen = new Map();
    const clone = (v) => {
      if (v === null || (typeof v !== "object" && typeof v !== "function")) {
        if (typeof v === "symbol") throw cloneError("Symbol");
        return v;
      }
      if (typeof v === "function") throw cloneError("Function");
      if (seen.has(v)) return seen.get(v);
      let out;
      if (Array.isArray(v)) { out = []; seen.set(v, out); for (const [i, x] of v.entries()) out[i] = clone(x); return out; }
      if (v instanceof Date) out = new Date(v.getTime());
      else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
      else if (v instanceof ArrayBuffer) out = v.slice(0);
      else if (ArrayBuffer.isView(v)) out = new v.constructor(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
      else if (v instanceof Map) { out = new Map(); seen.set(v, out); for (const [k, x] of v) out.set(clone(k), clone(x)); return out; }
      else if (v instanceof Set) { out = new Set(); seen.set(v, out); for (const x of v) out.add(clone(x)); return out; }
      else if (v instanceof Error) { out = new (globalThis[v.name] ?? Error)(v.message); }
      else if (v instanceof Boolean || v instanceof Number || v instanceof String) out = Object(v.valueOf());
      else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
        out = {}; seen.set(v, out);
        for (const k of Object.keys(v)) out[k] = clone(v[k]);
        return out;
      } else throw cloneError(v.constructor?.name ?? "Object");
      seen.set(v, out);
      return out;
    };
    return clone(value);
  });


  // ---- Event, EventTarget, AbortController, AbortSignal ----
  class Event {
    #type; #target = null; #defaultPrevented = false; #cancelable;
    constructor(type, init = {}) {
      if (arguments.length === 0) throw new TypeError("Event: type is required");
      this.#type = String(type); this.#cancelable = !!init.cancelable;
    }
    get type() { return this.#type; }
    get target() { return this.#target; }
    get currentTarget() { return this.#target; }
    get cancelable() { return this.#cancelable; }
    get defaultPrevented() { return this.#defaultPrevented; }
    preventDefault() { if (this.#cancelable) this.#defaultPrevented = true; }
    static __setTarget(event, target) { event.#target = target; }
  }
  const setEventTarget = Event.__setTarget;
  delete Event.__setTarget;
  class EventTarget {
    #listeners = new Map();
    addEventListener(type, listener, options = {}) {
      if (listener === null || listener === undefined) return;
      const once = typeof options === "object" && !!options.once;
      const list = this.#listeners.get(type) ?? [];
      if (!list.some((l) => l.listener === listener)) list.push({ listener, once });
      this.#listeners.set(type, list);
      options?.signal?.addEventListener?.("abort", () => this.removeEventListener(type, listener));
    }
    removeEventListener(type, listener) {
      const list = this.#listeners.get(type);
      if (list) this.#listeners.set(type, list.filter((l) => l.listener !== listener));
    }
    dispatchEvent(event) {
      if (!(event instanceof Event)) throw new TypeError("dispatchEvent: expected an Event");
      setEventTarget(event, this);
      for (const { listener, once } of [...(this.#listeners.get(event.type) ?? [])]) {
        if (once) this.removeEventListener(event.type, listener);
        try { typeof listener === "function" ? listener.call(this, event) : listener.handleEvent(event); }
        catch (e) { console.error(e); }
      }
      return !event.defaultPrevented;
    }
  }
  class AbortSignal extends EventTarget {
    #aborted = false; #reason = undefined; onabort = null;
    constructor(key) { super(); if (key !== signalKey) throw new TypeError("Illegal constructor"); }
    get aborted() { return this.#aborted; }
    get reason() { return this.#reason; }
    throwIfAborted() { if (this.#aborted) throw this.#reason; }
    static __abort(signal, reason) {
      if (signal.#aborted) return;
      signal.#aborted = true;
      signal.#reason = reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason;
      const event = new Event("abort");
      if (typeof signal.onabort === "function") { try { signal.onabort(event); } catch (e) { console.error(e); } }
      signal.dispatchEvent(event);
    }
    static abort(reason) { const s = new AbortSignal(signalKey); abortSignal(s, reason); return s; }
    static timeout(ms) {
      const s = new AbortSignal(signalKey);
      host.sleep(Math.max(0, Number(ms) || 0)).then(() => abortSignal(s, new DOMException("The operation timed out", "TimeoutError")));
      return s;
    }
    static any(signals) {
      const s = new AbortSignal(signalKey);
      for (const other of signals) {
        if (other.aborted) { abortSignal(s, other.reason); break; }
        other.addEventListener("abort", () => abortSignal(s, other.reason), { once: true });
      }
      return s;
    }
  }
  const signalKey = Symbol("AbortSignal");
  const abortSignal = AbortSignal.__abort;
  delete AbortSignal.__abort;
  class AbortController {
    #signal = new AbortSignal(signalKey);
    get signal() { return this.#signal; }
    abort(reason) { abortSignal(this.#signal, reason); }
  }
  define("Event", Event);
  define("EventTarget", EventTarget);
  define("AbortSignal", AbortSignal);
  define("AbortController", AbortController);


  // ---- fetch: through the host, under the agent's policy ----
  const NULL_BODY_STATUS = [101, 103, 204, 205, 304];
  define("fetch", async (input, init = undefined) => {
    const request = input instanceof Request && init === undefined ? input : new Request(input, init);
    init?.signal?.throwIfAborted?.();
    const headers = [...request.headers];
    const bytes = request.__bytes();
    const out = bytes === null
      ? await host.fetch(request.url, request.method, headers)
      : await host.fetch(request.url, request.method, headers, Array.from(bytes));
    if (out.error !== undefined) throw new TypeError(`fetch to ${request.url} failed: ${out.error}`);
    const body = NULL_BODY_STATUS.includes(out.status) ? null : out.body;
    return new Response(body, { status: out.status, statusText: out.statusText, headers: out.headers });
  });

  // ---- how the host calls `fetch(request, env, ctx)` ----
  Object.defineProperty(globalThis, "__phalanxFetch", {
    value: async (agent, url, method, headers, body, env) => {
      const request = new Request(url, { method, headers, body: body ?? undefined });
      const waitUntil = [];
      const ctx = { waitUntil: (p) => { waitUntil.push(Promise.resolve(p)); }, passThroughOnException() {} };
      const response = await agent.fetch(request, env, ctx);
      if (!(response instanceof Response)) throw new TypeError("fetch() must return a Response (or a Promise of one)");
      const bytes = response.__bytes();
      return { status: response.status, headers: [...response.headers], body: bytes === null ? [] : Array.from(bytes) };
    },
  });
})();
