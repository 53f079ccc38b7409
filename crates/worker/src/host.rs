//! The host: the untrusted half of a worker. It talks to a node over
//! JSON-RPC, feeds finalized blocks to the runtime, submits the runtime's
//! registration and messages as transactions paid by the operator's
//! account, and asks for checkpoints. A malicious host can stop the worker
//! or feed it garbage (which the runtime refuses), never make it accept a
//! block the validators did not finalize or sign for another worker.

use crate::runtime::{Resumed, Runtime, StartError};
use crate::tee::{Platform, sgx::SgxPlatform, sim::SimPlatform, tdx::TdxPlatform};
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use phalanx_primitives::{Hash, Keypair};
use phalanx_rpc::{PhalanxClient, RAW_BLOCKS_MAX};
use phalanx_state::{Call, Transaction, WorkerPayload};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which TEE the worker runs in.
#[derive(Debug, Clone)]
pub enum TeeChoice {
    Sim,
    Sgx { collateral: PathBuf },
    Tdx { collateral: PathBuf, sealing_key: Option<PathBuf> },
}

/// Settings of one worker.
#[derive(Debug)]
pub struct WorkerConfig {
    /// The node's JSON-RPC URL (`http://…`).
    pub node: String,
    pub tee: TeeChoice,
    pub data_dir: PathBuf,
    /// Operates the worker and pays for its transactions.
    pub operator: Keypair,
    /// The chain the worker must be on; unset: the chain of its sealed
    /// identity, or on first start the node's.
    pub chain_id: Option<Hash>,
    pub features: u64,
    /// A heartbeat every this many verified blocks.
    pub heartbeat_every: u64,
    /// A checkpoint at most this often (and on shutdown).
    pub checkpoint_every: Duration,
    /// Pause between polls once caught up.
    pub poll: Duration,
    /// Where to serve agent calls, if anywhere.
    pub gateway: Option<phalanx_gateway::GatewayConfig>,
    /// The URL clients reach the gateway at, announced on chain (default:
    /// `http://` and the gateway's listen address).
    pub gateway_url: Option<String>,
    /// Where to serve Prometheus metrics at `/metrics`, if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// A fresh worker (no checkpoint) joins from the node's finalized state,
    /// checked inside the runtime, instead of replaying from genesis.
    pub state_sync: bool,
}

impl WorkerConfig {
    pub fn new(node: String, data_dir: PathBuf, operator: Keypair) -> Self {
        WorkerConfig {
            node,
            tee: TeeChoice::Sim,
            data_dir,
            operator,
            chain_id: None,
            features: phalanx_state::modules::registry::FEATURE_AGENTS,
            heartbeat_every: 600,
            checkpoint_every: Duration::from_secs(10),
            poll: Duration::from_millis(200),
            gateway: None,
            gateway_url: None,
            metrics: None,
            state_sync: false,
        }
    }
}

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot create or write {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("node {node}: {source}")]
    Rpc { node: String, source: jsonrpsee::core::ClientError },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("the worker task failed: {0}")]
    Task(String),
    #[error("cannot start the gateway on {address}: {source} (port in use? choose another)")]
    Gateway { address: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot serve metrics on {address}: {source}")]
    Metrics { address: std::net::SocketAddr, source: std::io::Error },
    #[error("agent state: {0}")]
    State(String),
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a running worker reports to whoever started it.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    Started {
        identity: phalanx_primitives::PublicKey,
        resumed: Resumed,
        new_identity: bool,
    },
    Registered {
        height: u64,
    },
    /// The gateway listens here.
    Gateway {
        address: std::net::SocketAddr,
    },
    /// Metrics are served here.
    Metrics {
        address: std::net::SocketAddr,
    },
}

fn platform(config: &WorkerConfig) -> Box<dyn Platform> {
    match &config.tee {
        TeeChoice::Sim => Box::new(SimPlatform::new(config.data_dir.join("sim-sealing.key"))),
        TeeChoice::Sgx { collateral } => Box::new(SgxPlatform { collateral_file: collateral.clone() }),
        TeeChoice::Tdx { collateral, sealing_key } => {
            Box::new(TdxPlatform { collateral_file: collateral.clone(), sealing_key_file: sealing_key.clone() })
        }
    }
}

/// What a fresh worker joining by state sync needs from the node, fetched
/// by the (untrusted) host for the runtime to check: every validator-set
/// change since genesis (at most `TRANSITION_CALLS_MAX` pages), the node's
/// offer of its head's state and that block.
pub async fn join_offer(
    client: &HttpClient,
    epoch_blocks: u64,
) -> Result<crate::runtime::JoinOffer, jsonrpsee::core::ClientError> {
    let mut transitions: Vec<phalanx_rpc::ValidatorTransition> = Vec::new();
    for _ in 0..phalanx_light::client::TRANSITION_CALLS_MAX {
        // The first epoch of the newest set known so far.
        let after_epoch = transitions.last().map_or(0, |t| t.header.height / epoch_blocks.max(1) + 1);
        let page = client.chain_validator_transitions(after_epoch).await?;
        let full = page.len() >= phalanx_rpc::TRANSITIONS_MAX;
        transitions.extend(page);
        if !full {
            break;
        }
    }
    let start = client.state_sync_target().await?;
    let raw_block = client.chain_raw_blocks(start.header.height, 1).await?.into_iter().next().map(|raw| raw.block);
    let fetch = phalanx_light::client::sync_fetcher(tokio::runtime::Handle::current(), client.clone());
    Ok(crate::runtime::JoinOffer {
        transitions,
        start,
        raw_block: raw_block.unwrap_or_default(),
        fetch: Box::new(fetch),
    })
}

/// Runs a worker until `shutdown` resolves; `events` hears its milestones.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl std::future::Future<Output = ()>,
    events: tokio::sync::mpsc::UnboundedSender<WorkerEvent>,
) -> Result<(), WorkerError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| WorkerError::DataDir { path: config.data_dir.clone(), source })?;
    let rpc_error = |source| WorkerError::Rpc { node: config.node.clone(), source };
    let client = HttpClientBuilder::default()
        .max_response_size(64 * 1024 * 1024)
        .request_timeout(Duration::from_secs(30))
        .build(&config.node)
        .map_err(rpc_error)?;
    let genesis = client.chain_genesis().await.map_err(rpc_error)?;
    let score =
        tokio::task::spawn_blocking(crate::benchmark::measure).await.map_err(|e| WorkerError::Task(e.to_string()))?;
    let platform = platform(&config);
    let (data_dir, operator, pinned, features) =
        (config.data_dir.clone(), config.operator.public(), config.chain_id, config.features);
    let offer = match config.state_sync && !config.data_dir.join(crate::runtime::CHECKPOINT_FILE).exists() {
        true => Some(join_offer(&client, genesis.consensus.epoch_blocks).await.map_err(rpc_error)?),
        false => None,
    };
    let mut runtime = tokio::task::spawn_blocking(move || {
        match offer {
            Some(offer) => {
                Runtime::start_joining(platform, &data_dir, &genesis, pinned, operator, features, score, offer)
            }
            None => Runtime::start(platform, &data_dir, &genesis, pinned, operator, features, score),
        }
        .map(Box::new)
    })
    .await
    .map_err(|e| WorkerError::Task(e.to_string()))??;
    tracing::info!(
        identity = %runtime.identity(),
        resumed = ?runtime.resumed,
        height = runtime.chain().height(),
        "worker started"
    );
    let _ = events.send(WorkerEvent::Started {
        identity: runtime.identity(),
        resumed: runtime.resumed.clone(),
        new_identity: runtime.new_identity,
    });

    let (view, view_rx) = tokio::sync::watch::channel(Arc::new(runtime.chain().state().clone()));
    let (keyring, keyring_rx) = tokio::sync::watch::channel(Arc::new(runtime.cluster_keyring()));
    let (mut shared, mut submitted) = phalanx_gateway::Shared::new(&config.data_dir).map_err(|source| {
        WorkerError::DataDir { path: config.data_dir.join(phalanx_gateway::server::REPLAY_FILE), source }
    })?;
    let metrics = Arc::new(crate::metrics::WorkerMetrics::default());
    shared.metrics = metrics.gateway.clone();
    match shared.states.load(&runtime.cluster_keyring(), runtime.chain().state()) {
        Ok(0) => {}
        Ok(loaded) => tracing::info!(agents = loaded, "agent state loaded"),
        Err(error) => return Err(WorkerError::State(error.to_string())),
    }
    let runner = phalanx_gateway::commands::Runner::new(shared.states.clone(), shared.logs.clone());
    let mut announce: Option<String> = None;
    let _gateway = match &config.gateway {
        Some(gateway) => {
            let (address, task) =
                phalanx_gateway::serve(gateway, runtime.receipt_signer(), view_rx, keyring_rx, shared.clone())
                    .await
                    .map_err(|source| WorkerError::Gateway { address: gateway.listen, source })?;
            tracing::info!(%address, "gateway listening");
            let _ = events.send(WorkerEvent::Gateway { address });
            announce = Some(config.gateway_url.clone().unwrap_or_else(|| format!("http://{address}")));
            Some(AbortOnDrop(task))
        }
        None => None,
    };
    let _metrics = match config.metrics {
        Some(address) => {
            let (bound, task) = crate::metrics::serve(metrics.clone(), address)
                .await
                .map_err(|source| WorkerError::Metrics { address, source })?;
            let _ = events.send(WorkerEvent::Metrics { address: bound });
            Some(AbortOnDrop(task))
        }
        None => None,
    };
    metrics.verified(runtime.chain().height(), runtime.chain().height());
    let mut announced_at: Option<u64> = None;

    tokio::pin!(shutdown);
    let mut last_checkpoint = Instant::now();
    let mut registration_sent: Option<Instant> = None;
    let mut heartbeat_sent_at: Option<u64> = None;
    let mut announced = false;
    let mut state_saved: bool;
    let mut answered: Option<u64> = None;
    loop {
        let before = runtime.chain().height();
        let caught_up = match sync_batch(&client, runtime).await {
            Ok((back, caught_up)) => {
                runtime = back;
                caught_up
            }
            Err((back, error)) => {
                runtime = back;
                tracing::warn!(%error, "sync failed; keeping the verified state and retrying");
                true
            }
        };
        metrics.verified(before, runtime.chain().height());
        if view.borrow().height() != runtime.chain().height() {
            view.send_replace(Arc::new(runtime.chain().state().clone()));
        }
        if !keyring.borrow().keys().copied().eq(runtime.cluster_keys()) {
            keyring.send_replace(Arc::new(runtime.cluster_keyring()));
        }
        // Commands of the blocks just verified, then their state on disk,
        // then (never before) a checkpoint past those blocks.
        let commands = runtime.take_commands();
        let keys_now = keyring.borrow().clone();
        if !commands.is_empty() {
            metrics.gateway.commands_applied.inc_by(commands.len() as u64);
            runner.apply(commands, &keys_now, runtime.chain().state()).await;
        }
        state_saved = match shared.states.persist(&keys_now, runtime.chain().state()) {
            Ok(_) => true,
            Err(error) => {
                tracing::error!(%error, "agent state not saved; no checkpoint until it is");
                false
            }
        };
        if state_saved && last_checkpoint.elapsed() >= config.checkpoint_every {
            checkpoint(&runtime);
            last_checkpoint = Instant::now();
        }
        if caught_up {
            match runtime.registered() {
                None => {
                    let due = registration_sent.is_none_or(|at| at.elapsed() > Duration::from_secs(10));
                    if due {
                        registration_sent = Some(Instant::now());
                        match runtime.registration() {
                            Ok((info, evidence)) => {
                                submit(&client, &config.operator, &runtime, Call::RegisterWorker { info, evidence })
                                    .await
                            }
                            Err(error) => tracing::error!(%error, "the TEE produced no evidence"),
                        }
                    }
                }
                Some(worker) => {
                    let worker_heartbeat_base = worker.heartbeat_at.max(worker.attested_at);
                    let gateway_on_chain = worker.gateway_url.clone();
                    if !announced {
                        announced = true;
                        tracing::info!(
                            height = worker.attested_at,
                            confidence = worker.confidence,
                            "worker registered"
                        );
                        let _ = events.send(WorkerEvent::Registered { height: worker.attested_at });
                    }
                    let height = runtime.chain().height();
                    let mut payloads = runtime.gatekeeper_duties();
                    // Keys received this round reach the gateway before this worker reports them.
                    if !keyring.borrow().keys().copied().eq(runtime.cluster_keys()) {
                        keyring.send_replace(Arc::new(runtime.cluster_keyring()));
                    }
                    let heartbeat_due = height.saturating_sub(worker_heartbeat_base) >= config.heartbeat_every
                        && heartbeat_sent_at.is_none_or(|at| height > at + 20);
                    // A mining challenge that is due: answered once, within its window.
                    if let Some(miner) = runtime.chain().state().miner(&runtime.identity())
                        && matches!(
                            miner.state,
                            phalanx_state::modules::computation::MinerState::Mining
                                | phalanx_state::modules::computation::MinerState::Unresponsive
                        )
                        && (miner.challenge_at..=miner.deadline).contains(&height)
                        && answered != Some(miner.challenge_at)
                    {
                        answered = Some(miner.challenge_at);
                        payloads.push(WorkerPayload::MiningHeartbeat { challenge: miner.challenge_at });
                    }
                    // Paid calls served since the last round, for the chain to charge.
                    for report in shared.usage.drain(phalanx_gateway::usage::REPORTS_PER_ROUND_MAX) {
                        let phalanx_gateway::usage::Report { agent, caller, price, calls, cpu_ms, egress_bytes } =
                            report;
                        payloads.push(WorkerPayload::Usage { agent, caller, price, calls, cpu_ms, egress_bytes });
                    }
                    // Commands agents submitted (`ctx.submit`), sealed to the agent's newest key.
                    while let Ok((agent, json)) = submitted.try_recv() {
                        match phalanx_gateway::commands::sealed_command(runtime.chain().state(), &agent, &json) {
                            Some(payload) => payloads.push(payload),
                            None => tracing::warn!(%agent, "a submitted command was dropped: the agent has no key"),
                        }
                    }
                    if heartbeat_due {
                        heartbeat_sent_at = Some(height);
                        payloads.push(WorkerPayload::Heartbeat { synced_height: height });
                    }
                    // The gateway's URL, so clients can find it and fail over to it.
                    if let Some(url) = &announce
                        && gateway_on_chain.as_ref() != Some(url)
                        && announced_at.is_none_or(|at| height > at + 20)
                    {
                        announced_at = Some(height);
                        payloads.push(WorkerPayload::Gateway { url: url.clone() });
                    }
                    for message in runtime.sign_messages(payloads) {
                        submit(&client, &config.operator, &runtime, Call::WorkerMessage { message }).await;
                    }
                }
            }
        }
        let pause = if caught_up { config.poll } else { Duration::ZERO };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    if state_saved {
        checkpoint(&runtime);
    }
    tracing::info!(height = runtime.chain().height(), "worker stopped");
    Ok(())
}

fn checkpoint(runtime: &Runtime) {
    match runtime.save_checkpoint() {
        Ok(()) => tracing::debug!(height = runtime.chain().height(), "checkpoint sealed"),
        Err(error) => tracing::error!(%error, "checkpoint failed"),
    }
}

/// Feeds the runtime every finalized block the node has, batch by batch,
/// until it is at the node's head (a refused block stops it with the reason).
pub async fn catch_up(client: &HttpClient, mut runtime: Box<Runtime>) -> Result<Box<Runtime>, String> {
    loop {
        match sync_batch(client, runtime).await {
            Ok((back, true)) => return Ok(back),
            Ok((back, false)) => runtime = back,
            Err((_, error)) => return Err(error),
        }
    }
}

/// Fetches the next blocks and feeds them to the runtime (on a blocking
/// thread: replay is CPU work). Returns whether the worker is at the node's head.
async fn sync_batch(
    client: &HttpClient,
    runtime: Box<Runtime>,
) -> Result<(Box<Runtime>, bool), (Box<Runtime>, String)> {
    let from = runtime.chain().tip_height() + 1;
    let blocks = match client.chain_raw_blocks(from, RAW_BLOCKS_MAX).await {
        Ok(blocks) => blocks,
        Err(e) => return Err((runtime, format!("fetching blocks from {from}: {e}"))),
    };
    if blocks.is_empty() {
        return Ok((runtime, true));
    }
    let full = blocks.len() as u64 >= RAW_BLOCKS_MAX;
    let joined = tokio::task::spawn_blocking(move || {
        let mut runtime = runtime;
        let raw: Vec<(&[u8], &[u8])> = blocks.iter().map(|r| (r.block.as_slice(), r.certificate.as_slice())).collect();
        if let Err(refused) = runtime.apply_blocks(&raw) {
            return Err((runtime, format!("refused block {}: {}", from + refused.index as u64, refused.error)));
        }
        Ok(runtime)
    })
    .await;
    match joined {
        Ok(Ok(runtime)) => Ok((runtime, !full)),
        Ok(Err(refused)) => Err(refused),
        Err(e) => panic!("block replay panicked: {e}"),
    }
}

/// Signs `call` with the operator's account and submits it; errors are
/// logged (the next round retries what is still needed).
async fn submit(client: &HttpClient, operator: &Keypair, runtime: &Runtime, call: Call) {
    let state = runtime.chain().state();
    let what = match &call {
        Call::RegisterWorker { .. } => "registration",
        _ => "worker message",
    };
    // The operator's account may also be used by its owner at the same time:
    // a nonce taken in between is read again, a few times.
    for attempt in 1..=SUBMIT_ATTEMPTS {
        let nonce = match client.state_account(operator.public().to_string()).await {
            Ok(account) => account.next_nonce,
            Err(error) => {
                tracing::warn!(%error, "cannot read the operator's nonce");
                return;
            }
        };
        let tx =
            Transaction { chain_id: state.chain_id(), signer: operator.public(), nonce, fee: 0, call: call.clone() };
        let signed = match tx.sign_paying_minimum(&state.params().fees, operator) {
            Ok(signed) => signed,
            Err(error) => {
                tracing::warn!(%error, "cannot compute the fee");
                return;
            }
        };
        match client.tx_submit(format!("0x{}", hex::encode(signed.encode()))).await {
            Ok(hash) => {
                tracing::info!(%hash, what, "submitted");
                return;
            }
            Err(error) if attempt < SUBMIT_ATTEMPTS && error.to_string().contains("nonce") => {
                tracing::debug!(%error, what, attempt, "the operator's nonce moved; signing again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => {
                tracing::warn!(%error, what, "submission refused");
                return;
            }
        }
    }
}

/// Tries to submit one transaction when the operator's nonce keeps moving.
const SUBMIT_ATTEMPTS: u32 = 4;
