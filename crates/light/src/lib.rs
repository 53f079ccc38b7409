//! phalanx's light client: reads of the chain's state that trust no node.
//!
//! A client starts from the chain's genesis and its validator set, follows
//! validator-set changes through their certified blocks, and checks every
//! value it acts on against a finality certificate of the trusted set and a
//! state proof against the certified state root (DESIGN.md §11).
//!
//! - [`certificate`]: checking a finalization certificate against a
//!   validator set (and the consensus key and certificate types).
//! - [`trust`]: what the client trusts and the pure checks that extend it
//!   (transitions, reads); errors name what did not verify.
//! - [`client`]: the same over a node's JSON-RPC, with the trusted set
//!   cached per chain on disk.

pub mod certificate;
pub mod client;
pub mod trust;

pub use client::{ClientError, LightClient};
pub use trust::{HEAD_AGE_MAX_MS, LightError, Trusted, Verified, VerifiedStart};
