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
    return host.digest(String(name), toBytes(data)).buffer;
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
