//! Vault transactions: create, contribute, withdraw (holders), delegate
//! and undelegate (the owner), and the per-block rule that serves vault
//! withdrawal queues and, past the grace period, pulls the vault's stake out
//! of its pools.
//!
//! A vault holds planck in its own account and shares in pools *as that
//! account*, so pools treat it as any holder (their queues, grace periods
//! and rewards apply), and the chain's books stay: issuance = accounts
//! (vault accounts included) + pools.

use super::State;
use crate::error::TxError;
use crate::events::Event;
use crate::modules::staking::{
    self, PERMILL, Stake, VAULT_POOLS_MAX, VAULTS_MAX, Vault, WITHDRAW_QUEUE_MAX, Withdrawal, mul_div, vault_account,
};
use phalanx_primitives::{Balance, PublicKey, encode};

impl State {
    /// A vault by id.
    pub fn vault(&self, id: u64) -> Option<&Vault> {
        self.vaults.get(&id)
    }

    /// All vaults in id order.
    pub fn vaults(&self) -> impl Iterator<Item = &Vault> {
        self.vaults.values()
    }

    /// `who`'s shares of vault `id`.
    pub fn vault_stake(&self, id: u64, who: &PublicKey) -> Stake {
        self.vault_stakes.get(&(id, *who)).copied().unwrap_or_default()
    }

    /// Every holder's shares of vault `id`.
    pub fn vault_stakes_in(&self, id: u64) -> impl Iterator<Item = (&PublicKey, &Stake)> {
        self.vault_stakes.range((id, PublicKey([0; 32]))..=(id, PublicKey([0xff; 32]))).map(|((_, who), s)| (who, s))
    }

    /// The vault's planck not delegated, as its books say ([`Vault::free`]).
    pub fn vault_free(&self, id: u64) -> Balance {
        self.vaults.get(&id).map_or(0, |v| v.free)
    }

    /// The vault owning `account`, if it is a vault's account.
    pub fn vault_of_account(&self, account: &PublicKey) -> Option<u64> {
        self.vault_accounts.get(account).copied()
    }

    /// The vault's value now: its undelegated planck (as its books say, never
    /// its account's raw balance) plus its pool shares at the pools' prices.
    pub fn vault_value(&self, vault: &Vault) -> Balance {
        let me = vault_account(vault.id);
        let delegated: Balance = vault
            .pools
            .iter()
            .filter_map(|p| self.pools.get(p).map(|pool| pool.value_of(self.stake(*p, &me).shares)))
            .sum();
        vault.free + delegated
    }

    /// A pool paid `amount` to `who`: if `who` is a vault's account, the
    /// vault's books count it.
    pub(super) fn vault_received(&mut self, who: &PublicKey, amount: Balance) {
        if let Some(id) = self.vault_of_account(who)
            && let Some(mut vault) = self.vaults.get(&id).cloned()
        {
            vault.free += amount;
            self.set_vault(vault);
        }
    }

    fn set_vault(&mut self, vault: Vault) {
        self.write(staking::vault_key(vault.id), encode(&vault));
        self.vaults.insert(vault.id, vault);
    }

    fn set_vault_stake(&mut self, id: u64, who: PublicKey, stake: Stake) {
        self.write(staking::vault_stake_key(id, &who), encode(&stake));
        self.vault_stakes.insert((id, who), stake);
    }

    fn found_vault(&self, id: u64) -> Result<&Vault, TxError> {
        self.vaults.get(&id).ok_or_else(|| TxError::Staking(format!("no vault {id}")))
    }

    fn owned_vault(&self, signer: &PublicKey, id: u64) -> Result<&Vault, TxError> {
        let vault = self.found_vault(id)?;
        if &vault.owner != signer {
            return Err(TxError::Staking(format!("only the owner of vault {id} delegates its stake")));
        }
        Ok(vault)
    }

    pub(super) fn check_create_vault(&self, commission: u32) -> Result<(), TxError> {
        if commission > PERMILL {
            return Err(TxError::Staking(format!("a commission is 0 to {PERMILL} parts per million")));
        }
        if self.vaults.len() >= VAULTS_MAX {
            return Err(TxError::Staking(format!("the chain holds at most {VAULTS_MAX} vaults")));
        }
        Ok(())
    }

    pub(super) fn apply_create_vault(&mut self, owner: PublicKey, commission: u32, emit: &mut impl FnMut(Event)) {
        let id = self.vaults.len() as u64;
        let vault = Vault {
            id,
            owner,
            commission,
            shares: 0,
            settled_value: 0,
            pools: Vec::new(),
            withdrawals: Default::default(),
            created_at: self.head.height,
            free: 0,
        };
        self.vault_accounts.insert(vault_account(id), id);
        self.set_vault(vault);
        emit(Event::VaultCreated { vault: id, owner, commission });
    }

    /// Shares `amount` buys in a vault worth `value` with `shares` out.
    fn vault_shares_for(value: Balance, shares: Balance, amount: Balance) -> Result<Balance, TxError> {
        if shares == 0 {
            return Ok(amount);
        }
        if value == 0 {
            return Err(TxError::Staking("the vault has shares but no value; it takes no contributions".into()));
        }
        mul_div(amount, shares, value).ok_or(TxError::Overflow("vault shares"))
    }

    pub(super) fn check_vault_contribute(&self, id: u64, amount: Balance) -> Result<(), TxError> {
        let vault = self.found_vault(id)?;
        if amount < staking::CONTRIBUTION_MIN {
            return Err(TxError::Staking(format!("vault {id}: {}", staking::StakeError::TooSmall)));
        }
        let (value, shares) = self.settled_view(vault);
        if let Some(price) = staking::share_price(value, shares)
            && price > staking::SHARE_PRICE_MAX
        {
            return Err(TxError::Staking(format!("vault {id}: {}", staking::StakeError::PriceTooHigh { price })));
        }
        if Self::vault_shares_for(value, shares, amount)? == 0 {
            return Err(TxError::Staking(format!("vault {id}: {amount} planck buy no share at its price")));
        }
        Ok(())
    }

    pub(super) fn check_vault_withdraw(&self, who: &PublicKey, id: u64, shares: Balance) -> Result<(), TxError> {
        let vault = self.found_vault(id)?;
        let held = self.vault_stake(id, who).shares;
        if shares == 0 || shares > held {
            return Err(TxError::Staking(format!("vault {id}: {}", staking::StakeError::Shares { held })));
        }
        let queued = vault.withdrawals.iter().any(|w| &w.who == who);
        if !queued && vault.withdrawals.len() >= WITHDRAW_QUEUE_MAX {
            return Err(TxError::Staking(format!("vault {id}: {}", staking::StakeError::QueueFull)));
        }
        Ok(())
    }

    pub(super) fn check_delegate(
        &self,
        signer: &PublicKey,
        id: u64,
        pool: u64,
        amount: Balance,
    ) -> Result<(), TxError> {
        let vault = self.owned_vault(signer, id)?;
        if !vault.withdrawals.is_empty() {
            return Err(TxError::Staking(format!(
                "vault {id} has {} withdrawals waiting: its undelegated planck pays them first",
                vault.withdrawals.len()
            )));
        }
        let free = self.vault_free(id);
        if amount > free {
            return Err(TxError::Staking(format!("vault {id} has {free} planck not delegated")));
        }
        if !vault.pools.contains(&pool) && vault.pools.len() >= VAULT_POOLS_MAX {
            return Err(TxError::Staking(format!("a vault delegates to at most {VAULT_POOLS_MAX} pools")));
        }
        self.check_contribute(pool, amount)
    }

    pub(super) fn check_undelegate(
        &self,
        signer: &PublicKey,
        id: u64,
        pool: u64,
        shares: Balance,
    ) -> Result<(), TxError> {
        self.owned_vault(signer, id)?;
        self.check_withdraw(&vault_account(id), pool, shares)
    }

    /// The vault's value and shares once its gains are settled (the owner's
    /// commission minted as shares), without writing anything.
    fn settled_view(&self, vault: &Vault) -> (Balance, Balance) {
        let value = self.vault_value(vault);
        let owner_shares = Self::commission_shares(vault, value);
        (value, vault.shares + owner_shares)
    }

    /// Shares worth the owner's commission on the gain since the last settlement.
    fn commission_shares(vault: &Vault, value: Balance) -> Balance {
        let gain = value.saturating_sub(vault.settled_value);
        if gain == 0 || vault.shares == 0 || vault.commission == 0 {
            return 0;
        }
        let commission = mul_div(gain, Balance::from(vault.commission), Balance::from(PERMILL)).expect("≤ gain");
        // New shares s with s / (S + s) × value = commission.
        let rest = value - commission;
        if rest == 0 { 0 } else { mul_div(commission, vault.shares, rest).unwrap_or(0) }
    }

    /// Mints the owner's commission on gains as shares; returns the vault.
    fn settle_vault(&mut self, id: u64, emit: &mut impl FnMut(Event)) -> Vault {
        let mut vault = self.vaults.get(&id).expect("checked").clone();
        let value = self.vault_value(&vault);
        let minted = Self::commission_shares(&vault, value);
        if minted > 0 {
            let mut stake = self.vault_stake(id, &vault.owner);
            stake.shares += minted;
            self.set_vault_stake(id, vault.owner, stake);
            vault.shares += minted;
            emit(Event::VaultCommission { vault: id, owner: vault.owner, shares: minted });
        }
        vault.settled_value = value;
        vault
    }

    /// Moves planck between accounts (vault flows carry no fee).
    fn move_planck(&mut self, from: PublicKey, to: PublicKey, amount: Balance, emit: &mut impl FnMut(Event)) {
        let mut account = self.account(&from).expect("checked");
        account.free -= amount;
        self.set_account(from, account);
        self.credit(to, amount, emit);
    }

    pub(super) fn apply_vault_contribute(
        &mut self,
        who: PublicKey,
        id: u64,
        amount: Balance,
        emit: &mut impl FnMut(Event),
    ) {
        let mut vault = self.settle_vault(id, emit);
        let shares = Self::vault_shares_for(vault.settled_value, vault.shares, amount).expect("checked");
        self.move_planck(who, vault_account(id), amount, emit);
        let mut stake = self.vault_stake(id, &who);
        stake.shares += shares;
        self.set_vault_stake(id, who, stake);
        vault.shares += shares;
        vault.free += amount;
        vault.settled_value += amount;
        emit(Event::VaultContributed { vault: id, who, amount, shares });
        self.serve_vault(vault, emit);
    }

    pub(super) fn apply_vault_withdraw(
        &mut self,
        who: PublicKey,
        id: u64,
        shares: Balance,
        emit: &mut impl FnMut(Event),
    ) {
        let mut vault = self.settle_vault(id, emit);
        vault.withdrawals.retain(|w| w.who != who);
        vault.withdrawals.push_back(Withdrawal { who, shares, queued_at: self.head.height });
        self.serve_vault(vault, emit);
    }

    pub(super) fn apply_delegate(&mut self, id: u64, pool: u64, amount: Balance, emit: &mut impl FnMut(Event)) {
        let mut vault = self.settle_vault(id, emit);
        if !vault.pools.contains(&pool) {
            vault.pools.push(pool);
        }
        vault.free -= amount;
        self.set_vault(vault);
        self.apply_contribute(vault_account(id), pool, amount, emit);
        let mut vault = self.vaults.get(&id).expect("stored").clone();
        vault.settled_value = self.vault_value(&vault);
        self.set_vault(vault);
    }

    pub(super) fn apply_undelegate(&mut self, id: u64, pool: u64, shares: Balance, emit: &mut impl FnMut(Event)) {
        let vault = self.settle_vault(id, emit);
        self.set_vault(vault);
        self.apply_withdraw(vault_account(id), pool, shares, emit);
        let vault = self.vaults.get(&id).expect("stored").clone();
        self.serve_vault(vault, emit);
    }

    /// Pays the vault's queued withdrawals, oldest first, from its free
    /// planck; records the value after them; stores the vault.
    fn serve_vault(&mut self, mut vault: Vault, emit: &mut impl FnMut(Event)) {
        let me = vault_account(vault.id);
        while let Some(head) = vault.withdrawals.front().copied() {
            let shares = head.shares.min(self.vault_stake(vault.id, &head.who).shares);
            let value = self.vault_value(&vault);
            let free = vault.free;
            let worth = if vault.shares == 0 { 0 } else { mul_div(shares, value, vault.shares).expect("≤ value") };
            let (paid_shares, paid) = if worth <= free {
                (shares, worth)
            } else {
                let part =
                    if value == 0 { 0 } else { mul_div(free, vault.shares, value).expect("≤ shares").min(shares) };
                (part, mul_div(part, value, vault.shares).expect("≤ value"))
            };
            if paid_shares > 0 {
                let mut stake = self.vault_stake(vault.id, &head.who);
                stake.shares -= paid_shares;
                self.set_vault_stake(vault.id, head.who, stake);
                vault.shares -= paid_shares;
                vault.free -= paid;
                self.move_planck(me, head.who, paid, emit);
                emit(Event::VaultWithdrawn { vault: vault.id, who: head.who, shares: paid_shares, amount: paid });
            }
            if paid_shares == shares {
                vault.withdrawals.pop_front();
            } else {
                vault.withdrawals[0].shares = shares - paid_shares;
                break;
            }
        }
        vault.settled_value = self.vault_value(&vault);
        self.set_vault(vault);
    }

    /// Per block: serve vault queues (pool payouts may have arrived); a
    /// vault whose oldest withdrawal waited past the grace period asks every
    /// pool it is in for all its shares back.
    pub(super) fn begin_vaults_block(&mut self, emit: &mut impl FnMut(Event)) {
        let waiting: Vec<u64> = self.vaults.values().filter(|v| !v.withdrawals.is_empty()).map(|v| v.id).collect();
        let height = self.head.height;
        for id in waiting {
            let vault = self.settle_vault(id, emit);
            self.serve_vault(vault, emit);
            // Judged after serving: a queue just paid asks nothing of the pools.
            let vault = self.vaults.get(&id).expect("stored").clone();
            let overdue = vault
                .withdrawals
                .front()
                .is_some_and(|w| height >= w.queued_at.saturating_add(self.mining.grace_blocks));
            if !overdue {
                continue;
            }
            let me = vault_account(id);
            let mut pulled = false;
            for pool in vault.pools.clone() {
                let shares = self.stake(pool, &me).shares;
                // Each pool is asked once: a request already waiting keeps its place and date.
                let asked = self.pools.get(&pool).is_some_and(|p| p.withdrawals.iter().any(|w| w.who == me));
                if shares > 0 && !asked && self.check_withdraw(&me, pool, shares).is_ok() {
                    self.apply_withdraw(me, pool, shares, emit);
                    pulled = true;
                }
            }
            if pulled {
                emit(Event::VaultUndelegated { vault: id });
                let vault = self.vaults.get(&id).expect("stored").clone();
                self.serve_vault(vault, emit);
            }
        }
    }
}
