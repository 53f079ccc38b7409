//! The `clusters` module: groups of workers that serve the same agents, and
//! the public keys of their cluster keys by master-key epoch.
//!
//! Governance creates a cluster and adds or removes its workers. For every
//! cluster the first holder of the current master key publishes the
//! cluster's public key for that epoch (derived from the master key, so any
//! holder would publish the same) and hands the cluster key to each of the
//! cluster's workers, encrypted to their attested key-agreement keys; each
//! worker reports receipt. The chain keeps the keys of the last
//! [`CLUSTER_EPOCHS_KEPT`] epochs: the previous epoch stays usable for
//! decryption while data moves to the new one, and older epochs are retired
//! (workers destroy their keys).
//!
//! Leaves: `0x04 0x01 ‖ cluster id` one [`Cluster`].

use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{Hash, PublicKey};

pub(crate) const CLUSTER_PREFIX: &[u8] = &[0x04, 0x01];

/// Most clusters on a chain.
pub const CLUSTERS_MAX: usize = 10_000;
/// Most workers in one cluster.
pub const CLUSTER_WORKERS_MAX: usize = 1024;
/// Longest cluster name, in bytes.
pub const CLUSTER_NAME_BYTES_MAX: usize = 64;
/// Epochs whose cluster key the chain (and workers) keep.
pub const CLUSTER_EPOCHS_KEPT: usize = 2;

/// A cluster's public key in one epoch, and which workers hold the secret.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct ClusterEpochKey {
    pub epoch: u64,
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub public: [u8; 32],
    /// Workers that reported receiving the key.
    pub received: Vec<PublicKey>,
}

/// A cluster of workers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Cluster {
    pub id: Hash,
    pub name: String,
    pub workers: Vec<PublicKey>,
    /// Published keys, oldest first (at most [`CLUSTER_EPOCHS_KEPT`]).
    pub keys: Vec<ClusterEpochKey>,
    pub created_at: u64,
}

impl Cluster {
    /// The published key of `epoch`, if kept.
    pub fn key(&self, epoch: u64) -> Option<&ClusterEpochKey> {
        self.keys.iter().find(|k| k.epoch == epoch)
    }
}

pub(crate) fn cluster_key(id: &Hash) -> Vec<u8> {
    let mut key = Vec::with_capacity(CLUSTER_PREFIX.len() + 32);
    key.extend_from_slice(CLUSTER_PREFIX);
    key.extend_from_slice(&id.0);
    key
}

/// The id of a cluster created by the transaction with hash `tx`.
pub fn cluster_id(tx: &Hash) -> Hash {
    phalanx_primitives::sha256_parts(&[b"phalanx/cluster/v1", &tx.0])
}
