//! A non-validator node: it follows other nodes' RPC (block sync with
//! verification) instead of taking part in consensus, and serves the same
//! RPC from its own store.
//!
//! Each round fetches up to [`phalanx_rpc::RAW_BLOCKS_MAX`] finalized blocks
//! after its head from one upstream (the next on error), and trusts nothing
//! in them: every block must link to the one before by parent hash, and the
//! last certified block of the batch must carry a finalization certificate
//! by a quorum of the validator set the follower's own state holds (a block
//! finalized through a descendant's certificate has none; the descendant's
//! certificate and the hash links vouch for it). Only then are the blocks
//! executed and committed, in order; the state machine checks each block's
//! roots. An upstream that serves a bad block is dropped for a while.

use crate::chain::Chain;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use phalanx_primitives::Hash;
use phalanx_rpc::{PhalanxClient, RAW_BLOCKS_MAX};
use phalanx_state::Block;
use std::sync::Arc;
use std::time::Duration;

/// Pause between rounds once caught up.
pub const POLL: Duration = Duration::from_millis(100);
/// How long an upstream that served an invalid batch is skipped.
pub const PENALTY: Duration = Duration::from_secs(30);

/// Why a batch from an upstream was refused.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("upstream {0}: {1}")]
    Rpc(String, String),
    #[error("block at height {height} does not decode: {reason}")]
    Malformed { height: u64, reason: String },
    #[error("block {index} of the batch does not follow the one before (height or parent hash)")]
    Unlinked { index: usize },
    #[error("certificate of block {height}: {reason}")]
    Certificate { height: u64, reason: String },
    #[error("block {height} does not apply: {reason}")]
    Apply { height: u64, reason: String },
}

/// One upstream and when it may be asked again.
#[derive(Debug)]
struct Upstream {
    url: String,
    client: HttpClient,
    skip_until: Option<std::time::Instant>,
}

/// Follows `upstreams` until the task is dropped.
pub async fn run(chain: Arc<Chain>, upstreams: Vec<String>) {
    let mut peers: Vec<Upstream> = upstreams
        .into_iter()
        .filter_map(|url| {
            let client = HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(30))
                .max_response_size(64 * 1024 * 1024)
                .build(&url)
                .map_err(|error| tracing::error!(%url, %error, "cannot follow this upstream"))
                .ok()?;
            Some(Upstream { url, client, skip_until: None })
        })
        .collect();
    if peers.is_empty() {
        tracing::error!("no upstream to follow");
        return;
    }
    let mut next = 0;
    loop {
        let now = std::time::Instant::now();
        let Some(index) = (0..peers.len())
            .map(|k| (next + k) % peers.len())
            .find(|i| peers[*i].skip_until.is_none_or(|until| until <= now))
        else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let peer = &mut peers[index];
        match sync_round(&chain, &peer.client, &peer.url).await {
            Ok(0) => tokio::time::sleep(POLL).await,
            Ok(_) => {}
            Err(SyncError::Rpc(url, error)) => {
                tracing::debug!(%url, %error, "upstream unreachable; trying the next");
                next = index + 1;
                tokio::time::sleep(POLL).await;
            }
            Err(error) => {
                tracing::warn!(url = %peer.url, %error, "upstream served an invalid batch; skipping it for a while");
                peer.skip_until = Some(now + PENALTY);
                next = index + 1;
            }
        }
    }
}

/// Fetches, verifies and commits one batch; returns how many blocks were committed.
pub async fn sync_round(chain: &Arc<Chain>, client: &HttpClient, url: &str) -> Result<usize, SyncError> {
    let head = chain.finalized();
    let from = head.header.height + 1;
    let raw =
        client.chain_raw_blocks(from, RAW_BLOCKS_MAX).await.map_err(|e| SyncError::Rpc(url.into(), e.to_string()))?;
    if raw.is_empty() {
        return Ok(0);
    }
    let chain = chain.clone();
    tokio::task::spawn_blocking(move || verify_and_commit(&chain, head.hash, from, raw))
        .await
        .map_err(|e| SyncError::Apply { height: from, reason: e.to_string() })?
}

fn verify_and_commit(
    chain: &Chain,
    head: Hash,
    from: u64,
    raw: Vec<phalanx_rpc::RawBlock>,
) -> Result<usize, SyncError> {
    let mut blocks = Vec::with_capacity(raw.len());
    let mut parent = head;
    for (index, entry) in raw.iter().enumerate() {
        let height = from + index as u64;
        let block = Block::decode(&entry.block).map_err(|e| SyncError::Malformed { height, reason: e.to_string() })?;
        if block.header.height != height || block.header.parent != parent {
            return Err(SyncError::Unlinked { index });
        }
        parent = block.hash();
        blocks.push(block);
    }
    // Everything up to the last certified block is vouched for by its certificate.
    let Some(last) = raw.iter().rposition(|entry| !entry.certificate.is_empty()) else { return Ok(0) };
    let validators = chain.finalized().state.validators().to_vec();
    let mut rng = rand::rng();
    crate::consensus::certificate::verify(&mut rng, &validators, blocks[last].hash(), &raw[last].certificate)
        .map_err(|e| SyncError::Certificate { height: from + last as u64, reason: e.to_string() })?;
    for (index, block) in blocks.iter().enumerate().take(last + 1) {
        chain
            .commit(block, &raw[index].certificate)
            .map_err(|e| SyncError::Apply { height: block.header.height, reason: e.to_string() })?;
    }
    Ok(last + 1)
}
