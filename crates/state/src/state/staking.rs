//! Stake pool transactions: create, contribute, withdraw (the arithmetic
//! and its rules are in `modules::staking`).
//!
//! A withdrawal pays what free stake covers at once and queues the rest;
//! an account has at most one queued withdrawal per pool (a new request
//! replaces it, as in Phala). Whenever free stake grows, the queue is
//! served oldest first.

use super::State;
use crate::error::TxError;
use crate::events::Event;
use crate::modules::staking::{self, PERMILL, POOLS_MAX, Pool, Stake, WITHDRAW_QUEUE_MAX, Withdrawal};
use phalanx_primitives::{Balance, PublicKey, encode};

impl State {
    /// A pool by id.
    pub fn pool(&self, id: u64) -> Option<&Pool> {
        self.pools.get(&id)
    }

    /// All pools in id order.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    /// `who`'s stake in pool `id`.
    pub fn stake(&self, id: u64, who: &PublicKey) -> Stake {
        self.stakes.get(&(id, *who)).copied().unwrap_or_default()
    }

    /// Every holder's stake in pool `id`.
    pub fn stakes_in(&self, id: u64) -> impl Iterator<Item = (&PublicKey, &Stake)> {
        self.stakes.range((id, PublicKey([0; 32]))..=(id, PublicKey([0xff; 32]))).map(|((_, who), s)| (who, s))
    }

    pub(super) fn set_pool(&mut self, pool: Pool) {
        self.write(staking::pool_key(pool.id), encode(&pool));
        self.pools.insert(pool.id, pool);
    }

    fn set_stake(&mut self, id: u64, who: PublicKey, stake: Stake) {
        self.write(staking::stake_key(id, &who), encode(&stake));
        self.stakes.insert((id, who), stake);
    }

    pub(super) fn check_create_pool(&self, commission: u32, cap: Option<Balance>) -> Result<(), TxError> {
        if commission > PERMILL {
            return Err(TxError::Staking(format!("a commission is 0 to {PERMILL} parts per million")));
        }
        if cap == Some(0) {
            return Err(TxError::Staking("a cap of 0 would take no stake; leave it out for no cap".into()));
        }
        if self.pools.len() >= POOLS_MAX {
            return Err(TxError::Staking(format!("the chain holds at most {POOLS_MAX} pools")));
        }
        Ok(())
    }

    pub(super) fn check_contribute(&self, id: u64, amount: Balance) -> Result<(), TxError> {
        let pool = self.pools.get(&id).ok_or_else(|| TxError::Staking(format!("no pool {id}")))?;
        pool.check_contribution(amount).map_err(|e| TxError::Staking(format!("pool {id}: {e}")))?;
        Ok(())
    }

    pub(super) fn check_withdraw(&self, who: &PublicKey, id: u64, shares: Balance) -> Result<(), TxError> {
        let pool = self.pools.get(&id).ok_or_else(|| TxError::Staking(format!("no pool {id}")))?;
        let held = self.stake(id, who).shares;
        if shares == 0 || shares > held {
            return Err(TxError::Staking(format!("pool {id}: {}", staking::StakeError::Shares { held })));
        }
        let queued = pool.withdrawals.iter().any(|w| &w.who == who);
        let must_queue = pool.value_of(shares) > pool.free;
        if must_queue && !queued && pool.withdrawals.len() >= WITHDRAW_QUEUE_MAX {
            return Err(TxError::Staking(format!("pool {id}: {}", staking::StakeError::QueueFull)));
        }
        Ok(())
    }

    pub(super) fn apply_create_pool(
        &mut self,
        owner: PublicKey,
        commission: u32,
        cap: Option<Balance>,
        emit: &mut impl FnMut(Event),
    ) {
        let id = self.pools.len() as u64;
        self.set_pool(Pool::new(id, owner, commission, cap, self.head.height));
        emit(Event::PoolCreated { pool: id, owner, commission });
    }

    pub(super) fn apply_contribute(&mut self, who: PublicKey, id: u64, amount: Balance, emit: &mut impl FnMut(Event)) {
        let mut pool = self.pools.get(&id).expect("checked").clone();
        let shares = pool.check_contribution(amount).expect("checked");
        let mut account = self.account(&who).expect("signer exists");
        account.free -= amount;
        self.set_account(who, account);
        pool.contribute(amount, shares);
        let mut stake = self.stake(id, &who);
        stake.shares += shares;
        self.set_stake(id, who, stake);
        emit(Event::Contributed { pool: id, who, amount, shares });
        self.serve_withdrawals(pool, emit);
    }

    pub(super) fn apply_withdraw(&mut self, who: PublicKey, id: u64, shares: Balance, emit: &mut impl FnMut(Event)) {
        let mut pool = self.pools.get(&id).expect("checked").clone();
        // A new request replaces the account's queued one, in its place and
        // with its date (asking again never restarts the grace period).
        let waiting = pool.withdrawals.iter().position(|w| w.who == who);
        let paid = if waiting.is_some() { staking::Paid::default() } else { pool.pay_out(shares) };
        self.pay_holder(id, who, paid, emit);
        let rest = shares - paid.shares;
        match waiting {
            Some(at) => pool.withdrawals[at].shares = rest,
            None if rest > 0 => {
                pool.withdrawals.push_back(Withdrawal { who, shares: rest, queued_at: self.head.height })
            }
            None => {}
        }
        if rest > 0 {
            emit(Event::WithdrawalQueued { pool: id, who, shares: rest });
        }
        self.set_pool(pool);
        if waiting.is_some() {
            // Older requests come first; this one is served in its place.
            let pool = self.pools.get(&id).expect("stored").clone();
            self.serve_withdrawals(pool, emit);
        }
    }

    /// Credits a holder for shares the pool bought back.
    fn pay_holder(&mut self, id: u64, who: PublicKey, paid: staking::Paid, emit: &mut impl FnMut(Event)) {
        if paid.shares == 0 {
            return;
        }
        let mut stake = self.stake(id, &who);
        stake.shares -= paid.shares;
        self.set_stake(id, who, stake);
        self.credit(who, paid.value, emit);
        self.vault_received(&who, paid.value);
        emit(Event::Withdrawn { pool: id, who, shares: paid.shares, amount: paid.value });
    }

    /// Pays queued withdrawals, oldest first, while free stake lasts; stores the pool.
    pub(super) fn serve_withdrawals(&mut self, mut pool: Pool, emit: &mut impl FnMut(Event)) {
        while let Some(head) = pool.withdrawals.front().copied() {
            // The holder may have fewer shares now than when they queued.
            let shares = head.shares.min(self.stake(pool.id, &head.who).shares);
            let paid = pool.pay_out(shares);
            self.pay_holder(pool.id, head.who, paid, emit);
            if paid.shares == shares {
                pool.withdrawals.pop_front();
            } else {
                pool.withdrawals[0].shares = shares - paid.shares;
                break;
            }
        }
        self.set_pool(pool);
    }
}
