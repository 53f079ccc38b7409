//! `phalanx worker`: run a worker against a node, or list registered workers.

use crate::ClientArgs;
use crate::client::{connect, rpc_error};
use crate::output::emit;
use anyhow::Context;
use phalanx_rpc::PhalanxClient as _;
use phalanx_worker::{TeeChoice, WorkerConfig, WorkerEvent};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct WorkerArgs {
    #[command(subcommand)]
    command: Option<WorkerCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum WorkerCommand {
    /// Registered workers with their TEE, confidence level and benchmark score.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The node's JSON-RPC endpoint (untrusted: every block is verified).
    #[arg(long, env = "PHALANX_RPC", default_value = "http://127.0.0.1:9944")]
    node: String,
    /// TEE to run in: sim (no hardware; dev networks only), sgx (Gramine), tdx.
    #[arg(long, default_value = "sim", value_parser = ["sim", "sgx", "tdx"])]
    tee: String,
    /// Where the sealed identity and checkpoints are kept.
    #[arg(long, required = true)]
    data_dir: Option<PathBuf>,
    /// Operator account paying for the worker's transactions: a dev account name.
    #[arg(long, required_unless_present = "operator_file", conflicts_with = "operator_file")]
    operator: Option<String>,
    /// Operator account: a file holding a secret phrase.
    #[arg(long)]
    operator_file: Option<PathBuf>,
    /// The chain id to insist on (default: the chain of the sealed identity,
    /// or on first start the node's).
    #[arg(long)]
    chain_id: Option<phalanx_primitives::Hash>,
    /// DCAP collateral JSON for this platform's quotes (sgx, tdx).
    #[arg(long)]
    collateral: Option<PathBuf>,
    /// The 32-byte sealing key released to this TD by a key service (tdx).
    #[arg(long)]
    sealing_key_file: Option<PathBuf>,
    /// Stand as a gatekeeper candidate (holds the master key if elected).
    #[arg(long)]
    gatekeeper: bool,
    /// Serve agent calls on this port of 127.0.0.1 (the gateway).
    #[arg(long)]
    gateway_port: Option<u16>,
    /// The URL clients reach the gateway at, announced on chain (default
    /// http://127.0.0.1:PORT).
    #[arg(long, requires = "gateway_port")]
    gateway_url: Option<String>,
    /// Log one JSON object per line (for log collectors).
    #[arg(long, env = "PHALANX_LOG_JSON")]
    log_json: bool,
    /// Serve Prometheus metrics at /metrics on this port of 127.0.0.1.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Send a heartbeat every this many blocks.
    #[arg(long, default_value_t = 600)]
    heartbeat_every: u64,
    /// Seal a checkpoint of the verified state at most this often, in seconds (and on Ctrl-C).
    #[arg(long, default_value_t = 10)]
    checkpoint_every: u64,
    /// On a first start (no checkpoint), join from the node's finalized
    /// state, checked inside the runtime against certificates from genesis,
    /// instead of replaying every block.
    #[arg(long)]
    state_sync: bool,
}

pub(crate) async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    match args.command {
        Some(WorkerCommand::List { client }) => list(&client).await,
        None => run_worker(args.run).await,
    }
}

async fn run_worker(args: RunArgs) -> anyhow::Result<()> {
    crate::logging::init("warn,phalanx_worker=info", args.log_json);
    let operator = crate::account::signer(args.operator, args.operator_file)?;
    let data_dir = args.data_dir.context("--data-dir is required")?;
    let collateral = || args.collateral.clone().context("--collateral FILE is required with --tee sgx|tdx");
    let tee = match args.tee.as_str() {
        "sgx" => TeeChoice::Sgx { collateral: collateral()? },
        "tdx" => TeeChoice::Tdx { collateral: collateral()?, sealing_key: args.sealing_key_file.clone() },
        _ => TeeChoice::Sim,
    };
    let mut config = WorkerConfig::new(args.node, data_dir, operator);
    config.tee = tee;
    config.chain_id = args.chain_id;
    config.heartbeat_every = args.heartbeat_every.max(1);
    config.gateway = args.gateway_port.map(phalanx_gateway::server::GatewayConfig::local);
    config.gateway_url = args.gateway_url.clone();
    config.metrics = args.metrics_port.map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    if args.gatekeeper {
        config.features |= phalanx_state::modules::registry::FEATURE_GATEKEEPER;
    }
    config.checkpoint_every = std::time::Duration::from_secs(args.checkpoint_every.max(1));
    config.state_sync = args.state_sync;
    let (events, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(event) = heard.recv().await {
            match event {
                WorkerEvent::Started { identity, resumed, new_identity } => println!(
                    "worker {identity} started ({}; {})",
                    if new_identity { "new identity" } else { "sealed identity" },
                    match resumed {
                        phalanx_worker::Resumed::Genesis => "verifying from genesis".to_string(),
                        phalanx_worker::Resumed::Checkpoint(h) => format!("resumed from checkpoint at height {h}"),
                        phalanx_worker::Resumed::Synced(h) => format!("joined by state sync at height {h}"),
                        phalanx_worker::Resumed::Refused(why) => format!("checkpoint refused ({why}); from genesis"),
                    }
                ),
                WorkerEvent::Registered { height } => println!("worker registered at height {height}"),
                WorkerEvent::Gateway { address } => println!("gateway on http://{address}"),
                WorkerEvent::Metrics { address } => println!("metrics on http://{address}/metrics"),
            }
        }
    });
    let result = phalanx_worker::run(config, crate::node::shutdown_signal(), events).await;
    let _ = printer.await;
    result.map_err(Into::into)
}

async fn list(args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(&args.rpc)?;
    let workers = client.registry_workers().await.map_err(rpc_error(&args.rpc))?;
    emit(args.json, &workers, || {
        if workers.is_empty() {
            return "no registered workers".to_string();
        }
        let mut lines = vec![format!(
            "{:<49} {:<9} {:>10} {:>9} {:>10} {:>9}",
            "identity", "tee", "confidence", "score", "registered", "heartbeat"
        )];
        for w in &workers {
            let field = |name: &str| w.worker.get(name).cloned().unwrap_or_default();
            lines.push(format!(
                "{:<49} {:<9} {:>10} {:>9} {:>10} {:>9}",
                w.identity.to_string(),
                field("tee").as_str().unwrap_or("?"),
                field("confidence"),
                w.worker.pointer("/info/benchmark_score").cloned().unwrap_or_default(),
                field("registered_at"),
                field("heartbeat_at"),
            ));
        }
        lines.join("\n")
    })
}
