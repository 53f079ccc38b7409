//! `phalanx node --config FILE`: one validator of a multi-node network, as
//! its own process (the config format is `phalanx_node::service::NodeFile`;
//! `phalanx testnet init` writes one per validator).

use anyhow::Context;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// The node's config file (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Log one JSON object per line (for log collectors).
    #[arg(long, env = "PHALANX_LOG_JSON")]
    log_json: bool,
    /// Print the endpoints as one JSON line once the node is ready.
    #[arg(long)]
    json: bool,
}

/// Resolves on Ctrl-C or SIGTERM (what `phalanx testnet down` sends).
pub(crate) async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub(crate) fn run(args: NodeArgs) -> anyhow::Result<()> {
    crate::logging::init("warn,phalanx_node=info", args.log_json);
    let config = phalanx_node::service::NodeConfig::from_file(&args.config)
        .with_context(|| format!("cannot start the node of {}", args.config.display()))?;
    let json = args.json;
    phalanx_node::service::run(config, shutdown_signal(), move |endpoints| {
        let metrics = endpoints.metrics.map(|m| format!("http://{m}/metrics"));
        if json {
            let value = serde_json::json!({
                "rpc": format!("http://{}", endpoints.rpc),
                "p2p": endpoints.p2p.map(|p| p.to_string()),
                "metrics": metrics,
                "validator": endpoints.validator.map(|v| v.to_string()),
                "data_dir": endpoints.data_dir,
                "finalized_height": endpoints.height,
            });
            println!("{value}");
        } else {
            let role = match endpoints.validator {
                Some(key) => format!("validator {key}"),
                None => "non-validator node".to_string(),
            };
            let p2p = endpoints.p2p.map_or("none (follows other nodes' RPC)".to_string(), |p| p.to_string());
            println!(
                "{role} running (finalized height {})\n  rpc      http://{}\n  p2p      {p2p}\n  metrics  {}\n  data     {}",
                endpoints.height,
                endpoints.rpc,
                metrics.as_deref().unwrap_or("off"),
                endpoints.data_dir.display()
            );
        }
    })?;
    Ok(())
}
