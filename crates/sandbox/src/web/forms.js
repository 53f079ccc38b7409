// ---- Blob, File, FormData ----
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

// ---- bodies as streams ----
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
