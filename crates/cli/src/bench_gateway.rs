//! `phalanx bench gateway`: the worker's HTTP gateway under load, beside a
//! plain hyper server measured in the same run.
//!
//! Everything is real and in this process: a chain is built block by block
//! with real certificates (dev genesis, one worker runtime on the simulated
//! TEE registers, is elected gatekeeper, a cluster is created with it as
//! member, its cluster key is handed over on chain, a hello-world agent is
//! deployed and its key published), the worker's runtime verifies and
//! replays every block, and `phalanx_gateway::server::serve` serves from
//! its verified state, receipt signer and cluster keyring, as `phalanx
//! worker` does. Then one load generator (keep-alive HTTP/1.1 connections
//! over loopback, closed loop, per-request latency) drives in turn:
//! (a) a plain hyper hello-world server (the baseline),
//! (b) the hello-world agent through the gateway,
//! (c) the same with encrypted calls (each request a fresh
//!     `SealedRequest` envelope sealed to the agent's published key; each
//!     response opened and decoded by the client),
//! each with many connections (throughput, latency under load) and with one
//! (latency without queueing), and
//! (d) the first call of freshly deployed agents whose code the gateway has
//!     never compiled, right after the block deploying them is verified.

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use phalanx_gateway::receipt::{RECEIPT_HEADER, SignedReceipt};
use phalanx_gateway::server::{GatewayConfig, Keyring};
use phalanx_keys::call::{ENVELOPE_CONTENT_TYPE, SealedRequest, SealedResponse};
use phalanx_node::dev::dev_genesis;
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Hash, PLANCK_PER_PHA};
use phalanx_state::builder::{Candidate, build_block};
use phalanx_state::modules::registry::{FEATURE_AGENTS, FEATURE_GATEKEEPER};
use phalanx_state::{Block, Call, GatekeeperParams, Language, SignedTransaction, State, Transaction};
use phalanx_worker::Runtime;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const HELLO: &str = "export default { fetch() { return new Response(\"hello\") } }";
const GOAL_REQUESTS_PER_S: f64 = 10_000.0;
const GOAL_P99_MS: f64 = 5.0;
const GOAL_FIRST_CALL_MS: f64 = 5.0;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Removes the runtime's data folder when the bench ends, however it ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A one-validator chain built block by block, and one worker runtime
/// verifying and replaying every block.
struct Network {
    state: State,
    parent: Block,
    runtime: Runtime,
}

fn signed(state: &State, from: &str, nonce: u64, call: Call) -> SignedTransaction {
    let key = dev_keypair(from).expect("dev account");
    Transaction { chain_id: state.chain_id(), signer: key.public(), nonce, fee: PLANCK_PER_PHA, call }.sign(&key)
}

impl Network {
    fn start(dir: &std::path::Path) -> anyhow::Result<Network> {
        let mut genesis = dev_genesis();
        // Elections soon after the worker registers; one gatekeeper.
        genesis.gatekeeper = GatekeeperParams { era_blocks: 10, gatekeepers_max: 1, activation_delay: 2 };
        let (state, parent) = genesis.build().map_err(|e| anyhow::anyhow!("dev genesis: {e}"))?;
        let platform = Box::new(phalanx_worker::tee::sim::SimPlatform::new(dir.join("sim-sealing.key")));
        let runtime = Runtime::start(
            platform,
            dir,
            &genesis,
            Some(genesis.chain_id()),
            dev_keypair("bob").expect("dev account").public(),
            FEATURE_AGENTS | FEATURE_GATEKEEPER,
            1,
        )?;
        Ok(Network { state, parent, runtime })
    }

    fn nonce(&self, name: &str) -> u64 {
        self.state.account(&dev_keypair(name).expect("dev account").public()).map_or(0, |a| a.nonce)
    }

    /// One block: the worker's registration or owed messages (paid by bob)
    /// and `governance` (signed by alice), certified, verified and replayed
    /// by the runtime. Returns the hashes of alice's transactions.
    fn step(&mut self, governance: Vec<Call>) -> anyhow::Result<Vec<Hash>> {
        let (mut bob, mut alice) = (self.nonce("bob"), self.nonce("alice"));
        let calls: Vec<Call> = if self.runtime.registered().is_none() {
            let (info, evidence) = self.runtime.registration()?;
            vec![Call::RegisterWorker { info, evidence }]
        } else {
            let payloads = self.runtime.gatekeeper_duties();
            self.runtime.sign_messages(payloads).into_iter().map(|message| Call::WorkerMessage { message }).collect()
        };
        let mut txs = Vec::new();
        for call in calls {
            txs.push(signed(&self.state, "bob", bob, call));
            bob += 1;
        }
        let mut hashes = Vec::new();
        for call in governance {
            let tx = signed(&self.state, "alice", alice, call);
            hashes.push(tx.hash());
            txs.push(tx);
            alice += 1;
        }
        let candidates: Vec<Candidate> = txs
            .into_iter()
            .map(|tx| {
                let encoded_len = tx.encode().len();
                Candidate { tx, encoded_len, signature_verified: false }
            })
            .collect();
        let built = build_block(&self.state, self.parent.hash(), self.state.timestamp_ms() + 500, candidates);
        anyhow::ensure!(built.rejected.is_empty(), "transactions rejected: {:?}", built.rejected);
        let height = built.block.header.height;
        let cert = phalanx_node::dev::dev_certificate(&self.state, &built.block);
        let encoded = built.block.encode();
        self.runtime
            .apply_blocks(&[(encoded.as_slice(), cert.as_slice())])
            .map_err(|e| anyhow::anyhow!("the worker refused block {height}: {e:?}"))?;
        self.state = built.state;
        self.parent = built.block;
        Ok(hashes)
    }

    /// Steps (at most 300 blocks) until `done` holds of the chain's state.
    fn until(&mut self, what: &str, done: impl Fn(&State) -> bool) -> anyhow::Result<()> {
        for _ in 0..300 {
            if done(&self.state) {
                // One more block so the runtime acts on what it just saw.
                self.step(vec![])?;
                return Ok(());
            }
            self.step(vec![])?;
        }
        anyhow::bail!("{what} did not happen within 300 blocks")
    }
}

/// What one load case sends.
#[derive(Clone, Debug)]
enum Target {
    Plain {
        path: String,
    },
    /// An encrypted call to `agent`, sealed to its key `public` of `epoch`.
    Sealed {
        path: String,
        agent: Hash,
        epoch: u64,
        public: [u8; 32],
    },
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(address: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Client time spent sealing the request and opening the response.
#[derive(Default, Debug, Clone, Copy)]
struct ClientCrypto {
    seal: Duration,
    open: Duration,
}

/// One request; checks the answer is the agent's `hello` (opened, for an
/// encrypted call) and returns the response's receipt header, if any.
async fn call(sender: &mut Sender, target: &Target, crypto: &mut ClientCrypto) -> anyhow::Result<Option<String>> {
    sender.ready().await?;
    let (request, response_key) = match target {
        Target::Plain { path } => {
            (hyper::Request::get(path.as_str()).header("host", "localhost").body(Full::new(Bytes::new()))?, None)
        }
        Target::Sealed { path, agent, epoch, public } => {
            let started = Instant::now();
            let sealed = SealedRequest { method: "GET".into(), path: "/".into(), headers: vec![], body: vec![] };
            let (envelope, key) = sealed.seal(*agent, *epoch, public)?;
            crypto.seal += started.elapsed();
            let request = hyper::Request::post(path.as_str())
                .header("host", "localhost")
                .header("content-type", ENVELOPE_CONTENT_TYPE)
                .body(Full::new(Bytes::from(envelope)))?;
            (request, Some(key))
        }
    };
    let response = sender.send_request(request).await?;
    let status = response.status();
    let receipt = response.headers().get(RECEIPT_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(status == 200, "status {status}: {}", String::from_utf8_lossy(&body));
    match response_key {
        None => anyhow::ensure!(body.as_ref() == b"hello", "wrong body {:?}", String::from_utf8_lossy(&body)),
        Some(key) => {
            let started = Instant::now();
            let opened = key.open(0, &body)?;
            let answer = SealedResponse::decode(&opened)?;
            crypto.open += started.elapsed();
            anyhow::ensure!(answer.status == 200 && answer.body == b"hello", "wrong sealed answer {answer:?}");
        }
    }
    Ok(receipt)
}

/// Throughput and latency of one case.
#[derive(Debug, Clone, serde::Serialize)]
struct Measured {
    connections: usize,
    requests: usize,
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// CPU time of this whole process (client and servers) per request.
    cpu_us_per_request: f64,
    /// CPU time of this process over wall time in the window (at most the core count).
    cores_busy: f64,
}

/// CPU time used by this process so far (user and system, from /proc;
/// Linux reports it in ticks of 1/100 s).
fn process_cpu() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11).context("utime")?.parse::<u64>()? + fields.get(12).context("stime")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// Closed-loop load over `connections` keep-alive connections: `warmup`
/// unmeasured, then `seconds` in which every completed request's latency
/// is recorded.
async fn measure(
    address: SocketAddr,
    target: &Target,
    connections: usize,
    warmup: Duration,
    seconds: u64,
) -> anyhow::Result<Measured> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (stop, target) = (stop.clone(), target.clone());
        let mut sender = connect(address).await?;
        tasks.push(tokio::spawn(async move {
            let mut samples: Vec<(Instant, Duration)> = Vec::with_capacity(1 << 16);
            let mut crypto = ClientCrypto::default();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                call(&mut sender, &target, &mut crypto).await?;
                samples.push((started, started.elapsed()));
            }
            anyhow::Ok(samples)
        }));
    }
    tokio::time::sleep(warmup).await;
    let (window_start, cpu_start) = (Instant::now(), process_cpu()?);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (window_end, cpu_end) = (Instant::now(), process_cpu()?);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        for (started, latency) in task.await?? {
            if started >= window_start && started + latency <= window_end {
                latencies.push(latency);
            }
        }
    }
    latencies.sort();
    let (wall, cpu) = ((window_end - window_start).as_secs_f64(), (cpu_end - cpu_start).as_secs_f64());
    Ok(Measured {
        connections,
        requests: latencies.len(),
        requests_per_s: latencies.len() as f64 / wall,
        p50_ms: ms(percentile(&latencies, 0.5)),
        p99_ms: ms(percentile(&latencies, 0.99)),
        max_ms: ms(latencies.last().copied().unwrap_or_default()),
        cpu_us_per_request: cpu * 1e6 / latencies.len().max(1) as f64,
        cores_busy: cpu / wall,
    })
}

/// A plain hyper HTTP/1.1 server answering `hello`.
async fn spawn_hyper() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"hello"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

/// One case: loaded (many connections) and unloaded (one connection).
#[derive(Debug, Clone, serde::Serialize)]
struct Case {
    name: &'static str,
    loaded: Measured,
    single: Measured,
}

pub(crate) async fn run(seconds: u64, connections: usize, fresh_agents: usize, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        seconds > 0 && connections > 0 && fresh_agents > 0,
        "need --seconds, --connections, --fresh-agents > 0"
    );
    let dir = TempDir(std::env::temp_dir().join(format!("phalanx-bench-gateway-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;

    // The chain and the worker, up to a deployed agent with a published key.
    let setup_started = Instant::now();
    let mut network = Network::start(&dir.0)?;
    network.until("the worker's registration and election as gatekeeper", |s| {
        s.key_epochs().current.as_ref().is_some_and(|c| c.epoch == 1 && c.holders.len() == 1)
    })?;
    network.step(vec![Call::CreateCluster { name: "bench".into() }])?;
    let cluster = *network.state.clusters().next().context("no cluster")?.0;
    let worker = network.runtime.identity();
    network.step(vec![Call::SetClusterWorker { cluster, worker, member: true }])?;
    network.until("the cluster key reaching the worker", |s| {
        s.cluster(&cluster).and_then(|c| c.key(1)).is_some_and(|k| k.received.contains(&worker))
    })?;
    let deploy = |name: String, code: String| Call::DeployAgent {
        name,
        cluster,
        language: Language::JavaScript,
        code: code.into_bytes(),
    };
    let hashes = network.step(vec![deploy("hello".into(), HELLO.into())])?;
    let agent = phalanx_state::modules::agents::agent_id(&hashes[0]);
    network.until("the agent's key being published", |s| s.agent(&agent).is_some_and(|a| a.newest_key().is_some()))?;
    let key = network.state.agent(&agent).and_then(|a| a.newest_key()).context("agent key")?.clone();
    anyhow::ensure!(
        !network.runtime.cluster_keyring().is_empty(),
        "the worker holds no cluster key after {} blocks",
        network.state.height()
    );
    let setup_blocks = network.state.height();
    let setup = setup_started.elapsed();

    // The gateway, serving from the worker's verified state as `phalanx worker` does.
    let (view, view_rx) = watch::channel(Arc::new(network.runtime.chain().state().clone()));
    let (_keyring, keyring_rx) = watch::channel::<Arc<Keyring>>(Arc::new(network.runtime.cluster_keyring()));
    let config = GatewayConfig::local(0);
    let (gateway, _gateway_task) = phalanx_gateway::server::serve(
        &config,
        network.runtime.receipt_signer(),
        view_rx,
        keyring_rx,
        phalanx_gateway::server::Shared::detached(),
    )
    .await?;

    let plain = Target::Plain { path: format!("/agents/{agent}") };
    let sealed = Target::Sealed { path: format!("/agents/{agent}"), agent, epoch: key.epoch, public: key.public };

    // Every path answers correctly, receipts check out, and the client's
    // own share of an encrypted call (seal, open) is measured.
    let mut sender = connect(gateway).await?;
    let mut crypto = ClientCrypto::default();
    for target in [&plain, &sealed] {
        let header = call(&mut sender, target, &mut crypto).await?.context("no receipt on the gateway's response")?;
        let receipt = SignedReceipt::from_header(&header).map_err(|e| anyhow::anyhow!("receipt: {e}"))?;
        anyhow::ensure!(receipt.receipt.agent == agent && receipt.receipt.worker == worker, "receipt for another call");
    }
    const CRYPTO_CALLS: u32 = 200;
    crypto = ClientCrypto::default();
    for _ in 0..CRYPTO_CALLS {
        call(&mut sender, &sealed, &mut crypto).await?;
    }
    let client_seal_us = crypto.seal.as_secs_f64() * 1e6 / f64::from(CRYPTO_CALLS);
    let client_open_us = crypto.open.as_secs_f64() * 1e6 / f64::from(CRYPTO_CALLS);

    // (a)–(c): each loaded, then over one connection.
    let baseline = spawn_hyper().await?;
    let root = Target::Plain { path: "/".into() };
    let mut cases = Vec::new();
    for (name, address, target) in [
        ("(a) plain hyper hello world (baseline)", baseline, &root),
        ("(b) gateway, hello-world agent", gateway, &plain),
        ("(c) gateway, encrypted call", gateway, &sealed),
    ] {
        let loaded = measure(address, target, connections, Duration::from_secs(1), seconds).await?;
        let single = measure(address, target, 1, Duration::from_millis(200), seconds).await?;
        cases.push(Case { name, loaded, single });
    }

    // (d) First call after deploy: fresh agents (distinct code, so nothing
    // is compiled or pooled) in one block; the gateway sees the block, then
    // each agent's first and second call, one at a time.
    let fresh: Vec<Call> =
        (0..fresh_agents).map(|i| deploy(format!("fresh-{i}"), format!("{HELLO}\n// fresh agent {i}\n"))).collect();
    let hashes = network.step(fresh)?;
    view.send_replace(Arc::new(network.runtime.chain().state().clone()));
    let mut first = Vec::new();
    let mut second = Vec::new();
    for hash in &hashes {
        let id = phalanx_state::modules::agents::agent_id(hash);
        let target = Target::Plain { path: format!("/agents/{id}") };
        let started = Instant::now();
        call(&mut sender, &target, &mut crypto).await?;
        first.push(started.elapsed());
        let started = Instant::now();
        call(&mut sender, &target, &mut crypto).await?;
        second.push(started.elapsed());
    }
    first.sort();
    second.sort();
    let (first_p50, first_max) = (ms(percentile(&first, 0.5)), ms(*first.last().expect("fresh agents")));
    let second_p50 = ms(percentile(&second, 0.5));

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let base = cases[0].clone();
    let report = serde_json::json!({
        "cores": cores,
        "note": "load generator, gateway and baseline server share this process and these cores (loopback)",
        "seconds_per_case": seconds,
        "connections": connections,
        "setup": { "blocks": setup_blocks, "seconds": setup.as_secs_f64() },
        "cases": cases.iter().map(|c| serde_json::json!({
            "name": c.name,
            "loaded": c.loaded,
            "single_connection": c.single,
            "requests_per_s_ratio_to_baseline": c.loaded.requests_per_s / base.loaded.requests_per_s,
            "p50_ratio_to_baseline": c.loaded.p50_ms / base.loaded.p50_ms,
            "p99_ratio_to_baseline": c.loaded.p99_ms / base.loaded.p99_ms,
            "single_p50_ratio_to_baseline": c.single.p50_ms / base.single.p50_ms,
        })).collect::<Vec<_>>(),
        "client_crypto_us_per_encrypted_call": { "seal": client_seal_us, "open": client_open_us },
        "first_call_after_deploy": {
            "agents": fresh_agents,
            "p50_ms": first_p50,
            "max_ms": first_max,
            "second_call_p50_ms": second_p50,
            "ratio_to_baseline_single_p50": first_p50 / base.single.p50_ms,
        },
        "goals": {
            "requests_per_s_min": GOAL_REQUESTS_PER_S,
            "p99_ms_max": GOAL_P99_MS,
            "first_call_ms_max": GOAL_FIRST_CALL_MS,
        },
    });
    crate::output::emit(json, &report, || {
        let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
        let mut out = format!(
            "gateway benchmark: {connections} keep-alive HTTP/1.1 connections (and 1), {seconds} s per case, loopback\n\
             load generator, gateway and baseline share this process and its {cores} cores: figures are a floor\n\
             setup: {setup_blocks} certified blocks verified by one simulated-TEE worker runtime in {:.1} s\n\n\
             {:<40} {:>9} {:>7} {:>7} {:>7} {:>6} {:>5} | {:>8} {:>7} {:>7} {:>6} | {:>7} {:>6} {:>6}\n",
            setup.as_secs_f64(),
            "case",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "cpu µs",
            "cores",
            "1c req/s",
            "1c p50",
            "1c p99",
            "cpu µs",
            "x req/s",
            "x p50",
            "x p99",
        );
        for case in &cases {
            let (l, s) = (&case.loaded, &case.single);
            out += &format!(
                "{:<40} {:>9.0} {:>7.3} {:>7.3} {:>7.2} {:>6.0} {:>5.2} | {:>8.0} {:>7.3} {:>7.3} {:>6.0} | {:>7.2} {:>6.2} {:>6.2}\n",
                case.name,
                l.requests_per_s,
                l.p50_ms,
                l.p99_ms,
                l.max_ms,
                l.cpu_us_per_request,
                l.cores_busy,
                s.requests_per_s,
                s.p50_ms,
                s.p99_ms,
                s.cpu_us_per_request,
                l.requests_per_s / base.loaded.requests_per_s,
                l.p50_ms / base.loaded.p50_ms,
                l.p99_ms / base.loaded.p99_ms,
            );
        }
        out += &format!(
            "(d) first call after deploy, {fresh_agents} fresh agents:  p50 {first_p50:.2} ms  max {first_max:.2} ms  \
             (second call p50 {second_p50:.3} ms; {:.0}x baseline 1-connection p50)\n",
            first_p50 / base.single.p50_ms,
        );
        out += &format!(
            "client share of an encrypted call (in its latency above): seal {client_seal_us:.0} µs, open {client_open_us:.0} µs\n\
             columns: left of | loaded ({connections} connections), then one connection (1c); cpu µs = CPU time of the\n\
             whole process (load generator included) per request, cores = CPU time / wall time; x = loaded, ratio to (a)\n\n"
        );
        out += &format!(
            "goals (design): >= {GOAL_REQUESTS_PER_S:.0} req/s, p99 < {GOAL_P99_MS} ms, first call < {GOAL_FIRST_CALL_MS} ms\n"
        );
        for case in &cases[1..] {
            let l = &case.loaded;
            out += &format!(
                "  {:<38} req/s {} ({:.0}), p99 {} ({:.2} ms)\n",
                case.name,
                verdict(l.requests_per_s >= GOAL_REQUESTS_PER_S),
                l.requests_per_s,
                verdict(l.p99_ms < GOAL_P99_MS),
                l.p99_ms
            );
        }
        out += &format!(
            "  {:<38} {} (max {first_max:.2} ms)",
            "(d) first call after deploy",
            verdict(first_max < GOAL_FIRST_CALL_MS)
        );
        out
    })
}
