//! State modules. Each owns its part of the state and its leaf-key prefix:
//! `system` (0x00) and `balances` (0x01).

pub(crate) mod balances;
pub(crate) mod system;
