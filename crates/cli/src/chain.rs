//! `phalanx chain …`: the finalized head, blocks and chain facts.

use crate::ClientArgs;
use crate::client::{connect, rpc_error};
use crate::output::emit;
use clap::Subcommand;
use phalanx_rpc::PhalanxClient;

#[derive(Debug, Subcommand)]
pub(crate) enum ChainCommand {
    /// The last finalized block.
    Head,
    /// A finalized block by height, with its certificate.
    Block { height: u64 },
    /// Chain id, validators, fees, treasury and governance.
    Info,
    /// Schedule the validator set that takes over after the current consensus
    /// epoch (governance only). Name every validator of the new set.
    SetValidators {
        /// `KEY=IP:PORT`: a validator's consensus key (SS58 or 0x hex) and its p2p address.
        #[arg(required = true)]
        validators: Vec<String>,
        #[command(flatten)]
        signer: crate::cluster::Governance,
    },
}

/// Parses `KEY=IP:PORT`.
fn validator_entry(text: &str) -> anyhow::Result<phalanx_state::ValidatorEntry> {
    let (key, address) = text.split_once('=').ok_or_else(|| anyhow::anyhow!("{text:?}: expected KEY=IP:PORT"))?;
    let key = key.parse().map_err(|e| anyhow::anyhow!("{key:?} is not a public key: {e}"))?;
    address.parse::<std::net::SocketAddr>().map_err(|e| anyhow::anyhow!("{address:?} is not IP:PORT: {e}"))?;
    Ok(phalanx_state::ValidatorEntry { key, address: address.into() })
}

pub(crate) async fn run(command: ChainCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(&args.rpc)?;
    let err = rpc_error(&args.rpc);
    match command {
        ChainCommand::Head => {
            let head = client.chain_head().await.map_err(&err)?;
            emit(args.json, &head, || {
                format!(
                    "finalized #{} {} ({} txs, state root {})",
                    head.height, head.hash, head.tx_count, head.state_root
                )
            })
        }
        ChainCommand::Block { height } => {
            let block = client.chain_block(height).await.map_err(&err)?;
            let Some(block) = block else { anyhow::bail!("block {height} is not finalized yet") };
            emit(args.json, &block, || serde_json::to_string_pretty(&block).unwrap_or_default())
        }
        ChainCommand::Info => {
            let info = client.chain_info().await.map_err(&err)?;
            emit(args.json, &info, || {
                let pending = match &info.pending_validators {
                    Some(set) => format!(" ({} scheduled for epoch {})", set.len(), info.epoch + 1),
                    None => String::new(),
                };
                format!(
                    "chain {} (id {})\nvalidators: {}{pending}, epoch {} ({} blocks each)\ntreasury: {}\ngovernance: {}\nfees: {} + {} per byte\ntotal issuance: {}",
                    info.chain_name,
                    info.chain_id,
                    info.validators.len(),
                    info.epoch,
                    info.epoch_blocks,
                    info.params.treasury,
                    info.params.governance.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", "),
                    phalanx_primitives::format_pha(info.params.fees.base_fee),
                    phalanx_primitives::format_pha(info.params.fees.byte_fee),
                    phalanx_primitives::format_pha(info.total_issuance),
                )
            })
        }
        ChainCommand::SetValidators { validators, signer } => {
            let validators = validators.iter().map(|v| validator_entry(v)).collect::<anyhow::Result<Vec<_>>>()?;
            let key = crate::account::signer(signer.from, signer.from_file)?;
            let call = phalanx_state::Call::SetValidators { validators };
            let (hash, status) = crate::client::submit_call(&client, &args.rpc, &key, call, true).await?;
            let value = serde_json::json!({ "hash": hash, "status": status });
            emit(args.json, &value, || format!("validator set scheduled in transaction {hash} ({status:?})"))
        }
    }
}
