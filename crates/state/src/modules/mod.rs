//! State modules. Each owns its part of the state and its leaf-key prefix:
//! `system` (0x00), `balances` (0x01) and `registry` (0x02).

pub(crate) mod balances;
pub mod registry;
pub(crate) mod system;
