//! State modules. Each owns its part of the state and its leaf-key prefix:
//! `system` (0x00), `balances` (0x01), `registry` (0x02), `gatekeeper` (0x03), `clusters` (0x04) and `agents` (0x05).

pub mod agents;
pub(crate) mod balances;
pub mod clusters;
pub mod gatekeeper;
pub mod registry;
pub(crate) mod system;
