//! phalanx's authenticated state store.
//!
//! The chain's state is a set of leaves (a byte key, a byte value) written
//! by the pure state machine. This crate keeps them in commonware's `qmdb`
//! (`current::ordered`, variable values), so that:
//!
//! - a block's commitment costs what the block changed (one batch of the
//!   changed leaves, merkleized on top of the previous state), not the size
//!   of the state;
//! - any leaf can be proven, present with its value or absent, against the
//!   state root, and a proof is checked by a pure function ([`verify`]) a
//!   light client can run.
//!
//! What every node must do identically to reach the same root (it is part
//! of consensus, see ARCHITECTURE.md): [`leaf::store_key`] and
//! [`leaf::encode`] for each leaf, exactly one batch per block holding the
//! block's final writes, the block height as the batch's metadata, and the
//! inactivity-floor policy [`Proportional`](commonware_storage::qmdb::floor::Proportional).
//!
//! - [`leaf`]: how a leaf is keyed and encoded in the store.
//! - [`db`]: the store: open, apply a block, read, prove.
//! - [`proof`]: proofs on the wire and their verification.
//! - [`service`]: the store on its own thread, behind a blocking handle,
//!   with speculative blocks for those not final yet.
//! - [`sync`]: state sync: a new node fetches the store from an untrusted
//!   node, verifies every operation against a trusted root, and opens it.

pub mod db;
pub mod leaf;
pub mod proof;
pub mod service;
pub mod sync;

pub use db::{StateDb, StoreError};

/// The root of a store that holds only `writes`, applied at `height` as one
/// batch: computed in memory (commonware's deterministic runtime), no
/// files. For a genesis state and for tests.
pub fn root_in_memory(height: u64, writes: Vec<service::Write>) -> Result<phalanx_primitives::Hash, StoreError> {
    use commonware_runtime::{Runner as _, Supervisor as _};
    commonware_runtime::deterministic::Runner::default().start(|context| async move {
        let mut db = StateDb::open(context.child("memory"), "memory").await?;
        db.apply(height, writes).await
    })
}
pub use proof::{ProofError, StateProof, verify};
pub use service::{Parent, Proven, Speculation, StateService, Status};
pub use sync::{SyncError, SyncTarget};
