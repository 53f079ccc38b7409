// ---- Blob, File, FormData ----
const EMPTY = new Uint8Array(0);
const concatBytes = (chunks, total) => {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total ?? chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.byteLength; }
  return out;
};
const blobBytes = new WeakMap();
class Blob {
  #type;
  constructor(parts = [], options = {}) {
    const chunks = [];
    for (const part of parts) {
      if (part instanceof Blob) chunks.push(blobBytes.get(part));
      else if (part instanceof ArrayBuffer || ArrayBuffer.isView(part)) chunks.push(toBytes(part).slice());
      else chunks.push(encoder.encode(String(part)));
    }
    blobBytes.set(this, concatBytes(chunks.length ? chunks : [EMPTY]));
    const type = String(options?.type ?? "");
    this.#type = /^[\x20-\x7e]*$/.test(type) ? type.toLowerCase() : "";
  }
  get size() { return blobBytes.get(this).byteLength; }
  get type() { return this.#type; }
  async arrayBuffer() { return blobBytes.get(this).slice().buffer; }
  async bytes() { return blobBytes.get(this).slice(); }
  async text() { return decoder.decode(blobBytes.get(this)); }
  slice(start = 0, end = undefined, type = "") {
    const b = blobBytes.get(this);
    return new Blob([b.subarray(...[start, end ?? b.byteLength].map((i) => (i < 0 ? Math.max(b.byteLength + i, 0) : Math.min(i, b.byteLength))))], { type });
  }
  stream() { return bytesStream(blobBytes.get(this)); }
  get [Symbol.toStringTag]() { return "Blob"; }
}
class File extends Blob {
  #name; #lastModified;
  constructor(parts, name, options = {}) {
    if (arguments.length < 2) throw new TypeError("File: a name is required");
    super(parts, options);
    this.#name = String(name);
    this.#lastModified = options?.lastModified === undefined ? Date.now() : Number(options.lastModified);
  }
  get name() { return this.#name; }
  get lastModified() { return this.#lastModified; }
  get [Symbol.toStringTag]() { return "File"; }
}
define("Blob", Blob);
define("File", File);

class FormData {
  #list = [];
  constructor(form) { if (form !== undefined) throw new TypeError("FormData: HTML forms do not exist here"); }
  static #entry(name, value, filename) {
    if (value instanceof Blob) {
      const file = value instanceof File && filename === undefined
        ? value
        : new File([value], filename ?? (value instanceof File ? value.name : "blob"), { type: value.type });
      return [String(name), file];
    }
    return [String(name), String(value)];
  }
  append(name, value, filename) { this.#list.push(FormData.#entry(name, value, filename)); }
  set(name, value, filename) {
    const entry = FormData.#entry(name, value, filename);
    const i = this.#list.findIndex(([k]) => k === entry[0]);
    if (i < 0) this.#list.push(entry);
    else { this.#list[i] = entry; this.#list = this.#list.filter(([k], j) => j <= i || k !== entry[0]); }
  }
  get(name) { const e = this.#list.find(([k]) => k === String(name)); return e ? e[1] : null; }
  getAll(name) { return this.#list.filter(([k]) => k === String(name)).map(([, v]) => v); }
  has(name) { return this.#list.some(([k]) => k === String(name)); }
  delete(name) { this.#list = this.#list.filter(([k]) => k !== String(name)); }
  *entries() { yield* this.#list.map(([k, v]) => [k, v]); }
  *keys() { for (const [k] of this.#list) yield k; }
  *values() { for (const [, v] of this.#list) yield v; }
  forEach(cb, thisArg) { for (const [k, v] of this.#list) cb.call(thisArg, v, k, this); }
  [Symbol.iterator]() { return this.entries(); }
}
define("FormData", FormData);

// multipart/form-data (RFC 7578), encoded and parsed here.
const MULTIPART_PARTS_MAX = 1000;
const quoteParam = (s) => s.replace(/\r/g, "%0D").replace(/\n/g, "%0A").replace(/"/g, "%22");
const encodeMultipart = (form) => {
  const boundary = `----phalanx${crypto.randomUUID().replace(/-/g, "")}`;
  const chunks = [];
  for (const [name, value] of form) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${quoteParam(name)}"`;
    if (typeof value === "string") {
      chunks.push(encoder.encode(`${head}\r\n\r\n${value.replace(/\r(?!\n)|(?<!\r)\n/g, "\r\n")}\r\n`));
    } else {
      head += `; filename="${quoteParam(value.name)}"\r\nContent-Type: ${value.type || "application/octet-stream"}\r\n\r\n`;
      chunks.push(encoder.encode(head), blobBytes.get(value), encoder.encode("\r\n"));
    }
  }
  chunks.push(encoder.encode(`--${boundary}--\r\n`));
  return [concatBytes(chunks), `multipart/form-data; boundary=${boundary}`];
};
const indexOfBytes = (haystack, needle, from) => {
  const first = needle[0], last = haystack.length - needle.length;
  outer: for (let i = haystack.indexOf(first, from); i !== -1 && i <= last; i = haystack.indexOf(first, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
};
const headerParam = (header, name) => {
  const m = new RegExp(`;\\s*${name}="((?:[^"\\\\]|\\\\.)*)"|;\\s*${name}=([^;\\s]*)`, "i").exec(header);
  return m ? (m[1] ?? m[2]).replace(/\\(.)/g, "$1") : null;
};
const parseMultipart = (bytes, contentType) => {
  const boundary = headerParam(contentType, "boundary");
  if (!boundary) throw new TypeError("multipart/form-data without a boundary");
  const delimiter = encoder.encode(`--${boundary}`);
  const form = new FormData();
  let at = indexOfBytes(bytes, delimiter, 0);
  if (at < 0) throw new TypeError("multipart body has no parts");
  for (let parts = 0; ; parts++) {
    at += delimiter.length;
    if (bytes[at] === 0x2d && bytes[at + 1] === 0x2d) return form; // closing delimiter
    if (parts >= MULTIPART_PARTS_MAX) throw new RangeError(`multipart body has more than ${MULTIPART_PARTS_MAX} parts`);
    at += 2; // CRLF after the delimiter
    const headEnd = indexOfBytes(bytes, encoder.encode("\r\n\r\n"), at);
    if (headEnd < 0) throw new TypeError("multipart part without a header end");
    const next = indexOfBytes(bytes, encoder.encode(`\r\n--${boundary}`), headEnd + 4);
    if (next < 0) throw new TypeError("multipart body is truncated");
    const headers = new Headers();
    for (const line of decoder.decode(bytes.subarray(at, headEnd)).split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1));
    }
    const disposition = headers.get("content-disposition") ?? "";
    const name = headerParam(disposition, "name");
    if (name === null) throw new TypeError("multipart part without a name");
    const content = bytes.subarray(headEnd + 4, next);
    const filename = headerParam(disposition, "filename");
    if (filename === null) form.append(name, decoder.decode(content));
    else form.append(name, new File([content], filename, { type: headers.get("content-type") ?? "" }));
    at = next + 2;
  }
};

// ---- Body (shared by Request and Response) ----
// A body is known bytes (`bytes`), a stream (`stream`), or null. A stream
// made from known bytes remembers them, so re-wrapping a body
// (`new Response(res.body, res)`) does not go through the stream machinery.
const streamBytes = new WeakMap();
const bytesStream = (bytes) => {
  const stream = new ReadableStream({ start(c) { if (bytes.byteLength) c.enqueue(bytes); c.close(); } });
  streamBytes.set(stream, bytes);
  return stream;
};
const chunkBytes = (chunk) => {
  if (chunk instanceof Uint8Array) return chunk;
  if (chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)) return toBytes(chunk);
  if (typeof chunk === "string") return encoder.encode(chunk);
  throw new TypeError("a body stream chunk must be a Uint8Array (or an ArrayBuffer view)");
};
// [bytes | null, stream | null] from a BodyInit, setting the content type.
const extractBody = (body, headers) => {
  if (body === undefined || body === null) return [null, null];
  let bytes = null, stream = null, type = null;
  if (typeof body === "string") { bytes = encoder.encode(body); type = "text/plain;charset=UTF-8"; }
  else if (body instanceof ReadableStream) {
    if (body.locked || streamDisturbed(body)) throw new TypeError("the body stream is locked or was already read");
    const known = streamBytes.get(body);
    if (known !== undefined) bytes = known; else stream = body;
  }
  else if (body instanceof URLSearchParams) { bytes = encoder.encode(body.toString()); type = "application/x-www-form-urlencoded;charset=UTF-8"; }
  else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) bytes = toBytes(body).slice();
  else if (body instanceof Blob) { bytes = blobBytes.get(body); type = body.type || null; }
  else if (body instanceof FormData) [bytes, type] = encodeMultipart(body);
  else { bytes = encoder.encode(String(body)); type = "text/plain;charset=UTF-8"; }
  if (type && !headers.has("content-type")) setTrusted(headers, "content-type", type);
  return [bytes, stream];
};
const readAll = async (stream) => {
  const reader = stream.getReader(), chunks = [];
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const bytes = chunkBytes(value);
    chunks.push(bytes); total += bytes.byteLength;
  }
  return chunks.length ? concatBytes(chunks, total) : EMPTY;
};
let bodyOf, setBody, tee;
class Body {
  #bytes = null; #stream = null; #used = false;
  static {
    bodyOf = (b) => {
      if (b.#stream === null) return [b.#bytes, null];
      const known = streamBytes.get(b.#stream);
      return known !== undefined && !streamDisturbed(b.#stream) ? [known, null] : [null, b.#stream];
    };
    setBody = (b, [bytes, stream]) => { b.#bytes = bytes; b.#stream = stream; };
    // The remaining body for a copy (clone): tees a stream.
    tee = (b) => {
      if (b.bodyUsed) throw new TypeError("Cannot clone a body that was consumed");
      const [bytes, stream] = bodyOf(b);
      if (stream === null) return [bytes, null];
      const [one, two] = stream.tee();
      b.#stream = one;
      return [null, two];
    };
  }
  get body() {
    if (this.#stream === null && this.#bytes !== null) this.#stream = bytesStream(this.#bytes);
    return this.#stream;
  }
  get bodyUsed() { return this.#used || (this.#stream !== null && streamDisturbed(this.#stream)); }
  async #consume() {
    if (this.bodyUsed) throw new TypeError("Body has already been consumed");
    if (this.#stream?.locked) throw new TypeError("the body stream is locked");
    this.#used = true;
    const [bytes, stream] = bodyOf(this);
    if (stream === null) return bytes ?? EMPTY;
    return readAll(stream);
  }
  // The remaining body for a copy (clone): tees a stream.
  __tee() {
    if (this.bodyUsed) throw new TypeError("Cannot clone a body that was consumed");
    const [bytes, stream] = bodyOf(this);
    if (stream === null) return [bytes, null];
    const [a, b] = stream.tee();
    this.#stream = a;
    return [null, b];
  }
  async arrayBuffer() { const b = await this.#consume(); return b.slice().buffer; }
  async bytes() { return (await this.#consume()).slice(); }
  async text() { return decoder.decode(await this.#consume()); }
  async json() { return JSON.parse(await this.text()); }
  async blob() { return new Blob([await this.#consume()], { type: this.headers.get("content-type") ?? "" }); }
  async formData() {
    const type = this.headers.get("content-type") ?? "";
    const bytes = await this.#consume();
    if (/^multipart\/form-data/i.test(type)) return parseMultipart(bytes, type);
    if (/^application\/x-www-form-urlencoded/i.test(type)) {
      const form = new FormData();
      for (const [k, v] of new URLSearchParams(decoder.decode(bytes))) form.append(k, v);
      return form;
    }
    throw new TypeError(`cannot parse a body of type "${type}" as form data`);
  }
}

// ---- Request ----
const METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH"];
const hostKey = Symbol("host request");
const neverAborted = () => new AbortController().signal;
class Request extends Body {
  #url; #method; #headers; #signal;
  constructor(input, init = {}) {
    super();
    if (input === hostKey) {
      // Built by the host from an already validated HTTP request.
      this.#url = init.url; this.#method = init.method; this.#headers = init.headers; this.#signal = null;
      setBody(this, [init.body, null]);
      return;
    }
    init ??= {};
    let source = null;
    if (input instanceof Request) { source = input; this.#url = input.url; }
    else this.#url = new URL(String(input)).href;
    let method = init.method ?? source?.method ?? "GET";
    if (!TOKEN.test(method)) throw new TypeError(`Invalid method: ${method}`);
    if (METHODS.includes(method.toUpperCase())) method = method.toUpperCase();
    this.#method = method;
    this.#headers = new Headers(init.headers ?? source?.headers);
    this.#signal = init.signal ?? source?.signal ?? null;
    const body = init.body !== undefined ? extractBody(init.body, this.#headers) : source !== null ? tee(source) : [null, null];
    if ((body[0] !== null || body[1] !== null) && (method === "GET" || method === "HEAD"))
      throw new TypeError("Request with GET/HEAD method cannot have body");
    setBody(this, body);
  }
  get url() { return this.#url; }
  get method() { return this.#method; }
  get headers() { return this.#headers; }
  get signal() { return (this.#signal ??= neverAborted()); }
  get redirect() { return "manual"; }
  get cache() { return "default"; }
  get credentials() { return "same-origin"; }
  get mode() { return "cors"; }
  get referrer() { return "about:client"; }
  get integrity() { return ""; }
  get keepalive() { return false; }
  clone() { return new Request(this); }
}
define("Request", Request);

// ---- Response ----
const NULL_BODY_STATUS = [101, 103, 204, 205, 304];
class Response extends Body {
  #status; #statusText; #headers; #type = "default"; #url = "";
  constructor(body = null, init = undefined) {
    super();
    const status = init?.status ?? 200;
    if (status !== 200 && (!Number.isInteger(status) || status < 200 || status > 599))
      throw new RangeError(`Response status must be an integer from 200 to 599, got ${status}`);
    this.#status = status;
    const statusText = init?.statusText;
    this.#statusText = statusText === undefined ? "" : String(statusText);
    this.#headers = new Headers(init?.headers);
    if (body === null || body === undefined) return;
    const extracted = extractBody(body, this.#headers);
    if (NULL_BODY_STATUS.includes(status)) throw new TypeError(`Response with status ${status} cannot have a body`);
    setBody(this, extracted);
  }
  static json(data, init = undefined) {
    const text = JSON.stringify(data);
    if (text === undefined) throw new TypeError("Response.json: the value cannot be serialized as JSON");
    const response = new Response(null, init);
    if (NULL_BODY_STATUS.includes(response.#status)) throw new TypeError(`Response with status ${response.#status} cannot have a body`);
    if (!response.#headers.has("content-type")) setTrusted(response.#headers, "content-type", "application/json");
    setBody(response, [encoder.encode(text), null]);
    return response;
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
    const copy = new Response(null, { status: this.#status, statusText: this.#statusText, headers: this.#headers });
    setBody(copy, tee(this));
    return copy;
  }
  // A response the host received for the agent's own fetch.
  static __fromHost(status, statusText, headers, body, url) {
    const r = new Response(null, { status: status < 200 ? 200 : status, statusText, headers });
    r.#status = status; r.#url = url;
    setBody(r, [null, body]);
    return r;
  }
}
const responseFromHost = Response.__fromHost;
delete Response.__fromHost;
define("Response", Response);

// ---- fetch: through the host, under the agent's policy; bodies stream both ways ----
define("fetch", async (input, init = undefined) => {
  const request = input instanceof Request && init === undefined ? input : new Request(input, init);
  const signal = init?.signal ?? (input instanceof Request ? input.signal : null);
  signal?.throwIfAborted?.();
  const [known, stream] = bodyOf(request);
  const bytes = stream !== null ? await readAll(stream) : known;
  const out = await host.fetch(request.url, request.method, flatHeaders(request.headers), bytes ?? null);
  if (out.error !== undefined) throw new TypeError(`fetch to ${request.url} failed: ${out.error}`);
  let id = out.body;
  const release = () => { if (id !== null) { host.fetchClose(id); id = null; } };
  signal?.addEventListener?.("abort", release, { once: true });
  const body = NULL_BODY_STATUS.includes(out.status) || request.method === "HEAD"
    ? (release(), null)
    : new ReadableStream({
      type: "bytes",
      async pull(controller) {
        if (id === null) { controller.error(signal?.reason ?? new TypeError("the response body was released")); return; }
        const chunk = await host.fetchRead(id);
        if (chunk === null) { id = null; controller.close(); }
        else controller.enqueue(chunk);
      },
      cancel() { release(); },
    });
  return responseFromHost(out.status, out.statusText, trustedHeaders(out.headers), body, request.url);
});

// ---- how the host calls the agent ----
// The `ctx` argument of `fetch(request, env, ctx)`.
class ExecutionContext {
  #pending;
  constructor(pending) { this.#pending = pending; }
  waitUntil(promise) { this.#pending.push(Promise.resolve(promise)); }
  passThroughOnException() {}
  get props() { return {}; }
}
let agent = null;
Object.defineProperty(globalThis, "__phalanxSetAgent", { value: (a) => { agent = a; } });
Object.defineProperty(globalThis, "__phalanxInvoke", {
  value: async (method, argument) => {
    const result = JSON.stringify(await agent[method](JSON.parse(argument)));
    drainLogs();
    return result;
  },
});
// Runs `fetch(request, env, ctx)` and hands the response to the host:
// known bytes in one piece, a stream chunk by chunk as the agent produces
// it. Promises given to `ctx.waitUntil` are awaited after the response.
Object.defineProperty(globalThis, "__phalanxServe", {
  value: async (url, method, headers, body, env) => {
    const request = new Request(hostKey, { url, method, headers: trustedHeaders(headers), body: body ?? null });
    const waitUntil = [];
    const ctx = new ExecutionContext(waitUntil);
    try {
      const response = await agent.fetch(request, env, ctx);
      if (!(response instanceof Response)) throw new TypeError("fetch() must return a Response (or a Promise of one)");
      const [bytes, stream] = bodyOf(response);
      host.respond(response.status, flatHeaders(response.headers), stream === null ? bytes ?? EMPTY : null);
      if (stream !== null) {
        const reader = stream.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          await host.write(chunkBytes(value));
        }
      }
    } finally {
      if (waitUntil.length > 0) await Promise.allSettled(waitUntil);
    }
    // The call's console lines (null when there are none).
    return pendingLogs() ? drainLogs() : null;
  },
});
