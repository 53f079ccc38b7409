//! A non-validator node: it follows other nodes' RPC (block sync with
//! verification) instead of taking part in consensus, and serves the same
//! RPC from its own store.
//!
//! Each round fetches up to [`phalanx_rpc::RAW_BLOCKS_MAX`] finalized blocks
//! after its head from one upstream (the next on error), and trusts nothing
//! in them: every block must link to the one before by parent hash, and the
//! last certified block of the batch must carry a finalization certificate
//! by a quorum of the validator set the follower's own state holds for the
//! block's consensus epoch (a block finalized through a descendant's
//! certificate has none; the descendant's certificate and the hash links
//! vouch for it). The last block of an epoch installs the next epoch's set,
//! so it must carry its own certificate; the batch is committed in segments
//! ending at such blocks, each checked against the set the committed state
//! holds by then. The state machine checks each block's roots. An upstream
//! that serves a bad block is dropped for a while.

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
/// Most linked blocks, and encoded bytes, held while waiting for a certified descendant.
pub const UNCERTIFIED_MAX: usize = 4_096;
pub const UNCERTIFIED_BYTES_MAX: usize = 64 * 1024 * 1024;

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
    #[error("more than {UNCERTIFIED_MAX} blocks or {UNCERTIFIED_BYTES_MAX} bytes in a row came without a certificate")]
    Uncertified,
    #[error("block {height} ends a consensus epoch and came without its own certificate")]
    EpochEndUncertified { height: u64 },
}

/// Blocks fetched and linked but not yet vouched for by a certificate
/// (finalized through a descendant's, which the next batch must bring).
#[derive(Debug, Default)]
pub struct Uncertified {
    blocks: Vec<(Block, Vec<u8>)>,
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
    let Some(mut follower) = Follower::new(chain, upstreams) else { return };
    loop {
        match follower.round().await {
            Some(0) | None => tokio::time::sleep(POLL).await,
            Some(_) => {}
        }
    }
}

/// A round that commits fewer blocks than this ends [`catch_up`]: the node
/// is within a few blocks of its upstreams, which consensus fills in.
pub const CAUGHT_UP_BLOCKS: usize = 64;
/// [`catch_up`] gives up after this many rounds in a row with no upstream
/// answering (consensus then syncs the node from its peers instead).
pub const CATCH_UP_FAILURES_MAX: u32 = 10;

/// Syncs from `upstreams` until a round commits fewer than
/// [`CAUGHT_UP_BLOCKS`] blocks, and for as long as `wait` holds after that;
/// returns the blocks committed. What a validator does before it starts
/// consensus: block sync over RPC, with the same verification, is several
/// times faster than consensus backfill, which fetches blocks one request
/// each.
pub async fn catch_up(chain: Arc<Chain>, upstreams: Vec<String>, wait: impl Fn(&Chain) -> bool) -> usize {
    let Some(mut follower) = Follower::new(chain.clone(), upstreams) else { return 0 };
    let (mut total, mut failures) = (0, 0);
    loop {
        match follower.round().await {
            None => {
                failures += 1;
                if failures >= CATCH_UP_FAILURES_MAX {
                    tracing::warn!("no upstream answered; leaving catch-up to consensus");
                    return total;
                }
                tokio::time::sleep(POLL).await;
            }
            Some(committed) => {
                failures = 0;
                total += committed;
                if committed < CAUGHT_UP_BLOCKS {
                    if !wait(&chain) {
                        return total;
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }
}

/// The upstreams being followed and the blocks held between rounds.
#[derive(Debug)]
struct Follower {
    chain: Arc<Chain>,
    peers: Vec<Upstream>,
    next: usize,
    uncertified: Uncertified,
}

impl Follower {
    fn new(chain: Arc<Chain>, upstreams: Vec<String>) -> Option<Follower> {
        let peers: Vec<Upstream> = upstreams
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
            return None;
        }
        Some(Follower { chain, peers, next: 0, uncertified: Uncertified::default() })
    }

    /// One round with the next upstream not being skipped: the blocks it
    /// committed, or `None` if no upstream answered with a valid batch.
    async fn round(&mut self) -> Option<usize> {
        let now = std::time::Instant::now();
        let count = self.peers.len();
        let index = (0..count)
            .map(|k| (self.next + k) % count)
            .find(|i| self.peers[*i].skip_until.is_none_or(|until| until <= now))?;
        let peer = &mut self.peers[index];
        match sync_round(&self.chain, &peer.client, &peer.url, &mut self.uncertified).await {
            Ok(committed) => Some(committed),
            Err(SyncError::Rpc(url, error)) => {
                tracing::debug!(%url, %error, "upstream unreachable; trying the next");
                self.next = index + 1;
                None
            }
            Err(error) => {
                self.uncertified.blocks.clear();
                tracing::warn!(url = %peer.url, %error, "upstream served an invalid batch; skipping it for a while");
                peer.skip_until = Some(now + PENALTY);
                self.next = index + 1;
                None
            }
        }
    }
}

/// Fetches, verifies and commits one batch; returns how many blocks were committed.
pub async fn sync_round(
    chain: &Arc<Chain>,
    client: &HttpClient,
    url: &str,
    uncertified: &mut Uncertified,
) -> Result<usize, SyncError> {
    let head = chain.finalized();
    let (tip_height, tip_hash) = match uncertified.blocks.last() {
        Some((block, _)) => (block.header.height, block.hash()),
        None => (head.header.height, head.hash),
    };
    let from = tip_height + 1;
    let raw =
        client.chain_raw_blocks(from, RAW_BLOCKS_MAX).await.map_err(|e| SyncError::Rpc(url.into(), e.to_string()))?;
    if raw.is_empty() {
        return Ok(0);
    }
    let chain = chain.clone();
    let mut held = std::mem::take(&mut uncertified.blocks);
    let (committed, held) = tokio::task::spawn_blocking(move || {
        let result = verify_and_commit(&chain, tip_hash, from, raw, &mut held);
        (result, held)
    })
    .await
    .map_err(|e| SyncError::Apply { height: from, reason: e.to_string() })?;
    uncertified.blocks = held;
    committed
}

/// Links `raw` after `parent`, appends it to `held`, and commits `held` up
/// to its last certified block once that block's certificate verifies.
fn verify_and_commit(
    chain: &Chain,
    mut parent: Hash,
    from: u64,
    raw: Vec<phalanx_rpc::RawBlock>,
    held: &mut Vec<(Block, Vec<u8>)>,
) -> Result<usize, SyncError> {
    let mut bytes: usize = held.iter().map(|(block, _)| borsh::object_length(block).unwrap_or(usize::MAX)).sum();
    for (index, entry) in raw.into_iter().enumerate() {
        let height = from + index as u64;
        bytes = bytes.saturating_add(entry.block.len());
        let block = Block::decode(&entry.block).map_err(|e| SyncError::Malformed { height, reason: e.to_string() })?;
        if block.header.height != height || block.header.parent != parent {
            return Err(SyncError::Unlinked { index });
        }
        parent = block.hash();
        held.push((block, entry.certificate));
        if held.len() > UNCERTIFIED_MAX || bytes > UNCERTIFIED_BYTES_MAX {
            return Err(SyncError::Uncertified);
        }
    }
    // The last block of an epoch installs the next epoch's set, so it must
    // be vouched for by its own epoch's set: its own certificate.
    let finalized = chain.finalized();
    if let Some((block, _)) = held
        .iter()
        .find(|(block, certificate)| certificate.is_empty() && finalized.state.is_epoch_last(block.header.height))
    {
        return Err(SyncError::EpochEndUncertified { height: block.header.height });
    }
    // Segments end at each certified block that ends an epoch and at the
    // last certified block; everything up to a segment's end is vouched for
    // by its certificate, checked against the set the committed state holds
    // (the set of the segment's epoch).
    let mut committed = 0;
    let mut rng = rand::rng();
    while let Some(end) = held
        .iter()
        .position(|(block, certificate)| !certificate.is_empty() && finalized.state.is_epoch_last(block.header.height))
        .or_else(|| held.iter().rposition(|(_, certificate)| !certificate.is_empty()))
    {
        let head = chain.finalized();
        let state = &head.state;
        let (block, certificate) = &held[end];
        let height = block.header.height;
        crate::consensus::certificate::verify(
            &mut rng,
            state.validators(),
            block.hash(),
            state.epoch_of(height),
            certificate,
        )
        .map_err(|e| SyncError::Certificate { height, reason: e.to_string() })?;
        let segment: Vec<(Block, Vec<u8>)> = held.drain(..=end).collect();
        chain
            .commit_batch(&segment)
            .map_err(|e| SyncError::Apply { height: segment[0].0.header.height, reason: e.to_string() })?;
        committed += segment.len();
    }
    Ok(committed)
}
