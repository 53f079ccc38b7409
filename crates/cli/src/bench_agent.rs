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
