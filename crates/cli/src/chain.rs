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
                format!(
                    "chain {} (id {})\nvalidators: {}\ntreasury: {}\ngovernance: {}\nfees: {} + {} per byte\ntotal issuance: {}",
                    info.chain_name,
                    info.chain_id,
                    info.validators.len(),
                    info.params.treasury,
                    info.params.governance.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", "),
                    phalanx_primitives::format_pha(info.params.fees.base_fee),
                    phalanx_primitives::format_pha(info.params.fees.byte_fee),
                    phalanx_primitives::format_pha(info.total_issuance),
                )
            })
        }
    }
}
