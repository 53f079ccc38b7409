//! What a light client trusts, and the pure checks that extend it.
//!
//! [`Trusted`] starts from a chain's genesis (its hash is the chain id) and
//! holds one validator set with the first epoch it certifies. A
//! [`ValidatorTransition`] moves it to the next set: the last block of an
//! epoch, certified by the trusted set, whose state proves the new set and
//! a change record naming the trusted set as the one replaced. A read
//! ([`Trusted::verify_read`]) checks the header's certificate against the
//! trusted set and every leaf's proof against the header's state root.
//! Nothing here does I/O; the node's answers are the only input.

use crate::certificate::{self, CertificateError};
use phalanx_primitives::{Hash, PublicKey};
use phalanx_rpc::{ProvenLeaf, StateProofs, SyncStart, ValidatorTransition};
use phalanx_state::leaves::{Leaf, LeafError};
use phalanx_state::{Block, Genesis, Header, ValidatorChanges};
use phalanx_statedb::sync::SyncTarget;
use phalanx_statedb::{ProofError, StateProof};

/// How old (by its timestamp, against the local clock) a head may be
/// before it is refused as stale: a live chain finalizes a block every
/// second or so (an idle dev chain every half second); a node serving a
/// head this old is behind, or replaying the past.
pub const HEAD_AGE_MAX_MS: u64 = 10 * 60 * 1000;

/// Why a node's answer was not accepted. Each names what did not verify.
#[derive(Debug, thiserror::Error)]
pub enum LightError {
    #[error("the node serves chain {got}, not the trusted chain {expected}")]
    OtherChain { expected: Hash, got: Hash },
    #[error("the certificate of block {height} does not verify: {source}")]
    Certificate { height: u64, source: CertificateError },
    #[error("block {height} is in consensus epoch {epoch}, before epoch {trusted} of the trusted validator set")]
    BeforeTrustedSet { height: u64, epoch: u64, trusted: u64 },
    #[error("the proof of {leaf} does not verify against the state root of block {height}: {source}")]
    Proof { leaf: Leaf, height: u64, source: ProofError },
    #[error("the node answered {got} leaves for the {asked} asked")]
    LeafCount { asked: usize, got: usize },
    #[error("the validator-set change at block {height} does not verify: {reason}")]
    Transition { height: u64, reason: String },
    #[error(
        "the node's head, block {height}, is {age_s} s old (at most {} s): a stale state (is the node behind, or the \
         chain halted?)",
        HEAD_AGE_MAX_MS / 1000
    )]
    Stale { height: u64, age_s: u64 },
    #[error(transparent)]
    Leaf(#[from] LeafError),
    #[error("block {height} as served is not the block its certificate finalizes")]
    WrongBlock { height: u64 },
    #[error("the state sync target does not match block {height}: {reason}")]
    SyncTarget { height: u64, reason: String },
}

/// A state to join from, checked against the trusted validator set: the
/// certified block and the state store's sync target at it (whose root and
/// witness the sync itself checks against the block's state root).
#[derive(Clone, Debug)]
pub struct VerifiedStart {
    pub block: Block,
    pub certificate: Vec<u8>,
    pub target: SyncTarget,
}

/// The validator set a light client trusts, and how far it has verified.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Trusted {
    /// The chain: SHA-256 of its genesis.
    pub chain_id: Hash,
    /// Blocks per consensus epoch (fixed at genesis).
    pub epoch_blocks: u64,
    /// The first consensus epoch the trusted set certifies.
    pub epoch: u64,
    /// The trusted set: it certifies every block from `epoch` on, until a
    /// verified transition names its successor.
    pub validators: Vec<PublicKey>,
    /// The highest block verified so far (for information: a chain
    /// restarted from the same genesis, as dev chains are, starts lower).
    pub height: u64,
}

/// Leaves proven at a certified block.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The block's header; its certificate was checked.
    pub header: Header,
    /// Each leaf asked for with its proven value (`None`: proven absent).
    pub leaves: Vec<(Leaf, Option<Vec<u8>>)>,
}

impl Verified {
    /// The height the values were verified at.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// The proven value of `leaf`, decoded (`None`: proven absent, or not asked for).
    pub fn value<T: borsh::BorshDeserialize>(&self, leaf: Leaf) -> Result<Option<T>, LeafError> {
        match self.leaves.iter().find(|(l, _)| *l == leaf) {
            Some((_, Some(bytes))) => leaf.decode(bytes).map(Some),
            _ => Ok(None),
        }
    }
}

impl Trusted {
    /// Trust in a chain from its genesis: its first validator set.
    pub fn from_genesis(genesis: &Genesis) -> Trusted {
        Trusted {
            chain_id: genesis.chain_id(),
            epoch_blocks: genesis.consensus.epoch_blocks,
            epoch: 0,
            validators: genesis.validators.clone(),
            height: 0,
        }
    }

    fn epoch_of(&self, height: u64) -> u64 {
        height / self.epoch_blocks.max(1)
    }

    /// Checks that `certificate` finalizes `header` by the trusted set (the
    /// set of the header's epoch, once the changes before it are followed):
    /// what a node or worker joining from a synced state checks the state's
    /// block with.
    pub fn verify_header(&self, header: &Header, certificate: &[u8]) -> Result<(), LightError> {
        let (height, epoch) = (header.height, self.epoch_of(header.height));
        if epoch < self.epoch {
            return Err(LightError::BeforeTrustedSet { height, epoch, trusted: self.epoch });
        }
        certificate::verify(&mut rand::rng(), &self.validators, header.hash(), epoch, certificate)
            .map_err(|source| LightError::Certificate { height, source })?;
        Ok(())
    }

    /// Moves trust to the set a verified transition names. A transition to
    /// a set already trusted (or an older one) changes nothing.
    pub fn follow(&mut self, transition: &ValidatorTransition) -> Result<(), LightError> {
        let header = &transition.header;
        let height = header.height;
        let invalid = |reason: String| LightError::Transition { height, reason };
        let epoch = self.epoch_of(height);
        if epoch < self.epoch {
            return Ok(());
        }
        if height % self.epoch_blocks.max(1) != self.epoch_blocks.max(1) - 1 {
            return Err(invalid(format!("block {height} does not end a consensus epoch")));
        }
        self.verify_header(header, &transition.certificate)?;
        let validators: Vec<PublicKey> = proven(&transition.validators, Leaf::Validators, header)?
            .ok_or_else(|| invalid("the proof shows no validator set".into()))?;
        let changes: ValidatorChanges = proven(&transition.changes, Leaf::ValidatorChanges, header)?
            .ok_or_else(|| invalid("the proof shows no change record".into()))?;
        if changes.since_epoch != epoch + 1 {
            return Err(invalid(format!(
                "the change record starts the new set at epoch {}, not {}",
                changes.since_epoch,
                epoch + 1
            )));
        }
        if changes.previous.as_ref() != Some(&(self.epoch, self.validators.clone())) {
            return Err(invalid(format!(
                "the change record does not name the trusted set (since epoch {}) as the one replaced",
                self.epoch
            )));
        }
        if validators.is_empty() {
            return Err(invalid("the new set is empty".into()));
        }
        self.epoch = epoch + 1;
        self.validators = validators;
        self.height = self.height.max(height);
        Ok(())
    }

    /// Checks a node's offer of a state to join from (`state_syncTarget`)
    /// and the block it names (`raw_block`, as `chain_rawBlocks` serves it):
    /// the header's certificate against the trusted set, the block's hash
    /// against the header, the target's height and root against the block.
    pub fn verify_sync_start(&self, start: &SyncStart, raw_block: &[u8]) -> Result<VerifiedStart, LightError> {
        let height = start.header.height;
        self.verify_header(&start.header, &start.certificate)?;
        let block = Block::decode(raw_block).map_err(|_| LightError::WrongBlock { height })?;
        if block.hash() != start.header.hash() {
            return Err(LightError::WrongBlock { height });
        }
        let target =
            SyncTarget::decode(&start.target).map_err(|e| LightError::SyncTarget { height, reason: e.to_string() })?;
        if target.height != height || target.root != block.header.state_root {
            return Err(LightError::SyncTarget {
                height,
                reason: format!("it names height {} and root {}", target.height, target.root),
            });
        }
        Ok(VerifiedStart { block, certificate: start.certificate.clone(), target })
    }

    /// Checks a node's answer to `state_proof` for `leaves` (in the order
    /// asked): the certificate against the trusted set, then every proof
    /// against the certified state root. `now_ms` (the local clock) bounds
    /// the head's age ([`HEAD_AGE_MAX_MS`]).
    pub fn verify_read(&mut self, answer: &StateProofs, leaves: &[Leaf], now_ms: u64) -> Result<Verified, LightError> {
        let header = &answer.header;
        let age_ms = now_ms.saturating_sub(header.timestamp_ms);
        if age_ms > HEAD_AGE_MAX_MS {
            return Err(LightError::Stale { height: header.height, age_s: age_ms / 1000 });
        }
        if answer.leaves.len() != leaves.len() {
            return Err(LightError::LeafCount { asked: leaves.len(), got: answer.leaves.len() });
        }
        self.verify_header(header, &answer.certificate)?;
        let mut values = Vec::with_capacity(leaves.len());
        for (leaf, proof) in leaves.iter().zip(&answer.leaves) {
            let value = verified_bytes(proof, *leaf, header)?;
            values.push((*leaf, value));
        }
        self.height = self.height.max(header.height);
        Ok(Verified { header: header.clone(), leaves: values })
    }
}

/// Checks `proof` for `leaf` against `header`'s state root; returns the value's bytes.
fn verified_bytes(proof: &ProvenLeaf, leaf: Leaf, header: &Header) -> Result<Option<Vec<u8>>, LightError> {
    let proof = StateProof::from(proof.clone());
    let value = phalanx_statedb::verify(&proof, &leaf.key(), &header.state_root)
        .map_err(|source| LightError::Proof { leaf, height: header.height, source })?;
    Ok(value.map(<[u8]>::to_vec))
}

/// [`verified_bytes`], decoded.
fn proven<T: borsh::BorshDeserialize>(
    proof: &ProvenLeaf,
    leaf: Leaf,
    header: &Header,
) -> Result<Option<T>, LightError> {
    verified_bytes(proof, leaf, header)?.map(|bytes| leaf.decode(&bytes).map_err(LightError::from)).transpose()
}
