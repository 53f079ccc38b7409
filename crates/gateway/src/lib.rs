//! The phalanx gateway: how a worker serves agents to the outside world.
//!
//! Everything here runs inside the worker's TEE, next to the verified chain
//! (`phalanx-worker`), which feeds it the state to serve from and the keys
//! it holds. It has no knowledge of sealing, attestation or the host loop.
//!
//! - [`server`]: the HTTP server for agent calls (routes, limits, admission).
//! - [`receipt`]: signed receipts on every response an agent produced.
//! - [`signed_call`]: callers proving their account (allowlisted and paid agents).
//! - [`agent_calls`]: `env.AGENTS`, agent-to-agent calls in process.
//! - [`logs`]: agents' console output, sealed to their owners.
//! - [`key_cache`]: derived agent keys, cached per (agent, epoch).
//! - [`usage`]: metering of paid calls and the usage reports.
//! - [`commands`]: agent state (`env.STATE`) and the commands the chain orders for it.
//! - [`metrics`]: the gateway's Prometheus metrics (the worker serves them).

pub mod agent_calls;
pub mod commands;
pub mod fs;
pub mod key_cache;
pub mod logs;
pub mod metrics;
pub mod receipt;
pub mod server;
pub mod signed_call;
pub mod usage;

pub use server::{GatewayConfig, Keyring, Shared, StateView, serve};
