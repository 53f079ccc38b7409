//! Checkpoints: the verified state sealed to disk, so a restarted worker
//! resumes where it was instead of replaying from genesis.
//!
//! A checkpoint holds the last verified header, every state leaf and the
//! size the worker's state store had at that block. On load the leaves are
//! rebuilt into a state of the worker's chain, and the state store (on the
//! host's disk) is opened back at that size, where its root must equal the
//! header's state root; a checkpoint that fails either is refused (the
//! worker then starts from genesis).
//! Writing is atomic (see [`crate::seal::write_atomic`]).

use crate::seal::{SealError, Sealer};
use borsh::{BorshDeserialize, BorshSerialize};
use imbl::OrdMap;
use phalanx_primitives::{Hash, decode_bounded};
use phalanx_state::{Header, State};
use std::path::Path;

/// Purpose label of sealed checkpoints.
const CHECKPOINT_PURPOSE: &[u8] = b"phalanx/worker-checkpoint/v2";
/// Largest checkpoint read back, in bytes.
pub const CHECKPOINT_BYTES_MAX: usize = 1 << 30;

/// Why a checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("checkpoint is corrupt: {0}")]
    Corrupt(String),
    #[error("the state store's root {computed} at the checkpoint does not match its header's {claimed}")]
    Root { claimed: Hash, computed: Hash },
    #[error("the state store cannot be opened at the checkpoint: {0}")]
    Store(#[from] phalanx_statedb::StoreError),
    #[error("checkpoint is for chain {found}, this worker is on {expected}")]
    OtherChain { found: Hash, expected: Hash },
}

/// A verified state at a block.
#[derive(Clone)]
pub struct Checkpoint {
    pub header: Header,
    pub state: State,
    pub leaves: OrdMap<Vec<u8>, Vec<u8>>,
    /// The state store's log size at this block.
    pub state_size: u64,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Checkpoint(height {}, {} leaves)", self.header.height, self.leaves.len())
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct Stored {
    header: Header,
    leaves: Vec<(Vec<u8>, Vec<u8>)>,
    state_size: u64,
}

impl Checkpoint {
    /// Seals the checkpoint to `path`.
    pub fn save(&self, sealer: &Sealer, path: &Path) -> Result<(), CheckpointError> {
        let stored = Stored {
            header: self.header.clone(),
            leaves: self.leaves.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            state_size: self.state_size,
        };
        let plaintext = zeroize::Zeroizing::new(borsh::to_vec(&stored).expect("in-memory encoding"));
        sealer.seal_to_file(path, CHECKPOINT_PURPOSE, &plaintext)?;
        Ok(())
    }

    /// Loads and checks the checkpoint at `path`; `None` if there is none.
    pub fn load(sealer: &Sealer, path: &Path, chain_id: Hash) -> Result<Option<Self>, CheckpointError> {
        let Some(bytes) = sealer.unseal_file(path, CHECKPOINT_PURPOSE)? else { return Ok(None) };
        let stored: Stored =
            decode_bounded(&bytes, CHECKPOINT_BYTES_MAX).map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
        let state = State::load(stored.leaves.iter().cloned()).map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
        if state.chain_id() != chain_id {
            return Err(CheckpointError::OtherChain { found: state.chain_id(), expected: chain_id });
        }
        if state.height() != stored.header.height {
            return Err(CheckpointError::Corrupt(format!(
                "its state is at {}, its header at {}",
                state.height(),
                stored.header.height
            )));
        }
        let (header, leaves, state_size) = (stored.header, stored.leaves.into_iter().collect(), stored.state_size);
        Ok(Some(Checkpoint { header, state, leaves, state_size }))
    }
}
