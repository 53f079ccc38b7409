//! `phalanx bench agent`: the agent sandbox's figures, each beside a
//! baseline measured in the same run.
//!
//! - Warm call: `fetch` of a hello-world agent on a warm instance (Request
//!   in, Response out), p50/p99, beside a plain JavaScript function call
//!   through the same engine (the floor of any call).
//! - First call of a never-seen agent: compile (TypeScript strip, bytecode),
//!   new runtime and context, load, call; p50/p99 over distinct sources.
//! - A command: `command(message, env, ctx)` in a fresh deterministic
//!   instance (code compiled once, as a worker's command runner caches it),
//!   which is what every worker pays per command, beside the warm call.
//! - Idle memory per loaded agent: JavaScript heap per instance and process
//!   RSS growth per instance over many loaded agents.
//! - `crypto.subtle` per operation (HMAC-SHA-256 of 1 KiB, Ed25519 sign and
//!   verify of 1 KiB, AES-GCM of 64 KiB), run in a loop inside one call,
//!   beside the same operation called from Rust (`phalanx-webcrypto`).
//! - HTTP requests/s: `agent dev`'s server (pool, streaming relay) serving a
//!   hello-world agent, and a plain hyper hello-world server, under the same
//!   load generator (keep-alive HTTP/1.1 connections) in this process.

use anyhow::Context;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use phalanx_sandbox::{AgentCode, HttpRequest, Limits, Sandbox};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const HELLO: &str = "export default { fetch(request) { return new Response('Hello World!'); } };";
const HELLO_TS: &str = "interface Env { NAME?: string }\nexport default { fetch(request: Request, env: Env): Response { return new Response(`Hello ${env.NAME ?? 'World'}!`); } };";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn request() -> HttpRequest {
    HttpRequest { url: "http://localhost/".into(), method: "GET".into(), headers: vec![], body: None }
}

pub(crate) async fn run(seconds: u64, connections: usize, calls: usize) -> anyhow::Result<()> {
    // Warm call vs plain function call.
    let mut sandbox = Sandbox::new(Limits::default()).await?;
    sandbox
        .load(
            "hello.js",
            "export default { fetch() { return new Response('Hello World!'); }, add(n) { return n + 1; } };",
            "fetch",
        )
        .await?;
    let mut warm = Vec::with_capacity(calls);
    let mut plain = Vec::with_capacity(calls);
    for _ in 0..calls / 10 {
        sandbox.fetch(request(), vec![]).await?;
    }
    for _ in 0..calls {
        let started = Instant::now();
        let fetched = sandbox.fetch(request(), vec![]).await?;
        warm.push(started.elapsed());
        anyhow::ensure!(fetched.response.body == b"Hello World!", "wrong answer");
        let started = Instant::now();
        sandbox.call_json("add", "1").await?;
        plain.push(started.elapsed());
    }
    warm.sort();
    plain.sort();
    println!(
        "warm call (fetch, hello world)   p50 {:>8.1} µs  p99 {:>8.1} µs   goal p50 < 50 µs",
        micros(percentile(&warm, 0.5)),
        micros(percentile(&warm, 0.99))
    );
    println!(
        "  baseline: plain JS call         p50 {:>8.1} µs  p99 {:>8.1} µs   warm call = {:.1}x baseline",
        micros(percentile(&plain, 0.5)),
        micros(percentile(&plain, 0.99)),
        percentile(&warm, 0.5).as_secs_f64() / percentile(&plain, 0.5).as_secs_f64()
    );

    crypto(&mut sandbox_for_crypto().await?, calls).await?;

    // A command in a fresh deterministic instance, per command.
    let counter = AgentCode::compile(
        "counter.js",
        "export default { fetch() { return new Response('x'); }, async command(m) { globalThis.n = (globalThis.n ?? 0) + m.data.add; } };",
    )?;
    let mut commands = Vec::new();
    for seq in 0..500u32 {
        let started = Instant::now();
        let mut fresh = Sandbox::for_commands(Limits::default(), [seq, 1, 2, 3], 1_767_225_600_000, 40_000).await?;
        fresh.load_code(&counter, "command").await?;
        let (result, _) = fresh.command(&format!(r#"{{"seq":{seq},"data":{{"add":1}}}}"#), &[]).await;
        result?;
        commands.push(started.elapsed());
    }
    commands.sort();
    println!(
        "command, fresh deterministic instance p50 {:>6.2} ms  p99 {:>6.2} ms   = {:.0}x a warm call ({:.0} commands/s per core)",
        micros(percentile(&commands, 0.5)) / 1000.0,
        micros(percentile(&commands, 0.99)) / 1000.0,
        percentile(&commands, 0.5).as_secs_f64() / percentile(&warm, 0.5).as_secs_f64(),
        1.0 / percentile(&commands, 0.5).as_secs_f64()
    );

    // First call of never-seen agents (distinct sources, so nothing is cached).
    let mut first = Vec::new();
    for i in 0..200 {
        let source = format!("{HELLO_TS}\n// agent {i}\n");
        let started = Instant::now();
        let code = AgentCode::compile("agent.ts", &source)?;
        let mut fresh = Sandbox::new(Limits::default()).await?;
        fresh.load_code(&code, "fetch").await?;
        let fetched = fresh.fetch(request(), vec![]).await?;
        first.push(started.elapsed());
        anyhow::ensure!(fetched.response.body == b"Hello World!", "wrong answer");
    }
    first.sort();
    println!(
        "first call, never-seen TS agent   p50 {:>8.2} ms  p99 {:>8.2} ms   goal < 5 ms (= {:.0}x a warm call)",
        micros(percentile(&first, 0.5)) / 1000.0,
        micros(percentile(&first, 0.99)) / 1000.0,
        percentile(&first, 0.5).as_secs_f64() / percentile(&warm, 0.5).as_secs_f64()
    );

    // Idle memory per loaded agent.
    const LOADED: usize = 200;
    let rss_before = rss_bytes()?;
    let code = AgentCode::compile("hello.js", HELLO)?;
    let mut loaded = Vec::with_capacity(LOADED);
    let mut heap = 0i64;
    for _ in 0..LOADED {
        let mut instance = Sandbox::new(Limits::default()).await?;
        instance.load_code(&code, "fetch").await?;
        instance.fetch(request(), vec![]).await?;
        heap += instance.memory_used_bytes().await;
        loaded.push(instance);
    }
    let rss_after = rss_bytes()?;
    println!(
        "idle memory per loaded agent      heap {:>6.0} KiB  RSS {:>6.0} KiB   goal <= 256 KiB ({LOADED} agents)",
        heap as f64 / LOADED as f64 / 1024.0,
        rss_after.saturating_sub(rss_before) as f64 / LOADED as f64 / 1024.0
    );
    drop(loaded);

    // HTTP: agent dev vs plain hyper, same load generator.
    let hyper_rps = measure_http(spawn_hyper().await?, seconds, connections).await?;
    let file = std::env::temp_dir().join(format!("phalanx-bench-{}.js", std::process::id()));
    std::fs::write(&file, HELLO)?;
    let served = crate::agent::serve_file(file.clone(), vec![]).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let agent_address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, crate::agent::router(served)).await });
    let agent_rps = measure_http(agent_address, seconds, connections).await?;
    let _ = std::fs::remove_file(&file);
    println!("HTTP hello world, {connections} connections, {seconds} s each:");
    println!("  plain hyper server               {hyper_rps:>10.0} req/s");
    println!(
        "  phalanx agent dev                {agent_rps:>10.0} req/s   = {:.0}% of hyper (goal >= 25%)",
        agent_rps / hyper_rps * 100.0
    );
    Ok(())
}

/// An agent whose methods run one `crypto.subtle` operation `n` times.
const CRYPTO_AGENT: &str = r#"
const s = crypto.subtle;
const data1k = new Uint8Array(1024).fill(7), data64k = new Uint8Array(65536).fill(7), iv = new Uint8Array(12);
let hmac, ed, edPublic, aes, signature;
const loop = async (n, f) => { for (let i = 0; i < n; i++) await f(); return n; };
export default {
  fetch() { return new Response("crypto"); },
  async setup() {
    hmac = await s.importKey("raw", new Uint8Array(32).fill(1), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const seed = Uint8Array.from([48, 46, 2, 1, 0, 48, 5, 6, 3, 43, 101, 112, 4, 34, 4, 32, ...new Uint8Array(32).fill(2)]);
    ed = await s.importKey("pkcs8", seed, "Ed25519", true, ["sign"]);
    const jwk = await s.exportKey("jwk", ed);
    edPublic = await s.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, "Ed25519", false, ["verify"]);
    aes = await s.importKey("raw", new Uint8Array(32).fill(3), "AES-GCM", false, ["encrypt"]);
    signature = await s.sign("Ed25519", ed, data1k);
    return 0;
  },
  hmac(n) { return loop(n, () => s.sign("HMAC", hmac, data1k)); },
  edSign(n) { return loop(n, () => s.sign("Ed25519", ed, data1k)); },
  edVerify(n) { return loop(n, async () => { if (!(await s.verify("Ed25519", edPublic, signature, data1k))) throw new Error("did not verify"); }); },
  gcm(n) { return loop(n, () => s.encrypt({ name: "AES-GCM", iv }, aes, data64k)); },
};
"#;

async fn sandbox_for_crypto() -> anyhow::Result<Sandbox> {
    let limits = Limits { cpu_time_max: Duration::from_secs(30), ..Limits::default() };
    let mut sandbox = Sandbox::new(limits).await?;
    sandbox.load("crypto.js", CRYPTO_AGENT, "fetch").await?;
    sandbox.call_json("setup", "0").await?;
    Ok(sandbox)
}

/// One operation called from Rust directly.
type RustOp<'a> = Box<dyn Fn() -> anyhow::Result<()> + 'a>;

/// Per-operation time of `crypto.subtle` in the sandbox beside the same
/// operation from Rust, best of several rounds each (the machine is shared).
async fn crypto(sandbox: &mut Sandbox, calls: usize) -> anyhow::Result<()> {
    use phalanx_webcrypto::{Format, KeyData, Params, UsageList};
    let usages = |names: &[&str]| UsageList::parse(names).map_err(|e| anyhow::anyhow!("{e}"));
    let raw = |bytes: Vec<u8>| KeyData::Bytes(bytes.into());
    let hmac_params = Params { hash: Some("SHA-256".into()), ..Params::named("HMAC") };
    let hmac = phalanx_webcrypto::import_key(Format::Raw, &raw(vec![1; 32]), &hmac_params, false, &usages(&["sign"])?)?;
    let seed: Vec<u8> = [&[48, 46, 2, 1, 0, 48, 5, 6, 3, 43, 101, 112, 4, 34, 4, 32][..], &[2; 32]].concat();
    let ed =
        phalanx_webcrypto::import_key(Format::Pkcs8, &raw(seed), &Params::named("Ed25519"), true, &usages(&["sign"])?)?;
    let aes = phalanx_webcrypto::import_key(
        Format::Raw,
        &raw(vec![3; 32]),
        &Params::named("AES-GCM"),
        false,
        &usages(&["encrypt"])?,
    )?;
    let (data1k, data64k) = (vec![7u8; 1024], vec![7u8; 65536]);
    let signature = phalanx_webcrypto::sign(&Params::named("Ed25519"), &ed, &data1k)?;
    let ed_public = {
        let phalanx_webcrypto::Exported::Jwk(jwk) = phalanx_webcrypto::export_key(Format::Jwk, &ed)? else {
            anyhow::bail!("a JWK");
        };
        let x: serde_json::Value = serde_json::from_str(&jwk)?;
        let public = serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x["x"] }).to_string();
        phalanx_webcrypto::import_key(
            Format::Jwk,
            &KeyData::Jwk(public.into()),
            &Params::named("Ed25519"),
            false,
            &usages(&["verify"])?,
        )?
    };
    let gcm = Params { iv: Some(vec![0; 12]), ..Params::named("AES-GCM") };
    let per_call = (calls / 20).clamp(20, 500);
    let cases: [(&str, &str, usize, RustOp, f64); 4] = [
        (
            "HMAC-SHA-256, 1 KiB",
            "hmac",
            per_call,
            Box::new(|| phalanx_webcrypto::sign(&Params::named("HMAC"), &hmac, &data1k).map(drop).map_err(Into::into)),
            3.0,
        ),
        (
            "Ed25519 sign, 1 KiB",
            "edSign",
            per_call,
            Box::new(|| phalanx_webcrypto::sign(&Params::named("Ed25519"), &ed, &data1k).map(drop).map_err(Into::into)),
            3.0,
        ),
        (
            "Ed25519 verify, 1 KiB",
            "edVerify",
            per_call,
            Box::new(|| {
                anyhow::ensure!(
                    phalanx_webcrypto::verify(&Params::named("Ed25519"), &ed_public, &signature, &data1k)?,
                    "did not verify"
                );
                Ok(())
            }),
            3.0,
        ),
        (
            "AES-256-GCM, 64 KiB",
            "gcm",
            per_call / 4,
            Box::new(|| phalanx_webcrypto::encrypt(&gcm, &aes, &data64k).map(drop).map_err(Into::into)),
            1.3,
        ),
    ];
    println!("crypto.subtle per operation (best of 5 rounds), beside the same operation from Rust:");
    for (name, method, n, rust, goal) in cases {
        let (mut agent, mut direct) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let started = Instant::now();
            sandbox.call_json(method, &n.to_string()).await?;
            agent = agent.min(micros(started.elapsed()) / n as f64);
            let started = Instant::now();
            for _ in 0..n {
                rust()?;
            }
            direct = direct.min(micros(started.elapsed()) / n as f64);
        }
        println!(
            "  {name:<24} agent {agent:>8.1} µs  Rust {direct:>8.1} µs   = {:.2}x (goal <= {goal}x)",
            agent / direct
        );
    }
    Ok(())
}

/// Resident set size of this process, from /proc.
pub(crate) fn rss_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("reading /proc/self/statm")?;
    let pages: u64 = statm.split_whitespace().nth(1).context("statm format")?.parse()?;
    Ok(pages * 4096)
}

/// A plain hyper HTTP/1.1 server answering "Hello World!".
async fn spawn_hyper() -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"Hello World!",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

/// Requests/s over `connections` keep-alive connections for `seconds`.
async fn measure_http(address: std::net::SocketAddr, seconds: u64, connections: usize) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (done, count) = (done.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            while !done.load(Ordering::Relaxed) {
                let request = hyper::Request::get("/").header("host", "localhost").body(Empty::<Bytes>::new())?;
                let response = sender.send_request(request).await?;
                anyhow::ensure!(response.status() == 200, "status {}", response.status());
                let body = response.into_body().collect().await?.to_bytes();
                anyhow::ensure!(body.as_ref() == b"Hello World!", "wrong body");
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    // Warm up for a second, then count.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start_count = count.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let counted = count.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(counted as f64 / elapsed.as_secs_f64())
}
