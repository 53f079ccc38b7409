//! The `fees` module: what callers of paid agents pay.
//!
//! A caller keeps a deposit (moved from their free balance). Withdrawing it
//! is not instant: the amount leaves the deposit at once (gateways admit no
//! new call against it) but unbonds for [`FeeParams::deposit_unbonding_ms`]
//! of chain time, during which usage reports of calls admitted before still
//! charge it (after what is left in the deposit); then a block pays the rest
//! back to the account. So a deposit cannot be pulled out from under calls
//! in flight. Workers report what they served per agent and caller (calls,
//! CPU milliseconds, egress bytes) in signed, sequenced messages (so a
//! report cannot be forged or replayed); the chain charges the caller's
//! deposit `calls × the agent's price` for the serving worker's pool (its
//! operator's account when the worker mines for no pool) plus a network fee
//! for the treasury: `calls × call_fee + cpu_ms × cpu_ms_fee + ⌈egress /
//! 1 KiB⌉ × egress_kib_fee`. A deposit never goes below zero: what it cannot
//! cover is left unpaid (the event says how much), and gateways refuse paid
//! calls from callers whose deposit does not cover the price. A report
//! names the price its calls were admitted at; the chain charges the lower
//! of that and the agent's price now, so a price raised while calls ran
//! never applies to them.
//!
//! Leaves: `0x08 0x00` [`FeeParams`], `0x08 0x01 ‖ account` a deposit (planck),
//! `0x08 0x02 ‖ account` an [`Unbonding`].

use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{Balance, PLANCK_PER_PHA, PublicKey};

pub(crate) const PARAMS_KEY: &[u8] = &[0x08, 0x00];
pub(crate) const DEPOSIT_PREFIX: &[u8] = &[0x08, 0x01];
pub(crate) const UNBONDING_PREFIX: &[u8] = &[0x08, 0x02];

/// Deposit planck on their way back to an account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Unbonding {
    /// Planck still unbonding (usage reports may charge them).
    pub amount: Balance,
    /// Chain time (block timestamp, ms) from which a block pays them back.
    pub release_at_ms: u64,
}

/// Most calls one usage report covers.
pub const REPORT_CALLS_MAX: u64 = 1_000_000;
/// Most CPU milliseconds one usage report may claim per call.
pub const REPORT_CPU_MS_PER_CALL_MAX: u64 = 60_000;
/// Most egress bytes one usage report may claim per call.
pub const REPORT_EGRESS_PER_CALL_MAX: u64 = 64 * 1024 * 1024;

/// Network fees for agent use, in the genesis file (`fees`); absent means these defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeeParams {
    /// Planck per call.
    pub call_fee: Balance,
    /// Planck per millisecond of CPU.
    pub cpu_ms_fee: Balance,
    /// Planck per KiB (rounded up) of response bytes.
    pub egress_kib_fee: Balance,
    /// Chain time a withdrawn deposit unbonds before it is paid back, in
    /// milliseconds: longer than a call can run (30 s of wall time) plus
    /// the time its usage report takes to reach a block.
    pub deposit_unbonding_ms: u64,
}

/// Shortest unbonding a genesis may set: a call's wall time (30 s) and
/// the report's way to the chain.
pub const DEPOSIT_UNBONDING_MS_MIN: u64 = 60_000;

impl Default for FeeParams {
    fn default() -> Self {
        FeeParams {
            call_fee: PLANCK_PER_PHA / 10_000,
            cpu_ms_fee: PLANCK_PER_PHA / 100_000,
            egress_kib_fee: PLANCK_PER_PHA / 1_000_000,
            deposit_unbonding_ms: 120_000,
        }
    }
}

impl FeeParams {
    /// The network fee for a report, saturating (reports are bounded, so it never does in practice).
    pub fn network_fee(&self, calls: u64, cpu_ms: u64, egress_bytes: u64) -> Balance {
        let kib = egress_bytes.div_ceil(1024);
        self.call_fee
            .saturating_mul(u128::from(calls))
            .saturating_add(self.cpu_ms_fee.saturating_mul(u128::from(cpu_ms)))
            .saturating_add(self.egress_kib_fee.saturating_mul(u128::from(kib)))
    }
}

pub(crate) fn deposit_key(who: &PublicKey) -> Vec<u8> {
    [DEPOSIT_PREFIX, &who.0].concat()
}

pub(crate) fn unbonding_key(who: &PublicKey) -> Vec<u8> {
    [UNBONDING_PREFIX, &who.0].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_fee_adds_calls_cpu_and_rounded_up_egress() {
        let fees = FeeParams { call_fee: 100, cpu_ms_fee: 10, egress_kib_fee: 1, ..FeeParams::default() };
        assert_eq!(fees.network_fee(2, 30, 1), 200 + 300 + 1);
        assert_eq!(fees.network_fee(1, 0, 1024), 100 + 1);
        assert_eq!(fees.network_fee(1, 0, 1025), 100 + 2);
        assert_eq!(fees.network_fee(0, 0, 0), 0);
    }
}
