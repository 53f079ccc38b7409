// ---- Streams (WHATWG Streams Standard: ReadableStream, WritableStream, TransformStream) ----
// Default (non-byte) streams with queuing strategies, readers, writers,
// pipes, tee and async iteration. `type: "bytes"` sources are accepted and
// behave as default streams of byte chunks (no BYOB readers). State lives in
// module-private WeakMaps, out of the agent's reach.

const deferred = () => {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
};
const settled = (promise) => { promise.catch(() => {}); return promise; };
const sizeOf = (strategy) => {
  const size = strategy?.size;
  if (size === undefined) return () => 1;
  if (typeof size !== "function") throw new TypeError("queuing strategy size must be a function");
  return (chunk) => size(chunk);
};
const highWaterMark = (strategy, fallback) => {
  const hwm = strategy?.highWaterMark === undefined ? fallback : Number(strategy.highWaterMark);
  if (Number.isNaN(hwm) || hwm < 0) throw new RangeError("highWaterMark must be a non-negative number");
  return hwm;
};

class CountQueuingStrategy {
  #hwm;
  constructor({ highWaterMark: hwm }) { this.#hwm = Number(hwm); }
  get highWaterMark() { return this.#hwm; }
  get size() { return () => 1; }
}
class ByteLengthQueuingStrategy {
  #hwm;
  constructor({ highWaterMark: hwm }) { this.#hwm = Number(hwm); }
  get highWaterMark() { return this.#hwm; }
  get size() { return (chunk) => chunk.byteLength; }
}

// ReadableStream internals: one record per stream.
const readables = new WeakMap();
const streamKey = Symbol("stream");
const readable = (stream) => {
  const s = readables.get(stream);
  if (!s) throw new TypeError("not a ReadableStream");
  return s;
};

class ReadableStreamDefaultController {
  #s;
  constructor(key, s) { if (key !== streamKey) throw new TypeError("Illegal constructor"); this.#s = s; }
  get desiredSize() { return desiredSize(this.#s); }
  enqueue(chunk) {
    const s = this.#s;
    if (s.closeRequested || s.state !== "readable") throw new TypeError("cannot enqueue: the stream is closed or closing");
    if (s.readRequests.length > 0) s.readRequests.shift().resolve({ value: chunk, done: false });
    else {
      let size;
      try { size = s.size(chunk); } catch (e) { fail(s, e); throw e; }
      s.queue.push([chunk, size]);
      s.queueSize += size;
    }
    pullIfNeeded(s);
  }
  close() {
    const s = this.#s;
    if (s.closeRequested || s.state !== "readable") throw new TypeError("cannot close: the stream is closed or closing");
    s.closeRequested = true;
    if (s.queue.length === 0) finishClose(s);
  }
  error(e) { if (this.#s.state === "readable") fail(this.#s, e); }
}

const desiredSize = (s) => s.state === "errored" ? null : s.state === "closed" ? 0 : s.hwm - s.queueSize;
const finishClose = (s) => {
  s.state = "closed";
  for (const request of s.readRequests.splice(0)) request.resolve({ value: undefined, done: true });
  s.reader?.closed.resolve();
};
const fail = (s, e) => {
  if (s.state !== "readable") return;
  s.state = "errored"; s.error = e; s.queue = []; s.queueSize = 0;
  for (const request of s.readRequests.splice(0)) request.reject(e);
  if (s.reader) { s.reader.closed.reject(e); settled(s.reader.closed.promise); }
};
const pullIfNeeded = (s) => {
  if (!s.started || s.state !== "readable" || s.closeRequested) return;
  if (s.readRequests.length === 0 && desiredSize(s) <= 0) return;
  if (s.pulling) { s.pullAgain = true; return; }
  s.pulling = true;
  let result;
  try { result = s.source.pull ? s.source.pull(s.controller) : undefined; } catch (e) { fail(s, e); return; }
  Promise.resolve(result).then(() => {
    s.pulling = false;
    if (s.pullAgain) { s.pullAgain = false; pullIfNeeded(s); }
  }, (e) => fail(s, e));
};
const cancelStream = (s, reason) => {
  s.disturbed = true;
  if (s.state === "closed") return Promise.resolve();
  if (s.state === "errored") return Promise.reject(s.error);
  s.queue = []; s.queueSize = 0;
  finishClose(s);
  try { return Promise.resolve(s.source.cancel?.(reason)).then(() => undefined); }
  catch (e) { return Promise.reject(e); }
};
const readFrom = (s) => {
  s.disturbed = true;
  if (s.queue.length > 0) {
    const [chunk, size] = s.queue.shift();
    s.queueSize -= size;
    if (s.closeRequested && s.queue.length === 0) finishClose(s);
    else pullIfNeeded(s);
    return Promise.resolve({ value: chunk, done: false });
  }
  if (s.state === "closed") return Promise.resolve({ value: undefined, done: true });
  if (s.state === "errored") return Promise.reject(s.error);
  const request = deferred();
  s.readRequests.push(request);
  pullIfNeeded(s);
  return request.promise;
};

class ReadableStreamDefaultReader {
  #s = null; #closed;
  constructor(stream) {
    const s = readable(stream);
    if (s.reader) throw new TypeError("ReadableStream is locked to a reader");
    this.#s = s;
    this.#closed = deferred();
    s.reader = { closed: this.#closed };
    if (s.state === "closed") this.#closed.resolve();
    if (s.state === "errored") { this.#closed.reject(s.error); settled(this.#closed.promise); }
  }
  get closed() { return this.#closed.promise; }
  read() {
    if (!this.#s) return Promise.reject(new TypeError("the reader was released"));
    return readFrom(this.#s);
  }
  cancel(reason) {
    if (!this.#s) return Promise.reject(new TypeError("the reader was released"));
    return cancelStream(this.#s, reason);
  }
  releaseLock() {
    const s = this.#s;
    if (!s) return;
    const error = new TypeError("the reader was released");
    for (const request of s.readRequests.splice(0)) request.reject(error);
    if (s.state === "readable") { this.#closed.reject(error); settled(this.#closed.promise); }
    this.#closed = deferred(); this.#closed.reject(error); settled(this.#closed.promise);
    s.reader = null;
    this.#s = null;
  }
}

class ReadableStream {
  constructor(source = {}, strategy = {}) {
    if (source === null) throw new TypeError("ReadableStream: the source must be an object");
    const bytes = source.type === "bytes";
    if (source.type !== undefined && !bytes) throw new RangeError(`ReadableStream: unknown type ${source.type}`);
    const s = {
      state: "readable", queue: [], queueSize: 0, readRequests: [], reader: null, error: undefined,
      started: false, pulling: false, pullAgain: false, closeRequested: false, disturbed: false,
      source, size: bytes ? (c) => c.byteLength : sizeOf(strategy), hwm: highWaterMark(strategy, bytes ? 0 : 1),
    };
    s.controller = new ReadableStreamDefaultController(streamKey, s);
    readables.set(this, s);
    let started;
    try { started = source.start?.(s.controller); } catch (e) { fail(s, e); throw e; }
    Promise.resolve(started).then(() => { s.started = true; pullIfNeeded(s); }, (e) => fail(s, e));
  }
  static from(iterable) {
    const iterator = iterable[Symbol.asyncIterator]?.() ?? iterable[Symbol.iterator]?.();
    if (!iterator) throw new TypeError("ReadableStream.from: expected an iterable");
    return new ReadableStream({
      async pull(controller) {
        const { value, done } = await iterator.next();
        if (done) controller.close(); else controller.enqueue(value);
      },
      async cancel(reason) { await iterator.return?.(reason); },
    }, { highWaterMark: 0 });
  }
  get locked() { return readable(this).reader !== null; }
  cancel(reason) {
    const s = readable(this);
    if (s.reader) return Promise.reject(new TypeError("cannot cancel a locked ReadableStream"));
    return cancelStream(s, reason);
  }
  getReader(options = {}) {
    if (options?.mode === "byob") throw new TypeError("BYOB readers are not supported: use the default reader");
    if (options?.mode !== undefined) throw new RangeError(`unknown reader mode ${options.mode}`);
    return new ReadableStreamDefaultReader(this);
  }
  tee() {
    const reader = this.getReader();
    let canceled = 0, reading = false;
    const branches = [];
    const pull = async () => {
      if (reading) return;
      reading = true;
      try {
        const { value, done } = await reader.read();
        for (const branch of branches) {
          if (branch.canceled) continue;
          if (done) branch.controller.close(); else branch.controller.enqueue(value);
        }
      } catch (e) { for (const branch of branches) branch.controller.error(e); }
      reading = false;
    };
    const branch = () => {
      const record = { canceled: false, controller: null };
      branches.push(record);
      return new ReadableStream({
        start(controller) { record.controller = controller; },
        pull,
        cancel(reason) { record.canceled = true; if (++canceled === 2) return reader.cancel(reason); },
      });
    };
    return [branch(), branch()];
  }
  async pipeTo(destination, options = {}) {
    const { preventClose = false, preventAbort = false, preventCancel = false, signal } = options ?? {};
    const reader = this.getReader();
    const writer = destination.getWriter();
    const abort = () => { throw signal.reason; };
    try {
      if (signal?.aborted) abort();
      for (;;) {
        if (signal?.aborted) abort();
        const { value, done } = await reader.read();
        if (done) break;
        await writer.ready;
        await writer.write(value);
      }
      if (!preventClose) await writer.close();
    } catch (e) {
      if (!preventAbort) await writer.abort(e).catch(() => {});
      if (!preventCancel) await reader.cancel(e).catch(() => {});
      throw e;
    } finally {
      reader.releaseLock();
      writer.releaseLock();
    }
  }
  pipeThrough(transform, options = {}) {
    if (readable(this).reader) throw new TypeError("cannot pipe a locked ReadableStream");
    settled(this.pipeTo(transform.writable, options));
    return transform.readable;
  }
  values(options = {}) {
    const reader = this.getReader();
    const preventCancel = !!options?.preventCancel;
    return {
      async next() {
        const result = await reader.read();
        if (result.done) reader.releaseLock();
        return result;
      },
      async return(value) {
        if (!preventCancel) await reader.cancel(value);
        reader.releaseLock();
        return { value, done: true };
      },
      [Symbol.asyncIterator]() { return this; },
    };
  }
  [Symbol.asyncIterator](options) { return this.values(options); }
}

// Internal view for bodies: whether a stream was read from, and its state.
const streamDisturbed = (stream) => readable(stream).disturbed;

// WritableStream internals.
const writables = new WeakMap();
const writable = (stream) => {
  const s = writables.get(stream);
  if (!s) throw new TypeError("not a WritableStream");
  return s;
};

class WritableStreamDefaultController {
  #s;
  constructor(key, s) { if (key !== streamKey) throw new TypeError("Illegal constructor"); this.#s = s; }
  error(e) { failWritable(this.#s, e); }
  get signal() { return this.#s.abortController.signal; }
}

const failWritable = (s, e) => {
  if (s.state === "errored" || s.state === "closed") return;
  s.state = "errored"; s.error = e;
  for (const write of s.queue.splice(0)) { write.reject(e); }
  s.queueSize = 0;
  s.abortController.abort(e);
  if (s.writer) { s.writer.closed.reject(e); settled(s.writer.closed.promise); s.writer.ready.reject(e); settled(s.writer.ready.promise); }
};
const writableDesired = (s) => s.state === "errored" ? null : s.state === "closed" ? 0 : s.hwm - s.queueSize;
const updateReady = (s) => {
  const w = s.writer;
  if (!w || s.state !== "writable") return;
  const pressure = writableDesired(s) <= 0;
  if (pressure && w.readySettled) { w.ready = deferred(); w.readySettled = false; }
  else if (!pressure && !w.readySettled) { w.ready.resolve(); w.readySettled = true; }
};
const drain = async (s) => {
  if (s.draining) return;
  s.draining = true;
  try {
    await s.started;
    while (s.queue.length > 0 && s.state !== "errored") {
      const entry = s.queue[0];
      try {
        if (entry.close) {
          await s.sink.close?.();
          s.queue.shift();
          s.state = "closed";
          entry.resolve();
          s.writer?.closed.resolve();
        } else {
          await s.sink.write?.(entry.chunk, s.controller);
          s.queue.shift();
          s.queueSize -= entry.size;
          entry.resolve();
          updateReady(s);
        }
      } catch (e) { failWritable(s, e); }
    }
  } catch (e) { failWritable(s, e); }
  s.draining = false;
};
const enqueueWrite = (s, entry) => {
  const done = deferred();
  Object.assign(done, entry);
  s.queue.push(done);
  s.queueSize += entry.size ?? 0;
  updateReady(s);
  drain(s);
  return done.promise;
};
const closeWritable = (s) => {
  if (s.state !== "writable") return Promise.reject(new TypeError("cannot close: the stream is closed, closing or errored"));
  s.state = "closing";
  return enqueueWrite(s, { close: true, size: 0 });
};
const abortWritable = (s, reason) => {
  if (s.state === "closed" || s.state === "errored") return Promise.resolve();
  failWritable(s, reason);
  try { return Promise.resolve(s.sink.abort?.(reason)).then(() => undefined); }
  catch (e) { return Promise.reject(e); }
};

class WritableStreamDefaultWriter {
  #s; #record;
  constructor(stream) {
    const s = writable(stream);
    if (s.writer) throw new TypeError("WritableStream is locked to a writer");
    this.#s = s;
    this.#record = { closed: deferred(), ready: deferred(), readySettled: false };
    s.writer = this.#record;
    if (s.state === "errored") {
      for (const p of [this.#record.closed, this.#record.ready]) { p.reject(s.error); settled(p.promise); }
    } else if (s.state === "closed") { this.#record.closed.resolve(); this.#record.ready.resolve(); this.#record.readySettled = true; }
    else updateReady(s);
  }
  #live() { if (!this.#s) throw new TypeError("the writer was released"); return this.#s; }
  get closed() { return this.#record.closed.promise; }
  get ready() { return this.#record.ready.promise; }
  get desiredSize() { return writableDesired(this.#live()); }
  write(chunk) {
    let s;
    try { s = this.#live(); } catch (e) { return Promise.reject(e); }
    if (s.state === "errored") return Promise.reject(s.error);
    if (s.state !== "writable") return Promise.reject(new TypeError("cannot write: the stream is closed or closing"));
    let size;
    try { size = s.size(chunk); } catch (e) { failWritable(s, e); return Promise.reject(e); }
    return enqueueWrite(s, { chunk, size });
  }
  close() { try { return closeWritable(this.#live()); } catch (e) { return Promise.reject(e); } }
  abort(reason) { try { return abortWritable(this.#live(), reason); } catch (e) { return Promise.reject(e); } }
  releaseLock() {
    if (!this.#s) return;
    this.#s.writer = null;
    this.#s = null;
  }
}

class WritableStream {
  constructor(sink = {}, strategy = {}) {
    if (sink === null) throw new TypeError("WritableStream: the sink must be an object");
    const s = {
      state: "writable", queue: [], queueSize: 0, writer: null, error: undefined, draining: false,
      sink, size: sizeOf(strategy), hwm: highWaterMark(strategy, 1), abortController: new AbortController(),
    };
    s.controller = new WritableStreamDefaultController(streamKey, s);
    writables.set(this, s);
    s.started = Promise.resolve().then(() => sink.start?.(s.controller));
    settled(s.started.catch((e) => failWritable(s, e)));
  }
  get locked() { return writable(this).writer !== null; }
  getWriter() { return new WritableStreamDefaultWriter(this); }
  close() {
    const s = writable(this);
    if (s.writer) return Promise.reject(new TypeError("cannot close a locked WritableStream"));
    return closeWritable(s);
  }
  abort(reason) {
    const s = writable(this);
    if (s.writer) return Promise.reject(new TypeError("cannot abort a locked WritableStream"));
    return abortWritable(s, reason);
  }
}

class TransformStreamDefaultController {
  #readable; #terminate;
  constructor(key, readableController, terminate) {
    if (key !== streamKey) throw new TypeError("Illegal constructor");
    this.#readable = readableController; this.#terminate = terminate;
  }
  get desiredSize() { return this.#readable.desiredSize; }
  enqueue(chunk) { this.#readable.enqueue(chunk); }
  error(e) { this.#readable.error(e); this.#terminate(e); }
  terminate() { try { this.#readable.close(); } catch {} this.#terminate(new TypeError("the TransformStream was terminated")); }
}

class TransformStream {
  #readable; #writable;
  constructor(transformer = {}, writableStrategy = {}, readableStrategy = {}) {
    let readableController, relieve = null, writableStream;
    // Backpressure: a write waits until the readable side wants a chunk.
    const waitForReader = () => {
      const r = readable(this.#readable);
      if (r.readRequests.length > 0 || readableController.desiredSize > 0) return undefined;
      return new Promise((resolve) => { relieve = resolve; });
    };
    this.#readable = new ReadableStream({
      start(c) { readableController = c; },
      pull() { if (relieve) { const r = relieve; relieve = null; r(); } },
      cancel(reason) {
        failWritable(writable(writableStream), reason ?? new TypeError("the readable side was canceled"));
        return transformer.cancel?.(reason);
      },
    }, { highWaterMark: highWaterMark(readableStrategy, 0), size: readableStrategy?.size });
    const controller = new TransformStreamDefaultController(streamKey, readableController,
      (e) => failWritable(writable(writableStream), e));
    const started = Promise.resolve(transformer.start?.(controller));
    writableStream = new WritableStream({
      start() { return started; },
      async write(chunk) {
        await waitForReader();
        if (transformer.transform) await transformer.transform(chunk, controller);
        else controller.enqueue(chunk);
      },
      async close() {
        await transformer.flush?.(controller);
        try { readableController.close(); } catch {}
      },
      abort(reason) { readableController.error(reason); return transformer.cancel?.(reason); },
    }, writableStrategy);
    this.#writable = writableStream;
  }
  get readable() { return this.#readable; }
  get writable() { return this.#writable; }
}

class TextEncoderStream extends TransformStream {
  constructor() {
    const encoder = new TextEncoder();
    super({ transform(chunk, c) { const bytes = encoder.encode(String(chunk)); if (bytes.length) c.enqueue(bytes); } });
  }
  get encoding() { return "utf-8"; }
}
class TextDecoderStream extends TransformStream {
  #decoder;
  constructor(label = "utf-8", options = {}) {
    const decoder = new TextDecoder(label, options);
    super({
      transform(chunk, c) { const text = decoder.decode(chunk, { stream: true }); if (text) c.enqueue(text); },
      flush(c) { const text = decoder.decode(); if (text) c.enqueue(text); },
    });
    this.#decoder = decoder;
  }
  get encoding() { return this.#decoder.encoding; }
  get fatal() { return this.#decoder.fatal; }
  get ignoreBOM() { return this.#decoder.ignoreBOM; }
}

for (const [name, value] of Object.entries({
  ReadableStream, ReadableStreamDefaultReader, ReadableStreamDefaultController,
  WritableStream, WritableStreamDefaultWriter, WritableStreamDefaultController,
  TransformStream, TransformStreamDefaultController, TextEncoderStream, TextDecoderStream,
  CountQueuingStrategy, ByteLengthQueuingStrategy,
})) define(name, value);
