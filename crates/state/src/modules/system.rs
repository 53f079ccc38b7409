//! The `system` module: chain parameters (fees, treasury, governance), the
//! validator set and the head (height and timestamp of the last block).

use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{Balance, PublicKey};

/// Leaf key of [`ChainParams`].
pub(crate) const PARAMS_KEY: &[u8] = &[0x00, 0x00];
/// Leaf key of [`Head`].
pub(crate) const HEAD_KEY: &[u8] = &[0x00, 0x01];
/// Leaf key of the validator set.
pub(crate) const VALIDATORS_KEY: &[u8] = &[0x00, 0x02];

/// The fee a transaction must offer: `base_fee + byte_fee × encoded length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct FeeSchedule {
    /// Planck per transaction.
    pub base_fee: Balance,
    /// Planck per byte of the encoded signed transaction.
    pub byte_fee: Balance,
}

impl FeeSchedule {
    /// The minimum fee for a signed transaction of `encoded_bytes` bytes.
    pub fn minimum(&self, encoded_bytes: usize) -> Option<Balance> {
        self.byte_fee.checked_mul(encoded_bytes as Balance)?.checked_add(self.base_fee)
    }
}

/// Parameters that governance controls.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct ChainParams {
    pub fees: FeeSchedule,
    /// Receives every fee.
    pub treasury: PublicKey,
    /// Accounts allowed to make privileged calls.
    pub governance: Vec<PublicKey>,
}

/// Where the chain is: the last applied block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Head {
    pub height: u64,
    pub timestamp_ms: u64,
}
