//! `phalanx pool`: stake pools: create one, contribute PHA for shares,
//! withdraw (paid from free stake, the rest queued), and look at them.

use crate::ClientArgs;
use crate::agent_chain::Signer;
use crate::client::{connect, rpc_error, submit_finalized};
use crate::output::emit;
use anyhow::Context;
use phalanx_primitives::{Balance, format_pha, parse_pha};
use phalanx_rpc::PhalanxClient;
use phalanx_state::Call;
use phalanx_state::modules::staking::PERMILL;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum PoolCommand {
    /// A new pool owned by the signer; prints its id.
    Create {
        /// The owner's cut of rewards, in percent (0 to 100, up to 4 decimals).
        #[arg(long, default_value = "0")]
        commission: String,
        /// Most PHA the pool takes from contributions (default: no cap).
        #[arg(long)]
        cap: Option<String>,
        #[command(flatten)]
        signer: Signer,
    },
    /// Put PHA into a pool for shares at its current price.
    Contribute {
        pool: u64,
        /// PHA, e.g. 1000 or 0.5.
        amount: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// Take PHA out: `all`, or an amount of PHA (sold as shares at the
    /// current price). Paid now from free stake; the rest waits in the queue.
    Withdraw {
        pool: u64,
        amount: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// One pool: value, shares, price, free stake, queue and holders.
    Info { pool: u64 },
    /// Every pool.
    List,
}

/// Percent with up to four decimals as parts per million.
pub(crate) fn commission_of(text: &str) -> anyhow::Result<u32> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    anyhow::ensure!(fraction.len() <= 4, "a commission has at most 4 decimals (percent)");
    let whole: u32 = whole.parse().context("a commission is a percentage, e.g. 20 or 12.5")?;
    let fraction: u32 =
        if fraction.is_empty() { 0 } else { format!("{fraction:0<4}").parse().context("commission")? };
    let parts = whole.checked_mul(10_000).and_then(|w| w.checked_add(fraction)).context("commission too large")?;
    anyhow::ensure!(parts <= PERMILL, "a commission is at most 100%");
    Ok(parts)
}

/// A planck amount from event JSON (numbers beyond 2^64 arrive as floats: display only).
fn planck_of(value: &serde_json::Value) -> Option<Balance> {
    value.as_u64().map(Balance::from).or_else(|| value.as_f64().map(|f| f as Balance))
}

fn pha(text: &str) -> anyhow::Result<Balance> {
    parse_pha(text).with_context(|| format!("{text:?} is not an amount of PHA"))
}

pub(crate) async fn run(command: PoolCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = &connect(&args.rpc)?;
    let submit =
        |signer: Signer, call: Call| async move { submit_finalized(client, &args.rpc, &signer.keypair()?, call).await };
    match command {
        PoolCommand::Create { commission, cap, signer } => {
            let commission = commission_of(&commission)?;
            let cap = cap.as_deref().map(pha).transpose()?;
            let (hash, height, events) = submit(signer, Call::CreatePool { commission, cap }).await?;
            let id = events
                .iter()
                .find(|e| e["event"] == "pool_created")
                .and_then(|e| e["pool"].as_u64())
                .context("no pool_created event")?;
            let value = serde_json::json!({ "id": id, "hash": hash, "height": height });
            emit(args.json, &value, || format!("pool {id} created at block {height}"))
        }
        PoolCommand::Contribute { pool, amount, signer } => {
            let amount = pha(&amount)?;
            let (hash, height, events) = submit(signer, Call::Contribute { pool, amount }).await?;
            let value = serde_json::json!({ "pool": pool, "hash": hash, "height": height, "events": events });
            emit(args.json, &value, || format!("contributed {} to pool {pool} at block {height}", format_pha(amount)))
        }
        PoolCommand::Withdraw { pool, amount, signer } => {
            let info =
                client.staking_pool(pool).await.map_err(rpc_error(&args.rpc))?.context(format!("no pool {pool}"))?;
            let me = signer.keypair()?.public();
            let held = info.holders.iter().find(|h| h.account == me).map_or(0, |h| h.shares);
            anyhow::ensure!(held > 0, "{me} holds no shares of pool {pool}");
            let shares = if amount == "all" {
                held
            } else {
                let wanted = pha(&amount)?;
                let shares = phalanx_state::modules::staking::mul_div(wanted, info.pool.shares, info.pool.value.max(1))
                    .context("amount too large")?;
                anyhow::ensure!(shares <= held, "you hold shares worth {}", format_pha(info.pool.value_of(held)));
                shares
            };
            let (hash, height, events) = submit(signer, Call::Withdraw { pool, shares }).await?;
            let paid: Balance =
                events.iter().filter(|e| e["event"] == "withdrawn").filter_map(|e| planck_of(&e["amount"])).sum();
            let queued = events.iter().any(|e| e["event"] == "withdrawal_queued");
            let value = serde_json::json!({ "pool": pool, "hash": hash, "height": height, "events": events });
            emit(args.json, &value, || {
                format!(
                    "pool {pool}: {} paid at block {height}{}",
                    format_pha(paid),
                    if queued { "; the rest waits in the withdrawal queue" } else { "" }
                )
            })
        }
        PoolCommand::Info { pool } => {
            let info =
                client.staking_pool(pool).await.map_err(rpc_error(&args.rpc))?.context(format!("no pool {pool}"))?;
            emit(args.json, &info, || {
                let p = &info.pool;
                let mut lines = vec![
                    format!("pool {} owned by {}, commission {}%", p.id, p.owner, f64::from(p.commission) / 10_000.0),
                    format!(
                        "value {} ({} free), {} shares, cap {}",
                        format_pha(p.value),
                        format_pha(p.free),
                        p.shares,
                        p.cap.map_or("none".to_string(), format_pha)
                    ),
                    format!("withdrawals waiting: {}", p.withdrawals.len()),
                ];
                for h in &info.holders {
                    lines.push(format!("  {}  {} shares = {}", h.account, h.shares, format_pha(h.value)));
                }
                lines.join("\n")
            })
        }
        PoolCommand::List => {
            let pools = client.staking_pools().await.map_err(rpc_error(&args.rpc))?;
            emit(args.json, &pools, || {
                if pools.is_empty() {
                    return "no pools".to_string();
                }
                pools
                    .iter()
                    .map(|p| {
                        format!(
                            "{:>4}  {}  {}  commission {}%",
                            p.id,
                            p.owner,
                            format_pha(p.value),
                            f64::from(p.commission) / 10_000.0
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::commission_of;

    #[test]
    fn commissions_are_percent_with_four_decimals() {
        assert_eq!(commission_of("20").unwrap(), 200_000);
        assert_eq!(commission_of("12.5").unwrap(), 125_000);
        assert_eq!(commission_of("0.0001").unwrap(), 1);
        assert_eq!(commission_of("100").unwrap(), 1_000_000);
        assert!(commission_of("100.0001").is_err());
        assert!(commission_of("1.23456").is_err());
        assert!(commission_of("-1").is_err());
    }
}
