//! `phalanx account …`: create keys, read balances, transfer PHA.

use crate::ClientArgs;
use crate::client::{connect, rpc_error};
use crate::output::emit;
use anyhow::Context;
use clap::Subcommand;
use phalanx_primitives::mnemonic::{self, dev_keypair};
use phalanx_primitives::{Keypair, PublicKey, format_pha, parse_pha};
use phalanx_rpc::{PhalanxClient, TxStatus};
use phalanx_state::leaves::Leaf;
use phalanx_state::{Call, Transaction};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long `transfer` waits for finality before giving up waiting.
const FINALITY_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Generate a new account: prints its address and secret phrase.
    New,
    /// Balance and nonce of an account (dev name such as alice, or an address).
    Balance { account: String },
    /// Transfer PHA and wait until the transfer is finalized.
    Transfer {
        /// Sender: a dev account name (alice, bob, charlie, dave).
        #[arg(long, required_unless_present = "from_file", conflicts_with = "from_file")]
        from: Option<String>,
        /// Sender: a file holding a secret phrase (optionally with //junctions).
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// Recipient: a dev account name or an address.
        #[arg(long)]
        to: String,
        /// Amount in PHA, such as 1.5 (or 1000planck).
        amount: String,
        /// Return once the node accepted the transaction, without waiting for finality.
        #[arg(long)]
        no_wait: bool,
    },
}

/// Resolves a dev account name or an address.
fn resolve(account: &str) -> anyhow::Result<PublicKey> {
    if let Some(key) = dev_keypair(account) {
        return Ok(key.public());
    }
    account.parse().with_context(|| format!("{account:?} is neither a dev account name nor an address"))
}

pub(crate) fn signer(from: Option<String>, from_file: Option<PathBuf>) -> anyhow::Result<Keypair> {
    if let Some(name) = from {
        return dev_keypair(&name).with_context(|| {
            format!("{name:?} is not a dev account (alice, bob, charlie, dave); use --from-file for others")
        });
    }
    let path = from_file.expect("clap requires one of --from and --from-file");
    let secret = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    // The phrase itself is never echoed in errors.
    mnemonic::from_secret_uri(secret.trim())
        .with_context(|| format!("{} does not hold a valid secret phrase", path.display()))
}

pub(crate) async fn run(command: AccountCommand, args: &ClientArgs) -> anyhow::Result<()> {
    match command {
        AccountCommand::New => {
            let (phrase, key) = mnemonic::generate();
            let value = serde_json::json!({
                "address": key.public(),
                "public_key": format!("0x{}", hex::encode(key.public().0)),
                "secret_phrase": phrase.as_str(),
            });
            emit(args.json, &value, || {
                format!(
                    "address:       {}\nsecret phrase: {}\nKeep the phrase safe: it is the only way to spend from this account.",
                    key.public(),
                    phrase.as_str()
                )
            })
        }
        AccountCommand::Balance { account } => {
            let who = resolve(&account)?;
            let client = connect(&args.rpc)?;
            let read =
                crate::light::read(args, &client, &[Leaf::Account(who), Leaf::Deposit(who), Leaf::Unbonding(who)])
                    .await?;
            let account: Option<phalanx_state::Account> = read.value(Leaf::Account(who))?;
            let unbonding: Option<phalanx_state::modules::fees::Unbonding> = read.value(Leaf::Unbonding(who))?;
            let unbonding = unbonding.filter(|u| u.amount > 0);
            // Waiting transactions are the node's mempool, which no proof covers.
            let pending_txs = client.state_account(who.to_string()).await.map_err(rpc_error(&args.rpc))?.pending_txs;
            let nonce = account.map_or(0, |a| a.nonce);
            let info = phalanx_rpc::AccountInfo {
                address: who,
                exists: account.is_some(),
                nonce,
                free: account.map_or(0, |a| a.free),
                deposit: read.value(Leaf::Deposit(who))?.unwrap_or(0),
                unbonding: unbonding.map_or(0, |u| u.amount),
                unbonding_release_at_ms: unbonding.map(|u| u.release_at_ms),
                pending_txs,
                next_nonce: nonce + pending_txs,
            };
            emit(args.json, &read.marked(&info), || {
                format!(
                    "{}: {} (nonce {}, {} pending)\n{}",
                    info.address,
                    format_pha(info.free),
                    info.nonce,
                    info.pending_txs,
                    read.note()
                )
            })
        }
        AccountCommand::Transfer { from, from_file, to, amount, no_wait } => {
            let key = signer(from, from_file)?;
            let to = resolve(&to)?;
            let amount = parse_pha(&amount)?;
            transfer(args, &key, to, amount, no_wait).await
        }
    }
}

async fn transfer(args: &ClientArgs, key: &Keypair, to: PublicKey, amount: u128, no_wait: bool) -> anyhow::Result<()> {
    let client = connect(&args.rpc)?;
    let err = rpc_error(&args.rpc);
    let info = client.chain_info().await.map_err(&err)?;
    let account = client.state_account(key.public().to_string()).await.map_err(&err)?;
    let tx = Transaction {
        chain_id: info.chain_id,
        signer: key.public(),
        nonce: account.next_nonce,
        fee: 0,
        call: Call::Transfer { to, amount },
    };
    let signed = tx.sign_paying_minimum(&info.params.fees, key)?;
    let fee = signed.tx.fee;
    let hash = client.tx_submit(format!("0x{}", hex::encode(signed.encode()))).await.map_err(&err)?;
    let mut status = TxStatus::Pending;
    if !no_wait {
        let started = Instant::now();
        while started.elapsed() < FINALITY_WAIT {
            status = client.tx_status(hash).await.map_err(&err)?;
            if !matches!(status, TxStatus::Pending) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let value = serde_json::json!({ "hash": hash, "from": key.public(), "to": to, "amount": amount, "fee": fee, "status": status });
    emit(args.json, &value, || match &status {
        TxStatus::Finalized { height, .. } => {
            format!(
                "transferred {} to {to}, fee {}; finalized in block #{height} (tx {hash})",
                format_pha(amount),
                format_pha(fee)
            )
        }
        TxStatus::Pending => {
            format!("submitted tx {hash}: {} to {to}, fee {}; not finalized yet", format_pha(amount), format_pha(fee))
        }
        TxStatus::Unknown => format!("tx {hash} was dropped by the node before finality"),
    })?;
    if matches!(status, TxStatus::Unknown) {
        anyhow::bail!("transaction dropped");
    }
    Ok(())
}
