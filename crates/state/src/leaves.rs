//! The state's leaves as a client names them: which key holds a value, and
//! how its bytes decode.
//!
//! A light client asks a node for proofs of leaves (`state_proof`) and
//! checks them against a certified state root; it must build the keys
//! itself (a node that chose them could prove something else) and decode
//! the proven bytes with the same bounds as the state machine. Both live
//! here, next to the state that writes the leaves, so they cannot drift.

use crate::modules::{agents, balances, clusters, fees, registry, system};
use phalanx_primitives::{Hash, PublicKey, decode_bounded};

/// Largest leaf value a client decodes, in bytes (agent code is the largest
/// leaf the state machine writes).
pub const LEAF_VALUE_BYTES_MAX: usize = 4 << 20;

/// A leaf of the state a client can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leaf {
    /// The set that certifies the next block (`Vec<PublicKey>`).
    Validators,
    /// Scheduled and past validator sets ([`crate::ValidatorChanges`]).
    ValidatorChanges,
    /// An account's nonce and free balance ([`crate::Account`]).
    Account(PublicKey),
    /// Planck held for paid agent calls (`Balance`).
    Deposit(PublicKey),
    /// Withdrawn deposit on its way back ([`crate::modules::fees::Unbonding`]).
    Unbonding(PublicKey),
    /// A registered worker ([`crate::Worker`]).
    Worker(PublicKey),
    /// A cluster of workers and its published keys ([`crate::Cluster`]).
    Cluster(Hash),
    /// An agent: owner, code history, access, published keys ([`crate::Agent`]).
    Agent(Hash),
    /// Agent source by its SHA-256 (`Vec<u8>`).
    Code(Hash),
}

impl Leaf {
    /// The leaf's key in the state.
    pub fn key(&self) -> Vec<u8> {
        match self {
            Leaf::Validators => system::VALIDATORS_KEY.to_vec(),
            Leaf::ValidatorChanges => system::VALIDATOR_CHANGES_KEY.to_vec(),
            Leaf::Account(who) => balances::account_key(who),
            Leaf::Deposit(who) => fees::deposit_key(who),
            Leaf::Unbonding(who) => fees::unbonding_key(who),
            Leaf::Worker(who) => registry::worker_key(who),
            Leaf::Cluster(id) => clusters::cluster_key(id),
            Leaf::Agent(id) => agents::agent_key(id),
            Leaf::Code(hash) => agents::code_key(hash),
        }
    }

    /// Decodes the leaf's proven bytes as `T` (bounded by [`LEAF_VALUE_BYTES_MAX`]).
    pub fn decode<T: borsh::BorshDeserialize>(&self, bytes: &[u8]) -> Result<T, LeafError> {
        decode_bounded(bytes, LEAF_VALUE_BYTES_MAX).map_err(|e| LeafError { leaf: *self, reason: e.to_string() })
    }
}

impl std::fmt::Display for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leaf::Validators => f.write_str("the validator set"),
            Leaf::ValidatorChanges => f.write_str("the validator-set changes"),
            Leaf::Account(who) => write!(f, "account {who}"),
            Leaf::Deposit(who) => write!(f, "the deposit of {who}"),
            Leaf::Unbonding(who) => write!(f, "the unbonding deposit of {who}"),
            Leaf::Worker(who) => write!(f, "worker {who}"),
            Leaf::Cluster(id) => write!(f, "cluster {id}"),
            Leaf::Agent(id) => write!(f, "agent {id}"),
            Leaf::Code(hash) => write!(f, "code {hash}"),
        }
    }
}

/// A proven leaf whose bytes are not a value of its kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{leaf} does not decode: {reason}")]
pub struct LeafError {
    pub leaf: Leaf,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf a client can name is one the state machine writes, under
    /// the same key, and decodes to what the state holds.
    #[test]
    fn client_keys_are_the_state_machines_keys() {
        let alice = phalanx_primitives::mnemonic::dev_keypair("alice").unwrap().public();
        let genesis = crate::genesis::Genesis::dev(vec![alice]);
        let state = genesis.build().expect("dev genesis builds").0;
        let writes: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = state.block_writes().into_iter().collect();
        let who = alice;
        let account: crate::Account = Leaf::Account(who).decode(&writes[&Leaf::Account(who).key()]).unwrap();
        assert_eq!(Some(account), state.account(&who));
        let validators: Vec<PublicKey> = Leaf::Validators.decode(&writes[&Leaf::Validators.key()]).unwrap();
        assert_eq!(validators, state.validators());
        let changes: crate::ValidatorChanges =
            Leaf::ValidatorChanges.decode(&writes[&Leaf::ValidatorChanges.key()]).unwrap();
        assert_eq!(changes.since_epoch, 0);
        // Bytes of another kind are refused with the leaf named.
        let error = Leaf::Account(who).decode::<crate::Account>(&[1, 2]).unwrap_err();
        assert!(error.to_string().starts_with(&format!("account {who} does not decode")), "{error}");
    }
}
