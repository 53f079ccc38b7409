//! Deposits and usage charges (the rules are in `modules::fees`).

use super::State;
use crate::error::TxError;
use crate::events::Event;
use crate::modules::fees::{self, FeeParams, REPORT_CALLS_MAX, REPORT_CPU_MS_PER_CALL_MAX, REPORT_EGRESS_PER_CALL_MAX};
use phalanx_primitives::{Balance, Hash, PublicKey, encode};

/// One usage report, as a worker sends it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Usage {
    pub agent: Hash,
    pub caller: PublicKey,
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

    pub(super) fn apply_withdraw_deposit(&mut self, who: PublicKey, amount: Balance, emit: &mut impl FnMut(Event)) {
        let left = self.deposit(&who) - amount;
        self.set_deposit(who, left);
        self.credit(who, amount, emit);
        emit(Event::DepositWithdrawn { who, amount, deposit: left });
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

    /// Charges the caller's deposit: the agent's price per call to the
    /// serving worker's pool (or its operator), the network fee to the treasury.
    pub(super) fn apply_usage(&mut self, worker: PublicKey, usage: Usage, emit: &mut impl FnMut(Event)) {
        let price = self.agents.get(&usage.agent).expect("checked").price;
        let for_worker = price.saturating_mul(u128::from(usage.calls));
        let network = self.fees.network_fee(usage.calls, usage.cpu_ms, usage.egress_bytes);
        let mut deposit = self.deposit(&usage.caller);
        let to_worker = for_worker.min(deposit);
        deposit -= to_worker;
        let to_treasury = network.min(deposit);
        deposit -= to_treasury;
        let unpaid = for_worker + network - to_worker - to_treasury;
        self.set_deposit(usage.caller, deposit);
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
