//! The `balances` module: accounts, nonces and the PHA token.

use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{Balance, PLANCK_PER_PHA, PublicKey};

/// Leaf key of the total issuance.
pub(crate) const ISSUANCE_KEY: &[u8] = &[0x01, 0x00];
/// Prefix of account leaves: `0x01 0x01 ‖ public key`.
pub(crate) const ACCOUNT_PREFIX: &[u8] = &[0x01, 0x01];

/// PHA in existence at genesis: 1,000,000,000 PHA.
pub const TOTAL_SUPPLY: Balance = 1_000_000_000 * PLANCK_PER_PHA;

/// One account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Account {
    /// Number of transactions this account has had applied.
    pub nonce: u64,
    /// Spendable planck.
    pub free: Balance,
}

/// The leaf key of `who`'s account.
pub fn account_key(who: &PublicKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(ACCOUNT_PREFIX.len() + 32);
    key.extend_from_slice(ACCOUNT_PREFIX);
    key.extend_from_slice(&who.0);
    key
}
