//! `phalanx deposit`: the planck an account holds for paid agent calls.

use crate::ClientArgs;
use crate::agent_chain::Signer;
use crate::client::{connect, rpc_error, submit_call};
use crate::output::emit;
use anyhow::Context;
use phalanx_primitives::{format_pha, parse_pha};
use phalanx_rpc::PhalanxClient;
use phalanx_state::Call;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DepositCommand {
    /// Move PHA from your free balance into your deposit.
    Add {
        amount: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// Withdraw PHA from your deposit: it unbonds first (calls admitted
    /// before may still be charged to it), then a block pays it back to your
    /// free balance (`fees.deposit_unbonding_ms` of chain time, 2 minutes by default).
    Withdraw {
        amount: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// An account's deposit (a dev account name or an address).
    Balance { account: String },
}

pub(crate) async fn run(command: DepositCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(&args.rpc)?;
    let (signer, call) = match command {
        DepositCommand::Balance { account } => {
            let address = crate::agent_chain::account_of(&account)?;
            let info = client.state_account(address.to_string()).await.map_err(rpc_error(&args.rpc))?;
            let value = serde_json::json!({
                "account": address,
                "deposit": info.deposit,
                "unbonding": info.unbonding,
                "unbonding_release_at_ms": info.unbonding_release_at_ms,
            });
            return emit(args.json, &value, || {
                let mut line = format!("{address}: deposit {}", format_pha(info.deposit));
                if info.unbonding > 0 {
                    line.push_str(&format!(", {} unbonding", format_pha(info.unbonding)));
                }
                line
            });
        }
        DepositCommand::Add { amount, signer } => {
            let amount = parse_pha(&amount).with_context(|| format!("{amount:?} is not an amount of PHA"))?;
            (signer, Call::Deposit { amount })
        }
        DepositCommand::Withdraw { amount, signer } => {
            let amount = parse_pha(&amount).with_context(|| format!("{amount:?} is not an amount of PHA"))?;
            (signer, Call::WithdrawDeposit { amount })
        }
    };
    let key = signer.keypair()?;
    let (hash, status) = submit_call(&client, &args.rpc, &key, call, true).await?;
    anyhow::ensure!(
        matches!(status, phalanx_rpc::TxStatus::Finalized { .. }),
        "transaction {hash} not finalized within a minute ({status:?})"
    );
    let info = client.state_account(key.public().to_string()).await.map_err(rpc_error(&args.rpc))?;
    let value = serde_json::json!({
        "hash": hash,
        "deposit": info.deposit,
        "unbonding": info.unbonding,
        "unbonding_release_at_ms": info.unbonding_release_at_ms,
    });
    emit(args.json, &value, || {
        let mut line = format!("deposit now {}", format_pha(info.deposit));
        if let Some(at) = info.unbonding_release_at_ms.filter(|_| info.unbonding > 0) {
            line.push_str(&format!(
                "; {} unbonding, paid back to your balance from chain time {at} ms",
                format_pha(info.unbonding)
            ));
        }
        line
    })
}
