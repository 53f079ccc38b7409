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
pub mod validator;

/// Checking finalization certificates; the consensus key and certificate
/// types live with it in the light client, which needs them without a node.
pub use phalanx_light::certificate;
pub use phalanx_light::certificate::{
    Digest, Finalization, NAMESPACE, Scheme, ValidatorKey, ValidatorSecret, account_key, validator_key,
    validator_secret,
};

use commonware_consensus::marshal::{core::Mailbox, standard::Standard};
use commonware_consensus::simplex;

/// What simplex hands the application with each proposal.
pub type Context = simplex::types::Context<Digest, ValidatorKey>;
/// Handle to the marshal actor.
pub type Marshal = Mailbox<Scheme, Standard<block::ConsensusBlock>>;
