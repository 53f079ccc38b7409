//! The `clusters` module: groups of workers that serve the same agents, and
//! the public keys of their cluster keys by master-key epoch.
//!
//! Governance creates a cluster and adds or removes its workers. For every
//! cluster the first holder of the current master key publishes the
//! cluster's public key for that epoch (derived from the master key, so any
//! holder would publish the same) and hands the cluster key to each of the
//! cluster's workers, encrypted to their attested key-agreement keys; each
//! worker reports receipt.
//!
//! **Key epochs.** A cluster key epoch names one cluster key. It follows the
//! master epoch (a master rotation makes the next cluster key epoch at least
//! the new master epoch) and moves ahead on its own when governance rotates
//! just this cluster ([`Cluster::due_key_epoch`]). Each kept epoch records
//! the master epoch it derives from.
//!
//! **Retirement.** An older epoch stays while any agent key epoch the chain
//! keeps derives from it (data under it is still being re-encrypted), and
//! for at least [`RETIRE_GRACE_BLOCKS`] after the newest key was published
//! (calls sealed just before keep opening); then a gatekeeper retires it and
//! workers destroy the key. At most [`CLUSTER_EPOCHS_MAX`] are kept: beyond
//! that the oldest is dropped even if data is still under it.
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
/// Most cluster key epochs the chain (and workers) keep at once.
pub const CLUSTER_EPOCHS_MAX: usize = 4;
/// Blocks an older key epoch (cluster or agent) stays after a newer one is
/// published, so calls sealed to it just before keep opening.
pub const RETIRE_GRACE_BLOCKS: u64 = 20;
/// Blocks after which a new cluster key counts as ready for agent keys even
/// if some of the cluster's workers have not reported receiving it (a dead
/// worker does not hold up a rotation forever).
pub const RECEIPT_WAIT_BLOCKS: u64 = 20;

/// A cluster's public key in one key epoch, and which workers hold the secret.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct ClusterEpochKey {
    /// The cluster key epoch (what envelopes name).
    pub epoch: u64,
    /// The master epoch this key derives from.
    pub master_epoch: u64,
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub public: [u8; 32],
    /// Workers that reported receiving the key.
    pub received: Vec<PublicKey>,
    /// Height of the block that published it.
    pub published_at: u64,
    /// Kept agent key epochs that derive from this key.
    pub agent_keys: u64,
}

/// A cluster of workers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Cluster {
    pub id: Hash,
    pub name: String,
    pub workers: Vec<PublicKey>,
    /// Published keys, oldest first (at most [`CLUSTER_EPOCHS_MAX`]).
    pub keys: Vec<ClusterEpochKey>,
    /// Governance asked for a new key of this cluster alone.
    pub rotation_requested: bool,
    pub created_at: u64,
}

impl Cluster {
    /// The published key of `epoch`, if kept.
    pub fn key(&self, epoch: u64) -> Option<&ClusterEpochKey> {
        self.keys.iter().find(|k| k.epoch == epoch)
    }

    /// The newest published key.
    pub fn newest_key(&self) -> Option<&ClusterEpochKey> {
        self.keys.last()
    }

    /// The key epoch a gatekeeper should publish next, under current master
    /// epoch `master_epoch`: the master epoch for a cluster's first key; the
    /// next epoch (at least the master epoch) when the newest key derives
    /// from an older master key or governance asked for a rotation.
    pub fn due_key_epoch(&self, master_epoch: u64) -> Option<u64> {
        match self.newest_key() {
            None => Some(master_epoch),
            Some(newest) if newest.master_epoch < master_epoch => Some((newest.epoch + 1).max(master_epoch)),
            Some(newest) if self.rotation_requested => Some(newest.epoch + 1),
            Some(_) => None,
        }
    }

    /// The newest key, once agent keys may derive from it: every worker of
    /// the cluster reported holding it, or [`RECEIPT_WAIT_BLOCKS`] passed.
    /// Until then clients keep sealing to the agents' previous keys, which
    /// every worker can open.
    pub fn ready_key(&self, height: u64) -> Option<&ClusterEpochKey> {
        let newest = self.newest_key()?;
        let all_received = self.workers.iter().all(|w| newest.received.contains(w));
        (all_received || height >= newest.published_at + RECEIPT_WAIT_BLOCKS).then_some(newest)
    }

    /// Whether the older key `epoch` may be retired at `height`.
    pub fn retirable(&self, epoch: u64, height: u64) -> Result<(), String> {
        let newest = self.newest_key().ok_or("the cluster has no keys")?;
        let key = self.key(epoch).ok_or_else(|| format!("the cluster keeps no key of epoch {epoch}"))?;
        if key.epoch == newest.epoch {
            return Err("the newest key is never retired".into());
        }
        if key.agent_keys > 0 {
            return Err(format!("{} agent key epochs still derive from epoch {epoch}", key.agent_keys));
        }
        if height < newest.published_at + RETIRE_GRACE_BLOCKS {
            return Err(format!("epoch {epoch} stays until block {}", newest.published_at + RETIRE_GRACE_BLOCKS));
        }
        Ok(())
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
