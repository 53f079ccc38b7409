//! Deposits and usage charges (the rules are in `modules::fees`).

use super::State;
use crate::error::TxError;
use crate::events::Event;
use crate::modules::fees::{
    self, FeeParams, REPORT_CALLS_MAX, REPORT_CPU_MS_PER_CALL_MAX, REPORT_EGRESS_PER_CALL_MAX, Unbonding,
};
use phalanx_primitives::{Balance, Hash, PublicKey, encode};

/// One usage report, as a worker sends it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Usage {
    pub agent: Hash,
    pub caller: PublicKey,
    /// The per-call price the calls were admitted at.
    pub price: Balance,
    pub calls: u64,
    pub cpu_ms: u64,
    pub egress_bytes: u64,
}

impl State {
    /// Network fees for agent use.
    pub fn fee_params(&self) -> &FeeParams {
        &self.fees
    }

    /// `who`'s deposit for paid agent calls, in planck.
    pub fn deposit(&self, who: &PublicKey) -> Balance {
        self.deposits.get(who).copied().unwrap_or(0)
    }

    /// Every deposit.
    pub fn deposits(&self) -> impl Iterator<Item = (&PublicKey, &Balance)> {
        self.deposits.iter()
    }

    fn set_deposit(&mut self, who: PublicKey, amount: Balance) {
        self.write(fees::deposit_key(&who), encode(&amount));
        self.deposits.insert(who, amount);
    }

    /// `who`'s withdrawn deposit still unbonding, if any.
    pub fn unbonding(&self, who: &PublicKey) -> Option<Unbonding> {
        self.unbonding.get(who).copied()
    }

    /// Every unbonding deposit.
    pub fn unbondings(&self) -> impl Iterator<Item = (&PublicKey, &Unbonding)> {
        self.unbonding.iter()
    }

    fn set_unbonding(&mut self, who: PublicKey, unbonding: Unbonding) {
        if let Some(old) = self.unbonding.get(&who) {
            self.unbonding_due.remove(&(old.release_at_ms, who));
        }
        // Leaves are never removed: a finished unbonding stays as a zero.
        self.write(fees::unbonding_key(&who), encode(&unbonding));
        if unbonding.amount == 0 {
            self.unbonding.remove(&who);
        } else {
            self.unbonding_due.insert((unbonding.release_at_ms, who), ());
            self.unbonding.insert(who, unbonding);
        }
    }

    /// Pays back every unbonding deposit whose time has come (per block).
    pub(super) fn release_unbonded(&mut self, emit: &mut impl FnMut(Event)) {
        let now = self.head.timestamp_ms;
        while let Some(&((at, who), ())) = self.unbonding_due.get_min() {
            if at > now {
                break;
            }
            let amount = self.unbonding.get(&who).map_or(0, |u| u.amount);
            self.set_unbonding(who, Unbonding::default());
            self.credit(who, amount, emit);
            emit(Event::DepositWithdrawn { who, amount, deposit: self.deposit(&who) });
        }
    }

    pub(super) fn check_withdraw_deposit(&self, who: &PublicKey, amount: Balance) -> Result<(), TxError> {
        let held = self.deposit(who);
        if amount == 0 || amount > held {
            return Err(TxError::Fees(format!("withdraw 1 to {held} planck (the deposit)")));
        }
        Ok(())
    }

    pub(super) fn apply_deposit(&mut self, who: PublicKey, amount: Balance, emit: &mut impl FnMut(Event)) {
        let mut account = self.account(&who).expect("signer exists");
        account.free -= amount;
        self.set_account(who, account);
        let total = self.deposit(&who) + amount;
        self.set_deposit(who, total);
        emit(Event::Deposited { who, amount, deposit: total });
    }

    /// Moves `amount` of the deposit to unbonding: no new call is admitted
    /// against it, calls admitted before may still be charged to it, and a
    /// block pays what is left back once the unbonding time has passed (a
    /// second withdrawal adds to the first and restarts its time).
    pub(super) fn apply_withdraw_deposit(&mut self, who: PublicKey, amount: Balance, emit: &mut impl FnMut(Event)) {
        let left = self.deposit(&who) - amount;
        self.set_deposit(who, left);
        let release_at_ms = self.head.timestamp_ms.saturating_add(self.fees.deposit_unbonding_ms);
        let unbonding = self.unbonding(&who).unwrap_or_default();
        let total = unbonding.amount + amount;
        self.set_unbonding(who, Unbonding { amount: total, release_at_ms });
        emit(Event::DepositUnbonding { who, amount, deposit: left, unbonding: total, release_at_ms });
    }

    /// A usage report from `worker`: for an agent of its cluster, bounded.
    pub(super) fn check_usage(&self, worker: &PublicKey, usage: &Usage) -> Result<(), TxError> {
        self.check_worker_command(worker, &usage.agent)?;
        if usage.calls == 0 || usage.calls > REPORT_CALLS_MAX {
            return Err(TxError::Fees(format!("a usage report covers 1 to {REPORT_CALLS_MAX} calls")));
        }
        if usage.cpu_ms > usage.calls.saturating_mul(REPORT_CPU_MS_PER_CALL_MAX)
            || usage.egress_bytes > usage.calls.saturating_mul(REPORT_EGRESS_PER_CALL_MAX)
        {
            return Err(TxError::Fees("a usage report claims more CPU or egress than its calls can use".into()));
        }
        Ok(())
    }

    /// Charges the caller's deposit: per call, the price the calls were
    /// admitted at or the agent's price now, whichever is lower, to the
    /// serving worker's pool (or its operator); the network fee to the treasury.
    pub(super) fn apply_usage(&mut self, worker: PublicKey, usage: Usage, emit: &mut impl FnMut(Event)) {
        let price = self.agents.get(&usage.agent).expect("checked").price.min(usage.price);
        let for_worker = price.saturating_mul(u128::from(usage.calls));
        let network = self.fees.network_fee(usage.calls, usage.cpu_ms, usage.egress_bytes);
        // Calls admitted before a withdrawal are charged to what unbonds too.
        let held = self.deposit(&usage.caller);
        let mut unbonding = self.unbonding(&usage.caller).unwrap_or_default();
        let available = held + unbonding.amount;
        let to_worker = for_worker.min(available);
        let to_treasury = network.min(available - to_worker);
        let unpaid = for_worker + network - to_worker - to_treasury;
        let from_deposit = (to_worker + to_treasury).min(held);
        self.set_deposit(usage.caller, held - from_deposit);
        let from_unbonding = to_worker + to_treasury - from_deposit;
        if from_unbonding > 0 {
            unbonding.amount -= from_unbonding;
            self.set_unbonding(usage.caller, unbonding);
        }
        match self.miners.get(&worker).map(|m| m.pool).and_then(|p| self.pools.get(&p).cloned()) {
            Some(mut pool) if to_worker > 0 => {
                let commission = pool.reward(to_worker);
                let owner = pool.owner;
                self.credit(owner, commission, emit);
                self.serve_withdrawals(pool, emit);
            }
            _ => {
                let operator = self.workers.get(&worker).expect("registered").info.operator;
                self.credit(operator, to_worker, emit);
            }
        }
        self.credit(self.params.treasury, to_treasury, emit);
        emit(Event::UsageCharged {
            agent: usage.agent,
            caller: usage.caller,
            worker,
            calls: usage.calls,
            cpu_ms: usage.cpu_ms,
            egress_bytes: usage.egress_bytes,
            to_worker,
            to_treasury,
            unpaid,
        });
    }
}
