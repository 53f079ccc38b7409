//! `phalanx mining`: a pool owner starts and stops their workers mining;
//! anyone reads the status.

use crate::ClientArgs;
use crate::agent_chain::Signer;
use crate::client::{connect, rpc_error, submit_call};
use crate::output::emit;
use anyhow::Context;
use phalanx_primitives::{PublicKey, format_pha, parse_pha};
use phalanx_rpc::PhalanxClient;
use phalanx_state::Call;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum MiningCommand {
    /// Bind a worker you operate to your pool (if it is not yet) and start
    /// it mining with STAKE PHA of the pool's free stake.
    Start {
        worker: PublicKey,
        #[arg(long)]
        pool: u64,
        /// PHA of stake (default: the worker's minimum).
        #[arg(long)]
        stake: Option<String>,
        #[command(flatten)]
        signer: Signer,
    },
    /// Stop a worker; its stake returns to the pool after the cooldown.
    Stop {
        worker: PublicKey,
        #[command(flatten)]
        signer: Signer,
    },
    /// Parameters, totals and every bound worker.
    Status,
}

pub(crate) async fn run(command: MiningCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(&args.rpc)?;
    let finalized = |status: &phalanx_rpc::TxStatus, hash| {
        anyhow::ensure!(
            matches!(status, phalanx_rpc::TxStatus::Finalized { .. }),
            "transaction {hash} not finalized within a minute ({status:?})"
        );
        Ok(())
    };
    match command {
        MiningCommand::Start { worker, pool, stake, signer } => {
            let key = signer.keypair()?;
            let status = client.mining_status().await.map_err(rpc_error(&args.rpc))?;
            if !status.miners.iter().any(|m| m.worker == worker) {
                let (hash, tx) = submit_call(&client, &args.rpc, &key, Call::BindWorker { pool, worker }, true).await?;
                finalized(&tx, hash)?;
            }
            let stake = match stake {
                Some(text) => parse_pha(&text).with_context(|| format!("{text:?} is not an amount of PHA"))?,
                None => {
                    let workers = client.registry_workers().await.map_err(rpc_error(&args.rpc))?;
                    let score = workers
                        .iter()
                        .find(|w| w.identity == worker)
                        .and_then(|w| w.worker["info"]["benchmark_score"].as_u64())
                        .context(format!("worker {worker} is not registered"))?;
                    status.params.stake_per_score.saturating_mul(u128::from(score)).max(1)
                }
            };
            let (hash, tx) = submit_call(&client, &args.rpc, &key, Call::StartMining { worker, stake }, true).await?;
            finalized(&tx, hash)?;
            let value = serde_json::json!({ "worker": worker, "pool": pool, "stake": stake, "hash": hash });
            emit(args.json, &value, || format!("worker {worker} mining for pool {pool} with {}", format_pha(stake)))
        }
        MiningCommand::Stop { worker, signer } => {
            let key = signer.keypair()?;
            let (hash, tx) = submit_call(&client, &args.rpc, &key, Call::StopMining { worker }, true).await?;
            finalized(&tx, hash)?;
            let value = serde_json::json!({ "worker": worker, "hash": hash });
            emit(args.json, &value, || format!("worker {worker} stopped; its stake returns after the cooldown"))
        }
        MiningCommand::Status => {
            let status = client.mining_status().await.map_err(rpc_error(&args.rpc))?;
            emit(args.json, &status, || {
                let mut lines = vec![format!(
                    "height {}: {} minted of {}, total share {}",
                    status.height,
                    format_pha(status.totals.minted),
                    format_pha(status.params.reward_budget),
                    status.totals.total_share
                )];
                for m in &status.miners {
                    lines.push(format!(
                        "  {}  pool {}  {:?}  stake {}  V {}  share {}  earned {}",
                        m.worker,
                        m.pool,
                        m.state,
                        format_pha(m.stake),
                        format_pha(m.v),
                        m.share,
                        format_pha(m.earned)
                    ));
                }
                lines.join("\n")
            })
        }
    }
}
