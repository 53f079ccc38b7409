//! Usage of paid agents, metered by the gateway and reported to the chain.
//!
//! A paid agent takes only signed calls, from callers whose deposit covers
//! the agent's price plus the per-call network fee on top of what this
//! worker has served them and not yet reported. Each admitted call is
//! counted per (agent, caller); the host drains the counts into signed
//! `WorkerPayload::Usage` messages, and the chain charges the deposits.
//! Counted now: calls. CPU milliseconds and egress bytes are reported as 0
//! until the sandbox meters them per call (the chain's fee has room for both).

use phalanx_primitives::{Balance, Hash, PublicKey};
use std::collections::HashMap;
use std::sync::Mutex;

/// Most (agent, caller) pairs waiting to be reported; more paid calls get 503.
pub const PENDING_PAIRS_MAX: usize = 10_000;
/// Most usage messages sent in one round.
pub const REPORTS_PER_ROUND_MAX: usize = 256;

#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    calls: u64,
    /// Planck the calls will cost (price plus network fee), for admission.
    owed: Balance,
}

/// Counts of served paid calls not yet reported.
#[derive(Debug, Default)]
pub struct UsageMeter {
    pending: Mutex<HashMap<(Hash, PublicKey), Pending>>,
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

impl UsageMeter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Hash, PublicKey), Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits and counts one call costing `cost` if `deposit` covers it on top of what is owed.
    pub fn admit(&self, agent: Hash, caller: PublicKey, deposit: Balance, cost: Balance) -> Result<(), PaidError> {
        let mut pending = self.lock();
        let owed: Balance = pending.iter().filter(|((_, c), _)| *c == caller).map(|(_, p)| p.owed).sum();
        if owed.saturating_add(cost) > deposit {
            return Err(PaidError::Insufficient { caller, deposit, owed, cost });
        }
        if !pending.contains_key(&(agent, caller)) && pending.len() >= PENDING_PAIRS_MAX {
            return Err(PaidError::Busy);
        }
        let entry = pending.entry((agent, caller)).or_default();
        entry.calls += 1;
        entry.owed = entry.owed.saturating_add(cost);
        Ok(())
    }

    /// Takes up to `max` pairs' counts for reporting: (agent, caller, calls).
    pub fn drain(&self, max: usize) -> Vec<(Hash, PublicKey, u64)> {
        let mut pending = self.lock();
        let keys: Vec<(Hash, PublicKey)> = pending.keys().take(max).copied().collect();
        keys.into_iter().filter_map(|key| pending.remove(&key).map(|p| (key.0, key.1, p.calls))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_admitted_while_the_deposit_covers_them_and_drained_for_reports() {
        let meter = UsageMeter::default();
        let (agent, caller) = (Hash([1; 32]), PublicKey([2; 32]));
        meter.admit(agent, caller, 25, 10).unwrap();
        meter.admit(agent, caller, 25, 10).unwrap();
        assert_eq!(
            meter.admit(agent, caller, 25, 10),
            Err(PaidError::Insufficient { caller, deposit: 25, owed: 20, cost: 10 })
        );
        assert_eq!(meter.drain(10), vec![(agent, caller, 2)]);
        assert!(meter.drain(10).is_empty());
        meter.admit(agent, caller, 25, 10).unwrap();
    }
}
