//! The glue between marshal and the [`Chain`]: `propose` and `verify` for
//! simplex (through marshal's `Inline` wrapper), and the finalizer that
//! commits each finalized block with its certificate, in height order.
//!
//! Pacing lives here because simplex has no block-time setting: it asks for
//! the next block as soon as the parent is certified. The proposer waits
//! until there is something to include (and a minimum interval has passed)
//! or until the empty-block interval elapses, whichever comes first.

use super::block::{ConsensusBlock, from_digest, to_digest};
use super::validator::{EnterEpoch, OnValidators};
use super::{Context, Marshal, Scheme, ValidatorKey, certificate};
use crate::chain::Chain;
use commonware_consensus::marshal::{Update, ancestry::Ancestry};
use commonware_consensus::types::Height;
use commonware_consensus::{Application, Reporter};
use commonware_cryptography::{Digested, Digestible};
use commonware_runtime::{Clock, Spawner};
use commonware_utils::{Acknowledgement, SystemTimeExt, acknowledgement::Exact, vec::NonEmptyVec};
use futures::StreamExt;
use futures::channel::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// Most unknown ancestors replayed to rebuild a parent's state (after a
/// restart, notarized-but-unfinalized blocks are not in memory).
const ANCESTORS_REPLAY_MAX: usize = 1_024;

/// How often a waiting proposer looks at the mempool.
const PROPOSER_POLL: Duration = Duration::from_millis(5);

/// When the proposer builds a block.
#[derive(Clone, Debug)]
pub struct Pacing {
    /// Least time between a block and its parent when transactions are waiting.
    pub min_block_interval: Duration,
    /// Time after which a block is proposed even if empty (keeps time and
    /// height moving). Must stay well below the leader timeout.
    pub empty_block_interval: Duration,
}

/// The application marshal drives.
#[derive(Clone, Debug)]
pub struct App {
    pub chain: Arc<Chain>,
    pub pacing: Pacing,
}

impl App {
    /// Makes sure the state after `first` is known, replaying unknown
    /// ancestors (oldest first) from the ancestry stream if needed.
    async fn ensure_state(&self, first: Digested<ConsensusBlock>, mut older: impl Ancestry<ConsensusBlock>) -> bool {
        let finalized_height = self.chain.finalized().header.height;
        let mut missing = Vec::new();
        let mut next = Some(first);
        while let Some(block) = next {
            if self.chain.knows(&from_digest(&block.digest())) {
                break;
            }
            if block.inner().0.header.height <= finalized_height || missing.len() >= ANCESTORS_REPLAY_MAX {
                tracing::warn!(height = block.inner().0.header.height, "cannot rebuild the state of an ancestor");
                return false;
            }
            missing.push(block);
            next = older.next().await;
        }
        for block in missing.iter().rev() {
            let block = &block.inner().0;
            if let Err(error) = self.chain.verify(block, block.header.parent, block.header.timestamp_ms) {
                tracing::warn!(height = block.header.height, %error, "ancestor does not verify");
                return false;
            }
        }
        true
    }
}

impl<E: Clock + Spawner> Application<E> for App {
    type SigningScheme = Scheme;
    type Context = Context;
    type Block = ConsensusBlock;
    type Input = ();

    async fn propose(
        &mut self,
        (runtime, _context): (E, Context),
        mut ancestry: impl Ancestry<ConsensusBlock>,
        _input: (),
    ) -> Option<Digested<ConsensusBlock>> {
        // In `propose` the stream starts at the parent.
        let parent = ancestry.next().await?;
        let parent_hash = from_digest(&parent.digest());
        let parent_ms = parent.inner().0.header.timestamp_ms;
        if !self.ensure_state(parent, ancestry).await {
            return None;
        }
        let (min_ms, empty_ms) =
            (self.pacing.min_block_interval.as_millis() as u64, self.pacing.empty_block_interval.as_millis() as u64);
        loop {
            let elapsed_ms = runtime.current().epoch_millis().saturating_sub(parent_ms);
            if elapsed_ms >= empty_ms || (elapsed_ms >= min_ms && self.chain.has_waiting_txs()) {
                break;
            }
            let until_min = min_ms.saturating_sub(elapsed_ms).max(1);
            runtime.sleep(Duration::from_millis(until_min).min(PROPOSER_POLL)).await;
        }
        let block = self.chain.propose(parent_hash, runtime.current().epoch_millis())?;
        tracing::debug!(height = block.header.height, txs = block.txs.len(), "proposed");
        let digest = to_digest(block.hash());
        Some(Digested::precomputed(ConsensusBlock(block), digest))
    }

    async fn verify(&mut self, (runtime, _context): (E, Context), mut ancestry: impl Ancestry<ConsensusBlock>) -> bool {
        // In `verify` the stream starts at the block, then its parent.
        let (Some(block), Some(parent)) = (ancestry.next().await, ancestry.next().await) else {
            return false;
        };
        if !self.ensure_state(parent, ancestry).await {
            return false;
        }
        let block = block.inner().0.clone();
        // A block from the future is not yet valid, but may become so: wait
        // (bounded by consensus timeouts) rather than give a final "no".
        let drift_ms = self.chain.timestamp_drift_ms_max();
        let now_ms = runtime.current().epoch_millis();
        if block.header.timestamp_ms > now_ms + drift_ms {
            runtime.sleep(Duration::from_millis(block.header.timestamp_ms - now_ms - drift_ms)).await;
        }
        match self.chain.verify(&block, block.header.parent, runtime.current().epoch_millis()) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(height = block.header.height, %error, "rejected proposed block");
                false
            }
        }
    }
}

/// Receives marshal's finalized-block updates. `report` must not block, so
/// it forwards to [`run_finalizer`].
#[derive(Clone, Debug)]
pub struct FinalizedReporter {
    sender: mpsc::UnboundedSender<(Digested<ConsensusBlock>, Exact)>,
}

impl FinalizedReporter {
    /// Marshal holds at most its `max_pending_acks` blocks unacknowledged,
    /// which bounds this channel.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<(Digested<ConsensusBlock>, Exact)>) {
        let (sender, receiver) = mpsc::unbounded();
        (FinalizedReporter { sender }, receiver)
    }
}

impl Reporter for FinalizedReporter {
    type Activity = Update<ConsensusBlock>;

    fn report(&mut self, activity: Update<ConsensusBlock>) -> commonware_actor::Feedback {
        match activity {
            Update::Block(block, ack) => {
                if self.sender.unbounded_send((block, ack)).is_err() {
                    return commonware_actor::Feedback::Closed;
                }
            }
            Update::Tip(..) => {}
        }
        commonware_actor::Feedback::Ok
    }
}

/// How long the finalizer waits for a missing certificate before committing
/// a block without one.
const CERTIFICATE_WAIT: Duration = Duration::from_secs(2);
const CERTIFICATE_POLL: Duration = Duration::from_millis(10);
/// First and longest pause before storing a finalized block again after a
/// storage error.
const COMMIT_RETRY_FIRST: Duration = Duration::from_millis(250);
const COMMIT_RETRY_MAX: Duration = Duration::from_secs(5);

/// Commits finalized blocks in height order, each with its certificate,
/// and acknowledges them to marshal only once durable. Marshal redelivers
/// unacknowledged blocks after a restart; already-committed ones are skipped.
///
/// A block can be finalized implicitly (a catching-up node saw only a
/// descendant's certificate). Its own certificate is then fetched from
/// `peers` before the block is acknowledged (marshal fetches only above its
/// acknowledged floor), so that every stored block carries one whenever the
/// network still has it.
///
/// After the last block of an epoch, the next epoch's validator set (from
/// the committed state) goes to the orchestrator (`enter`); after a block
/// that scheduled or installed a set, `on_validators` hears of it.
pub async fn run_finalizer<E: Clock>(
    runtime: E,
    me: ValidatorKey,
    marshal: Marshal,
    mut finalized: mpsc::UnboundedReceiver<(Digested<ConsensusBlock>, Exact)>,
    chain: Arc<Chain>,
    enter: mpsc::UnboundedSender<EnterEpoch>,
    on_validators: Option<OnValidators>,
) {
    while let Some((block, ack)) = finalized.next().await {
        let block = block.inner().0.clone();
        let height = block.header.height;
        let before = chain.finalized();
        if height <= before.header.height {
            ack.acknowledge(); // redelivered after a restart: already committed
            continue;
        }
        let certificate = if height == 0 {
            Vec::new()
        } else {
            // The last block of an epoch installs the next set; followers and
            // workers accept it only with its own certificate, which exists
            // (consensus re-proposes it until finalized in its epoch).
            let must = before.state.is_epoch_last(height);
            fetch_certificate(&runtime, &me, before.state.validators(), &marshal, height, must).await
        };
        let mut wait = COMMIT_RETRY_FIRST;
        loop {
            match chain.commit(&block, &certificate) {
                Ok(()) => break,
                // Storage failed (out of descriptors or space, an I/O error):
                // nothing was written or changed, so the block is tried again
                // until it is stored; marshal waits for the acknowledgement.
                Err(crate::chain::CommitError::Store(error)) => {
                    tracing::error!(height, %error, retry_in_ms = wait.as_millis() as u64, "cannot store finalized block; retrying");
                    runtime.sleep(wait).await;
                    wait = (wait * 2).min(COMMIT_RETRY_MAX);
                }
                Err(error) => {
                    // Not acknowledging stops marshal: the node halts rather than
                    // diverge from what consensus finalized or lose a block.
                    tracing::error!(height, %error, "finalized block does not apply; halting");
                    return;
                }
            }
        }
        let after = chain.finalized();
        let changed = after.state.pending_validators() != before.state.pending_validators()
            || after.state.validators() != before.state.validators();
        if changed && let Some(on_validators) = &on_validators {
            on_validators(height, &after.state);
        }
        if after.state.is_epoch_last(height) {
            let next = EnterEpoch {
                epoch: after.state.epoch_of(height + 1),
                validators: after.state.validators().to_vec(),
                floor: after.hash,
            };
            let _ = enter.unbounded_send(next);
        }
        ack.acknowledge();
    }
}

/// The encoded finalization of `height`: local if marshal has it, else
/// requested from the other `validators` for up to [`CERTIFICATE_WAIT`]
/// (until it comes, if `must`); empty if none came.
async fn fetch_certificate(
    runtime: &impl Clock,
    me: &ValidatorKey,
    validators: &[phalanx_primitives::PublicKey],
    marshal: &Marshal,
    height: u64,
    must: bool,
) -> Vec<u8> {
    let height = Height::new(height);
    if let Some(finalization) = marshal.get_finalization(height).await {
        return certificate::encode(&finalization);
    }
    let peers: Vec<ValidatorKey> =
        validators.iter().filter_map(|key| super::validator_key(key).ok()).filter(|key| key != me).collect();
    loop {
        let Ok(targets) = NonEmptyVec::try_from(peers.clone()) else { return Vec::new() };
        marshal.hint_finalized(height, targets);
        let deadline = runtime.current() + CERTIFICATE_WAIT;
        while runtime.current() < deadline {
            runtime.sleep(CERTIFICATE_POLL).await;
            if let Some(finalization) = marshal.get_finalization(height).await {
                return certificate::encode(&finalization);
            }
        }
        if !must {
            tracing::warn!(height = height.get(), "no certificate of its own for an implicitly finalized block");
            return Vec::new();
        }
        tracing::warn!(height = height.get(), "waiting for the certificate of an epoch's last block");
    }
}
