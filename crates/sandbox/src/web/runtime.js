// ---- command mode: what `command(message, env, ctx)` may not use ----
// A command runs identically on every worker of the agent's cluster, so it
// sees no clock but the block's, no randomness but a seeded Math.random,
// and no network or timers. Set once, before the agent's code loads.
let commandMode = false;
const notInCommand = (what) => {
  if (commandMode) throw new TypeError(`${what} is not available in command(): it runs identically on every worker`);
};
Object.defineProperty(globalThis, "__phalanxDeterministic", {
  value: (seed, timeMs) => {
    commandMode = true;
    // xoshiro128** from a 128-bit seed (the block and the command's number):
    // the same sequence on every worker. Math.random is not cryptographic anywhere.
    let [a, b, c, d] = seed;
    const rotl = (x, k) => (x << k) | (x >>> (32 - k));
    Math.random = () => {
      const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
      const t = b << 9;
      c ^= a; d ^= b; b ^= c; a ^= d; c ^= t; d = rotl(d, 11);
      return result / 4294967296;
    };
    const RealDate = Date;
    const FixedDate = class Date extends RealDate {
      constructor(...args) { if (args.length === 0) super(timeMs); else super(...args); }
      static now() { return timeMs; }
    };
    define("Date", FixedDate);
  },
});

// ---- timers (host sleep; bounded count) ----
const TIMERS_MAX = 10000;
let nextTimer = 1;
const timers = new Map();
const startTimer = (callback, delay, args, repeat) => {
  if (typeof callback !== "function") throw new TypeError("timer callback must be a function");
  notInCommand("a timer");
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

// ---- crypto (randomness from the host; crypto.subtle in subtle.js) ----
const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array];
const hex = (b) => b.toString(16).padStart(2, "0");
define("crypto", Object.freeze({
  // SubtleCrypto lives in the extras module (subtle.js), loaded on first use.
  get subtle() { return extras().subtle; },
  getRandomValues(array) {
    if (!INTEGER_ARRAYS.some((T) => array instanceof T))
      throw new TypeError("getRandomValues: expected an integer typed array");
    notInCommand("crypto.getRandomValues");
    const random = host.randomBytes(array.byteLength);
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(random);
    return array;
  },
  randomUUID() {
    notInCommand("crypto.randomUUID");
    const b = host.randomBytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = b.map(hex);
    return `${h.slice(0, 4).join("")}-${h.slice(4, 6).join("")}-${h.slice(6, 8).join("")}-${h.slice(8, 10).join("")}-${h.slice(10).join("")}`;
  },
}));
