//! `phalanx bench chain`: end-to-end throughput and finality of a chain.
//!
//! With `--validators 1` starts `phalanx dev` as a child process; with more,
//! writes a testnet (`testnet init`) with one spare validator (a validator
//! node whose key is not in the set) and starts the validators as `phalanx
//! node` processes, each on its own data directory and loopback ports. Funds sender accounts, then streams pre-signed transfers in over
//! JSON-RPC from concurrent clients (client i submits to validator i mod N,
//! so every proposer has transactions) for at most `--seconds`, and watches
//! finalized heads over a WebSocket subscription. Reports transfers
//! finalized and persisted per second, block interval, and submit-to-
//! finality latency. Then (testnet) starts the spare validator with an
//! empty data directory and measures how fast it catches up. (The spare is
//! outside the set: a validator of the set held back during the load would
//! cost every view it leads a leader timeout.) The baseline,
//! measured in the same run on the same machine, is one core verifying the
//! same signatures: the least work a node does per transfer.

use crate::ClientArgs;
use anyhow::Context;
use jsonrpsee::http_client::HttpClientBuilder;
use jsonrpsee::ws_client::WsClientBuilder;
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Hash, Keypair, PLANCK_PER_PHA};
use phalanx_rpc::{PhalanxClient, TxStatus};
use phalanx_state::{Call, SignedTransaction, Transaction};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// Signed transfers finalized per second on a fresh single-validator dev chain.
    Chain {
        /// Transfers to submit.
        #[arg(long, default_value_t = 30_000)]
        txs: usize,
        /// Distinct sender accounts (each sender's transfers go in nonce order).
        #[arg(long, default_value_t = 64)]
        senders: usize,
        /// Concurrent RPC clients submitting.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Validators, each its own process (1: the dev network).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
        validators: u16,
        /// Stop submitting after this many seconds (transfers not sent by then are left out).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Submit at most this many transfers per second in all (0: as fast as the clients can).
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// Agent sandbox: warm and first calls, idle memory, and HTTP requests/s
    /// of `agent dev` against a plain hyper server, in one run.
    Agent {
        /// Seconds of load per HTTP server.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent keep-alive connections of the load generator.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Calls timed for the in-process figures.
        #[arg(long, default_value_t = 20_000)]
        calls: usize,
    },
    /// Envelope seal/open per second for 1 KiB against the AEAD alone; cost
    /// of a master-key rotation with many agents' keys and stored data.
    Keys {
        /// Agents whose keys and stored data are rotated.
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
    },
    /// Worker catch-up (blocks/s) over a certified chain served by a node,
    /// against replay alone; DCAP quote verifications/s against ed25519.
    Worker {
        /// Blocks in the chain.
        #[arg(long, default_value_t = 10_000)]
        blocks: u64,
        /// Signed transfers per block.
        #[arg(long, default_value_t = 10)]
        txs_per_block: usize,
    },
    /// Per-block state commitment as the state grows: a state of N accounts,
    /// then blocks of K transfers (execute, state root, durable commit);
    /// RSS, size on disk and reopen time.
    State {
        #[arg(long, default_value_t = 100_000)]
        accounts: u64,
        #[arg(long, default_value_t = 1_000)]
        changes: usize,
        #[arg(long, default_value_t = 10)]
        blocks: usize,
    },
    /// Catch-up (blocks/s) of a fresh validator and of a fresh non-validator
    /// node over a testnet chain of many small blocks, in one run.
    Sync {
        /// Blocks the running validators finalize before the fresh nodes start.
        #[arg(long, default_value_t = 5_000)]
        blocks: u64,
        /// Validators (one joins fresh, to measure catch-up).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(2..=16))]
        validators: u16,
    },
    /// Worker gateway requests/s and latency (plain and encrypted calls) and
    /// first call after deploy, against a plain hyper server, in one run.
    Gateway {
        /// Seconds of load per case.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent keep-alive connections of the load generator.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Freshly deployed agents whose first call is timed.
        #[arg(long, default_value_t = 20)]
        fresh_agents: usize,
    },
}

pub(crate) struct Node(pub(crate) Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time (user + system) a process has used, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // fields are counted after its closing parenthesis (utime is field 14).
    let after = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11).context("utime")?.parse::<u64>()? + fields.get(12).context("stime")?.parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / rustix::param::clock_ticks_per_second() as f64))
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn sign_transfer(
    chain_id: Hash,
    from: &Keypair,
    nonce: u64,
    to: phalanx_primitives::PublicKey,
    amount: u128,
    fee: u128,
) -> SignedTransaction {
    Transaction { chain_id, signer: from.public(), nonce, fee, call: Call::Transfer { to, amount } }.sign(from)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) async fn run(command: BenchCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let (txs, senders, clients, validators, seconds, rate) = match command {
        BenchCommand::Chain { txs, senders, clients, validators, seconds, rate } => {
            (txs, senders, clients, usize::from(validators), seconds, rate)
        }
        BenchCommand::Agent { seconds, connections, calls } => {
            return crate::bench_agent::run(seconds, connections, calls).await;
        }
        BenchCommand::Keys { agents } => return crate::bench_keys::run(agents),
        BenchCommand::State { accounts, changes, blocks } => {
            return crate::bench_state::run(accounts, changes, blocks, args.json);
        }
        BenchCommand::Worker { blocks, txs_per_block } => {
            return crate::bench_worker::run(blocks, txs_per_block).await;
        }
        BenchCommand::Sync { blocks, validators } => {
            return crate::bench_sync::run(blocks, usize::from(validators), args.json).await;
        }
        BenchCommand::Gateway { seconds, connections, fresh_agents } => {
            return crate::bench_gateway::run(seconds, connections, fresh_agents, args.json).await;
        }
    };
    anyhow::ensure!(senders > 0 && clients > 0 && txs >= senders, "need txs >= senders > 0 and clients > 0");
    let data_dir = tempfile_dir()?;
    let network = Network::start(&data_dir, validators, None, true).await?;
    let urls = network.urls.clone();
    let url = urls[0].clone();
    let client = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .max_response_size(64 * 1024 * 1024)
        .build(&url)?;
    let info = client.chain_info().await?;
    let fee = PLANCK_PER_PHA / 100;
    let amount = 1_000;

    // Fund the senders from alice and wait for finality.
    let alice = dev_keypair("alice").expect("dev account");
    let keys: Vec<Keypair> = (0..senders)
        .map(|i| Keypair::from_seed(&phalanx_primitives::sha256(format!("bench-{i}").as_bytes()).0))
        .collect();
    let alice_nonce = client.state_account(alice.public().to_string()).await?.next_nonce;
    let mut last = Hash::ZERO;
    for (i, key) in keys.iter().enumerate() {
        let tx =
            sign_transfer(info.chain_id, &alice, alice_nonce + i as u64, key.public(), 1_000 * PLANCK_PER_PHA, fee);
        last = client.tx_submit(format!("0x{}", hex::encode(tx.encode()))).await?;
    }
    while !matches!(client.tx_status(last).await?, TxStatus::Finalized { .. }) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Pre-sign everything, and measure the baseline on the same transactions.
    let per_sender = txs / senders;
    let recipient = dev_keypair("bob").expect("dev account").public();
    let batches: Vec<Vec<String>> = keys
        .iter()
        .map(|key| (0..per_sender as u64).map(|n| sign_transfer(info.chain_id, key, n, recipient, amount, fee)))
        .map(|txs| txs.map(|tx| format!("0x{}", hex::encode(tx.encode()))).collect())
        .collect();
    let sample: Vec<SignedTransaction> = keys
        .iter()
        .take(4)
        .flat_map(|k| (0..500u64).map(move |n| (k, n)))
        .map(|(k, n)| sign_transfer(info.chain_id, k, n, recipient, amount, fee))
        .collect();
    let verify_started = Instant::now();
    for tx in &sample {
        tx.verify_signature().expect("valid signature");
    }
    let baseline_per_s = sample.len() as f64 / verify_started.elapsed().as_secs_f64();

    // Watch finalized heads.
    let ws = WsClientBuilder::default().build(url.replace("http://", "ws://")).await?;
    let mut heads = ws.chain_subscribe_finalized().await?;
    let seen: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let watcher = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(head)) = heads.next().await {
                seen.lock().expect("lock").insert(head.height, Instant::now());
            }
        })
    };
    let start_height = client.chain_head().await?.height;

    // Stream the transfers in: each client owns a set of senders.
    let pids = network.validator_pids()?;
    let cpu_before = pids.iter().map(|pid| cpu_time(*pid)).collect::<anyhow::Result<Vec<_>>>()?;
    let load_started = Instant::now();
    let submitted: Arc<Mutex<Vec<(Hash, Instant)>>> = Arc::default();
    // (sender index, transfers it sent) once each client stops.
    let sent: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let mine_keys: Vec<usize> = (0..batches.len()).filter(|i| i % clients == worker).collect();
        let mine: Vec<Vec<String>> = mine_keys.iter().map(|i| batches[*i].clone()).collect();
        let client =
            HttpClientBuilder::default().request_timeout(Duration::from_secs(30)).build(&urls[worker % urls.len()])?;
        let submitted = submitted.clone();
        let sent = sent.clone();
        let stop_at = load_started + Duration::from_secs(seconds);
        // Each client's share of the rate: one transfer every `gap`.
        let gap = (rate > 0).then(|| Duration::from_secs_f64(clients as f64 / rate as f64));
        tasks.push(tokio::spawn(async move {
            let longest = mine.iter().map(Vec::len).max().unwrap_or(0);
            let mut last_sent = vec![0u64; mine.len()];
            let mut due = Instant::now();
            'sending: for n in 0..longest {
                for (b, batch) in mine.iter().enumerate() {
                    if Instant::now() >= stop_at {
                        break 'sending;
                    }
                    if let Some(gap) = gap {
                        due += gap;
                        tokio::time::sleep_until(due.into()).await;
                    }
                    if let Some(tx) = batch.get(n) {
                        last_sent[b] = n as u64 + 1;
                        let at = Instant::now();
                        let hash = client.tx_submit(tx.clone()).await?;
                        if n % 50 == 0 {
                            submitted.lock().expect("lock").push((hash, at));
                        }
                    }
                }
            }
            sent.lock().expect("lock").extend(mine_keys.into_iter().zip(last_sent));
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let sent: Vec<(usize, u64)> = sent.lock().expect("lock").clone();
    let total: usize = sent.iter().map(|(_, n)| *n as usize).sum();
    let submit_elapsed = load_started.elapsed();
    // Wait until every sender's last sent transfer is final.
    for (index, count) in &sent {
        loop {
            let account = client.state_account(keys[*index].public().to_string()).await?;
            if account.nonce >= *count {
                break;
            }
            anyhow::ensure!(load_started.elapsed() < Duration::from_secs(600), "transfers did not finalize");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let end_height = client.chain_head().await?.height;
    let elapsed = load_started.elapsed();
    let cpu_used: Duration = pids
        .iter()
        .zip(&cpu_before)
        .map(|(pid, before)| cpu_time(*pid).map(|after| after.saturating_sub(*before)))
        .sum::<anyhow::Result<Duration>>()?;
    watcher.abort();

    // Latency: submit → the first time its block was seen finalized.
    let seen = seen.lock().expect("lock").clone();
    let mut latencies_ms = Vec::new();
    let samples = submitted.lock().expect("lock").clone();
    for (hash, at) in &samples {
        if let TxStatus::Finalized { height, .. } = client.tx_status(*hash).await?
            && let Some(when) = seen.get(&height)
        {
            latencies_ms.push(when.saturating_duration_since(*at).as_secs_f64() * 1e3);
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    let (mut block_txs, mut first_ms, mut last_ms) = (Vec::new(), None, 0);
    for height in start_height + 1..=end_height {
        let block = client.chain_block(height).await?.context("finalized block missing")?;
        block_txs.push(block.header.tx_count);
        first_ms.get_or_insert(block.header.timestamp_ms);
        last_ms = block.header.timestamp_ms;
    }
    let blocks = block_txs.len().max(1);
    let interval_ms = (last_ms - first_ms.unwrap_or(last_ms)) as f64 / (blocks.saturating_sub(1).max(1)) as f64;
    let throughput = total as f64 / elapsed.as_secs_f64();
    // What each validator spends per finalized transfer (its RPC included),
    // against one ed25519 verification: the figure that carries over to
    // validators on machines of their own.
    let cpu_per_transfer_us = cpu_used.as_secs_f64() * 1e6 / pids.len().max(1) as f64 / total.max(1) as f64;
    let verify_us = 1e6 / baseline_per_s;
    let report = serde_json::json!({
        "transfers": total,
        "senders": senders,
        "clients": clients,
        "elapsed_s": elapsed.as_secs_f64(),
        "submit_elapsed_s": submit_elapsed.as_secs_f64(),
        "transfers_per_s": throughput,
        "baseline_single_core_verify_per_s": baseline_per_s,
        "ratio_to_baseline": throughput / baseline_per_s,
        "blocks": blocks,
        "block_interval_ms_mean": interval_ms,
        "txs_per_block_max": block_txs.iter().max(),
        "finality_latency_ms_p50": percentile(&latencies_ms, 0.5),
        "finality_latency_ms_p99": percentile(&latencies_ms, 0.99),
        "latency_samples": latencies_ms.len(),
        "cpu_us_per_transfer_per_validator": cpu_per_transfer_us,
        "cpu_per_transfer_per_validator_in_verifications": cpu_per_transfer_us / verify_us,
    });
    let catch_up = network.catch_up(end_height).await?;
    let follower = network.follower_catch_up(&data_dir, end_height, false).await?;
    let mut report = report;
    report["validators"] = serde_json::json!(validators);
    report["rate_limit_per_s"] = serde_json::json!(rate);
    report["submitted_per_s"] = serde_json::json!(total as f64 / submit_elapsed.as_secs_f64());
    if let Some((blocks, seconds)) = catch_up {
        report["fresh_validator_catch_up_blocks"] = serde_json::json!(blocks);
        report["fresh_validator_catch_up_blocks_per_s"] = serde_json::json!(blocks as f64 / seconds);
        report["fresh_validator_catch_up_transfers_per_s"] = serde_json::json!(total as f64 / seconds);
    }
    let (follower_blocks, follower_seconds) = follower;
    report["fresh_follower_catch_up_blocks_per_s"] = serde_json::json!(follower_blocks as f64 / follower_seconds);
    report["fresh_follower_catch_up_transfers_per_s"] = serde_json::json!(total as f64 / follower_seconds);
    drop(network);
    let _ = std::fs::remove_dir_all(&data_dir);
    crate::output::emit(args.json, &report, || {
        let catch_up = catch_up.map_or(String::new(), |(blocks, seconds)| {
            format!(
                "\na fresh validator caught up {blocks} blocks in {seconds:.1} s: {:.0} blocks/s, {:.0} transfers/s",
                blocks as f64 / seconds,
                total as f64 / seconds
            )
        });
        let follower = format!(
            "\na fresh non-validator node caught up {follower_blocks} blocks in {follower_seconds:.1} s: {:.0} blocks/s, {:.0} transfers/s",
            follower_blocks as f64 / follower_seconds,
            total as f64 / follower_seconds
        );
        format!(
            "{validators} validator(s); {total} signed transfers from {senders} senders over {clients} RPC clients\n\
             finalized and persisted: {throughput:.0} transfers/s ({:.2}x one core verifying the same signatures: {baseline_per_s:.0}/s)\n\
             blocks: {blocks}, mean interval {interval_ms:.0} ms, largest {} txs\n\
             submit→finalized latency: p50 {:.0} ms, p99 {:.0} ms ({} samples)\n\
             CPU per finalized transfer per validator: {cpu_per_transfer_us:.0} µs = {:.1} ed25519 verifications ({verify_us:.0} µs each; goal <= 3){catch_up}{follower}",
            throughput / baseline_per_s,
            block_txs.iter().max().unwrap_or(&0),
            percentile(&latencies_ms, 0.5),
            percentile(&latencies_ms, 0.99),
            latencies_ms.len(),
            cpu_per_transfer_us / verify_us,
        )
    })
}

/// The chain under load: a dev network, or a testnet's validators but the last.
pub(crate) struct Network {
    pub(crate) urls: Vec<String>,
    dev: Option<Node>,
    pub(crate) testnet: Option<std::path::PathBuf>,
}

impl Network {
    /// `block_interval_ms`: the validators' pacing, minimum and empty-block
    /// interval alike (`None`: the testnet's defaults). With `spare`, the
    /// testnet also has a spare validator, not started
    /// ([`Network::catch_up`] starts it).
    pub(crate) async fn start(
        data_dir: &std::path::Path,
        validators: usize,
        block_interval_ms: Option<u64>,
        spare: bool,
    ) -> anyhow::Result<Network> {
        let wait = |url: String| async move {
            let client = HttpClientBuilder::default().request_timeout(Duration::from_secs(5)).build(&url)?;
            crate::testnet::wait_until(&format!("{url} to finalize a block"), Duration::from_secs(90), || async {
                client.chain_head().await.is_ok_and(|h| h.height >= 1)
            })
            .await
        };
        if validators == 1 {
            let (rpc_port, p2p_port) = (free_port()?, free_port()?);
            let node = Node(
                Command::new(std::env::current_exe()?)
                    .args(["dev", "--workers", "0", "--data-dir"])
                    .arg(data_dir)
                    .args(["--rpc-port", &rpc_port.to_string(), "--p2p-port", &p2p_port.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("cannot start phalanx dev")?,
            );
            let url = format!("http://127.0.0.1:{rpc_port}");
            wait(url.clone()).await?;
            return Ok(Network { urls: vec![url], dev: Some(node), testnet: None });
        }
        let dir = data_dir.join("testnet");
        let base = 20_000 + (std::process::id() % 10_000) as u16;
        let layout = crate::testnet::Layout {
            validators,
            // The fresh validator whose catch-up is measured after the load.
            spare_validators: usize::from(spare),
            gatekeepers: 0,
            workers: 0,
            base_port: base,
            epoch_blocks: None,
        };
        crate::testnet::init(&dir, &layout)?;
        let manifest = crate::testnet::manifest(&dir)?;
        if let Some(interval) = block_interval_ms {
            for member in &manifest.members {
                let path = dir.join(&member.name).join("config.toml");
                let mut config: phalanx_node::service::NodeFile = toml::from_str(&std::fs::read_to_string(&path)?)?;
                (config.min_block_interval_ms, config.empty_block_interval_ms) = (interval, interval);
                std::fs::write(&path, toml::to_string_pretty(&config)?)?;
            }
        }
        let mut network = Network { urls: Vec::new(), dev: None, testnet: Some(dir.clone()) };
        // Every validator of the set runs; the spare (last) joins after the load.
        for member in &manifest.members[..validators] {
            let folder = dir.join(&member.name);
            let config = folder.join("config.toml").to_string_lossy().into_owned();
            crate::testnet::spawn(&folder, &["node".into(), "--config".into(), config])?;
            network.urls.push(member.rpc.clone());
        }
        for url in &network.urls {
            wait(url.clone()).await?;
        }
        Ok(network)
    }

    /// Starts the spare validator (outside the set, empty) and times its
    /// catch-up to `height`:
    /// (blocks, seconds). `None` for a dev network.
    pub(crate) async fn catch_up(&self, height: u64) -> anyhow::Result<Option<(u64, f64)>> {
        let Some(dir) = &self.testnet else { return Ok(None) };
        let manifest = crate::testnet::manifest(dir)?;
        let member = manifest.members.last().context("no validators")?;
        let folder = dir.join(&member.name);
        let config = folder.join("config.toml").to_string_lossy().into_owned();
        let client = HttpClientBuilder::default().request_timeout(Duration::from_secs(5)).build(&member.rpc)?;
        crate::testnet::spawn(&folder, &["node".into(), "--config".into(), config])?;
        crate::testnet::wait_until("the fresh validator's RPC", Duration::from_secs(60), || async {
            client.chain_head().await.is_ok()
        })
        .await?;
        let started = Instant::now();
        crate::testnet::wait_until("the fresh validator to catch up", Duration::from_secs(600), || async {
            client.chain_head().await.is_ok_and(|h| h.height >= height)
        })
        .await?;
        Ok(Some((height, started.elapsed().as_secs_f64())))
    }
}

impl Network {
    /// The processes of the running validators (the dev process for one).
    pub(crate) fn validator_pids(&self) -> anyhow::Result<Vec<u32>> {
        if let Some(dev) = &self.dev {
            return Ok(vec![dev.0.id()]);
        }
        let dir = self.testnet.as_ref().context("no network")?;
        let manifest = crate::testnet::manifest(dir)?;
        Ok(manifest
            .members
            .iter()
            .filter(|m| m.role == "validator" && !m.spare)
            .filter_map(|m| crate::testnet::running(&dir.join(&m.name)))
            .map(|pid| pid as u32)
            .collect())
    }

    /// Starts a non-validator node with an empty store following the first
    /// validator (replaying every block, or with `state_sync` joining from
    /// its state) and times its catch-up to `height`: (blocks, seconds).
    pub(crate) async fn follower_catch_up(
        &self,
        data_dir: &std::path::Path,
        height: u64,
        state_sync: bool,
    ) -> anyhow::Result<(u64, f64)> {
        let folder = data_dir.join(if state_sync { "follower-state-sync" } else { "follower" });
        std::fs::create_dir_all(&folder)?;
        let port = free_port()?;
        let genesis = match &self.testnet {
            Some(dir) => dir.join("genesis.json"),
            None => {
                let path = folder.join("genesis.json");
                std::fs::write(&path, serde_json::to_string(&phalanx_node::dev::dev_genesis())?)?;
                path
            }
        };
        let config = phalanx_node::service::NodeFile {
            data_dir: "data".into(),
            genesis,
            key_file: None,
            p2p_listen: None,
            follow: vec![self.urls[0].clone()],
            state_sync,
            rpc_listen: ([127, 0, 0, 1], port).into(),
            metrics_listen: None,
            bootstrap: Vec::new(),
            min_block_interval_ms: 50,
            empty_block_interval_ms: 500,
        };
        std::fs::write(folder.join("config.toml"), toml::to_string(&config)?)?;
        let url = format!("http://127.0.0.1:{port}");
        let client = HttpClientBuilder::default().request_timeout(Duration::from_secs(5)).build(&url)?;
        let started = Instant::now();
        let log = std::fs::File::create(folder.join("log"))?;
        let _node = Node(
            Command::new(std::env::current_exe()?)
                .args(["node", "--config"])
                .arg(folder.join("config.toml"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("cannot start the follower")?,
        );
        let caught_up =
            crate::testnet::wait_until("the fresh follower to catch up", Duration::from_secs(600), || async {
                client.chain_head().await.is_ok_and(|h| h.height >= height)
            })
            .await;
        if let Err(error) = caught_up {
            let log = std::fs::read_to_string(folder.join("log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            anyhow::bail!(
                "{error}; the follower's log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok((height, started.elapsed().as_secs_f64()))
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(dir) = &self.testnet {
            let _ = crate::testnet::down(dir);
        }
        self.dev.take();
    }
}

pub(crate) fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("phalanx-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
