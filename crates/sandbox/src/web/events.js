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
