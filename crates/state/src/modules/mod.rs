//! State modules. Each owns its part of the state and its leaf-key prefix:
//! `system` (0x00), `balances` (0x01), `registry` (0x02), `gatekeeper` (0x03), `clusters` (0x04), `agents` (0x05), `staking` (0x06), `computation` (0x07) and `fees` (0x08).

pub mod agents;
pub(crate) mod balances;
pub mod clusters;
pub mod computation;
pub mod fees;
pub mod gatekeeper;
pub mod registry;
pub mod staking;
pub(crate) mod system;
