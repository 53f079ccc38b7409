//! The gatekeeper's vault: master keys by epoch, and the key of a rotation
//! in progress, sealed to disk after every change (a key is sealed before
//! its commitment is announced, so a crash never loses a key the chain
//! expects someone to hold).

use crate::seal::{SealError, Sealer};
use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_keys::{ClusterKey, MasterKey};
use phalanx_primitives::{Hash, decode_bounded};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// Purpose label of the sealed vault.
const VAULT_PURPOSE: &[u8] = b"phalanx/gatekeeper-vault/v1";
/// Most master keys a vault keeps (older epochs are destroyed first).
pub const VAULT_EPOCHS_MAX: usize = 64;
/// Most cluster keys a vault keeps.
pub const VAULT_CLUSTER_KEYS_MAX: usize = 4096;

/// Why the vault could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("sealed vault is corrupt")]
    Corrupt,
}

#[derive(Default, BorshSerialize, BorshDeserialize)]
struct Stored {
    keys: Vec<(u64, [u8; 32])>,
    /// (rotation id, epoch, key)
    pending: Option<(u64, u64, [u8; 32])>,
    /// (cluster, epoch, key)
    clusters: Vec<(Hash, u64, [u8; 32])>,
}

impl Drop for Stored {
    fn drop(&mut self) {
        for (_, key) in &mut self.keys {
            key.zeroize();
        }
        if let Some((_, _, key)) = &mut self.pending {
            key.zeroize();
        }
        for (_, _, key) in &mut self.clusters {
            key.zeroize();
        }
    }
}

/// Master keys held by this gatekeeper, and cluster keys held by this worker.
pub struct Vault {
    path: PathBuf,
    keys: BTreeMap<u64, MasterKey>,
    pending: Option<(u64, MasterKey)>,
    clusters: BTreeMap<(Hash, u64), ClusterKey>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault(epochs {:?}, pending {:?}, keys redacted)", self.epochs(), self.pending.as_ref().map(|p| p.0))
    }
}

impl Vault {
    /// Opens the sealed vault at `path` (empty if there is none).
    pub fn open(sealer: &Sealer, path: &Path) -> Result<Self, VaultError> {
        let mut vault =
            Vault { path: path.to_path_buf(), keys: BTreeMap::new(), pending: None, clusters: BTreeMap::new() };
        if let Some(bytes) = sealer.unseal_file(path, VAULT_PURPOSE)? {
            let stored: Stored = decode_bounded(&bytes, 1 << 20).map_err(|_| VaultError::Corrupt)?;
            vault.keys = stored.keys.iter().map(|(epoch, key)| (*epoch, MasterKey::from_bytes(*key, *epoch))).collect();
            vault.pending =
                stored.pending.as_ref().map(|(rotation, epoch, key)| (*rotation, MasterKey::from_bytes(*key, *epoch)));
            vault.clusters = stored
                .clusters
                .iter()
                .map(|(cluster, epoch, key)| ((*cluster, *epoch), ClusterKey::from_bytes(*key, *cluster, *epoch)))
                .collect();
        }
        Ok(vault)
    }

    /// Seals the vault to disk.
    pub fn save(&self, sealer: &Sealer) -> Result<(), VaultError> {
        let stored = Stored {
            keys: self.keys.iter().map(|(epoch, key)| (*epoch, *key.to_bytes())).collect(),
            pending: self.pending.as_ref().map(|(rotation, key)| (*rotation, key.epoch(), *key.to_bytes())),
            clusters: self
                .clusters
                .iter()
                .map(|((cluster, epoch), key)| (*cluster, *epoch, *key.secret().to_bytes()))
                .collect(),
        };
        let plaintext = Zeroizing::new(borsh::to_vec(&stored).expect("in-memory encoding"));
        sealer.seal_to_file(&self.path, VAULT_PURPOSE, &plaintext)?;
        Ok(())
    }

    /// Epochs whose master key is held.
    pub fn epochs(&self) -> Vec<u64> {
        self.keys.keys().copied().collect()
    }

    pub fn master(&self, epoch: u64) -> Option<&MasterKey> {
        self.keys.get(&epoch)
    }

    pub fn all(&self) -> impl Iterator<Item = &MasterKey> {
        self.keys.values()
    }

    /// The key of a rotation in progress, if this gatekeeper has it.
    pub fn pending(&self, rotation: u64) -> Option<&MasterKey> {
        self.pending.as_ref().filter(|(id, _)| *id == rotation).map(|(_, key)| key)
    }

    pub fn pending_rotation(&self) -> Option<(u64, &MasterKey)> {
        self.pending.as_ref().map(|(id, key)| (*id, key))
    }

    pub fn set_pending(&mut self, rotation: u64, key: MasterKey) {
        self.pending = Some((rotation, key));
    }

    pub fn clear_pending(&mut self) {
        self.pending = None;
    }

    /// Keeps `key` as the master key of its epoch (the oldest beyond the limit is destroyed).
    pub fn insert(&mut self, key: MasterKey) {
        self.keys.insert(key.epoch(), key);
        while self.keys.len() > VAULT_EPOCHS_MAX {
            self.keys.pop_first();
        }
    }

    /// The cluster key of `cluster` in `epoch`, if held.
    pub fn cluster(&self, cluster: &Hash, epoch: u64) -> Option<&ClusterKey> {
        self.clusters.get(&(*cluster, epoch))
    }

    /// Cluster keys held, as (cluster, epoch).
    pub fn cluster_epochs(&self) -> Vec<(Hash, u64)> {
        self.clusters.keys().copied().collect()
    }

    pub fn insert_cluster(&mut self, key: ClusterKey) {
        self.clusters.insert((key.cluster(), key.epoch()), key);
        while self.clusters.len() > VAULT_CLUSTER_KEYS_MAX {
            self.clusters.pop_first();
        }
    }

    /// Destroys the cluster keys `keep` does not name.
    pub fn retain_clusters(&mut self, keep: impl Fn(&Hash, u64) -> bool) -> usize {
        let before = self.clusters.len();
        self.clusters.retain(|(cluster, epoch), _| keep(cluster, *epoch));
        before - self.clusters.len()
    }

    /// Destroys the keys of epochs `keep` does not name.
    pub fn retain(&mut self, keep: impl Fn(u64) -> bool) -> usize {
        let before = self.keys.len();
        self.keys.retain(|epoch, _| keep(*epoch));
        before - self.keys.len()
    }
}
