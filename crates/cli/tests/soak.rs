//! A bounded soak of a real `phalanx dev` under one hostile client (issue
//! 20, must-show 2): from its own address (127.0.0.2) it opens thousands of
//! connections that never finish a request head to the gateway and to the
//! RPC, holds idle WebSockets on the RPC, and floods the gateway with
//! envelopes sealed to a key epoch far ahead. Meanwhile a well-behaved
//! client (127.0.0.1) keeps calling an agent and reading the chain: its p99
//! stays under a second, the chain keeps finalizing, the worker's verified
//! height keeps up, and the process never exits. The figures are printed.
//! And idle WebSockets from many addresses fill only their own budget.

mod common;

use common::{DevNode, deploy, free_port, until};
use phalanx_primitives::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ATTACKER: [u8; 4] = [127, 0, 0, 2];
/// How long the well-behaved client measures under attack.
const SOAK: Duration = Duration::from_secs(20);

/// A connection from `from`.
async fn connect(from: [u8; 4], port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((from, 0).into())?;
    socket.connect(([127, 0, 0, 1], port).into()).await
}

#[derive(Default)]
struct Tally {
    held: AtomicUsize,
    refused: AtomicUsize,
}

/// Opens connections from the attacker's address that send half a request
/// head and then nothing, reopening whatever the server closes, until `stop`.
async fn slow_heads(port: u16, path: String, count: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    slow_heads_from(ATTACKER, port, path, count, stop, tally).await
}

/// [`slow_heads`] from the address `from`.
async fn slow_heads_from(
    from: [u8; 4],
    port: u16,
    path: String,
    count: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (stop, tally, path) = (stop.clone(), tally.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut stream) = connect(from, port).await else {
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let _ = stream.write_all(format!("POST {path} HTTP/1.1\r\nhost: x\r\nx-slow: ").as_bytes()).await;
                let mut buffer = [0u8; 256];
                // A refusal is answered at once; a connection with no answer
                // after a second is held, until the server cuts it (the head
                // timeout) or the soak ends.
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await {
                    Ok(Ok(n)) if n > 0 => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        tally.held.fetch_add(1, Ordering::Relaxed);
                        let _ = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer)).await;
                        tally.held.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Opens WebSockets to the RPC and leaves them idle, until `stop`.
async fn idle_websockets(port: u16, count: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (stop, tally) = (stop.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut stream) = connect(ATTACKER, port).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let handshake = "GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                                 sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n";
                let _ = stream.write_all(handshake.as_bytes()).await;
                let mut buffer = [0u8; 512];
                match stream.read(&mut buffer).await {
                    Ok(n) if buffer[..n].starts_with(b"HTTP/1.1 101") => {
                        tally.held.fetch_add(1, Ordering::Relaxed);
                        // Idle: read (pings) until the server closes or the soak ends.
                        while !stop.load(Ordering::Relaxed) {
                            match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer)).await {
                                Ok(Ok(0)) | Ok(Err(_)) => break,
                                _ => {}
                            }
                        }
                        tally.held.fetch_sub(1, Ordering::Relaxed);
                    }
                    _ => {
                        tally.refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Envelopes sealed to epoch 1,000,000 of the agent, as fast as they are answered.
async fn envelope_flood(url: String, envelope: Vec<u8>, stop: Arc<AtomicBool>, sent: Arc<AtomicUsize>) {
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ATTACKER))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url, envelope, stop, sent) =
            (client.clone(), url.clone(), envelope.clone(), stop.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = client
                    .post(&url)
                    .header("content-type", phalanx_keys::call::ENVELOPE_CONTENT_TYPE)
                    .body(envelope.clone())
                    .send()
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// A dev network with one worker, the open-files limit raised first (these
/// tests open thousands of sockets): its folder, process, RPC and gateway ports.
fn dev_with_one_worker() -> (tempfile::TempDir, DevNode, u16, u16) {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let (rpc_port, gateway_port) = (free_port(), free_port());
    let port = gateway_port.to_string();
    let node = DevNode::start_with(dir.path(), rpc_port, free_port(), &["--workers", "1", "--gateway-port", &port]);
    // The worker's gateway opens once the worker has caught up: wait for it.
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    until("the worker's gateway answering", || {
        http.get(format!("http://127.0.0.1:{gateway_port}/attestation")).send().is_ok_and(|r| r.status() == 200)
    });
    (dir, node, rpc_port, gateway_port)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[test]
fn one_hostile_client_cannot_starve_others_or_stop_the_node() {
    let (dir, mut node, rpc_port, gateway_port) = dev_with_one_worker();
    let source = dir.path().join("hello.js");
    std::fs::write(&source, "export default { fetch() { return new Response('hello'); } };").unwrap();
    let id = deploy(&node, &source, "bob");
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let agent_url = format!("{gateway}/agents/{id}/");
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    until("the agent answering", || http.get(&agent_url).send().is_ok_and(|r| r.status() == 200));
    let agent: Hash = id.parse().unwrap();
    let stranger = phalanx_keys::SecretKey::from_bytes([7; 32]).public();
    let request =
        phalanx_keys::call::SealedRequest { method: "GET".into(), path: "/".into(), headers: vec![], body: vec![] };
    let (envelope, _) = request.seal(agent, 1_000_000, &stranger).unwrap();

    let head =
        |node: &DevNode| -> u64 { node.cli_json::<serde_json::Value>(&["chain", "head"])["height"].as_u64().unwrap() };
    let start_height = head(&node);

    // The attack, on its own runtime.
    let stop = Arc::new(AtomicBool::new(false));
    let (gateway_tally, rpc_tally, ws_tally) =
        (Arc::new(Tally::default()), Arc::new(Tally::default()), Arc::new(Tally::default()));
    let flooded = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let attack = {
        let (stop, gateway_tally, rpc_tally, ws_tally, flooded) =
            (stop.clone(), gateway_tally.clone(), rpc_tally.clone(), ws_tally.clone(), flooded.clone());
        let flood_url = format!("{gateway}/agents/{id}");
        let agent_path = format!("/agents/{id}/");
        runtime.spawn(async move {
            tokio::join!(
                slow_heads(gateway_port, agent_path, 1_500, stop.clone(), gateway_tally),
                slow_heads(rpc_port, "/".into(), 1_500, stop.clone(), rpc_tally),
                idle_websockets(rpc_port, 300, stop.clone(), ws_tally),
                envelope_flood(flood_url, envelope, stop.clone(), flooded),
            )
        })
    };
    std::thread::sleep(Duration::from_secs(3));

    // The well-behaved client, from 127.0.0.1, alternating gateway and RPC calls.
    let rpc = node.client();
    let blocking = tokio::runtime::Runtime::new().unwrap();
    let (mut gateway_times, mut rpc_times, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    while started.elapsed() < SOAK {
        let t = Instant::now();
        match http.get(&agent_url).send() {
            Ok(r) if r.status() == 200 => gateway_times.push(t.elapsed()),
            other => failures.push(format!("gateway: {:?}", other.map(|r| r.status()))),
        }
        let t = Instant::now();
        match blocking.block_on(phalanx_rpc::PhalanxClient::chain_head(&rpc)) {
            Ok(_) => rpc_times.push(t.elapsed()),
            Err(error) => failures.push(format!("rpc: {error}")),
        }
    }
    let held = (
        gateway_tally.held.load(Ordering::Relaxed),
        rpc_tally.held.load(Ordering::Relaxed),
        ws_tally.held.load(Ordering::Relaxed),
    );
    let refused = (
        gateway_tally.refused.load(Ordering::Relaxed),
        rpc_tally.refused.load(Ordering::Relaxed),
        ws_tally.refused.load(Ordering::Relaxed),
    );
    let end_height = head(&node);
    let attestation: serde_json::Value = http.get(format!("{gateway}/attestation")).send().unwrap().json().unwrap();
    let verified = attestation["verified_height"].as_u64().unwrap();
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async { tokio::time::timeout(Duration::from_secs(40), attack).await.ok() });
    drop(runtime);

    gateway_times.sort();
    rpc_times.sort();
    let report = format!(
        "soak {SOAK:?}: gateway {} calls p50 {:?} p99 {:?}; rpc {} calls p50 {:?} p99 {:?}; failures {}; \
         attacker held (gateway, rpc, ws) {held:?}, refused {refused:?}, {} envelopes; \
         height {start_height} -> {end_height}, worker verified {verified}",
        gateway_times.len(),
        percentile(&gateway_times, 0.5),
        percentile(&gateway_times, 0.99),
        rpc_times.len(),
        percentile(&rpc_times, 0.5),
        percentile(&rpc_times, 0.99),
        failures.len(),
        flooded.load(Ordering::Relaxed),
    );
    println!("{report}");
    assert!(failures.is_empty(), "{report}: {:?}", &failures[..failures.len().min(5)]);
    assert!(percentile(&gateway_times, 0.99) < Duration::from_secs(1), "{report}");
    assert!(percentile(&rpc_times, 0.99) < Duration::from_secs(1), "{report}");
    assert!(end_height > start_height + 5, "the chain kept finalizing: {report}");
    assert!(verified + 20 >= end_height, "the worker kept up: {report}");
    assert!(held.0 <= 256 && held.1 <= 64 && held.2 <= 16, "one client holds at most its share: {report}");
    assert!(refused.0 > 0 && refused.1 > 0 && refused.2 > 0, "the attacker met every cap: {report}");
    assert!(node.child.try_wait().unwrap().is_none(), "the process is still running");
    // And it still serves once the attack is over.
    assert_eq!(http.get(&agent_url).send().unwrap().status(), 200);
}

/// The test opens thousands of sockets: the soft limit of open files is raised to the hard one.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    if let Some(hard) = getrlimit(Resource::Nofile).maximum {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) });
    }
}

/// Finding 6: idle WebSockets, even from many addresses, never shut HTTP
/// callers out of the RPC (they are counted apart, 16 per address, 256 in
/// all) and the worker's chain sync keeps going.
#[test]
fn idle_websockets_from_many_addresses_never_shut_out_http() {
    let (_dir, node, rpc_port, gateway_port) = dev_with_one_worker();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let handshake = "GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                     sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n";
    // 17 WebSockets from each of 17 addresses: 16 each are taken (272 > 256 in all).
    let (held, refused): (Vec<tokio::net::TcpStream>, usize) = runtime.block_on(async {
        let (mut held, mut refused) = (Vec::new(), 0);
        for host in 2..19u8 {
            for _ in 0..17 {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(([127, 0, 0, host], 0).into()).unwrap();
                let mut stream = socket.connect(([127, 0, 0, 1], rpc_port).into()).await.unwrap();
                stream.write_all(handshake.as_bytes()).await.unwrap();
                let mut buffer = [0u8; 256];
                let n = stream.read(&mut buffer).await.unwrap_or(0);
                if buffer[..n].starts_with(b"HTTP/1.1 101") {
                    held.push(stream);
                } else {
                    assert!(buffer[..n].starts_with(b"HTTP/1.1 429"), "{}", String::from_utf8_lossy(&buffer[..n]));
                    refused += 1;
                }
            }
        }
        (held, refused)
    });
    assert_eq!(held.len(), 256, "the WebSocket cap in all");
    assert_eq!(refused, 17 * 17 - 256);
    // HTTP callers are served, and the chain and the worker move on.
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let head =
        |node: &DevNode| -> u64 { node.cli_json::<serde_json::Value>(&["chain", "head"])["height"].as_u64().unwrap() };
    let verified = || -> u64 {
        let attestation: serde_json::Value =
            http.get(format!("http://127.0.0.1:{gateway_port}/attestation")).send().unwrap().json().unwrap();
        attestation["verified_height"].as_u64().unwrap()
    };
    let (start, start_verified) = (head(&node), verified());
    until("the chain and the worker moving on with 256 idle WebSockets open", || {
        head(&node) >= start + 5 && verified() >= start_verified + 5
    });
    drop(held);
}

/// Open files the node of [`descriptors_never_run_out`] may have.
const OPEN_FILES: u64 = 6_000;

/// Accepts connections and never answers them, until `stop` (an origin
/// that holds every request an agent sends it). `open` counts the
/// connections the client has not closed; `most` the most at once.
async fn tarpit(
    listener: tokio::net::TcpListener,
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok((mut stream, _))) = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await else {
            continue;
        };
        let now = open.fetch_add(1, Ordering::Relaxed) + 1;
        most.fetch_max(now, Ordering::Relaxed);
        let (open, stop) = (open.clone(), stop.clone());
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    _ => {}
                }
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Answers every request at once and keeps the connection alive (an origin
/// whose idle connections an agent's client would pool).
async fn quick(listener: tokio::net::TcpListener, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok((mut stream, _))) = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buffer).await {
                if n == 0 || stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Issue 20, the descriptor reserve: with the node's open-files limit at
/// 6,000, agents send thousands of requests to an origin that never answers
/// and to hundreds of origins whose idle connections could be pooled, while
/// clients from many addresses fill every connection the listeners may
/// hold. The process's descriptors never come near its limit, the chain
/// keeps finalizing (consensus writes its journal throughout), the process
/// never exits, and an agent past the outgoing cap gets a clear error.
#[test]
fn descriptors_never_run_out() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let (rpc_port, gateway_port) = (free_port(), free_port());
    let port = gateway_port.to_string();
    let mut node = DevNode::start_limited(
        dir.path(),
        rpc_port,
        &["--workers", "1", "--gateway-port", &port, "--agent-fetch-private"],
        OPEN_FILES,
    );
    let pid = node.child.id();
    let open_files = move || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count());

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (tarpit_open, tarpit_most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (tarpit_port, quick_port) = runtime.block_on(async {
        let slow = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let fast = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let ports = (slow.local_addr().unwrap().port(), fast.local_addr().unwrap().port());
        tokio::spawn(tarpit(slow, stop.clone(), tarpit_open.clone(), tarpit_most.clone()));
        tokio::spawn(quick(fast, stop.clone()));
        ports
    });

    // Each call sends 25 requests to the tarpit and 25 to distinct quick
    // origins (127.0.4.x), all at once.
    let source = dir.path().join("fan-out.js");
    std::fs::write(
        &source,
        format!(
            "export default {{ async fetch(request) {{
               const n = Number(new URL(request.url).searchParams.get('n'));
               const jobs = [];
               for (let i = 0; i < 25; i++) {{
                 jobs.push(fetch(`http://127.0.3.${{(n + i) % 250 + 1}}:{tarpit_port}/`).then(() => 'answered', e => String(e)));
                 jobs.push(fetch(`http://127.0.4.${{(n * 25 + i) % 250 + 1}}:{quick_port}/`).then(r => r.text(), e => String(e)));
               }}
               return new Response(JSON.stringify(await Promise.all(jobs)));
             }} }};"
        ),
    )
    .unwrap();
    // Four agents of eight instances each: up to 1,600 requests at once,
    // far past the 256 the process lets out.
    let ids: Vec<String> = (0..4).map(|_| deploy(&node, &source, "bob")).collect();
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let blocking = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for id in &ids {
        until("the agent answering", || {
            blocking.get(format!("{gateway}/agents/{id}/?n=0")).send().is_ok_and(|r| r.status() == 200)
        });
    }
    let head =
        |node: &DevNode| -> u64 { node.cli_json::<serde_json::Value>(&["chain", "head"])["height"].as_u64().unwrap() };
    let start_height = head(&node);
    let watcher = node.client();
    runtime.block_on(phalanx_rpc::PhalanxClient::chain_head(&watcher)).unwrap();

    // The agents' calls, 12 at a time per agent (eight run, four queue).
    let answers = Arc::new(Mutex::new(Vec::<String>::new()));
    for (a, id) in ids.iter().enumerate() {
        for k in 0..12usize {
            let (http, stop, answers) = (http.clone(), stop.clone(), answers.clone());
            let url = format!("{gateway}/agents/{id}/");
            runtime.spawn(async move {
                let mut n = a * 1000 + k * 10;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if let Ok(response) = http.get(format!("{url}?n={n}")).send().await
                        && let Ok(text) = response.text().await
                    {
                        answers.lock().unwrap().push(text);
                    }
                }
            });
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    // Then every listener connection the process may hold, from 20 addresses.
    let tally = Arc::new(Tally::default());
    for host in 1..=20u8 {
        let (stop, tally) = (stop.clone(), tally.clone());
        runtime.spawn(slow_heads_from([127, 0, 1, host], gateway_port, "/".into(), 100, stop, tally));
    }
    for host in 21..=30u8 {
        let (stop, tally) = (stop.clone(), tally.clone());
        runtime.spawn(slow_heads_from([127, 0, 1, host], rpc_port, "/".into(), 64, stop, tally));
    }

    // The chain is watched over one RPC connection opened before the
    // attack and kept alive by the polling (a new one would be refused
    // while the attacker holds the process's whole budget, as it should).
    let started = Instant::now();
    let (mut most_open, mut end_height, mut last_seen) = (0, start_height, Duration::ZERO);
    while started.elapsed() < Duration::from_secs(25) {
        most_open = most_open.max(open_files());
        assert!(node.child.try_wait().unwrap().is_none(), "the process exited under load");
        if let Ok(Ok(head)) = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), phalanx_rpc::PhalanxClient::chain_head(&watcher)).await
        }) {
            (end_height, last_seen) = (head.height, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    drop(runtime);
    let answers = answers.lock().unwrap().clone();
    let capped = answers.iter().filter(|a| a.contains("requests out already")).count();
    let served = answers.iter().filter(|a| a.contains("\"ok\"")).count();
    let report = format!(
        "most open files {most_open} of {OPEN_FILES}; height {start_height} -> {end_height} (last seen at {last_seen:?}); \
         {} agent answers, {served} with pooled-origin answers, {capped} that met the outgoing cap; \
         tarpit held {} at most; attacker held {} listener connections, was refused {}",
        answers.len(),
        tarpit_most.load(Ordering::Relaxed),
        tally.held.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
    );
    println!("{report}");
    assert!(node.child.try_wait().unwrap().is_none(), "the process is still running: {report}");
    assert!(end_height > start_height + 10, "the chain kept finalizing: {report}");
    assert!(last_seen > Duration::from_secs(20), "and was still finalizing at the end: {report}");
    assert!((most_open as u64) < OPEN_FILES - 1_000, "descriptors stayed well inside the limit: {report}");
    assert!(tally.refused.load(Ordering::Relaxed) > 0, "the listeners' budget was full: {report}");
    assert!(capped > 0 && served > 0, "agents met the outgoing cap and were still served: {report}");
    let most = tarpit_most.load(Ordering::Relaxed);
    // A timed-out request gives its permit back a moment before its socket
    // closes, hence the bound on sockets, not on requests.
    assert!(
        (200..=phalanx_sandbox::outgoing::OUTGOING_SOCKETS_MAX).contains(&most),
        "the agents held about as many requests as the cap allows, and no more sockets than the bound: {report}"
    );
}
