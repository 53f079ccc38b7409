//! A phalanx chain node.
//!
//! - [`chain`]: the application that consensus drives (propose, verify,
//!   commit), independent of the consensus engine.
//! - [`mempool`]: transactions waiting for a block.
//! - [`store`]: the embedded database (redb).
//! - [`metrics`]: the node's Prometheus metrics.
//! - [`rpc`]: the JSON-RPC server (HTTP and WebSocket).
//! - [`proofs`]: state proofs at the head and the validator-set changes a
//!   light client follows.
//! - [`service`]: one node process from its config file (`phalanx node`);
//!   [`dev`] runs it with the dev genesis and a single validator;
//!   [`follower`] is a non-validator node's block sync; [`state_sync`]
//!   lets a fresh one join from a verified recent state instead.

pub mod chain;
pub mod consensus;
pub mod dev;
pub mod follower;
pub mod mempool;
pub mod metrics;
pub mod proofs;
pub mod rpc;
pub mod service;
pub mod state_sync;
pub mod store;
