//! Checking a finalization certificate with nothing but the validator set:
//! what a worker (or any client) does to trust a block without trusting the
//! node that served it.

use super::{Finalization, NAMESPACE, Scheme, ValidatorKey, block::to_digest};
use commonware_codec::{Copying, Decode, Encode};
use commonware_cryptography::certificate::Verifier;
use commonware_parallel::Sequential;
use commonware_utils::ordered::Set;
use phalanx_primitives::{Hash, PublicKey};

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
pub fn sign(
    validators: &[PublicKey],
    secrets: &[super::ValidatorSecret],
    block: Hash,
    epoch: u64,
    view: u64,
) -> Vec<u8> {
    use commonware_consensus::simplex::types::{Finalize, Proposal};
    use commonware_consensus::types::{Epoch, Round, View};
    let keys: Vec<ValidatorKey> =
        validators.iter().map(super::validator_key).collect::<Result<_, _>>().expect("valid validator keys");
    let participants = Set::from_iter_dedup(keys);
    let proposal = Proposal::new(Round::new(Epoch::new(epoch), View::new(view)), View::new(view - 1), to_digest(block));
    let votes: Vec<Finalize<Scheme, super::Digest>> = secrets
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
        .map(super::validator_key)
        .collect::<Result<_, _>>()
        .map_err(|_| CertificateError::BadValidatorKey)?;
    let verifier = Scheme::verifier(NAMESPACE, Set::from_iter_dedup(keys));
    let finalization = Finalization::decode_cfg(Copying(bytes), &verifier.certificate_codec_config())
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    if finalization.proposal.payload != to_digest(block) {
        return Err(CertificateError::WrongBlock {
            expected: block,
            certified: super::block::from_digest(&finalization.proposal.payload),
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
