//! `phalanx keys`: gatekeepers, master-key epochs and rotations.

use crate::ClientArgs;
use crate::client::{connect, rpc_error};
use crate::output::emit;
use phalanx_rpc::PhalanxClient;
use phalanx_state::Call;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Elected gatekeepers, the current master-key epoch and any rotation in progress.
    Status,
    /// Start a master-key rotation (governance only); waits until it is finalized.
    Rotate {
        /// What to rotate (only the master key for now).
        #[arg(long, default_value = "master", value_parser = ["master"])]
        scope: String,
        /// Governance account: a dev account name.
        #[arg(long, required_unless_present = "from_file", conflicts_with = "from_file")]
        from: Option<String>,
        /// Governance account: a file holding a secret phrase.
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
}

pub(crate) async fn run(command: KeysCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(&args.rpc)?;
    match command {
        KeysCommand::Status => {
            let status = client.keys_status().await.map_err(rpc_error(&args.rpc))?;
            emit(args.json, &status, || {
                let epochs = &status.epochs;
                let current = &epochs["current"];
                let mut lines = vec![format!(
                    "gatekeepers elected: {}",
                    status.gatekeepers["elected"].as_array().map_or(0, |a| a.len())
                )];
                for member in status.gatekeepers["elected"].as_array().into_iter().flatten() {
                    lines.push(format!("  {}", member.as_str().unwrap_or("?")));
                }
                if current.is_null() {
                    lines.push("master key: none yet".into());
                } else {
                    lines.push(format!(
                        "master key: epoch {} since block {}, {} holders",
                        current["epoch"],
                        current["activated_at"],
                        current["holders"].as_array().map_or(0, |a| a.len())
                    ));
                }
                let rotation = &epochs["rotation"];
                if !rotation.is_null() {
                    lines.push(format!(
                        "rotation to epoch {}: leader {}, {} of {} confirmed{}",
                        rotation["epoch"],
                        rotation["leader"].as_str().unwrap_or("?"),
                        rotation["confirmed"].as_array().map_or(0, |a| a.len()),
                        rotation["members"].as_array().map_or(0, |a| a.len()),
                        match rotation["activates_at"].as_u64() {
                            Some(at) => format!(", activates at block {at}"),
                            None => String::new(),
                        }
                    ));
                }
                for cluster in &status.clusters {
                    let workers = cluster["workers"].as_array().map_or(0, |a| a.len());
                    let keys: Vec<String> = cluster["keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|k| {
                            format!(
                                "epoch {}: {}/{workers}",
                                k["epoch"],
                                k["received"].as_array().map_or(0, |a| a.len())
                            )
                        })
                        .collect();
                    lines.push(format!(
                        "cluster {} ({}): {workers} workers, keys received {}",
                        cluster["id"].as_str().unwrap_or("?"),
                        cluster["name"].as_str().unwrap_or("?"),
                        if keys.is_empty() { "none yet".to_string() } else { keys.join(", ") }
                    ));
                }
                lines.push(format!(
                    "elections every {} blocks, up to {} gatekeepers",
                    status.params.era_blocks, status.params.gatekeepers_max
                ));
                lines.join("\n")
            })
        }
        KeysCommand::Rotate { scope: _, from, from_file } => {
            let key = crate::account::signer(from, from_file)?;
            let (hash, status) =
                crate::client::submit_call(&client, &args.rpc, &key, Call::RotateMasterKey, true).await?;
            let value = serde_json::json!({ "hash": hash, "status": status });
            emit(args.json, &value, || {
                format!("rotation started in transaction {hash} ({status:?}); follow it with `phalanx keys status`")
            })
        }
    }
}
