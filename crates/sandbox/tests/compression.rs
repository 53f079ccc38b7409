//! `CompressionStream` and `DecompressionStream` as agents see them: round
//! trips in every format, interop with Node's zlib both ways, the
//! decompressed-size limit against a gzip bomb (and the instance serving on
//! afterwards), and the `TypeError`s the standard asks for.

use flate2::Compression;
use flate2::write::GzEncoder;
use phalanx_sandbox::{HttpRequest, Limits, Sandbox};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn limits() -> Limits {
    Limits {
        request_body_bytes_max: 8 * 1024 * 1024,
        response_body_bytes_max: 8 * 1024 * 1024,
        cpu_time_max: Duration::from_secs(10),
        ..Limits::default()
    }
}

async fn agent(source: &str) -> Sandbox {
    let mut sandbox = Sandbox::new(limits()).await.unwrap();
    sandbox.load("agent.js", source, "fetch").await.unwrap();
    sandbox
}

/// Helpers every in-JS check can use: `eq(name, got, want)` compares JSON
/// forms, `rejects(name, promise, pattern)` wants a TypeError whose message
/// matches, `transform(stream, chunks)` writes the chunks and reads the
/// output concurrently; failures are collected.
const HARNESS_JS: &str = r#"
const failures = [];
const eq = (name, got, want) => {
    const [g, w] = [JSON.stringify(got), JSON.stringify(want)];
    if (g !== w) failures.push(`${name}: got ${g}, want ${w}`);
};
const concat = (chunks) => {
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
    let at = 0;
    for (const c of chunks) { out.set(c, at); at += c.byteLength; }
    return out;
};
const split = (bytes, size) => {
    const chunks = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
    return chunks;
};
const transform = async (stream, chunks) => {
    const writer = stream.writable.getWriter();
    const writing = (async () => { for (const c of chunks) await writer.write(c); await writer.close(); })();
    const reading = (async () => {
        const out = [];
        for await (const c of stream.readable) {
            if (!(c instanceof Uint8Array) || c.byteLength === 0) throw new Error(`bad output chunk ${c}`);
            out.push(c);
        }
        return concat(out);
    })();
    const [, out] = await Promise.all([writing, reading]);
    return out;
};
const rejects = async (name, promise, pattern) => {
    try { await promise; failures.push(`${name}: did not fail`); }
    catch (e) {
        if (!(e instanceof TypeError) || !pattern.test(e.message)) failures.push(`${name}: threw ${e?.name}: ${e?.message}`);
    }
};
"#;

fn get(path: &str) -> HttpRequest {
    HttpRequest { url: format!("https://a.example{path}"), method: "GET".into(), headers: vec![], body: None }
}

/// Runs `checks` (the body of an async function using the harness) inside an
/// agent and fails the test with every deviation it found.
async fn check_in_js(checks: &str) {
    let source =
        format!("{HARNESS_JS}\nexport default {{ async fetch() {{\n{checks}\nreturn Response.json(failures); }} }};");
    let fetched = agent(&source).await.fetch(get("/"), vec![]).await.unwrap();
    let failures = String::from_utf8(fetched.response.body).unwrap();
    assert_eq!(failures, "[]", "deviations: {failures}");
}

/// An agent that (de)compresses its request body: `/?op=compress|decompress
/// &format=...&chunk=N` (N-byte chunks); the output, or status 400 with
/// `name: message` of the error.
const CODEC_AGENT: &str = r#"
export default { async fetch(request) {
    const url = new URL(request.url);
    const format = url.searchParams.get("format");
    const size = Number(url.searchParams.get("chunk") ?? 65536);
    const input = new Uint8Array(await request.arrayBuffer());
    try {
        const stream = url.searchParams.get("op") === "compress" ? new CompressionStream(format) : new DecompressionStream(format);
        const writer = stream.writable.getWriter();
        const writing = (async () => {
            for (let i = 0; i < input.length; i += size) await writer.write(input.subarray(i, i + size));
            await writer.close();
        })();
        const reading = (async () => {
            const chunks = [];
            for await (const c of stream.readable) chunks.push(c);
            return chunks;
        })();
        const [, chunks] = await Promise.all([writing, reading]);
        return new Response(new Blob(chunks));
    } catch (e) {
        return new Response(`${e.name}: ${e.message}`, { status: 400 });
    }
} };
"#;

fn post(query: &str, body: Vec<u8>) -> HttpRequest {
    HttpRequest { url: format!("https://a.example/?{query}"), method: "POST".into(), headers: vec![], body: Some(body) }
}

/// (status, body) of one call to the codec agent.
async fn codec(sandbox: &mut Sandbox, query: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let fetched = sandbox.fetch(post(query, body), vec![]).await.unwrap();
    (fetched.response.status, fetched.response.body)
}

/// Runs `node -e script` with `input` on stdin; its stdout.
fn node(script: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("node")
        .args(["-e", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed for this test");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(output.status.success(), "node failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Deterministic test data: text-like runs and pseudo-random bytes.
fn sample(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            if (i / 4096) % 2 == 0 { b"the quick brown fox jumps over the lazy dog. "[i % 45] } else { state as u8 }
        })
        .collect()
}

/// Each format round-trips, over chunks of many sizes (one byte included)
/// and for empty input; compressed output has the format's header.
#[tokio::test]
async fn round_trips_in_every_format() {
    check_in_js(
        r#"
        let seed = 7;
        const data = new Uint8Array(150000).map((_, i) => (i >> 12) % 2 ? (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24 : 97 + (i % 26));
        const text = new TextEncoder().encode("hello, compression streams");
        for (const format of ["gzip", "deflate", "deflate-raw"]) {
            for (const [label, input, size] of [["data", data, 10007], ["text", text, 1], ["empty", new Uint8Array(0), 1]]) {
                const compressed = await transform(new CompressionStream(format), split(input, size));
                if (label === "data") eq(`${format} compresses`, compressed.length < data.length * 0.7, true);
                if (format === "gzip") eq(`${format} ${label} magic`, [compressed[0], compressed[1]], [0x1f, 0x8b]);
                if (format === "deflate") eq(`${format} ${label} zlib header`, (compressed[0] * 256 + compressed[1]) % 31, 0);
                for (const piece of label === "data" ? [777, 4096] : [1, 3, 4096]) {
                    const out = await transform(new DecompressionStream(format), split(compressed, piece));
                    eq(`${format} ${label} round trip in ${piece}-byte pieces`, [out.length, out.every((b, i) => b === input[i])], [input.length, true]);
                }
                // Chunks of every BufferSource kind: ArrayBuffer, DataView, other typed arrays.
                const buffer = compressed.slice().buffer;
                const even = buffer.byteLength & ~1;
                const out = await transform(new DecompressionStream(format), [new Uint16Array(buffer.slice(0, even)), new DataView(buffer, even)]);
                eq(`${format} ${label} Uint16Array and DataView chunks`, out.length, input.length);
                eq(`${format} ${label} ArrayBuffer chunk`, (await transform(new DecompressionStream(format), [buffer])).length, input.length);
            }
            // The usual idiom: pipeThrough, read back with a Response.
            const piped = new Blob([data]).stream().pipeThrough(new CompressionStream(format)).pipeThrough(new DecompressionStream(format));
            const back = new Uint8Array(await new Response(piped).arrayBuffer());
            eq(`${format} pipeThrough`, [back.length, back.every((b, i) => b === data[i])], [data.length, true]);
        }
        const cs = new CompressionStream("gzip");
        eq("shape", [cs.readable instanceof ReadableStream, cs.writable instanceof WritableStream, String(cs)],
           [true, true, "[object CompressionStream]"]);
        await cs.writable.abort();
        "#,
    )
    .await;
}

/// Node's zlib output decompresses in the sandbox to the same bytes, and the
/// sandbox's output decompresses in Node to the same bytes.
#[tokio::test]
async fn interoperates_with_node_zlib() {
    let data = sample(300_000);
    let mut sandbox = agent(CODEC_AGENT).await;
    let formats = [
        ("gzip", "gzipSync", "gunzipSync"),
        ("deflate", "deflateSync", "inflateSync"),
        ("deflate-raw", "deflateRawSync", "inflateRawSync"),
    ];
    for (format, compress, decompress) in formats {
        let script = |f: &str| format!("process.stdout.write(require('zlib').{f}(require('fs').readFileSync(0)))");
        for input in [data.clone(), Vec::new()] {
            let by_node = node(&script(compress), &input);
            assert!(!by_node.is_empty());
            let (status, out) = codec(&mut sandbox, &format!("op=decompress&format={format}&chunk=999"), by_node).await;
            assert_eq!(status, 200, "{format}: {}", String::from_utf8_lossy(&out));
            assert!(out == input, "{format}: Node's data decompressed to {} bytes, want {}", out.len(), input.len());

            let (status, by_sandbox) =
                codec(&mut sandbox, &format!("op=compress&format={format}&chunk=4321"), input.clone()).await;
            assert_eq!(status, 200, "{format}: {}", String::from_utf8_lossy(&by_sandbox));
            assert!(by_sandbox != input);
            let out = node(&script(decompress), &by_sandbox);
            assert!(out == input, "{format}: Node decompressed {} bytes, want {}", out.len(), input.len());
        }
    }
}

/// A gzip bomb (1 GiB of zeros) ends with the limit's TypeError once 32 MiB
/// came out, and the same instance then serves the next calls normally.
#[tokio::test]
async fn a_gzip_bomb_ends_at_the_limit_and_the_instance_serves_on() {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 2 << 20, "the bomb is {} bytes", bomb.len());

    let mut sandbox = agent(
        r#"export default { async fetch(request) {
            const input = new Uint8Array(await request.arrayBuffer());
            const stream = new DecompressionStream("gzip");
            const writer = stream.writable.getWriter();
            let seen = 0;
            const writing = (async () => {
                for (let i = 0; i < input.length; i += 4096) await writer.write(input.subarray(i, i + 4096));
                await writer.close();
            })();
            const reading = (async () => { for await (const c of stream.readable) seen += c.byteLength; })();
            const [w, r] = await Promise.allSettled([writing, reading]);
            const error = (e) => e && `${e.name}: ${e.message}`;
            return Response.json({ seen, writing: error(w.reason), reading: error(r.reason) });
        } };"#,
    )
    .await;
    let limit = "TypeError: DecompressionStream: the decompressed data is larger than 33554432 bytes";
    for _ in 0..2 {
        let fetched = sandbox.fetch(post("", bomb.clone()), vec![]).await.unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&fetched.response.body).unwrap();
        assert_eq!(answer["writing"], limit, "{answer}");
        assert_eq!(answer["reading"], limit, "{answer}");
        let seen = answer["seen"].as_u64().unwrap();
        assert!(seen <= 32 << 20 && seen > 16 << 20, "{seen} bytes came out before the error");
    }
    // The same instance serves the next call normally.
    let small = {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&[0u8; 100_000]).unwrap();
        encoder.finish().unwrap()
    };
    let fetched = sandbox.fetch(post("", small), vec![]).await.unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&fetched.response.body).unwrap();
    assert_eq!(answer, serde_json::json!({ "seen": 100_000 }));
}

/// Corrupt, truncated and trailing data, unknown formats and chunks that are
/// not BufferSources are TypeErrors; the stream's both sides fail with it.
#[tokio::test]
async fn bad_input_is_a_type_error() {
    check_in_js(
        r#"
        const data = new TextEncoder().encode("some data worth compressing, some data worth compressing".repeat(50));
        for (const format of ["gzip", "deflate", "deflate-raw"]) {
            const compressed = await transform(new CompressionStream(format), [data]);
            const decompress = (chunks) => transform(new DecompressionStream(format), chunks);
            await rejects(`${format} truncated by half`, decompress([compressed.subarray(0, compressed.length >> 1)]), /ended before the end/);
            await rejects(`${format} truncated by 5 bytes`, decompress([compressed.subarray(0, compressed.length - 5)]),
                format === "gzip" ? /corrupt or truncated/ : /ended before the end/);
            await rejects(`${format} truncated to nothing`, decompress([]), /ended before the end/);
            const trailing = concat([compressed, new Uint8Array([1, 2, 3])]);
            await rejects(`${format} trailing garbage`, decompress([trailing]), /data after the end/);
            await rejects(`${format} trailing garbage in its own chunk`, decompress([compressed, new Uint8Array([0])]), /data after the end/);
            await rejects(`${format} trailing garbage byte by byte`, decompress(split(trailing, 1)), /data after the end/);
            await rejects(`${format} twice`, decompress([compressed, compressed]), /data after the end/);
            await rejects(`${format} string chunk`, transform(new CompressionStream(format), ["text"]), /ArrayBuffer, a typed array or a DataView/);
            await rejects(`${format} object chunk`, decompress([{ length: 3 }]), /ArrayBuffer, a typed array or a DataView/);
        }
        // Corrupt: a bad gzip magic, a bad gzip CRC, a bad zlib header and
        // checksum, a reserved deflate block type.
        const gzip = await transform(new CompressionStream("gzip"), [data]);
        const badMagic = gzip.slice(); badMagic[0] = 0x1e;
        await rejects("gzip bad magic", transform(new DecompressionStream("gzip"), [badMagic]), /corrupt/);
        const badCrc = gzip.slice(); badCrc[badCrc.length - 6] ^= 0xff;
        await rejects("gzip bad crc", transform(new DecompressionStream("gzip"), [badCrc]), /corrupt/);
        const zlib = await transform(new CompressionStream("deflate"), [data]);
        const badHeader = zlib.slice(); badHeader[1] ^= 0x01;
        await rejects("deflate bad header", transform(new DecompressionStream("deflate"), [badHeader]), /corrupt/);
        const badAdler = zlib.slice(); badAdler[badAdler.length - 1] ^= 0xff;
        await rejects("deflate bad checksum", transform(new DecompressionStream("deflate"), [badAdler]), /corrupt/);
        await rejects("deflate-raw reserved block", transform(new DecompressionStream("deflate-raw"), [new Uint8Array([0xff, 0xff, 0xff])]), /corrupt/);

        // The readable side of a failed stream fails too, with the same error.
        const failed = new DecompressionStream("deflate-raw");
        const writer = failed.writable.getWriter();
        const reader = failed.readable.getReader();
        const read = reader.read();
        await rejects("write of corrupt data", writer.write(new Uint8Array([0xff, 0xff])), /corrupt/);
        await rejects("read of corrupt data", read, /corrupt/);
        await rejects("closed of corrupt data", reader.closed, /corrupt/);

        // Unknown formats, at construction.
        for (const [Stream, format] of [[CompressionStream, "brotli"], [DecompressionStream, "GZIP"], [CompressionStream, undefined], [DecompressionStream, "zlib"]]) {
            try { new Stream(format); failures.push(`${Stream.name}(${format}) did not throw`); }
            catch (e) { eq(`${Stream.name}(${format})`, [e.name, /unsupported format/.test(e.message)], ["TypeError", true]); }
        }
        "#,
    )
    .await;
}

/// At most 64 streams are open at once: the 65th is a RangeError until one
/// is finished, canceled or aborted.
#[tokio::test]
async fn open_streams_are_limited() {
    check_in_js(
        r#"
        const open = [];
        for (let i = 0; i < 64; i++) open.push(new DecompressionStream("gzip"));
        try { new CompressionStream("gzip"); failures.push("the 65th stream opened"); }
        catch (e) { eq("65th", [e.name, /at most 64/.test(e.message)], ["RangeError", true]); }
        await open.pop().readable.cancel();
        const finished = new CompressionStream("deflate");
        try { new CompressionStream("gzip"); failures.push("a 65th stream opened after the cancel"); }
        catch (e) { eq("65th again", e.name, "RangeError"); }
        eq("after a cancel", (await transform(finished, [new Uint8Array(10)])).length > 0, true);
        await open.pop().writable.abort();
        await rejects("a failed stream", transform(open.pop(), [new Uint8Array(20).fill(1)]), /corrupt/);
        for (let i = 0; i < 3; i++) open.push(new DecompressionStream("deflate"));
        try { new CompressionStream("gzip"); failures.push("a 65th stream opened after finish, abort and error"); }
        catch (e) { eq("65th after finish, abort and error", e.name, "RangeError"); }
        for (const stream of open) await stream.readable.cancel();
        eq("FinalizationRegistry", typeof FinalizationRegistry, "function");
        "#,
    )
    .await;
}

/// Streams an agent drops without finishing or canceling them give their
/// host (de)compressors back once collected, so they cannot use up the
/// instance's open-stream limit for good.
#[tokio::test]
async fn dropped_streams_are_released_when_collected() {
    let mut sandbox = agent(
        r#"export default { async fetch() {
            await new Promise((resolve) => setTimeout(resolve, 0));
            let opened = 0;
            try {
                for (let i = 0; i < 64; i++) {
                    const stream = new DecompressionStream("gzip");
                    stream.writable.getWriter().write(new Uint8Array([0x1f]));
                    opened++;
                }
            } catch (e) { return new Response(`${opened}: ${e.name}`); }
            return new Response(`${opened}`);
        } };"#,
    )
    .await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        let fetched = sandbox.fetch(get("/"), vec![]).await.unwrap();
        answers.push(String::from_utf8(fetched.response.body).unwrap());
        sandbox.memory_report().await;
    }
    assert_eq!(answers, ["64", "64", "64"]);
}
