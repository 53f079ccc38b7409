//! The Web API as agents see it, checked from inside JavaScript against the
//! behaviour the standards define, and a full `fetch(request, env, ctx)`
//! round trip through the host interface.

use phalanx_sandbox::{HttpRequest, Limits, LogLine, Sandbox, SandboxError};

async fn agent(source: &str) -> Sandbox {
    let mut sandbox = Sandbox::new(Limits::default()).await.unwrap();
    sandbox.load("agent.js", source, "fetch").await.unwrap();
    sandbox
}

fn get(url: &str) -> HttpRequest {
    HttpRequest { url: url.into(), method: "GET".into(), headers: vec![], body: None }
}

/// Helpers every in-JS check can use: `eq(name, got, want)` compares JSON
/// forms, `throws(name, f, ErrorType)`, `hex(buffer)`; failures are collected.
const HARNESS_JS: &str = r#"
const failures = [];
const eq = (name, got, want) => {
    const [g, w] = [JSON.stringify(got), JSON.stringify(want)];
    if (g !== w) failures.push(`${name}: got ${g}, want ${w}`);
};
const throws = (name, f, type) => {
    try { f(); failures.push(`${name}: did not throw`); }
    catch (e) { if (!(e instanceof type)) failures.push(`${name}: threw ${e}`); }
};
const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
"#;

/// Runs `checks` (the body of an async function using the harness) inside an
/// agent and fails the test with every deviation it found.
async fn check_in_js(checks: &str) {
    let source =
        format!("{HARNESS_JS}\nexport default {{ async fetch() {{\n{checks}\nreturn Response.json(failures); }} }};");
    let fetched = agent(&source).await.fetch(get("https://a.example/"), vec![]).await.unwrap();
    let failures = String::from_utf8(fetched.response.body).unwrap();
    assert_eq!(failures, "[]", "deviations from the standards: {failures}");
}

/// A request goes in with its method, URL, headers, body and env; the
/// response comes out with status, headers and body; console output is
/// captured per call and returned, not printed.
#[tokio::test]
async fn fetch_round_trip() {
    let mut sandbox = agent(
        r#"export default {
            async fetch(request, env, ctx) {
                const url = new URL(request.url);
                const input = await request.json();
                console.log("got", request.method, url.pathname);
                console.error({ n: input.n });
                ctx.waitUntil(Promise.resolve());
                return Response.json(
                    { hello: url.searchParams.get("name"), n: input.n * 2, key: env.API_KEY.length, agent: request.headers.get("User-Agent") },
                    { status: 201, headers: { "X-Agent": "test" } },
                );
            },
        };"#,
    )
    .await;
    let request = HttpRequest {
        url: "https://agent.example/greet?name=ada+lovelace".into(),
        method: "post".into(),
        headers: vec![("user-agent".into(), "phalanx-test".into())],
        body: Some(br#"{"n":21}"#.to_vec()),
    };
    let fetched = sandbox.fetch(request, vec![("API_KEY".into(), "sk-123".into())]).await.unwrap();
    assert_eq!(fetched.response.status, 201);
    assert_eq!(
        fetched.response.headers,
        vec![("content-type".into(), "application/json".into()), ("x-agent".into(), "test".into())]
    );
    let body: String = String::from_utf8(fetched.response.body).unwrap();
    assert_eq!(body, r#"{"hello":"ada lovelace","n":42,"key":6,"agent":"phalanx-test"}"#);
    assert_eq!(
        fetched.logs,
        vec![
            LogLine { level: "log".into(), message: "got POST /greet".into() },
            LogLine { level: "error".into(), message: r#"{"n":21}"#.into() },
        ]
    );
    // Logs are per call.
    let again = sandbox
        .fetch(
            HttpRequest {
                url: "https://a.example/?name=x".into(),
                method: "POST".into(),
                headers: vec![],
                body: Some(b"{\"n\":1}".to_vec()),
            },
            vec![("API_KEY".into(), "k".into())],
        )
        .await
        .unwrap();
    assert_eq!(again.logs.len(), 2);
}

/// Returning something that is not a Response is a clear error.
#[tokio::test]
async fn non_response_is_refused() {
    let mut sandbox = agent("export default { fetch() { return { status: 200 }; } };").await;
    let error = sandbox.fetch(get("https://a.example/"), vec![]).await;
    assert!(matches!(&error, Err(SandboxError::Threw(m)) if m.contains("must return a Response")), "{error:?}");
}

/// Standard behaviour of Headers, URL, URLSearchParams, TextEncoder,
/// TextDecoder, Request and Response, asserted inside the sandbox.
#[tokio::test]
async fn web_apis_behave_as_specified() {
    check_in_js(
        r##"
        // Headers
        const h = new Headers({ "Content-Type": "text/plain" });
        h.append("X-Multi", "a"); h.append("x-multi", "b");
        h.append("Set-Cookie", "a=1"); h.append("Set-Cookie", "b=2");
        eq("headers get", h.get("content-type"), "text/plain");
        eq("headers combine", h.get("X-MULTI"), "a, b");
        eq("headers order", [...h.keys()], ["content-type", "set-cookie", "set-cookie", "x-multi"]);
        eq("set-cookie", h.getSetCookie(), ["a=1", "b=2"]);
        h.delete("x-multi"); eq("headers delete", h.has("x-multi"), false);
        eq("headers trims", new Headers([["a", "  v \t"]]).get("a"), "v");
        throws("bad header name", () => new Headers({ "bad name": "x" }), TypeError);
        throws("bad header value", () => h.set("a", "x\r\ny"), TypeError);

        // URL
        const u = new URL("../b/c?x=1#frag", "https://user:pw@Example.COM:443/a/d/e");
        eq("url href", u.href, "https://user:pw@example.com/a/b/c?x=1#frag");
        eq("url parts", [u.protocol, u.host, u.port, u.pathname, u.search, u.hash, u.origin],
           ["https:", "example.com", "", "/a/b/c", "?x=1", "#frag", "https://example.com"]);
        u.searchParams.append("y", "two words");
        eq("url search follows params", u.search, "?x=1&y=two+words");
        u.pathname = "/new path";
        eq("url pathname setter", u.pathname, "/new%20path");
        u.search = "?q=1";
        eq("params follow search", u.searchParams.get("q"), "1");
        u.port = "8443"; eq("url port", u.host, "example.com:8443");
        eq("url idna", new URL("http://münchen.de/").hostname, "xn--mnchen-3ya.de");
        throws("invalid url", () => new URL("not a url"), TypeError);
        eq("canParse", [URL.canParse("https://a"), URL.canParse("nope")], [true, false]);

        // URLSearchParams
        const p = new URLSearchParams("?a=1&b=x+y&a=%F0%9F%98%80&c");
        eq("params getAll", p.getAll("a"), ["1", "😀"]);
        eq("params plus", p.get("b"), "x y");
        eq("params empty", p.get("c"), "");
        p.set("a", "3"); p.sort();
        eq("params sorted", p.toString(), "a=3&b=x+y&c=");
        eq("params from object", new URLSearchParams({ k: "v&w" }).toString(), "k=v%26w");

        // TextEncoder / TextDecoder
        const bytes = new TextEncoder().encode("h€😀");
        eq("encode", [...bytes], [104, 226, 130, 172, 240, 159, 152, 128]);
        eq("decode", new TextDecoder().decode(bytes), "h€😀");
        eq("decode invalid", new TextDecoder().decode(new Uint8Array([0x61, 0xff, 0x62])), "a\ufffdb");
        throws("decode fatal", () => new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xc0])), TypeError);
        eq("lone surrogate", [...new TextEncoder().encode("\ud800")], [239, 191, 189]);

        // Request / Response
        const req = new Request("https://a.example/x", { method: "post", body: "hi" });
        eq("request method", req.method, "POST");
        eq("request content-type", req.headers.get("content-type"), "text/plain;charset=UTF-8");
        eq("request text", await req.clone().text(), "hi");
        await req.text();
        eq("bodyUsed", req.bodyUsed, true);
        let reused = false; try { await req.text(); } catch (e) { reused = e instanceof TypeError; }
        eq("body consumed once", reused, true);
        throws("GET with body", () => new Request("https://a.example/", { method: "GET", body: "x" }), TypeError);
        throws("status range", () => new Response("x", { status: 99 }), RangeError);
        const r = Response.json({ a: 1 }, { status: 404 });
        eq("response json", [r.status, r.ok, r.headers.get("content-type"), await r.json()], [404, false, "application/json", { a: 1 }]);
        const copy = new Response(new Uint8Array([1, 2, 3]), r);
        eq("response from response init", [copy.status, [...new Uint8Array(await copy.arrayBuffer())]], [404, [1, 2, 3]]);
        eq("redirect", Response.redirect("https://a.example/n", 301).headers.get("location"), "https://a.example/n");
        eq("no ambient globals", [typeof process, typeof require, typeof Deno, typeof __phalanxHost], ["undefined", "undefined", "undefined", "undefined"]);
        "##,
    )
    .await;
}

/// Timers fire in order and can be cancelled; crypto gives fresh randomness,
/// v4 UUIDs and correct SHA digests; structuredClone deep-copies (cycles
/// included) and refuses functions.
#[tokio::test]
async fn timers_crypto_and_structured_clone() {
    check_in_js(
        r##"
        const order = [];
        await new Promise((done) => {
            setTimeout(() => order.push("slow"), 120);
            setTimeout((tag) => order.push(tag), 1, "fast");
            const cancelled = setTimeout(() => order.push("cancelled"), 10);
            clearTimeout(cancelled);
            let ticks = 0;
            const interval = setInterval(() => { ticks++; if (ticks === 3) { clearInterval(interval); order.push("interval x3"); } }, 10);
            setTimeout(done, 200);
        });
        eq("timer order", order, ["fast", "interval x3", "slow"]);

        const a = crypto.getRandomValues(new Uint8Array(32)), b = crypto.getRandomValues(new Uint32Array(8));
        eq("random differs", hex(a.buffer) !== hex(b.buffer), true);
        let tooMany = false; try { crypto.getRandomValues(new Uint8Array(65537)); } catch (e) { tooMany = e instanceof RangeError; }
        eq("random limit", tooMany, true);
        const uuid = crypto.randomUUID();
        eq("uuid v4", /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uuid), true);
        eq("uuids differ", uuid !== crypto.randomUUID(), true);
        const abc = new TextEncoder().encode("abc");
        eq("sha-256", hex(await crypto.subtle.digest("SHA-256", abc)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        eq("sha-1", hex(await crypto.subtle.digest({ name: "SHA-1" }, abc)), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let badAlgorithm = false; try { await crypto.subtle.digest("MD5", abc); } catch (e) { badAlgorithm = e instanceof DOMException && e.name === "NotSupportedError"; }
        eq("unsupported digest", badAlgorithm, true);

        const original = { n: 1, when: new Date(0), tags: new Set(["a"]), map: new Map([["k", [1, 2]]]), bytes: new Uint8Array([7]) };
        original.self = original;
        const copy = structuredClone(original);
        eq("clone is deep", [copy !== original, copy.self === copy, copy.when.getTime(), [...copy.tags], copy.map.get("k"), copy.map.get("k") !== original.map.get("k"), [...copy.bytes]],
           [true, true, 0, ["a"], [1, 2], true, [7]]);
        let refused = ""; try { structuredClone({ f() {} }); } catch (e) { refused = e.name; }
        eq("functions refused", refused, "DataCloneError");
        "##,
    )
    .await;
}

/// AbortController and AbortSignal follow the DOM standard: one abort, the
/// default reason is an AbortError, listeners and `onabort` run once,
/// `AbortSignal.timeout` and `any` work.
#[tokio::test]
async fn abort_controller_and_events() {
    check_in_js(
        r##"
        const controller = new AbortController();
        const seen = [];
        controller.signal.addEventListener("abort", (e) => seen.push(e.type));
        controller.signal.onabort = () => seen.push("onabort");
        eq("not yet", controller.signal.aborted, false);
        controller.abort();
        controller.abort("again");
        eq("aborted once", [controller.signal.aborted, seen], [true, ["onabort", "abort"]]);
        eq("default reason", [controller.signal.reason.name, controller.signal.reason instanceof DOMException], ["AbortError", true]);
        let thrown = null; try { controller.signal.throwIfAborted(); } catch (e) { thrown = e.name; }
        eq("throwIfAborted", thrown, "AbortError");
        eq("abort(reason)", AbortSignal.abort("why").reason, "why");
        const timed = AbortSignal.timeout(5);
        await new Promise((r) => timed.addEventListener("abort", r, { once: true }));
        eq("timeout", timed.reason.name, "TimeoutError");
        const parent = new AbortController();
        const any = AbortSignal.any([parent.signal, new AbortController().signal]);
        parent.abort("p");
        eq("any", [any.aborted, any.reason], [true, "p"]);
        let illegal = false; try { new AbortSignal(); } catch (e) { illegal = e instanceof TypeError; }
        eq("no direct construction", illegal, true);
        const target = new EventTarget();
        let count = 0;
        target.addEventListener("ping", () => count++, { once: true });
        target.dispatchEvent(new Event("ping")); target.dispatchEvent(new Event("ping"));
        eq("once listener", count, 1);
        "##,
    )
    .await;
}

/// Streams, streaming text decoding, Blob, File and FormData as the
/// standards define them.
#[tokio::test]
async fn streams_blobs_and_form_data() {
    check_in_js(
        r##"
        // ReadableStream: queue, pull, close, reader, locks, async iteration.
        let pulls = 0;
        const rs = new ReadableStream({ start(c) { c.enqueue("a"); }, pull(c) { pulls++; if (pulls === 3) c.close(); else c.enqueue("p" + pulls); } });
        const reader = rs.getReader();
        eq("locked", rs.locked, true);
        throws("second reader", () => rs.getReader(), TypeError);
        const got = [];
        for (let r = await reader.read(); !r.done; r = await reader.read()) got.push(r.value);
        eq("read all", got, ["a", "p1", "p2"]);
        reader.releaseLock();
        eq("unlocked", rs.locked, false);
        const items = [];
        for await (const x of ReadableStream.from([1, 2, 3])) items.push(x);
        eq("from + async iteration", items, [1, 2, 3]);
        const [t1, t2] = ReadableStream.from(["x", "y"]).tee();
        eq("tee", [await new Response(t1.pipeThrough(new TextEncoderStream())).text(), await new Response(t2.pipeThrough(new TextEncoderStream())).text()], ["xy", "xy"]);
        let cancelled = null;
        await new ReadableStream({ cancel(reason) { cancelled = reason; } }).cancel("why");
        eq("cancel reaches the source", cancelled, "why");
        const errored = new ReadableStream({ start(c) { c.error(new RangeError("bad")); } });
        let error = null; try { await errored.getReader().read(); } catch (e) { error = e; }
        eq("errored read rejects", error instanceof RangeError, true);

        // WritableStream and TransformStream.
        const written = [];
        const ws = new WritableStream({ write(chunk) { written.push(chunk); }, close() { written.push("closed"); } });
        const writer = ws.getWriter();
        await writer.write("w1"); await writer.write("w2"); await writer.close();
        eq("writable", written, ["w1", "w2", "closed"]);
        const doubled = ReadableStream.from([1, 2]).pipeThrough(new TransformStream({ transform(n, c) { c.enqueue(n * 2); }, flush(c) { c.enqueue(0); } }));
        const out = []; for await (const n of doubled) out.push(n);
        eq("transform + flush", out, [2, 4, 0]);

        // TextDecoder streaming: a multi-byte character split across chunks.
        const euro = new TextEncoder().encode("€€");
        const d = new TextDecoder();
        eq("split decode", d.decode(euro.subarray(0, 2), { stream: true }) + d.decode(euro.subarray(2, 5), { stream: true }) + d.decode(euro.subarray(5)), "€€");
        eq("truncated at end", new TextDecoder().decode(euro.subarray(0, 2)), "\ufffd");
        const split = [euro.subarray(0, 1), euro.subarray(1, 4), euro.subarray(4)];
        eq("TextDecoderStream", await new Response(ReadableStream.from(split).pipeThrough(new TextDecoderStream()).pipeThrough(new TextEncoderStream())).text(), "€€");
        const into = new Uint8Array(4);
        eq("encodeInto stops at a character boundary", new TextEncoder().encodeInto("a€€", into), { read: 2, written: 4 });

        // Bodies as streams.
        const res = new Response("streamed body");
        eq("body is a stream", res.body instanceof ReadableStream, true);
        const rewrapped = new Response(res.body, res);
        eq("rewrap", await rewrapped.text(), "streamed body");
        eq("source body used", res.bodyUsed, false);
        const clone = new Response(ReadableStream.from([new Uint8Array([104, 105])]));
        const twin = clone.clone();
        eq("clone a stream body", [await clone.text(), await twin.text()], ["hi", "hi"]);
        let chunkError = null;
        try { await new Response(ReadableStream.from([42])).text(); } catch (e) { chunkError = e; }
        eq("non-byte chunk rejected", chunkError instanceof TypeError, true);

        // Blob, File, FormData (urlencoded and multipart round trips).
        const blob = new Blob(["ab", new Uint8Array([99]), new Blob(["d"])], { type: "Text/Plain" });
        eq("blob", [blob.size, blob.type, await blob.text(), await blob.slice(1, -1).text()], [4, "text/plain", "abcd", "bc"]);
        const form = new FormData();
        form.append("name", "Ada\nLovelace");
        form.append("file", new Blob(["binary\r\n--not-a-boundary"], { type: "application/octet-stream" }), "a.bin");
        const posted = new Request("https://a.example/upload", { method: "POST", body: form });
        eq("multipart content type", posted.headers.get("content-type").startsWith("multipart/form-data; boundary="), true);
        const parsed = await posted.formData();
        const file = parsed.get("file");
        eq("multipart fields", [parsed.get("name"), file instanceof File, file.name, file.type, await file.text()],
           ["Ada\r\nLovelace", true, "a.bin", "application/octet-stream", "binary\r\n--not-a-boundary"]);
        const urlencoded = await new Request("https://a.example/", { method: "POST", body: new URLSearchParams("a=1&b=two") }).formData();
        eq("urlencoded form", [...urlencoded], [["a", "1"], ["b", "two"]]);
        "##,
    )
    .await;
}

/// The rarely used parts of the Web API load on first use, and an agent's
/// own definition of one of their globals (a polyfill) survives the load.
#[tokio::test]
async fn lazily_loaded_globals_respect_polyfills() {
    check_in_js(
        r##"
        class MyBlob {}
        globalThis.Blob = MyBlob;
        const u = new URL("https://a.example/p?q=1");
        eq("extras work after the load", [u.pathname, typeof ReadableStream, typeof FormData], ["/p", "function", "function"]);
        eq("polyfill kept", Blob === MyBlob, true);
        eq("no internals left", typeof __phalanxInternals, "undefined");
        "##,
    )
    .await;
}
