//! Verified reads for client commands: each value a command acts on comes
//! with a state proof against a certified state root, checked by the light
//! client (`phalanx-light`) before anything is printed. `--trust-node`
//! takes the node's values unchecked, and every output says so.

use crate::ClientArgs;
use crate::client::rpc_error;
use jsonrpsee::http_client::HttpClient;
use phalanx_rpc::PhalanxClient;
use phalanx_state::leaves::Leaf;
use std::path::PathBuf;

/// Leaves read at one head, verified or (with `--trust-node`) not.
#[derive(Debug)]
pub(crate) struct Read {
    pub height: u64,
    pub verified: bool,
    leaves: Vec<(Leaf, Option<Vec<u8>>)>,
}

impl Read {
    /// The value of `leaf`, decoded (`None`: absent).
    pub(crate) fn value<T: borsh::BorshDeserialize>(&self, leaf: Leaf) -> anyhow::Result<Option<T>> {
        match self.leaves.iter().find(|(l, _)| *l == leaf) {
            Some((_, Some(bytes))) => Ok(Some(leaf.decode(bytes)?)),
            _ => Ok(None),
        }
    }

    /// The line that says how far to trust the output.
    pub(crate) fn note(&self) -> String {
        if self.verified {
            format!("verified at height {}", self.height)
        } else {
            format!("NOT verified (--trust-node): as the node reports it at height {}", self.height)
        }
    }

    /// `value` (a JSON object) with `"verified"` and `"height"` added.
    pub(crate) fn marked<'a, T: serde::Serialize>(&self, value: &'a T) -> Marked<'a, T> {
        Marked { value, verified: self.verified, height: self.height }
    }
}

/// A result with how it was read (see [`Read::marked`]).
#[derive(Debug, serde::Serialize)]
pub(crate) struct Marked<'a, T: serde::Serialize> {
    #[serde(flatten)]
    value: &'a T,
    verified: bool,
    height: u64,
}

/// Where the light client keeps the validator set it trusts, per chain.
fn cache_dir(args: &ClientArgs) -> PathBuf {
    args.light_cache.clone().unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".phalanx").join("light")
    })
}

/// Reads `leaves` at the node's finalized head: verified (the head's
/// certificate against the trusted validator set, each proof against its
/// state root) unless `--trust-node`.
pub(crate) async fn read(args: &ClientArgs, client: &HttpClient, leaves: &[Leaf]) -> anyhow::Result<Read> {
    if args.trust_node {
        let answer =
            client.state_proof(phalanx_light::client::proof_keys(leaves), None).await.map_err(rpc_error(&args.rpc))?;
        anyhow::ensure!(answer.leaves.len() == leaves.len(), "the node answered for other leaves");
        let values = leaves.iter().copied().zip(answer.leaves.into_iter().map(|leaf| leaf.value)).collect();
        return Ok(Read { height: answer.header.height, verified: false, leaves: values });
    }
    let cache = cache_dir(args);
    let refused = |error: phalanx_light::ClientError| match error {
        phalanx_light::ClientError::Rpc(message) => anyhow::anyhow!("RPC to {}: {message}", args.rpc),
        other => anyhow::Error::new(other)
            .context(format!("the node at {} could not be verified (--trust-node skips verification)", args.rpc)),
    };
    let mut light = phalanx_light::LightClient::connect(client, Some(&cache), args.chain_id).await.map_err(refused)?;
    let verified = light.read(leaves).await.map_err(refused)?;
    Ok(Read { height: verified.height(), verified: true, leaves: verified.leaves })
}
