//! Sealing: data encrypted so that only this program on this machine (the
//! TEE's sealing key) can read it back, and only for the purpose it was
//! sealed for.
//!
//! A sealed blob is `MAGIC ‖ nonce (12) ‖ ChaCha20-Poly1305 ciphertext`. The
//! cipher key is HKDF-SHA256 of the TEE's sealing key with the purpose label
//! as `info`, and the label is also the associated data, so an identity blob
//! never opens as a checkpoint. Files are written to a temporary name, synced
//! and renamed, so a crash leaves the old blob or the new one, never half.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use std::path::Path;
use zeroize::Zeroizing;

const MAGIC: &[u8; 6] = b"PHXS1\n";
const NONCE_BYTES: usize = 12;
/// Largest sealed file read back, in bytes.
pub const SEALED_BYTES_MAX: usize = 1 << 30;

/// Why sealed data could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed data is not in the sealed format")]
    Format,
    #[error("sealed data does not open: wrong machine or program, wrong purpose, or tampered")]
    Open,
    #[error("sealed file {path} is {size} bytes, more than the {SEALED_BYTES_MAX} allowed")]
    TooLarge { path: String, size: u64 },
    #[error("sealed file {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Seals and unseals under one TEE sealing key.
pub struct Sealer {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(key redacted)")
    }
}

impl Sealer {
    /// A sealer over the TEE's sealing key.
    pub fn new(sealing_key: Zeroizing<[u8; 32]>) -> Self {
        Sealer { key: sealing_key }
    }

    fn cipher(&self, purpose: &[u8]) -> ChaCha20Poly1305 {
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(b"phalanx/seal/v1"), self.key.as_ref())
            .expand(purpose, key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        ChaCha20Poly1305::new(&Key::from(*key))
    }

    /// Encrypts `plaintext` for `purpose`.
    pub fn seal(&self, purpose: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the operating system must provide randomness");
        let ciphertext = self
            .cipher(purpose)
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: purpose })
            .expect("encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_BYTES + ciphertext.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts what [`Sealer::seal`] made for the same `purpose`.
    pub fn unseal(&self, purpose: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let rest = sealed.strip_prefix(MAGIC.as_slice()).ok_or(SealError::Format)?;
        if rest.len() < NONCE_BYTES {
            return Err(SealError::Format);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().expect("split at the nonce length");
        self.cipher(purpose)
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: purpose })
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }

    /// Seals `plaintext` into the file at `path`, atomically.
    pub fn seal_to_file(&self, path: &Path, purpose: &[u8], plaintext: &[u8]) -> Result<(), SealError> {
        write_atomic(path, &self.seal(purpose, plaintext))
    }

    /// Reads and unseals the file at `path`; `None` if it does not exist.
    pub fn unseal_file(&self, path: &Path, purpose: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, SealError> {
        let io = |source| SealError::Io { path: path.display().to_string(), source };
        let size = match std::fs::metadata(path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        if size > SEALED_BYTES_MAX as u64 {
            return Err(SealError::TooLarge { path: path.display().to_string(), size });
        }
        let sealed = std::fs::read(path).map_err(io)?;
        self.unseal(purpose, &sealed).map(Some)
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    phalanx_gateway::fs::write_atomic(path, bytes)
        .map_err(|source| SealError::Io { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_binds_key_and_purpose_and_detects_tampering() {
        let sealer = Sealer::new(Zeroizing::new([1; 32]));
        let sealed = sealer.seal(b"identity", b"secret seed");
        assert_eq!(sealer.unseal(b"identity", &sealed).unwrap().as_slice(), b"secret seed");
        assert!(!sealed.windows(11).any(|w| w == b"secret seed"), "plaintext is not visible");
        assert!(matches!(sealer.unseal(b"checkpoint", &sealed), Err(SealError::Open)));
        let other = Sealer::new(Zeroizing::new([2; 32]));
        assert!(matches!(other.unseal(b"identity", &sealed), Err(SealError::Open)));
        for index in [0, MAGIC.len(), MAGIC.len() + NONCE_BYTES, sealed.len() - 1] {
            let mut tampered = sealed.clone();
            tampered[index] ^= 1;
            assert!(sealer.unseal(b"identity", &tampered).is_err(), "byte {index}");
        }
        assert!(matches!(sealer.unseal(b"identity", b"PHXS1\nshort"), Err(SealError::Format)));
        // Two seals of the same data differ (fresh nonce).
        assert_ne!(sealer.seal(b"identity", b"x"), sealer.seal(b"identity", b"x"));
    }

    #[test]
    fn files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.sealed");
        let sealer = Sealer::new(Zeroizing::new([1; 32]));
        assert!(sealer.unseal_file(&path, b"p").unwrap().is_none());
        sealer.seal_to_file(&path, b"p", b"one").unwrap();
        sealer.seal_to_file(&path, b"p", b"two").unwrap();
        assert_eq!(sealer.unseal_file(&path, b"p").unwrap().unwrap().as_slice(), b"two");
    }
}
