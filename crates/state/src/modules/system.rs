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
/// Leaf key of [`ValidatorChanges`].
pub(crate) const VALIDATOR_CHANGES_KEY: &[u8] = &[0x00, 0x05];
/// Leaf key of [`ConsensusParams`].
pub(crate) const CONSENSUS_KEY: &[u8] = &[0x00, 0x06];

/// Longest p2p address of a validator, in bytes (`ip:port`).
pub const VALIDATOR_ADDRESS_BYTES_MAX: usize = 64;
/// Shortest and longest consensus epoch, in blocks.
pub const EPOCH_BLOCKS_MIN: u64 = 2;
pub const EPOCH_BLOCKS_MAX: u64 = 1_000_000;

/// Consensus parameters, fixed at genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusParams {
    /// Blocks per consensus epoch. Epoch `e` holds heights
    /// `e × epoch_blocks ..= (e + 1) × epoch_blocks − 1`; a validator set
    /// change takes over at the first block of an epoch.
    pub epoch_blocks: u64,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        // About 8 minutes of idle blocks at 500 ms.
        ConsensusParams { epoch_blocks: 1_000 }
    }
}

/// A validator as governance names it: its consensus key and where other
/// validators reach it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorEntry {
    pub key: PublicKey,
    /// `ip:port` of its p2p listener.
    pub address: String,
}

/// Changes to the validator set: the one scheduled, the one before the
/// current one, and the p2p addresses governance announced.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct ValidatorChanges {
    /// The set that takes over after the last block of the current epoch.
    pub pending: Option<Vec<PublicKey>>,
    /// The first epoch of the current set (0: the genesis set).
    pub since_epoch: u64,
    /// The set before the current one and its first epoch.
    pub previous: Option<(u64, Vec<PublicKey>)>,
    /// Announced addresses of current and pending validators, by key.
    pub addresses: Vec<(PublicKey, String)>,
}

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
