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
    /// Start a key rotation; waits until the request is finalized. `--scope
    /// master` (governance) rotates the master key and with it every cluster
    /// and agent key; `--scope cluster ID|NAME` (governance) one cluster and
    /// its agents; `--scope agent ID` (governance or the agent's owner) one agent.
    Rotate {
        /// `master`, `cluster ID|NAME` or `agent ID`.
        #[arg(long, num_args = 1..=2, value_names = ["SCOPE", "ID"], default_values_t = ["master".to_string()])]
        scope: Vec<String>,
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
                                "epoch {} (master {}): {}/{workers}",
                                k["epoch"],
                                k["master_epoch"],
                                k["received"].as_array().map_or(0, |a| a.len())
                            )
                        })
                        .collect();
                    lines.push(format!(
                        "cluster {} ({}): {workers} workers, keys received {}{}",
                        cluster["id"].as_str().unwrap_or("?"),
                        cluster["name"].as_str().unwrap_or("?"),
                        if keys.is_empty() { "none yet".to_string() } else { keys.join(", ") },
                        if cluster["rotation_requested"].as_bool() == Some(true) { ", rotation requested" } else { "" }
                    ));
                    let agents = &cluster["agents"];
                    lines.push(format!(
                        "  agents: {} of {} on the newest cluster key, {} secrets to re-encrypt, {} older agent epochs kept",
                        agents["on_newest_cluster_key"],
                        agents["count"],
                        agents["secrets_to_reencrypt"],
                        agents["old_agent_epochs_kept"]
                    ));
                }
                lines.push(format!(
                    "elections every {} blocks, up to {} gatekeepers",
                    status.params.era_blocks, status.params.gatekeepers_max
                ));
                lines.join("\n")
            })
        }
        KeysCommand::Rotate { scope, from, from_file } => {
            let call = rotation_call(&client, &args.rpc, &scope).await?;
            let key = crate::account::signer(from, from_file)?;
            let (hash, status) = crate::client::submit_call(&client, &args.rpc, &key, call, true).await?;
            let value = serde_json::json!({ "hash": hash, "status": status, "scope": scope });
            emit(args.json, &value, || {
                format!(
                    "{} rotation requested in transaction {hash} ({status:?}); follow it with `phalanx keys status`",
                    scope.join(" ")
                )
            })
        }
    }
}

/// The call a `--scope` asks for; a cluster may be named by id or name.
async fn rotation_call(client: &impl PhalanxClient, rpc: &str, scope: &[String]) -> anyhow::Result<Call> {
    match scope {
        [what] if what == "master" => Ok(Call::RotateMasterKey),
        [what, id] if what == "agent" => {
            Ok(Call::RotateAgentKey { agent: id.parse().map_err(|_| anyhow::anyhow!("{id:?} is not an agent id"))? })
        }
        [what, wanted] if what == "cluster" => {
            Ok(Call::RotateClusterKey { cluster: crate::cluster::cluster_id(client, rpc, wanted).await? })
        }
        _ => anyhow::bail!("--scope is `master`, `cluster ID|NAME` or `agent ID`, not {:?}", scope.join(" ")),
    }
}
