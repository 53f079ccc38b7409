//! `phalanx vault`: vaults delegate their holders' stake into pools.

use crate::ClientArgs;
use crate::agent_chain::Signer;
use crate::client::{connect, rpc_error, submit_finalized};
use crate::output::emit;
use anyhow::Context;
use phalanx_primitives::{Balance, format_pha, parse_pha};
use phalanx_rpc::PhalanxClient;
use phalanx_state::Call;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum VaultCommand {
    /// A new vault owned by the signer; prints its id.
    Create {
        /// The owner's cut of the vault's gains, in percent (up to 4 decimals).
        #[arg(long, default_value = "0")]
        commission: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// Put PHA into a vault for shares at its price.
    Contribute {
        vault: u64,
        amount: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// Take PHA out (`all` or an amount): paid from undelegated planck, the rest queued.
    Withdraw {
        vault: u64,
        amount: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// The owner puts PHA of the vault into a pool.
    Delegate {
        vault: u64,
        #[arg(long)]
        pool: u64,
        amount: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// The owner takes PHA of the vault out of a pool (`all` or an amount).
    Undelegate {
        vault: u64,
        #[arg(long)]
        pool: u64,
        amount: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// One vault: value, undelegated planck, delegations, queue, holders.
    Info { vault: u64 },
}

fn pha(text: &str) -> anyhow::Result<Balance> {
    parse_pha(text).with_context(|| format!("{text:?} is not an amount of PHA"))
}

/// Shares worth `amount` ("all": every one held) at `value / shares`.
fn shares_for(amount: &str, held: Balance, value: Balance, shares: Balance) -> anyhow::Result<Balance> {
    if amount == "all" {
        return Ok(held);
    }
    let wanted = pha(amount)?;
    let want = phalanx_state::modules::staking::mul_div(wanted, shares, value.max(1)).context("amount too large")?;
    anyhow::ensure!(
        want <= held,
        "that is more than the {} held",
        format_pha(phalanx_state::modules::staking::mul_div(held, value, shares.max(1)).unwrap_or(0))
    );
    Ok(want)
}

pub(crate) async fn run(command: VaultCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = &connect(&args.rpc)?;
    let submit = |signer: Signer, call: Call| async move {
        let (hash, height, events) = submit_finalized(client, &args.rpc, &signer.keypair()?, call).await?;
        Ok::<_, anyhow::Error>(serde_json::json!({ "hash": hash, "height": height, "events": events }))
    };
    let info = |id: u64| async move {
        client.staking_vault(id).await.map_err(rpc_error(&args.rpc))?.context(format!("no vault {id}"))
    };
    match command {
        VaultCommand::Create { commission, signer } => {
            let commission = crate::pool::commission_of(&commission)?;
            let done = submit(signer, Call::CreateVault { commission }).await?;
            let id = done["events"]
                .as_array()
                .and_then(|e| e.iter().find(|e| e["event"] == "vault_created"))
                .and_then(|e| e["vault"].as_u64())
                .context("no vault_created event")?;
            emit(args.json, &serde_json::json!({ "id": id, "hash": done["hash"] }), || format!("vault {id} created"))
        }
        VaultCommand::Contribute { vault, amount, signer } => {
            let amount = pha(&amount)?;
            let done = submit(signer, Call::VaultContribute { vault, amount }).await?;
            emit(args.json, &done, || format!("contributed {} to vault {vault}", format_pha(amount)))
        }
        VaultCommand::Withdraw { vault, amount, signer } => {
            let found = info(vault).await?;
            let me = signer.keypair()?.public();
            let held = found.holders.iter().find(|h| h.account == me).map_or(0, |h| h.shares);
            anyhow::ensure!(held > 0, "{me} holds no shares of vault {vault}");
            let shares = shares_for(&amount, held, found.value, found.vault.shares)?;
            let done = submit(signer, Call::VaultWithdraw { vault, shares }).await?;
            emit(args.json, &done, || {
                format!(
                    "vault {vault}: withdrawal of {shares} shares made (what undelegated planck did not cover waits in the queue)"
                )
            })
        }
        VaultCommand::Delegate { vault, pool, amount, signer } => {
            let amount = pha(&amount)?;
            let done = submit(signer, Call::Delegate { vault, pool, amount }).await?;
            emit(args.json, &done, || format!("vault {vault}: {} delegated to pool {pool}", format_pha(amount)))
        }
        VaultCommand::Undelegate { vault, pool, amount, signer } => {
            let found = info(vault).await?;
            let (_, held, worth) = found
                .delegated
                .iter()
                .copied()
                .find(|(p, _, _)| *p == pool)
                .context(format!("vault {vault} holds nothing in pool {pool}"))?;
            let shares = shares_for(&amount, held, worth, held)?;
            let done = submit(signer, Call::Undelegate { vault, pool, shares }).await?;
            emit(args.json, &done, || format!("vault {vault}: {shares} shares of pool {pool} asked back"))
        }
        VaultCommand::Info { vault } => {
            let found = info(vault).await?;
            emit(args.json, &found, || {
                let v = &found.vault;
                let mut lines = vec![
                    format!("vault {} owned by {}, commission {}%", v.id, v.owner, f64::from(v.commission) / 10_000.0),
                    format!(
                        "value {} ({} not delegated), {} shares, {} withdrawals waiting",
                        format_pha(found.value),
                        format_pha(found.free),
                        v.shares,
                        v.withdrawals.len()
                    ),
                ];
                for (pool, shares, worth) in &found.delegated {
                    lines.push(format!("  pool {pool}: {shares} shares = {}", format_pha(*worth)));
                }
                for h in &found.holders {
                    lines.push(format!("  {}  {} shares = {}", h.account, h.shares, format_pha(h.value)));
                }
                lines.join("\n")
            })
        }
    }
}
