//! The key hierarchy: master → cluster → agent, one set per epoch.
//!
//! ```text
//! cluster key = HKDF-SHA256(salt = "phalanx/keys/v1", ikm = master,
//!                           info = "phalanx/cluster-key/v1" ‖ cluster id ‖ epoch (u64 LE))
//! agent key   = HKDF-SHA256(salt = "phalanx/keys/v1", ikm = cluster key,
//!                           info = "phalanx/agent-key/v1" ‖ agent id ‖ epoch (u64 LE))
//! ```
//!
//! The epoch in a cluster or agent key's derivation is *that key's* epoch.
//! It equals the master epoch until a cluster or an agent is rotated on its
//! own: then its key epoch moves ahead (the chain records which master
//! epoch each cluster key epoch derives from, and which cluster key epoch
//! each agent key epoch derives from), so a scoped rotation yields a fresh
//! key from the same master key. Key epochs never repeat for one cluster or
//! agent, so no two keys share a derivation.
//!
//! A worker given a cluster key can derive the agent keys of that cluster
//! and nothing else; only gatekeepers hold the master key. Every key is 32
//! bytes used as an X25519 secret; its public key goes on chain so clients
//! can encrypt to it. Secrets are zeroized on drop and never printed.

use hkdf::Hkdf;
use phalanx_primitives::Hash;
use sha2::Sha256;
use zeroize::Zeroizing;

const SALT: &[u8] = b"phalanx/keys/v1";
const CLUSTER_LABEL: &[u8] = b"phalanx/cluster-key/v1";
const AGENT_LABEL: &[u8] = b"phalanx/agent-key/v1";
const COMMITMENT_LABEL: &[u8] = b"phalanx/master-commitment/v1";
const LOG_KEY_LABEL: &[u8] = b"phalanx/log-key/v1";

/// The X25519 key an account reads its agents' logs with, derived from the
/// account's 32-byte secret seed: HKDF-SHA256(salt = "phalanx/keys/v1",
/// ikm = seed, info = "phalanx/log-key/v1" ‖ zero id ‖ 0). Its own key, not
/// the signing key converted, so signing and encryption never share a key.
pub fn account_log_key(seed: &[u8; 32]) -> SecretKey {
    derive(seed, LOG_KEY_LABEL, &Hash::ZERO, 0)
}

/// A 32-byte X25519 secret with its public key (computed once).
#[derive(Clone)]
pub struct SecretKey {
    secret: x25519_dalek::StaticSecret,
    public: [u8; 32],
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {}, secret redacted)", hex::encode(self.public()))
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(bytes);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        SecretKey { secret, public }
    }

    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).expect("the operating system must provide randomness");
        Self::from_bytes(*bytes)
    }

    /// The public key clients encrypt to.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The secret bytes, for sealing. Never log them.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    pub(crate) fn diffie_hellman(&self, public: &[u8; 32]) -> x25519_dalek::SharedSecret {
        self.secret.diffie_hellman(&x25519_dalek::PublicKey::from(*public))
    }
}

fn derive(ikm: &[u8], label: &[u8], id: &Hash, epoch: u64) -> SecretKey {
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(SALT), ikm)
        .expand_multi_info(&[label, &id.0, &epoch.to_le_bytes()], out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    SecretKey::from_bytes(*out)
}

/// The master key of one epoch. Held only by gatekeepers.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    epoch: u64,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(epoch {}, secret redacted)", self.epoch)
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32], epoch: u64) -> Self {
        MasterKey { bytes: Zeroizing::new(bytes), epoch }
    }

    /// A fresh master key from the operating system's randomness.
    pub fn generate(epoch: u64) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).expect("the operating system must provide randomness");
        MasterKey { bytes, epoch }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The secret bytes, for sealing or handing to another gatekeeper in an envelope.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.bytes.clone()
    }

    /// A public commitment to this key: the X25519 public key of
    /// HKDF(master, "phalanx/master-commitment/v1" ‖ zero id ‖ epoch). The chain records it,
    /// so gatekeepers can show they hold the same key without revealing it.
    pub fn commitment(&self) -> [u8; 32] {
        derive(self.bytes.as_ref(), COMMITMENT_LABEL, &Hash::ZERO, self.epoch).public()
    }

    /// The key of `cluster` in this epoch.
    pub fn cluster_key(&self, cluster: &Hash) -> ClusterKey {
        self.cluster_key_at(cluster, self.epoch)
    }

    /// The key of `cluster` at cluster key epoch `epoch`, derived from this
    /// master key (the chain says which master epoch backs each cluster key
    /// epoch; without scoped rotations the two are equal).
    pub fn cluster_key_at(&self, cluster: &Hash, epoch: u64) -> ClusterKey {
        ClusterKey { key: derive(self.bytes.as_ref(), CLUSTER_LABEL, cluster, epoch), cluster: *cluster, epoch }
    }
}

/// A cluster's key in one epoch. Held by the cluster's workers.
#[derive(Clone, Debug)]
pub struct ClusterKey {
    key: SecretKey,
    cluster: Hash,
    epoch: u64,
}

impl ClusterKey {
    /// Rebuilds a cluster key received from a gatekeeper.
    pub fn from_bytes(bytes: [u8; 32], cluster: Hash, epoch: u64) -> Self {
        ClusterKey { key: SecretKey::from_bytes(bytes), cluster, epoch }
    }

    pub fn secret(&self) -> &SecretKey {
        &self.key
    }

    pub fn cluster(&self) -> Hash {
        self.cluster
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The key of `agent` (an agent of this cluster) in this epoch.
    pub fn agent_key(&self, agent: &Hash) -> AgentKey {
        self.agent_key_at(agent, self.epoch)
    }

    /// The key of `agent` at agent key epoch `epoch`, derived from this
    /// cluster key (equal epochs unless the agent was rotated on its own).
    pub fn agent_key_at(&self, agent: &Hash, epoch: u64) -> AgentKey {
        let ikm = self.key.to_bytes();
        AgentKey { key: derive(ikm.as_ref(), AGENT_LABEL, agent, epoch), agent: *agent, epoch }
    }
}

/// An agent's key in one epoch.
#[derive(Clone, Debug)]
pub struct AgentKey {
    key: SecretKey,
    agent: Hash,
    epoch: u64,
}

impl AgentKey {
    pub fn secret(&self) -> &SecretKey {
        &self.key
    }

    pub fn agent(&self) -> Hash {
        self.agent
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}
