//! Proofs on the wire and their verification.
//!
//! A [`StateProof`] names a leaf key, its value (or `None` for absence) and
//! the encoded qmdb proof. [`verify`] is a pure function of the proof, the
//! key asked for and a state root: it decodes the proof with bounds, and
//! checks it with qmdb's own verifiers. Nothing else is trusted.

use crate::db::CHUNK_BYTES;
use crate::leaf::{self, LEAF_KEY_BYTES_MAX, LEAF_VALUE_BYTES_MAX, STORED_BYTES_MAX};
use commonware_codec::{Copying, Decode, RangeCfg};
use commonware_cryptography::{Sha256, sha256::Digest};
use commonware_storage::merkle::mmr;
use commonware_storage::qmdb::any::value::VariableEncoding;
use commonware_storage::qmdb::current::ordered::proof::constant::{ExclusionProof, KeyValueProof};
use phalanx_primitives::Hash;

/// Most digests a proof may carry (qmdb's own bound for one element's path).
pub const PROOF_DIGESTS_MAX: usize = commonware_storage::merkle::MAX_PROOF_DIGESTS_PER_ELEMENT;
/// Largest encoded proof, in bytes: the digests, a chunk, and for absence
/// the neighbouring leaf.
pub const PROOF_BYTES_MAX: usize = (PROOF_DIGESTS_MAX + 8) * 32 + CHUNK_BYTES + STORED_BYTES_MAX + 64;

type PresenceProof = KeyValueProof<mmr::Family, Digest, Digest, CHUNK_BYTES>;
type AbsenceProof = ExclusionProof<mmr::Family, Digest, VariableEncoding<Vec<u8>>, Digest, CHUNK_BYTES>;

/// A leaf's value, or its absence, with the proof of it.
#[derive(Clone, Debug, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct StateProof {
    /// The leaf key.
    pub key: Vec<u8>,
    /// Its value, `None` if the state has no such leaf.
    pub value: Option<Vec<u8>>,
    /// The encoded qmdb proof (of the value, or of the absence).
    pub proof: Vec<u8>,
}

/// Why a proof did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("the proof is for another key")]
    OtherKey,
    #[error("the proof is malformed: {0}")]
    Malformed(String),
    #[error("the proof is {len} bytes; at most {PROOF_BYTES_MAX}")]
    TooLarge { len: usize },
    #[error("the proved value does not match the state root")]
    ValueNotProven,
    #[error("the proved absence does not match the state root")]
    AbsenceNotProven,
}

/// Checks `proof` for leaf `key` against `root`. Returns the proven value,
/// or `None` when the proof shows the leaf absent.
pub fn verify<'a>(proof: &'a StateProof, key: &[u8], root: &Hash) -> Result<Option<&'a [u8]>, ProofError> {
    if proof.key != key {
        return Err(ProofError::OtherKey);
    }
    if proof.proof.len() > PROOF_BYTES_MAX {
        return Err(ProofError::TooLarge { len: proof.proof.len() });
    }
    if key.len() > LEAF_KEY_BYTES_MAX {
        return Err(ProofError::Malformed(format!("the key is longer than {LEAF_KEY_BYTES_MAX} bytes")));
    }
    let root = Digest(root.0);
    let stored_key = leaf::store_key(key);
    let value_cfg = (RangeCfg::new(..=STORED_BYTES_MAX), ());
    match &proof.value {
        Some(value) => {
            if value.len() > LEAF_VALUE_BYTES_MAX {
                return Err(ProofError::Malformed(format!("the value is longer than {LEAF_VALUE_BYTES_MAX} bytes")));
            }
            let decoded = PresenceProof::decode_cfg(Copying(&proof.proof), &(PROOF_DIGESTS_MAX, ()))
                .map_err(|e| ProofError::Malformed(e.to_string()))?;
            if !decoded.verify::<Sha256, VariableEncoding<Vec<u8>>>(stored_key, leaf::encode(key, value), &root) {
                return Err(ProofError::ValueNotProven);
            }
            Ok(Some(value))
        }
        None => {
            let decoded =
                AbsenceProof::decode_cfg(Copying(&proof.proof), &(PROOF_DIGESTS_MAX, ((), value_cfg), value_cfg))
                    .map_err(|e| ProofError::Malformed(e.to_string()))?;
            if !decoded.verify::<Sha256>(&stored_key, &root) {
                return Err(ProofError::AbsenceNotProven);
            }
            Ok(None)
        }
    }
}
