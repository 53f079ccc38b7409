//! Blocks: a header that commits to the parent, the transactions, the events
//! and the resulting state, and the transactions themselves.
//!
//! The block hash is SHA-256 of the encoded header; consensus finalizes that
//! hash, so a finalization certificate vouches for the whole post-state.

use crate::error::BlockError;
use crate::events::EventRecord;
use crate::merkle;
use crate::state::State;
use crate::tx::{SignedTransaction, TX_BYTES_MAX};
use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{DecodeError, Hash, decode_bounded, encode, sha256};

/// Most transactions in one block.
pub const BLOCK_TXS_MAX: usize = 10_000;

/// Largest encoded block, in bytes.
pub const BLOCK_BYTES_MAX: usize = 4 * 1024 * 1024;

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// Hash of the parent block's header ([`Hash::ZERO`] for genesis).
    pub parent: Hash,
    pub height: u64,
    /// Milliseconds since the Unix epoch, chosen by the proposer; strictly
    /// greater than the parent's. Validators bound how far ahead it may be.
    pub timestamp_ms: u64,
    pub tx_count: u32,
    /// Merkle root of the transaction hashes.
    pub tx_root: Hash,
    /// Merkle root of the events the block emitted.
    pub events_root: Hash,
    /// State root after applying the block.
    pub state_root: Hash,
}

/// A header with its transactions.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub header: Header,
    pub txs: Vec<SignedTransaction>,
}

impl Header {
    /// The block hash.
    pub fn hash(&self) -> Hash {
        sha256(&encode(self))
    }
}

impl Block {
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes an untrusted block of at most [`BLOCK_BYTES_MAX`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_bounded(bytes, BLOCK_BYTES_MAX)
    }

    /// Whether every transaction signature verifies, checked on up to
    /// `threads` threads (the result does not depend on how many). For a
    /// caller that then runs [`State::execute_block_checked`] with
    /// `signatures_verified`; small blocks are checked on this thread.
    pub fn signatures_valid(&self, threads: usize) -> bool {
        const PER_THREAD_MIN: usize = 64;
        let threads = threads.clamp(1, self.txs.len().div_ceil(PER_THREAD_MIN).max(1));
        if threads == 1 {
            return self.txs.iter().all(|tx| tx.verify_signature().is_ok());
        }
        let chunk = self.txs.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = self
                .txs
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().all(|tx| tx.verify_signature().is_ok())))
                .collect();
            parts.into_iter().all(|part| part.join().unwrap_or(false))
        })
    }

    /// The genesis block of a genesis state, whose root (`state_root`) is
    /// the store's after the state's leaves (see [`crate::Genesis::build`]).
    pub fn genesis(state: &State, state_root: Hash) -> Block {
        Block {
            header: Header {
                parent: Hash::ZERO,
                height: 0,
                timestamp_ms: state.timestamp_ms(),
                tx_count: 0,
                tx_root: merkle::empty_root(),
                events_root: merkle::empty_root(),
                state_root,
            },
            txs: Vec::new(),
        }
    }
}

/// Merkle root of transaction hashes.
pub fn tx_root(hashes: &[Hash]) -> Hash {
    merkle::root(hashes.iter().map(merkle::digest_leaf))
}

/// Merkle root of event records.
pub fn events_root(events: &[EventRecord]) -> Hash {
    merkle::root(events.iter().map(|e| merkle::digest_leaf(&sha256(&encode(e)))))
}

impl State {
    /// Applies a block (its parent must be the state's last block) and checks
    /// its transaction and event roots. On error the state is unchanged.
    ///
    /// The header's *state* root is the caller's to check: it commits
    /// [`State::block_writes`] to its authenticated store
    /// (`phalanx-statedb`) and compares the store's root.
    pub fn execute_block(&mut self, block: &Block) -> Result<Vec<EventRecord>, BlockError> {
        self.execute_block_checked(block, false)
    }

    /// [`State::execute_block`] for a caller that has already verified every
    /// transaction signature of `block` (`signatures_verified`), for example
    /// on other cores ahead of a sequential replay. Everything else is
    /// checked as usual.
    pub fn execute_block_checked(
        &mut self,
        block: &Block,
        signatures_verified: bool,
    ) -> Result<Vec<EventRecord>, BlockError> {
        let header = &block.header;
        if header.height != self.height() + 1 {
            return Err(BlockError::Height { expected: self.height() + 1, got: header.height });
        }
        if header.timestamp_ms <= self.timestamp_ms() {
            return Err(BlockError::Timestamp { parent_ms: self.timestamp_ms(), got_ms: header.timestamp_ms });
        }
        if block.txs.len() > BLOCK_TXS_MAX || header.tx_count as usize != block.txs.len() {
            return Err(BlockError::TooManyTransactions { count: block.txs.len(), max: BLOCK_TXS_MAX });
        }
        let mut next = self.clone();
        let mut events = Vec::new();
        next.begin_block(
            crate::modules::system::Head { height: header.height, timestamp_ms: header.timestamp_ms },
            &header.parent,
            &mut events,
        );
        let mut hashes = Vec::with_capacity(block.txs.len());
        for (index, tx) in block.txs.iter().enumerate() {
            let encoded_len = borsh::object_length(tx).expect("length of an in-memory value");
            let applied = if encoded_len > TX_BYTES_MAX {
                Err(crate::TxError::Overflow("transaction size"))
            } else {
                next.apply_tx(tx, encoded_len, !signatures_verified, index as u32, &mut events)
            };
            hashes.push(applied.map_err(|error| BlockError::InvalidTransaction { index, error })?);
        }
        next.end_block(&mut events);
        check_root("transaction", header.tx_root, tx_root(&hashes))?;
        check_root("events", header.events_root, events_root(&events))?;
        *self = next;
        Ok(events)
    }
}

/// Compares a header root with the one computed (`which` names it in the error).
pub fn check_root(which: &'static str, claimed: Hash, computed: Hash) -> Result<(), BlockError> {
    if claimed == computed { Ok(()) } else { Err(BlockError::RootMismatch { which, claimed, computed }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::{Call, Transaction};
    use phalanx_primitives::Keypair;

    #[test]
    fn signatures_valid_finds_one_bad_signature_on_any_number_of_threads() {
        let key = Keypair::from_seed(&[7; 32]);
        let txs: Vec<SignedTransaction> = (0..300)
            .map(|nonce| {
                let call = Call::Transfer { to: key.public(), amount: 1 };
                Transaction { chain_id: Hash::ZERO, signer: key.public(), nonce, fee: 1, call }.sign(&key)
            })
            .collect();
        let header = Header {
            parent: Hash::ZERO,
            height: 1,
            timestamp_ms: 0,
            tx_count: 0,
            tx_root: merkle::empty_root(),
            events_root: merkle::empty_root(),
            state_root: merkle::empty_root(),
        };
        let mut block = Block { header, txs };
        for threads in [1, 2, 3, 8] {
            assert!(block.signatures_valid(threads), "{threads} threads");
        }
        block.txs[250].tx.nonce += 1000; // the signature no longer covers it
        for threads in [1, 2, 3, 8] {
            assert!(!block.signatures_valid(threads), "{threads} threads");
        }
    }
}
