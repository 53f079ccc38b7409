//! Consensus wiring: commonware's simplex BFT engine, its `marshal` (which
//! disseminates blocks, backfills missing ones and delivers finalized blocks
//! in height order) and buffered broadcast, driving the [`Chain`] application.
//!
//! Everything here is generic over commonware's runtime traits, so the same
//! validator runs on tokio in production and on the deterministic simulator
//! (seeded schedule, simulated network, crashes) in tests.
//!
//! [`Chain`]: crate::chain::Chain

pub mod application;
pub mod block;
pub mod certificate;
pub mod validator;

use commonware_consensus::marshal::{core::Mailbox, standard::Standard};
use commonware_consensus::simplex;
use commonware_cryptography::{ed25519, sha256};

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
/// What simplex hands the application with each proposal.
pub type Context = simplex::types::Context<Digest, ValidatorKey>;
/// A finalization certificate.
pub type Finalization = simplex::types::Finalization<Scheme, Digest>;
/// Handle to the marshal actor.
pub type Marshal = Mailbox<Scheme, Standard<block::ConsensusBlock>>;

/// Domain of every consensus signature: part of the chain's identity.
pub const NAMESPACE: &[u8] = b"phalanx/consensus/v1";

/// Converts a state-machine public key into a consensus key.
pub fn validator_key(key: &phalanx_primitives::PublicKey) -> Result<ValidatorKey, commonware_codec::Error> {
    use commonware_codec::DecodeExt;
    ValidatorKey::decode(commonware_codec::Copying(key.0.as_slice()))
}

/// The consensus secret for a 32-byte ed25519 seed.
pub fn validator_secret(seed: &[u8; 32]) -> ValidatorSecret {
    use commonware_codec::DecodeExt;
    ValidatorSecret::decode(commonware_codec::Copying(seed.as_slice())).expect("any 32 bytes are an ed25519 seed")
}

/// The state-machine form of a consensus key.
pub fn account_key(key: &ValidatorKey) -> phalanx_primitives::PublicKey {
    let bytes: &[u8] = key.as_ref();
    phalanx_primitives::PublicKey(bytes.try_into().expect("ed25519 keys are 32 bytes"))
}
