//! The worker's identity: an ed25519 key (signs registrations' messages and,
//! later, receipts) and an x25519 key (receives keys from gatekeepers),
//! both generated inside the TEE from its randomness and sealed to disk, so
//! a restarted worker is the same worker and its host never sees either.
//!
//! An identity belongs to one chain: the chain id is sealed with the keys
//! and a worker refuses to start against another chain.

use crate::seal::{SealError, Sealer};
use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{Hash, Keypair, PublicKey, decode_bounded};
use std::path::Path;
use zeroize::{Zeroize, Zeroizing};

/// Purpose label of the sealed identity.
const IDENTITY_PURPOSE: &[u8] = b"phalanx/worker-identity/v1";

/// Why the identity could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("sealed identity is corrupt")]
    Corrupt,
    #[error("this worker's identity belongs to chain {sealed}, but the node serves chain {offered}")]
    OtherChain { sealed: Hash, offered: Hash },
}

#[derive(BorshSerialize, BorshDeserialize)]
struct Sealed {
    signing_seed: [u8; 32],
    ecdh_secret: [u8; 32],
    chain_id: Hash,
}

impl Drop for Sealed {
    fn drop(&mut self) {
        self.signing_seed.zeroize();
        self.ecdh_secret.zeroize();
    }
}

/// A worker's keys. `Debug` shows only public keys.
pub struct Identity {
    signing: Keypair,
    ecdh: x25519_dalek::StaticSecret,
    chain_id: Hash,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({}, secrets redacted)", self.public())
    }
}

impl Identity {
    /// Fresh keys from the TEE's randomness, for `chain_id`.
    pub fn generate(chain_id: Hash) -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut()).expect("the operating system must provide randomness");
        Identity { signing: Keypair::generate(), ecdh: x25519_dalek::StaticSecret::from(*secret), chain_id }
    }

    /// Loads the sealed identity at `path`, or generates and seals one. The
    /// flag says whether it was generated now.
    pub fn load_or_create(sealer: &Sealer, path: &Path, chain_id: Hash) -> Result<(Self, bool), IdentityError> {
        if let Some(bytes) = sealer.unseal_file(path, IDENTITY_PURPOSE)? {
            let sealed: Sealed = decode_bounded(&bytes, 1024).map_err(|_| IdentityError::Corrupt)?;
            if sealed.chain_id != chain_id {
                return Err(IdentityError::OtherChain { sealed: sealed.chain_id, offered: chain_id });
            }
            let identity = Identity {
                signing: Keypair::from_seed(&sealed.signing_seed),
                ecdh: x25519_dalek::StaticSecret::from(sealed.ecdh_secret),
                chain_id,
            };
            return Ok((identity, false));
        }
        let identity = Identity::generate(chain_id);
        let sealed = Sealed { signing_seed: *identity.signing.seed(), ecdh_secret: identity.ecdh.to_bytes(), chain_id };
        let plaintext = Zeroizing::new(borsh::to_vec(&sealed).expect("in-memory encoding"));
        sealer.seal_to_file(path, IDENTITY_PURPOSE, &plaintext)?;
        Ok((identity, true))
    }

    /// The identity key.
    pub fn public(&self) -> PublicKey {
        self.signing.public()
    }

    /// The x25519 public key.
    pub fn ecdh_public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.ecdh).to_bytes()
    }

    pub fn chain_id(&self) -> Hash {
        self.chain_id
    }

    /// The key-agreement secret, for opening envelopes sealed to this worker.
    pub(crate) fn ecdh_secret(&self) -> phalanx_keys::SecretKey {
        phalanx_keys::SecretKey::from_bytes(self.ecdh.to_bytes())
    }

    /// The signing key (never leaves the runtime).
    pub(crate) fn signing(&self) -> &Keypair {
        &self.signing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_identity_survives_restart_and_is_bound_to_its_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.sealed");
        let sealer = Sealer::new(Zeroizing::new([4; 32]));
        let (first, created) = Identity::load_or_create(&sealer, &path, Hash([1; 32])).unwrap();
        assert!(created);
        let (again, created) = Identity::load_or_create(&sealer, &path, Hash([1; 32])).unwrap();
        assert!(!created);
        assert_eq!((again.public(), again.ecdh_public()), (first.public(), first.ecdh_public()));
        assert!(matches!(
            Identity::load_or_create(&sealer, &path, Hash([2; 32])),
            Err(IdentityError::OtherChain { .. })
        ));
        let stranger = Sealer::new(Zeroizing::new([5; 32]));
        assert!(matches!(Identity::load_or_create(&stranger, &path, Hash([1; 32])), Err(IdentityError::Seal(_))));
        let shown = format!("{first:?}");
        assert!(shown.contains("redacted") && !shown.contains(&hex::encode(*first.signing.seed())));
    }
}
