//! Ed25519 account keys and signatures, always over a domain-separated message.
//!
//! Every signature in phalanx signs `len(label) ‖ label ‖ message`, where the
//! label is a constant naming what is signed (`b"phalanx/tx/v1"`). A signature
//! made for one purpose therefore never verifies for another. Verification is
//! strict (no malleable or small-order keys), and identical on every node.

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::fmt;
use zeroize::Zeroizing;

/// An ed25519 public key; also the identity of an account.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 32]);

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("public key is not a valid ed25519 point")]
    InvalidKey,
    #[error("signature does not match the signer and message")]
    Mismatch,
}

fn framed(label: &[u8], message: &[u8]) -> Vec<u8> {
    assert!(label.len() <= u8::MAX as usize, "signature labels are short constants");
    let mut framed = Vec::with_capacity(1 + label.len() + message.len());
    framed.push(label.len() as u8);
    framed.extend_from_slice(label);
    framed.extend_from_slice(message);
    framed
}

impl PublicKey {
    /// Verifies `signature` over `message` under the domain `label`.
    pub fn verify(&self, label: &[u8], message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::InvalidKey)?;
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(&framed(label, message), &signature).map_err(|_| SignatureError::Mismatch)
    }

    /// Whether these bytes are an ed25519 point a signature can be checked
    /// against (on the curve and not of small order).
    pub fn is_valid_ed25519(&self) -> bool {
        VerifyingKey::from_bytes(&self.0).is_ok_and(|key| !key.is_weak())
    }

    /// The SS58 address of this key (Phala's prefix).
    pub fn to_ss58(&self) -> String {
        crate::ss58::encode(&self.0, crate::SS58_PREFIX)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_ss58())
    }
}

impl std::str::FromStr for PublicKey {
    type Err = crate::AddressError;

    /// Accepts an SS58 address (any prefix) or 32 bytes of `0x` hex.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(hex_text) = s.strip_prefix("0x") {
            let mut out = [0u8; 32];
            hex::decode_to_slice(hex_text, &mut out).map_err(|_| crate::AddressError::Hex)?;
            return Ok(PublicKey(out));
        }
        crate::ss58::decode(s).map(|(bytes, _prefix)| PublicKey(bytes))
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(0x{})", hex::encode(self.0))
    }
}

impl serde::Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0x{}", hex::encode(self.0)))
    }
}

/// An ed25519 signing key. Its secret is zeroized on drop and never printed.
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).expect("the operating system must provide randomness");
        Self::from_seed(&seed)
    }

    /// The key whose 32-byte ed25519 seed is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self { signing: SigningKey::from_bytes(seed) }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// The secret seed, for sealing the key inside a TEE. Never log or print it.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// Signs `message` under the domain `label`.
    pub fn sign(&self, label: &[u8], message: &[u8]) -> Signature {
        Signature(self.signing.sign(&framed(label, message)).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({}, secret redacted)", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_domain_separation() {
        let key = Keypair::from_seed(&[7; 32]);
        let sig = key.sign(b"phalanx/test/v1", b"hello");
        assert_eq!(key.public().verify(b"phalanx/test/v1", b"hello", &sig), Ok(()));
        assert_eq!(key.public().verify(b"phalanx/other/v1", b"hello", &sig), Err(SignatureError::Mismatch));
        assert_eq!(key.public().verify(b"phalanx/test/v1", b"hellp", &sig), Err(SignatureError::Mismatch));
        let other = Keypair::from_seed(&[8; 32]).public();
        assert_eq!(other.verify(b"phalanx/test/v1", b"hello", &sig), Err(SignatureError::Mismatch));
        let mut tampered = sig;
        tampered.0[10] ^= 1;
        assert!(key.public().verify(b"phalanx/test/v1", b"hello", &tampered).is_err());
    }

    #[test]
    fn debug_never_shows_secret() {
        let key = Keypair::from_seed(&[0xab; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("abab"));
    }
}
