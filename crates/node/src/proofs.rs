//! State proofs a node serves: leaves proven against the finalized head's
//! state root with the head's header and certificate (`state_proof`), and
//! the validator-set changes a light client follows
//! (`chain_validatorTransitions`).
//!
//! The authenticated store proves only its committed state, the head: a
//! proof at an older height cannot be made later. So the proofs of each
//! validator-set change are made as the block that makes it is committed
//! ([`Chain::transition_of`]) and kept in the database.
//!
//! The store commits a block before the database records it, so a proof
//! can be one block ahead of the header the database has; and a block
//! finalized through a descendant has no certificate of its own (a
//! non-validator node's head can be one until the next block arrives):
//! [`Chain::prove`] tries again for a moment until both agree on a
//! certified block.

use crate::chain::Chain;
use crate::store::{StoreError, Transition};
use phalanx_primitives::Hash;
use phalanx_state::leaves::Leaf;
use phalanx_state::{Block, Event, EventRecord, Header};
use phalanx_statedb::StateProof;

/// How often [`Chain::prove`] tries to catch the state store and the
/// database at the same certified block before giving up, and how long it
/// waits between tries (2 s in all: a live chain certifies a block every
/// second or so).
const PROVE_ATTEMPTS: usize = 200;
const PROVE_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// Why proofs could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error(
        "this node keeps only the state of its finalized head (height {head}): it cannot prove height {asked}; \
         ask without a height"
    )]
    NotHead { asked: u64, head: u64 },
    #[error("the node's head block has no finalization certificate of its own yet: try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Leaves proven at a finalized block, with its header and certificate.
#[derive(Debug)]
pub struct Proofs {
    pub header: Header,
    pub certificate: Vec<u8>,
    pub proofs: Vec<StateProof>,
}

impl Chain {
    /// Proves `keys` (at most `phalanx_statedb::service::PROOF_KEYS_MAX`)
    /// at the finalized head, which must be `height` if one is given.
    /// Blocking: call it off async workers.
    pub fn prove(&self, keys: Vec<Vec<u8>>, height: Option<u64>) -> Result<Proofs, ProveError> {
        let (header, certificate, proofs) = self.at_certified_head(height, |state| {
            let proven = state.prove(keys.clone())?;
            Ok((proven.height, proven.root, proven.proofs))
        })?;
        Ok(Proofs { header, certificate, proofs })
    }

    /// The state store's sync target at the finalized head, with the
    /// head's header and certificate: where a joining node syncs to.
    pub fn sync_start(&self) -> Result<(Header, Vec<u8>, phalanx_statedb::sync::SyncTarget), ProveError> {
        self.at_certified_head(None, |state| {
            let target = state.sync_target()?;
            Ok((Some(target.height), target.root, target))
        })
    }

    /// Runs `read` on the committed state store (it returns the height and
    /// root it read at, and its result) until the database holds that
    /// block with a certificate of its own and the same root; returns the
    /// block's header and certificate with the result.
    fn at_certified_head<T>(
        &self,
        height: Option<u64>,
        read: impl Fn(&phalanx_statedb::StateService) -> Result<(Option<u64>, Hash, T), phalanx_statedb::StoreError>,
    ) -> Result<(Header, Vec<u8>, T), ProveError> {
        for _ in 0..PROVE_ATTEMPTS {
            let (head, root, result) = read(self.store().state()).map_err(StoreError::from)?;
            let head = head.ok_or_else(|| StoreError::Corrupt("the state store is empty".into()))?;
            if let Some(asked) = height
                && asked != head
            {
                return Err(ProveError::NotHead { asked, head });
            }
            // The database records the block just after the state store
            // commits it; a block finalized through a descendant gets no
            // certificate of its own, and the descendant follows at once.
            let block = self.store().block(head)?;
            let certificate = self.store().certificate(head)?.unwrap_or_default();
            match block {
                Some(block) if !certificate.is_empty() || head == 0 => {
                    if block.header.state_root != root {
                        return Err(StoreError::Corrupt(format!(
                            "block {head}'s state root {} is not the state store's {root}",
                            block.header.state_root
                        ))
                        .into());
                    }
                    return Ok((block.header, certificate, result));
                }
                _ => std::thread::sleep(PROVE_RETRY),
            }
        }
        Err(ProveError::Busy)
    }

    /// For a block that changed the validator set and that the state store
    /// has just committed (it is the store's head): the change, proven at
    /// the block's height. `None` for any other block.
    pub(crate) fn transition_of(
        &self,
        block: &Block,
        certificate: &[u8],
        events: &[EventRecord],
    ) -> Result<Option<Transition>, StoreError> {
        let Some(epoch) = set_change(events) else {
            return Ok(None);
        };
        let height = block.header.height;
        let proven = self.store().state().prove(vec![Leaf::Validators.key(), Leaf::ValidatorChanges.key()])?;
        if proven.height != Some(height) || proven.root != block.header.state_root {
            return Err(StoreError::Corrupt(format!(
                "proving the validator-set change of block {height}: the state store is at {:?}",
                proven.height
            )));
        }
        let [validators, changes]: [StateProof; 2] =
            proven.proofs.try_into().map_err(|_| StoreError::Corrupt("two proofs asked, not two given".into()))?;
        Ok(Some(Transition {
            epoch,
            header: block.header.clone(),
            certificate: certificate.to_vec(),
            validators,
            changes,
        }))
    }
}

/// The first epoch of the validator set a block installed, if its events
/// say it changed the set.
pub(crate) fn set_change(events: &[EventRecord]) -> Option<u64> {
    events.iter().find_map(|record| match &record.event {
        Event::ValidatorSetChanged { epoch, .. } => Some(*epoch),
        _ => None,
    })
}
