//! Checking a finalization certificate with nothing but the validator set:
//! what a worker, a joining node or any client does to trust a block
//! without trusting the node that served it. Also the consensus key and
//! certificate types (commonware simplex with ed25519 multisignatures)
//! that validators sign with; the node's consensus re-exports them.

use commonware_codec::{Copying, Decode, Encode};
use commonware_consensus::simplex;
use commonware_cryptography::certificate::Verifier;
use commonware_cryptography::{ed25519, sha256};
use commonware_parallel::Sequential;
use commonware_utils::ordered::Set;
use phalanx_primitives::{Hash, PublicKey};

/// Consensus public key of a validator.
pub type ValidatorKey = ed25519::PublicKey;
/// Consensus signing key of a validator.
pub type ValidatorSecret = ed25519::PrivateKey;
/// Digest consensus orders: the block hash.
pub type Digest = sha256::Digest;
/// Signing scheme: attributable ed25519 multisignatures (a certificate is a
/// signer bitmap plus one signature per signer), verifiable by anyone who
/// knows the validator set.
pub type Scheme = simplex::scheme::ed25519::Scheme;
/// A finalization certificate.
pub type Finalization = simplex::types::Finalization<Scheme, Digest>;

/// Domain of every consensus signature: part of the chain's identity.
pub const NAMESPACE: &[u8] = b"phalanx/consensus/v1";

/// Converts a state-machine public key into a consensus key.
pub fn validator_key(key: &PublicKey) -> Result<ValidatorKey, commonware_codec::Error> {
    use commonware_codec::DecodeExt;
    ValidatorKey::decode(Copying(key.0.as_slice()))
}

/// The consensus secret for a 32-byte ed25519 seed.
pub fn validator_secret(seed: &[u8; 32]) -> ValidatorSecret {
    use commonware_codec::DecodeExt;
    ValidatorSecret::decode(Copying(seed.as_slice())).expect("any 32 bytes are an ed25519 seed")
}

/// The state-machine form of a consensus key.
pub fn account_key(key: &ValidatorKey) -> PublicKey {
    let bytes: &[u8] = key.as_ref();
    PublicKey(bytes.try_into().expect("ed25519 keys are 32 bytes"))
}

/// Converts a block hash to a consensus digest.
pub fn to_digest(hash: Hash) -> Digest {
    Digest::from(hash.0)
}

/// Converts a consensus digest to a block hash.
pub fn from_digest(digest: &Digest) -> Hash {
    let bytes: &[u8] = digest.as_ref();
    Hash(bytes.try_into().expect("sha256 digests are 32 bytes"))
}

/// Why a certificate was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    #[error("validator set contains a key that is not a valid ed25519 point")]
    BadValidatorKey,
    #[error("certificate does not decode: {0}")]
    Malformed(String),
    #[error("certificate finalizes block {certified}, not {expected}")]
    WrongBlock { expected: Hash, certified: Hash },
    #[error("certificate is from consensus epoch {certified}, the block is in epoch {expected}")]
    WrongEpoch { expected: u64, certified: u64 },
    #[error("certificate signatures do not verify against the validator set")]
    BadSignatures,
}

/// What a verified certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedBlock {
    pub block: Hash,
    /// Consensus view in which the block was finalized.
    pub view: u64,
}

/// Encodes a finalization for storage and RPC.
pub fn encode(finalization: &Finalization) -> Vec<u8> {
    finalization.encode().to_vec()
}

/// Signs a finalization of `block` in `view` of `epoch` by every one of `secrets`, as
/// consensus would: for tools and benchmarks that build a chain without
/// running consensus (the result is a real certificate; [`verify`] accepts it
/// for a validator set in which `secrets` are a quorum).
pub fn sign(validators: &[PublicKey], secrets: &[ValidatorSecret], block: Hash, epoch: u64, view: u64) -> Vec<u8> {
    use commonware_consensus::simplex::types::{Finalize, Proposal};
    use commonware_consensus::types::{Epoch, Round, View};
    let keys: Vec<ValidatorKey> =
        validators.iter().map(validator_key).collect::<Result<_, _>>().expect("valid validator keys");
    let participants = Set::from_iter_dedup(keys);
    let proposal = Proposal::new(Round::new(Epoch::new(epoch), View::new(view)), View::new(view - 1), to_digest(block));
    let votes: Vec<Finalize<Scheme, Digest>> = secrets
        .iter()
        .map(|secret| {
            let scheme =
                Scheme::signer(NAMESPACE, participants.clone(), secret.clone()).expect("signer is a validator");
            Finalize::sign(&scheme, proposal.clone()).expect("a validator can sign")
        })
        .collect();
    let scheme = Scheme::verifier(NAMESPACE, participants);
    let finalization = Finalization::from_finalizes(&scheme, commonware_utils::non_empty![@votes.iter()], &Sequential)
        .expect("a quorum of votes for one proposal");
    encode(&finalization)
}

/// Verifies that `bytes` is a finalization of `block` in consensus epoch
/// `epoch` (the block's height divided by the epoch length) by a quorum of
/// `validators`, the set of that epoch. Decoding is bounded by the size of
/// the set.
pub fn verify(
    rng: &mut impl rand_core::CryptoRng,
    validators: &[PublicKey],
    block: Hash,
    epoch: u64,
    bytes: &[u8],
) -> Result<CertifiedBlock, CertificateError> {
    let finalization = verified(rng, validators, block, epoch, bytes)?;
    Ok(CertifiedBlock { block, view: finalization.proposal.round.view().get() })
}

/// [`verify`], returning the verified finalization itself.
pub fn verified(
    rng: &mut impl rand_core::CryptoRng,
    validators: &[PublicKey],
    block: Hash,
    epoch: u64,
    bytes: &[u8],
) -> Result<Finalization, CertificateError> {
    let keys: Vec<ValidatorKey> = validators
        .iter()
        .map(validator_key)
        .collect::<Result<_, _>>()
        .map_err(|_| CertificateError::BadValidatorKey)?;
    let verifier = Scheme::verifier(NAMESPACE, Set::from_iter_dedup(keys));
    let finalization = Finalization::decode_cfg(Copying(bytes), &verifier.certificate_codec_config())
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    if finalization.proposal.payload != to_digest(block) {
        return Err(CertificateError::WrongBlock {
            expected: block,
            certified: from_digest(&finalization.proposal.payload),
        });
    }
    let certified = finalization.proposal.round.epoch().get();
    if certified != epoch {
        return Err(CertificateError::WrongEpoch { expected: epoch, certified });
    }
    if !finalization.verify(rng, &verifier, &Sequential) {
        return Err(CertificateError::BadSignatures);
    }
    Ok(finalization)
}
