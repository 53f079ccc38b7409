//! The proposer's side of [`State::execute_block`]: apply candidate
//! transactions in order, skip the ones that no longer apply, stop at the
//! block limits, and seal a header whose roots a verifier will recompute.
//!
//! The state root comes from the authenticated store, not from here: a
//! built block carries [`Hash::ZERO`] as its state root until the proposer
//! commits [`State::block_writes`] to its store and calls
//! [`Built::with_state_root`]. A block proposed without it fails every
//! verifier's root check.

use crate::block::{BLOCK_BYTES_MAX, BLOCK_TXS_MAX, Block, Header, events_root, tx_root};
use crate::error::TxError;
use crate::events::EventRecord;
use crate::modules::system::Head;
use crate::state::State;
use crate::tx::{SignedTransaction, TX_BYTES_MAX};
use phalanx_primitives::Hash;

/// A candidate transaction with its encoded length. `signature_verified`
/// lets a node skip re-verifying what its mempool already verified.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub tx: SignedTransaction,
    pub encoded_len: usize,
    pub signature_verified: bool,
}

/// The result of building a block.
#[derive(Debug)]
pub struct Built {
    pub block: Block,
    /// The state after the block (its pending changes are the block's writes).
    pub state: State,
    pub events: Vec<EventRecord>,
    /// Candidates that did not apply, with the reason.
    pub rejected: Vec<(Hash, TxError)>,
}

/// Builds a block on top of `parent_state`, whose last block is `parent`.
/// `timestamp_ms` is raised to the parent's plus one if it is not later.
pub fn build_block(
    parent_state: &State,
    parent: Hash,
    timestamp_ms: u64,
    candidates: impl IntoIterator<Item = Candidate>,
) -> Built {
    let mut state = parent_state.clone();
    let height = state.height() + 1;
    let timestamp_ms = timestamp_ms.max(state.timestamp_ms() + 1);
    let (mut txs, mut hashes, mut events, mut rejected) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    state.begin_block(Head { height, timestamp_ms }, &parent, &mut events);
    // Header and vector length prefix, with room to spare.
    let mut block_bytes = 512;
    for candidate in candidates {
        if txs.len() >= BLOCK_TXS_MAX || block_bytes + candidate.encoded_len > BLOCK_BYTES_MAX {
            break;
        }
        if candidate.encoded_len > TX_BYTES_MAX {
            rejected.push((candidate.tx.hash(), TxError::Overflow("transaction size")));
            continue;
        }
        let index = txs.len() as u32;
        match state.apply_tx(&candidate.tx, candidate.encoded_len, !candidate.signature_verified, index, &mut events) {
            Ok(hash) => {
                block_bytes += candidate.encoded_len;
                hashes.push(hash);
                txs.push(candidate.tx);
            }
            Err(error) => rejected.push((candidate.tx.hash(), error)),
        }
    }
    state.end_block(&mut events);
    let header = Header {
        parent,
        height,
        timestamp_ms,
        tx_count: txs.len() as u32,
        tx_root: tx_root(&hashes),
        events_root: events_root(&events),
        state_root: Hash::ZERO,
    };
    Built { block: Block { header, txs }, state, events, rejected }
}

impl Built {
    /// The block with its state root: the store's root after the block's writes.
    pub fn with_state_root(mut self, state_root: Hash) -> Built {
        self.block.header.state_root = state_root;
        self
    }
}
