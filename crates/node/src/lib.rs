//! A phalanx chain node.
//!
//! - [`chain`]: the application that consensus drives (propose, verify,
//!   commit), independent of the consensus engine.
//! - [`mempool`]: transactions waiting for a block.
//! - [`store`]: the embedded database (redb).
//! - [`rpc`]: the JSON-RPC server (HTTP and WebSocket).

pub mod chain;
pub mod consensus;
pub mod dev;
pub mod mempool;
pub mod rpc;
pub mod store;
