//! `phalanx dev`: a whole local network in this process.

use anyhow::Context;
use std::path::PathBuf;

/// Descriptors storage (redb, commonware's journals and archives) and the
/// runtime (epoll, eventfds, standard streams, the binary) hold in a dev
/// process with two workers: under 200 measured (`ls /proc/PID/fd`), with
/// room to grow.
const STORAGE_AND_RUNTIME_FILES: usize = 1_024;

// Everything a process opens besides its listeners' connections fits in the
// reserve the listeners leave it.
const _: () = assert!(
    phalanx_node::service::P2P_SOCKETS_MAX
        + phalanx_sandbox::outgoing::OUTGOING_SOCKETS_MAX
        + STORAGE_AND_RUNTIME_FILES
        <= phalanx_listener::FD_RESERVE_MIN as usize
);

#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    /// Where the chain is stored; reused (resumed) on the next start.
    #[arg(long, env = "PHALANX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Port of the JSON-RPC server (HTTP and WebSocket) on 127.0.0.1.
    #[arg(long, default_value_t = 9944)]
    rpc_port: u16,
    /// Port of the validator's p2p listener on 127.0.0.1.
    #[arg(long, default_value_t = 30333)]
    p2p_port: u16,
    /// Serve the validator's Prometheus metrics at /metrics on this port of 127.0.0.1.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Log one JSON object per line (for log collectors).
    #[arg(long, env = "PHALANX_LOG_JSON")]
    log_json: bool,
    /// Print the endpoints as one JSON line once the network is up.
    #[arg(long)]
    json: bool,
    /// Port of the first worker's gateway on 127.0.0.1 (agent calls); worker i uses this plus i.
    #[arg(long, default_value_t = 8000)]
    gateway_port: u16,
    /// Simulated-TEE workers to run beside the validator (operated by bob,
    /// charlie, dave, alice in turn); the first is the gatekeeper.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=8))]
    workers: u8,
    /// Let deployed agents' `fetch` reach loopback and private addresses (a
    /// local LLM server, say). Off by default, as on real workers.
    #[arg(long)]
    agent_fetch_private: bool,
}

/// Starts the dev network's workers: sim TEE, data under `<data>/workers/worker-<i>`.
/// Once they have all registered, governance (alice) puts them in a cluster
/// named "dev" (created if the chain has no cluster yet), so agents can be
/// deployed at once.
fn start_workers(
    count: u8,
    rpc: std::net::SocketAddr,
    data_dir: &std::path::Path,
    gateway_port: u16,
    fetch_private: bool,
) -> Vec<PathBuf> {
    let operators = ["bob", "charlie", "dave", "alice"];
    let (events, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let dirs = (0..count as usize)
        .map(|index| {
            let dir = data_dir.join("workers").join(format!("worker-{index}"));
            let operator =
                phalanx_primitives::mnemonic::dev_keypair(operators[index % operators.len()]).expect("dev account");
            let mut config = phalanx_worker::WorkerConfig::new(format!("http://{rpc}"), dir.clone(), operator);
            // Dev blocks come every 0.5 s when idle: a heartbeat a minute.
            config.heartbeat_every = 120;
            let mut gateway = phalanx_gateway::server::GatewayConfig::local(gateway_port.saturating_add(index as u16));
            gateway.fetch.allow_private_addresses = fetch_private;
            config.gateway = Some(gateway);
            // The first worker is the dev network's gatekeeper.
            if index == 0 {
                config.features |= phalanx_state::modules::registry::FEATURE_GATEKEEPER;
            }
            let events = events.clone();
            tokio::spawn(async move {
                let shutdown = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                if let Err(error) = phalanx_worker::run(config, shutdown, events).await {
                    tracing::error!(worker = index, %error, "dev worker stopped");
                }
            });
            dir
        })
        .collect();
    if count > 0 {
        tokio::spawn(async move {
            let (mut identities, mut registered) = (Vec::new(), 0);
            while let Some(event) = heard.recv().await {
                match event {
                    phalanx_worker::WorkerEvent::Started { identity, .. } => identities.push(identity),
                    phalanx_worker::WorkerEvent::Registered { .. } => registered += 1,
                    phalanx_worker::WorkerEvent::Gateway { .. } | phalanx_worker::WorkerEvent::Metrics { .. } => {}
                }
                if registered == count as usize {
                    break;
                }
            }
            if let Err(error) = form_cluster(&format!("http://{rpc}"), "dev", &identities).await {
                tracing::warn!(%error, "could not put the dev workers in a cluster");
            }
        });
    }
    dirs
}

/// Creates a cluster named `name` if the chain has none and adds `workers`
/// to the first cluster, as governance (alice, in dev and testnet genesis).
pub(crate) async fn form_cluster(
    url: &str,
    name: &str,
    workers: &[phalanx_primitives::PublicKey],
) -> anyhow::Result<()> {
    use phalanx_rpc::PhalanxClient;
    let client = crate::client::connect(url)?;
    let alice = phalanx_primitives::mnemonic::dev_keypair("alice").expect("dev account");
    let mut status = client.keys_status().await?;
    if status.clusters.is_empty() {
        let call = phalanx_state::Call::CreateCluster { name: name.into() };
        crate::client::submit_call(&client, url, &alice, call, true).await?;
        status = client.keys_status().await?;
    }
    let cluster = status.clusters.first().and_then(|c| c["id"].as_str()).context("no cluster")?.parse()?;
    let members: Vec<String> = status.clusters[0]["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str().map(str::to_string))
        .collect();
    for worker in workers {
        if members.contains(&worker.to_string()) {
            continue;
        }
        let call = phalanx_state::Call::SetClusterWorker { cluster, worker: *worker, member: true };
        crate::client::submit_call(&client, url, &alice, call, true).await?;
    }
    tracing::info!(%cluster, workers = workers.len(), "the workers are in the cluster");
    Ok(())
}

fn default_data_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".phalanx").join("dev")
}

pub(crate) fn run(args: DevArgs) -> anyhow::Result<()> {
    crate::logging::init("warn,phalanx_node=info,phalanx_worker=info,phalanx=info", args.log_json);
    let mut config = phalanx_node::dev::DevConfig::new(args.data_dir.unwrap_or_else(default_data_dir));
    config.rpc_port = args.rpc_port;
    config.p2p_port = args.p2p_port;
    config.metrics_port = args.metrics_port;
    let json = args.json;
    let workers = args.workers;
    let gateway_port = args.gateway_port;
    let fetch_private = args.agent_fetch_private;
    phalanx_node::dev::run(config, move |endpoints| {
        let worker_dirs = start_workers(workers, endpoints.rpc, &endpoints.data_dir, gateway_port, fetch_private);
        let dev_accounts = phalanx_primitives::mnemonic::DEV_ACCOUNTS.map(|name| {
            (name, phalanx_primitives::mnemonic::dev_keypair(name).expect("dev account").public().to_string())
        });
        if json {
            let value = serde_json::json!({
                "rpc": format!("http://{}", endpoints.rpc),
                "ws": format!("ws://{}", endpoints.rpc),
                "p2p": endpoints.p2p.map(|p| p.to_string()),
                "data_dir": endpoints.data_dir,
                "finalized_height": endpoints.height,
                "workers": worker_dirs,
                "gateway": format!("http://127.0.0.1:{gateway_port}"),
                "accounts": dev_accounts.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            });
            println!("{value}");
            return;
        }
        let accounts: Vec<String> = phalanx_primitives::mnemonic::DEV_ACCOUNTS
            .iter()
            .map(|name| {
                format!(
                    "  {name:<8} {}",
                    phalanx_primitives::mnemonic::dev_keypair(name).expect("dev account").public()
                )
            })
            .collect();
        println!(
            "phalanx dev network running (finalized height {4})\n  rpc      http://{0} and ws://{0}\n  p2p      {1}\n  data     {2}\n  workers  {5} (simulated TEE; they register in a few seconds: phalanx worker list)\n  gateway  http://127.0.0.1:{6} (agent calls: /agents/ID/…)\ndev accounts:\n{3}\nStop with Ctrl-C; start again to resume.",
            endpoints.rpc,
            endpoints.p2p.map_or("-".to_string(), |p| p.to_string()),
            endpoints.data_dir.display(),
            accounts.join("\n"),
            endpoints.height,
            worker_dirs.len(),
            gateway_port,
        );
    })?;
    Ok(())
}
