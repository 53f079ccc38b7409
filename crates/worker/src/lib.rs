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
//! - [`runtime`]: the trusted core tying these together.
//! - [`host`]: the untrusted half: RPC transport, transaction submission.
//! - [`gateway`]: the HTTP server for agent calls.
//! - [`commands`]: agent state (`env.STATE`) and the commands the chain orders for it.

pub mod agent_calls;
pub mod benchmark;
pub mod checkpoint;
pub mod commands;
pub mod gatekeeper;
pub mod gateway;
pub mod host;
pub mod identity;
pub mod key_cache;
pub mod logs;
pub mod metrics;
pub mod receipt;
pub mod runtime;
pub mod seal;
pub mod signed_call;
pub mod tee;
pub mod usage;
pub mod vault;
pub mod verified;

pub use host::{TeeChoice, WorkerConfig, WorkerError, WorkerEvent, run};
pub use runtime::{Resumed, Runtime};
pub use verified::{Applied, SyncError, VerifiedChain};
