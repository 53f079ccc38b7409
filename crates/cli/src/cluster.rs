//! `phalanx cluster`: governance creates clusters and moves workers in and out.

use crate::ClientArgs;
use crate::client::{connect, rpc_error, submit_call};
use crate::output::emit;
use phalanx_primitives::{Hash, PublicKey};
use phalanx_rpc::PhalanxClient;
use phalanx_state::Call;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClusterCommand {
    /// A new cluster (governance only).
    Create {
        name: String,
        #[command(flatten)]
        signer: Governance,
    },
    /// Put a registered worker in a cluster (governance only); the cluster's key reaches it from a gatekeeper.
    Add {
        /// Cluster id or name.
        cluster: String,
        /// The worker's identity (an address, as `phalanx worker list` shows).
        worker: PublicKey,
        #[command(flatten)]
        signer: Governance,
    },
    /// Take a worker out of a cluster (governance only); it destroys the cluster's keys.
    Remove {
        cluster: String,
        worker: PublicKey,
        #[command(flatten)]
        signer: Governance,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct Governance {
    /// Governance account: a dev account name.
    #[arg(long, required_unless_present = "from_file", conflicts_with = "from_file")]
    pub(crate) from: Option<String>,
    /// Governance account: a file holding a secret phrase.
    #[arg(long)]
    pub(crate) from_file: Option<PathBuf>,
}

/// A cluster named by id or by name.
pub(crate) async fn cluster_id(client: &impl PhalanxClient, rpc: &str, wanted: &str) -> anyhow::Result<Hash> {
    if let Ok(id) = wanted.parse() {
        return Ok(id);
    }
    let status = client.keys_status().await.map_err(rpc_error(rpc))?;
    let found = status.clusters.iter().find(|c| c["name"].as_str() == Some(wanted));
    let id = found
        .and_then(|c| c["id"].as_str())
        .ok_or_else(|| anyhow::anyhow!("no cluster named {wanted:?} (see `phalanx keys status`)"))?;
    id.parse().map_err(|_| anyhow::anyhow!("bad cluster id {id}"))
}

pub(crate) async fn run(command: ClusterCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(&args.rpc)?;
    let (call, signer) = match command {
        ClusterCommand::Create { name, signer } => (Call::CreateCluster { name }, signer),
        ClusterCommand::Add { cluster, worker, signer } => {
            let cluster = cluster_id(&client, &args.rpc, &cluster).await?;
            (Call::SetClusterWorker { cluster, worker, member: true }, signer)
        }
        ClusterCommand::Remove { cluster, worker, signer } => {
            let cluster = cluster_id(&client, &args.rpc, &cluster).await?;
            (Call::SetClusterWorker { cluster, worker, member: false }, signer)
        }
    };
    let key = crate::account::signer(signer.from, signer.from_file)?;
    let (hash, status) = submit_call(&client, &args.rpc, &key, call, true).await?;
    let value = serde_json::json!({ "hash": hash, "status": status });
    emit(args.json, &value, || format!("done in transaction {hash} ({status:?})"))
}
