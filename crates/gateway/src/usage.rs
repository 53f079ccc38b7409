//! Usage of paid agents, metered by the gateway and reported to the chain.
//!
//! A paid agent takes only signed calls, from callers whose deposit covers
//! the agent's price plus the per-call network fee on top of what this
//! worker has served them and not yet reported (and what their calls in
//! flight may cost). An admitted call holds a [`Ticket`]; when the call
//! ends the ticket records what it used ([`CallUsage`]: CPU time inside the
//! sandbox, bytes sent out) and the network fee for that joins what the
//! caller owes. A ticket dropped without a record (the client went away
//! mid-call) still counts the call, with the usage seen as zero. The host
//! drains the counts into signed `WorkerPayload::Usage` messages, and the
//! chain charges the deposits. Calls are counted per price: a report names
//! the per-call price its calls were admitted at, and the chain charges at
//! most that (an owner raising the price meanwhile cannot charge calls
//! already admitted at the old one). CPU is summed in microseconds and reported
//! in whole milliseconds (the remainder of a report is dropped, in the
//! caller's favour); a call's usage is capped at what the chain accepts per call.

use phalanx_primitives::{Balance, Hash, PublicKey};
use phalanx_sandbox::CallUsage;
use phalanx_state::modules::fees::{
    FeeParams, REPORT_CALLS_MAX, REPORT_CPU_MS_PER_CALL_MAX, REPORT_EGRESS_PER_CALL_MAX,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most (agent, caller) pairs waiting to be reported; more paid calls get 503.
pub const PENDING_PAIRS_MAX: usize = 10_000;
/// Most usage messages sent in one round.
pub const REPORTS_PER_ROUND_MAX: usize = 256;

#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    /// Calls ended and not yet reported.
    calls: u64,
    cpu_us: u64,
    egress_bytes: u64,
    /// Planck the ended calls will cost (price plus network fee).
    owed: Balance,
    /// Calls admitted and still running, and what they are expected to cost.
    in_flight: u64,
    reserved: Balance,
}

/// One (agent, caller, price) usage, ready for a `WorkerPayload::Usage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    pub agent: Hash,
    pub caller: PublicKey,
    /// The agent's per-call price the calls were admitted at.
    pub price: Balance,
    pub calls: u64,
    pub cpu_ms: u64,
    pub egress_bytes: u64,
}

/// Usage is kept per agent, caller and admitted price.
type Key = (Hash, PublicKey, Balance);

/// Counts of served paid calls not yet reported.
#[derive(Debug, Default)]
pub struct UsageMeter {
    pending: Mutex<HashMap<Key, Pending>>,
}

/// Why a paid call is not admitted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PaidError {
    #[error(
        "insufficient deposit: {caller} holds {deposit} planck and owes {owed} for calls not yet charged; a call costs {cost} (add with `phalanx deposit add`)"
    )]
    Insufficient { caller: PublicKey, deposit: Balance, owed: Balance, cost: Balance },
    #[error("this worker has {PENDING_PAIRS_MAX} callers' usage waiting to be reported; try again shortly")]
    Busy,
}

/// An admitted paid call; [`Ticket::finish`] records what it used.
#[derive(Debug)]
pub struct Ticket {
    meter: Arc<UsageMeter>,
    key: Key,
    cost: Balance,
    fees: FeeParams,
    open: bool,
}

impl Ticket {
    /// Records the call as served with what it used.
    pub fn finish(mut self, used: CallUsage) {
        self.open = false;
        self.meter.record(self.key, self.cost, used, &self.fees);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.open {
            self.meter.record(self.key, self.cost, CallUsage::default(), &self.fees);
        }
    }
}

impl UsageMeter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits one call at `price` (the agent's, now) if `deposit` covers
    /// it and the call fee on top of what the caller owes here and their
    /// calls in flight.
    pub fn admit(
        self: &Arc<Self>,
        agent: Hash,
        caller: PublicKey,
        deposit: Balance,
        price: Balance,
        fees: FeeParams,
    ) -> Result<Ticket, PaidError> {
        let cost = price.saturating_add(fees.call_fee);
        let key = (agent, caller, price);
        let mut pending = self.lock();
        let owed: Balance = pending
            .iter()
            .filter(|((_, c, _), _)| *c == caller)
            .map(|(_, p)| p.owed.saturating_add(p.reserved))
            .fold(0, Balance::saturating_add);
        if owed.saturating_add(cost) > deposit {
            return Err(PaidError::Insufficient { caller, deposit, owed, cost });
        }
        let full = pending.get(&key).is_some_and(|p| p.calls + p.in_flight >= REPORT_CALLS_MAX);
        if full || (!pending.contains_key(&key) && pending.len() >= PENDING_PAIRS_MAX) {
            return Err(PaidError::Busy);
        }
        let entry = pending.entry(key).or_default();
        entry.in_flight += 1;
        entry.reserved = entry.reserved.saturating_add(cost);
        Ok(Ticket { meter: self.clone(), key, cost, fees, open: true })
    }

    /// An admitted call ended having used `used`; its network fee joins what the caller owes.
    fn record(&self, key: Key, cost: Balance, used: CallUsage, fees: &FeeParams) {
        let mut pending = self.lock();
        // Drains keep pairs with calls in flight, so the entry is there.
        let Some(entry) = pending.get_mut(&key) else { return };
        entry.in_flight = entry.in_flight.saturating_sub(1);
        entry.reserved = entry.reserved.saturating_sub(cost);
        let cpu_us = u64::try_from(used.cpu.as_micros()).unwrap_or(u64::MAX).min(REPORT_CPU_MS_PER_CALL_MAX * 1000);
        let egress = used.egress_bytes.min(REPORT_EGRESS_PER_CALL_MAX);
        let before = fees.network_fee(0, entry.cpu_us / 1000, entry.egress_bytes);
        entry.calls += 1;
        entry.cpu_us = entry.cpu_us.saturating_add(cpu_us);
        entry.egress_bytes = entry.egress_bytes.saturating_add(egress);
        let after = fees.network_fee(0, entry.cpu_us / 1000, entry.egress_bytes);
        entry.owed = entry.owed.saturating_add(cost).saturating_add(after.saturating_sub(before));
    }

    /// Takes up to `max` pairs' ended calls for reporting; calls still in flight stay.
    pub fn drain(&self, max: usize) -> Vec<Report> {
        let mut pending = self.lock();
        let keys: Vec<Key> = pending.iter().filter(|(_, p)| p.calls > 0).map(|(key, _)| *key).take(max).collect();
        let mut reports = Vec::with_capacity(keys.len());
        for (agent, caller, price) in keys {
            let Some(p) = pending.get_mut(&(agent, caller, price)) else { continue };
            reports.push(Report {
                agent,
                caller,
                price,
                calls: p.calls,
                cpu_ms: p.cpu_us / 1000,
                egress_bytes: p.egress_bytes,
            });
            if p.in_flight == 0 {
                pending.remove(&(agent, caller, price));
            } else {
                *p = Pending { in_flight: p.in_flight, reserved: p.reserved, ..Pending::default() };
            }
        }
        reports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEES: FeeParams =
        FeeParams { call_fee: 1, cpu_ms_fee: 10, egress_kib_fee: 100, deposit_unbonding_ms: 120_000 };

    #[test]
    fn calls_are_admitted_while_the_deposit_covers_them_and_drained_for_reports() {
        let meter = Arc::new(UsageMeter::default());
        let (agent, caller) = (Hash([1; 32]), PublicKey([2; 32]));
        let fees = FeeParams { call_fee: 0, cpu_ms_fee: 0, egress_kib_fee: 0, ..FeeParams::default() };
        meter.admit(agent, caller, 25, 10, fees).unwrap().finish(CallUsage::default());
        // A call in flight counts against the deposit too.
        let running = meter.admit(agent, caller, 25, 10, fees).unwrap();
        assert_eq!(
            meter.admit(agent, caller, 25, 10, fees).unwrap_err(),
            PaidError::Insufficient { caller, deposit: 25, owed: 20, cost: 10 }
        );
        // Only ended calls are reported; the running one stays for the next drain.
        assert_eq!(meter.drain(10), vec![Report { agent, caller, price: 10, calls: 1, cpu_ms: 0, egress_bytes: 0 }]);
        drop(running);
        assert_eq!(meter.drain(10), vec![Report { agent, caller, price: 10, calls: 1, cpu_ms: 0, egress_bytes: 0 }]);
        assert!(meter.drain(10).is_empty());
        meter.admit(agent, caller, 25, 10, fees).unwrap();
        // Calls admitted at different prices are reported apart, each at its own.
        let meter = Arc::new(UsageMeter::default());
        meter.admit(agent, caller, 100, 10, fees).unwrap().finish(CallUsage::default());
        meter.admit(agent, caller, 100, 30, fees).unwrap().finish(CallUsage::default());
        let mut reports = meter.drain(10);
        reports.sort_by_key(|r| r.price);
        assert_eq!(reports.iter().map(|r| (r.price, r.calls)).collect::<Vec<_>>(), [(10, 1), (30, 1)]);
    }

    #[test]
    fn cpu_and_egress_are_summed_reported_and_owed() {
        let meter = Arc::new(UsageMeter::default());
        let (agent, caller) = (Hash([1; 32]), PublicKey([2; 32]));
        let used = CallUsage { cpu: std::time::Duration::from_micros(600), egress_bytes: 700 };
        // A price of 4 and the call fee of 1: each call costs 5.
        meter.admit(agent, caller, 1_000, 4, FEES).unwrap().finish(used);
        let second = meter.admit(agent, caller, 1_000, 4, FEES).unwrap();
        // Drained while the second call runs: its usage goes into the next report.
        assert_eq!(meter.drain(10), vec![Report { agent, caller, price: 4, calls: 1, cpu_ms: 0, egress_bytes: 700 }]);
        second.finish(used);
        meter.admit(agent, caller, 1_000, 4, FEES).unwrap().finish(used);
        // 1.2 ms → 1 ms (10), 1,400 bytes → 2 KiB (200): owed 5 + 5 + 210 = 220.
        assert_eq!(
            meter.admit(agent, caller, 224, 4, FEES).unwrap_err(),
            PaidError::Insufficient { caller, deposit: 224, owed: 220, cost: 5 }
        );
        assert_eq!(meter.drain(10), vec![Report { agent, caller, price: 4, calls: 2, cpu_ms: 1, egress_bytes: 1_400 }]);
        assert!(meter.drain(10).is_empty());
    }
}
