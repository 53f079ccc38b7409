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
