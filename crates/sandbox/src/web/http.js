// ---- the Web API parts loaded on first use (see extras.js) ----
const EMPTY = new Uint8Array(0);
const concatBytes = (chunks, total) => {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total ?? chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.byteLength; }
  return out;
};
// Extras globals not yet loaded: the agent may define its own first (a
// polyfill), which loading the extras then leaves alone.
const lazy = new Set();
// What the extras module needs from here, and what it adds when loaded.
const internals = {
  host, encoder, decoder, toBytes, setTrusted, EMPTY, concatBytes, notInCommand, loaded: false,
  // Taken before agent code runs, so a replaced global Promise does not reach the extras.
  resolved: Promise.resolve.bind(Promise), rejected: Promise.reject.bind(Promise),
  define: (name, value) => { if (lazy.delete(name)) define(name, value); },
};
const extras = () => {
  if (!internals.loaded) {
    Object.defineProperty(globalThis, "__phalanxInternals", { value: internals, configurable: true });
    try { host.loadExtras(); } finally { delete globalThis.__phalanxInternals; }
    if (!internals.loaded) throw new TypeError("the Web API extras failed to load");
  }
  return internals;
};
const EXTRAS = [
  "URL", "URLSearchParams", "structuredClone", "Event", "EventTarget", "AbortSignal", "AbortController",
  "ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamDefaultController", "WritableStream",
  "WritableStreamDefaultWriter", "WritableStreamDefaultController", "TransformStream",
  "TransformStreamDefaultController", "TextEncoderStream", "TextDecoderStream", "CountQueuingStrategy",
  "ByteLengthQueuingStrategy", "Blob", "File", "FormData", "CompressionStream", "DecompressionStream",
  "CryptoKey", "SubtleCrypto",
];
for (const name of EXTRAS) {
  lazy.add(name);
  Object.defineProperty(globalThis, name, {
    get() { extras(); return Object.getOwnPropertyDescriptor(globalThis, name).value; },
    set(value) { lazy.delete(name); define(name, value); },
    configurable: true, enumerable: false,
  });
}

// ---- Body (shared by Request and Response) ----
// A body is known bytes (`bytes`), a stream (`stream`), or null. A stream
// made from known bytes remembers them, so re-wrapping a body
// (`new Response(res.body, res)`) does not go through the stream machinery.
// [bytes | null, stream | null] from a BodyInit, setting the content type.
// (Streams, URLSearchParams, Blobs and forms exist only once the extras are loaded.)
const extractBody = (body, headers) => {
  if (body === undefined || body === null) return [null, null];
  let bytes = null, stream = null, type = null;
  const x = internals;
  if (typeof body === "string") { bytes = encoder.encode(body); type = "text/plain;charset=UTF-8"; }
  else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) bytes = toBytes(body).slice();
  else if (x.loaded && body instanceof x.ReadableStream) {
    if (body.locked || x.streamDisturbed(body)) throw new TypeError("the body stream is locked or was already read");
    const known = x.streamBytes.get(body);
    if (known !== undefined) bytes = known; else stream = body;
  }
  else if (x.loaded && body instanceof x.URLSearchParams) { bytes = encoder.encode(body.toString()); type = "application/x-www-form-urlencoded;charset=UTF-8"; }
  else if (x.loaded && body instanceof x.Blob) { bytes = x.blobBytes.get(body); type = body.type || null; }
  else if (x.loaded && body instanceof x.FormData) [bytes, type] = x.encodeMultipart(body);
  else { bytes = encoder.encode(String(body)); type = "text/plain;charset=UTF-8"; }
  if (type && !headers.has("content-type")) setTrusted(headers, "content-type", type);
  return [bytes, stream];
};
let bodyOf, setBody, tee;
class Body {
  #bytes = null; #stream = null; #used = false;
  static {
    bodyOf = (b) => {
      if (b.#stream === null) return [b.#bytes, null];
      const known = internals.streamBytes.get(b.#stream);
      return known !== undefined && !internals.streamDisturbed(b.#stream) ? [known, null] : [null, b.#stream];
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
    if (this.#stream === null && this.#bytes !== null) this.#stream = extras().bytesStream(this.#bytes);
    return this.#stream;
  }
  get bodyUsed() { return this.#used || (this.#stream !== null && internals.streamDisturbed(this.#stream)); }
  async #consume() {
    if (this.bodyUsed) throw new TypeError("Body has already been consumed");
    if (this.#stream?.locked) throw new TypeError("the body stream is locked");
    this.#used = true;
    const [bytes, stream] = bodyOf(this);
    if (stream === null) return bytes ?? EMPTY;
    return internals.readAll(stream);
  }
  async arrayBuffer() { const b = await this.#consume(); return b.slice().buffer; }
  async bytes() { return (await this.#consume()).slice(); }
  async text() { return decoder.decode(await this.#consume()); }
  async json() { return JSON.parse(await this.text()); }
  async blob() { return new (extras().Blob)([await this.#consume()], { type: this.headers.get("content-type") ?? "" }); }
  async formData() {
    const type = this.headers.get("content-type") ?? "";
    const bytes = await this.#consume();
    const x = extras();
    if (/^multipart\/form-data/i.test(type)) return x.parseMultipart(bytes, type);
    if (/^application\/x-www-form-urlencoded/i.test(type)) {
      const form = new x.FormData();
      for (const [k, v] of new x.URLSearchParams(decoder.decode(bytes))) form.append(k, v);
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
  notInCommand("fetch");
  const request = input instanceof Request && init === undefined ? input : new Request(input, init);
  const signal = init?.signal ?? (input instanceof Request ? input.signal : null);
  signal?.throwIfAborted?.();
  const [known, stream] = bodyOf(request);
  const bytes = stream !== null ? await internals.readAll(stream) : known;
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
  // Orders a command for this agent's `command()` through the chain (the
  // host binds `__COMMANDS` where it can send one). Resolves once the
  // worker has queued it for the chain.
  async submit(data) {
    const commands = bound.find(([name]) => name === "__COMMANDS");
    if (!commands) throw new TypeError("ctx.submit is not available on this host");
    const json = JSON.stringify(data);
    if (json === undefined) throw new TypeError("ctx.submit: the command must be JSON-serializable");
    return commands[1].submit(json);
  }
}
// The `ctx` argument of `command(message, env, ctx)`.
class CommandContext {
  waitUntil() { throw new TypeError("ctx.waitUntil is not available in command()"); }
  submit() { throw new TypeError("ctx.submit is not available in command(): send commands from fetch()"); }
  get props() { return {}; }
}
// Host objects go on `env` by name; names starting with "__" are the host's own.
const bindInto = (env) => {
  for (let i = 0; i < bound.length; i++) if (!bound[i][0].startsWith("__")) env[bound[i][0]] = bound[i][1];
};
let agent = null;
Object.defineProperty(globalThis, "__phalanxSetAgent", { value: (a) => { agent = a; } });
Object.defineProperty(globalThis, "__phalanxInvoke", {
  value: async (method, argument) => {
    const result = JSON.stringify(await agent[method](JSON.parse(argument)));
    drainLogs();
    return result;
  },
});
// Host objects on `env` (see bindings.rs): methods that return promises of
// the host's JSON result.
const bound = [];
// Bytes travel through binding JSON as strings of char codes 0-255.
const bytesToLatin1 = (bytes) => {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return text;
};
const latin1ToBytes = (text) => Uint8Array.from(text, (c) => c.charCodeAt(0));
// `env.AGENTS.fetch(agentId, input, init)`: Web-style arguments in, a
// Response out; the host runs the other agent (see the worker's gateway).
const agentsFetch = (call) => async (agentId, input, init) => {
  // A path alone is relative to the other agent.
  const target = input instanceof Request ? input : new URL(String(input ?? "/"), "http://agent/").href;
  const request = target instanceof Request && init === undefined ? target : new Request(target, init);
  const url = new URL(request.url, "http://agent/");
  const body = bytesToLatin1(new Uint8Array(await request.arrayBuffer()));
  const answer = await call(String(agentId), {
    method: request.method,
    path: url.pathname + url.search,
    headers: flatHeaders(request.headers),
    body,
  });
  return new Response(answer.body === "" ? null : latin1ToBytes(answer.body), {
    status: answer.status,
    headers: answer.headers,
  });
};
Object.defineProperty(globalThis, "__phalanxBind", {
  value: (index, name, methods) => {
    const object = {};
    for (const method of methods) {
      object[method] = (...args) => host.binding(index, method, JSON.stringify(args)).then((json) => JSON.parse(json));
    }
    if (name === "AGENTS" && object.fetch) object.fetch = agentsFetch(object.fetch);
    bound.push([name, Object.freeze(object)]);
  },
});
// Runs `fetch(request, env, ctx)` and hands the response to the host:
// known bytes in one piece, a stream chunk by chunk as the agent produces
// it. Promises given to `ctx.waitUntil` are awaited after the response.
Object.defineProperty(globalThis, "__phalanxServe", {
  value: async (url, method, headers, body, env) => {
    const request = new Request(hostKey, { url, method, headers: trustedHeaders(headers), body: body ?? null });
    bindInto(env);
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
          await host.write(internals.chunkBytes(value));
        }
      }
    } finally {
      if (waitUntil.length > 0) await Promise.allSettled(waitUntil);
    }
    // The call's console lines (null when there are none).
    return pendingLogs() ? drainLogs() : null;
  },
});
// Runs `command(message, env, ctx)` for one command the chain ordered.
// Returns the call's console lines (null when there are none).
Object.defineProperty(globalThis, "__phalanxCommand", {
  value: async (messageJson, env) => {
    bindInto(env);
    await agent.command(JSON.parse(messageJson), env, new CommandContext());
    return pendingLogs() ? drainLogs() : null;
  },
});
