//! The phalanx worker ("pRuntime"): the program that runs inside a TEE on
//! an untrusted host.
//!
//! - [`tee`]: TEE backends (simulated, Intel TDX, Intel SGX/Gramine) behind [`tee::Platform`].
//! - [`seal`]: data sealed to the TEE (ChaCha20-Poly1305 under an HKDF'd sealing key).
//! - [`identity`]: ed25519 identity and x25519 keys, generated and sealed inside the TEE.
//! - [`verified`]: the worker's own verified chain: certificates checked
//!   against the validator set, blocks replayed with `phalanx-state`.
//! - [`checkpoint`]: sealed snapshots of the verified state.
//! - [`benchmark`]: the score measured at start.
//! - [`gatekeeper`], [`vault`]: the gatekeeper role (master keys generated,
//!   handed over, confirmed; sealed in the vault).
//! - [`metrics`]: the worker's Prometheus metrics (its own and the gateway's) and their endpoint.
//! - [`runtime`]: the trusted core tying these together.
//! - [`host`]: the untrusted half: RPC transport, transaction submission;
//!   it starts the gateway (`phalanx-gateway`), which serves agents from the
//!   verified state.

pub mod benchmark;
pub mod checkpoint;
pub mod gatekeeper;
pub mod host;
pub mod identity;
pub mod metrics;
pub mod runtime;
pub mod seal;
pub mod tee;
pub mod vault;
pub mod verified;

pub use host::{TeeChoice, WorkerConfig, WorkerError, WorkerEvent, run};
pub use runtime::{Resumed, Runtime};
pub use verified::{Applied, SyncError, VerifiedChain};
