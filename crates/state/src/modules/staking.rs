//! The `staking` module: stake pools, in the shape of Phala's StakePool v2.
//!
//! A pool is run by an owner (who binds workers to it and takes a
//! commission on rewards) and funded by contributors, who get shares at the
//! pool's share price `value / shares`. Rewards raise the value (and so the
//! price) after the owner's commission; slashes lower it. Contributions and
//! withdrawals move value and shares in proportion, so they never move the
//! price except by rounding, which always favours the pool (shares are
//! rounded down when minted, value rounded down when paid out): rounding
//! never creates value.
//!
//! Stake is *free* or *locked* (by mining workers, in the economics issue's
//! computation module). A withdrawal is paid from free stake at once; what
//! free stake cannot cover waits in a FIFO queue, served whenever stake is
//! freed (rewards, a stopped worker's release, new contributions). If the
//! queue's head waits longer than the grace period, the pool's workers are
//! stopped so their stake is released.
//!
//! All arithmetic is integer (planck and shares are `u128`); products are
//! checked, and ratios are taken as `a × b / c` in 256 bits where they could
//! overflow 128.
//!
//! Leaves: `0x06 0x01 ‖ pool id (u64 BE)` one [`Pool`], `0x06 0x02 ‖ pool
//! id ‖ account` one holder's [`Stake`].

use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{Balance, PublicKey};
use std::collections::VecDeque;

pub(crate) const POOL_PREFIX: &[u8] = &[0x06, 0x01];
pub(crate) const STAKE_PREFIX: &[u8] = &[0x06, 0x02];
pub(crate) const VAULT_PREFIX: &[u8] = &[0x06, 0x03];
pub(crate) const VAULT_STAKE_PREFIX: &[u8] = &[0x06, 0x04];

/// Most vaults on a chain.
pub const VAULTS_MAX: usize = 10_000;
/// Most pools one vault delegates to.
pub const VAULT_POOLS_MAX: usize = 64;

/// Parts per million: commissions are `0..=PERMILL`.
pub const PERMILL: u32 = 1_000_000;
/// Most pools on a chain.
pub const POOLS_MAX: usize = 100_000;
/// Most withdrawals waiting in one pool's queue.
pub const WITHDRAW_QUEUE_MAX: usize = 4_096;
/// Smallest contribution, in planck (1 milli-PHA): keeps dust accounts out.
pub const CONTRIBUTION_MIN: Balance = phalanx_primitives::PLANCK_PER_PHA / 1_000;
/// Highest share price (planck per share, rounded up) at which a pool or a
/// vault takes contributions. Shares are minted rounded down, so a
/// contribution loses less than one share's price to rounding; capping the
/// price caps that loss at this many planck (a millionth of a PHA). Shares
/// start at 1 planck each and only rewards raise the price (a value is what
/// the chain's books say, never a balance anyone can send to), so no honest
/// pool comes near it; a pool pumped to inflate its few shares' price is
/// refused instead of robbing the next contributor.
pub const SHARE_PRICE_MAX: Balance = 1_000_000;

/// One queued withdrawal: `shares` of `who`, waiting since `queued_at` (height).
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Withdrawal {
    pub who: PublicKey,
    pub shares: Balance,
    pub queued_at: u64,
}

/// A stake pool.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Pool {
    pub id: u64,
    pub owner: PublicKey,
    /// The owner's cut of rewards, parts per million.
    pub commission: u32,
    /// Most value the pool takes from contributions (`None`: no cap).
    pub cap: Option<Balance>,
    /// Shares held by contributors.
    pub shares: Balance,
    /// Planck backing the shares: free plus locked.
    pub value: Balance,
    /// Value not locked by mining workers.
    pub free: Balance,
    /// Withdrawals waiting for free stake, oldest first.
    pub withdrawals: VecDeque<Withdrawal>,
    pub created_at: u64,
}

/// One holder's shares in one pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Stake {
    pub shares: Balance,
}

/// Why a pool operation cannot happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StakeError {
    #[error("a contribution is at least {CONTRIBUTION_MIN} planck")]
    TooSmall,
    #[error(
        "the share price is {price} planck per share, above the {SHARE_PRICE_MAX} at which contributions are taken (rounding would cost contributors up to a share)"
    )]
    PriceTooHigh { price: Balance },
    #[error("the pool's cap of {cap} planck leaves room for {room} planck")]
    Cap { cap: Balance, room: Balance },
    #[error("the pool has shares but no value left (slashed to zero); it takes no contributions")]
    Bankrupt,
    #[error("withdraw at least one share, at most the {held} you hold")]
    Shares { held: Balance },
    #[error("the withdrawal queue is full ({WITHDRAW_QUEUE_MAX})")]
    QueueFull,
    #[error("arithmetic overflow")]
    Overflow,
}

/// `a × b / c`, rounded down, without overflowing on the product.
pub fn mul_div(a: Balance, b: Balance, c: Balance) -> Option<Balance> {
    if c == 0 {
        return None;
    }
    if let Some(product) = a.checked_mul(b) {
        return Some(product / c);
    }
    let wide = ethnum::U256::from(a) * ethnum::U256::from(b) / ethnum::U256::from(c);
    u128::try_from(wide).ok()
}

/// Planck per share, rounded up (`None` with no shares).
pub fn share_price(value: Balance, shares: Balance) -> Option<Balance> {
    (shares > 0).then(|| value.div_ceil(shares))
}

/// What a withdrawal did now: planck paid out and the shares they bought back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Paid {
    pub shares: Balance,
    pub value: Balance,
}

impl Pool {
    pub fn new(id: u64, owner: PublicKey, commission: u32, cap: Option<Balance>, height: u64) -> Self {
        Pool {
            id,
            owner,
            commission,
            cap,
            shares: 0,
            value: 0,
            free: 0,
            withdrawals: VecDeque::new(),
            created_at: height,
        }
    }

    /// Stake locked by mining workers.
    pub fn locked(&self) -> Balance {
        self.value - self.free
    }

    /// Shares `amount` planck buy now (rounded down: the pool keeps the remainder).
    pub fn shares_for(&self, amount: Balance) -> Result<Balance, StakeError> {
        if self.shares == 0 {
            return Ok(amount);
        }
        if self.value == 0 {
            return Err(StakeError::Bankrupt);
        }
        mul_div(amount, self.shares, self.value).ok_or(StakeError::Overflow)
    }

    /// Planck `shares` are worth now (rounded down).
    pub fn value_of(&self, shares: Balance) -> Balance {
        if self.shares == 0 {
            return 0;
        }
        mul_div(shares, self.value, self.shares).expect("shares ≤ total shares, so the result ≤ value")
    }

    /// Checks a contribution of `amount`; returns the shares it buys.
    pub fn check_contribution(&self, amount: Balance) -> Result<Balance, StakeError> {
        if amount < CONTRIBUTION_MIN {
            return Err(StakeError::TooSmall);
        }
        if let Some(cap) = self.cap {
            let room = cap.saturating_sub(self.value);
            if amount > room {
                return Err(StakeError::Cap { cap, room });
            }
        }
        if let Some(price) = share_price(self.value, self.shares)
            && price > SHARE_PRICE_MAX
        {
            return Err(StakeError::PriceTooHigh { price });
        }
        let shares = self.shares_for(amount)?;
        if shares == 0 {
            return Err(StakeError::TooSmall);
        }
        self.value.checked_add(amount).ok_or(StakeError::Overflow)?;
        self.shares.checked_add(shares).ok_or(StakeError::Overflow)?;
        Ok(shares)
    }

    /// Adds a checked contribution: `amount` planck for `shares`.
    pub fn contribute(&mut self, amount: Balance, shares: Balance) {
        self.value += amount;
        self.free += amount;
        self.shares += shares;
    }

    /// Pays out as much of `shares` as free stake covers: returns what was
    /// paid (the caller credits the holder and debits their shares).
    pub fn pay_out(&mut self, shares: Balance) -> Paid {
        let wanted = self.value_of(shares);
        let (shares, value) = if wanted <= self.free {
            (shares, wanted)
        } else {
            // Only part: the shares free stake buys back, rounded down.
            let part = mul_div(self.free, self.shares, self.value).expect("free ≤ value").min(shares);
            (part, self.value_of(part))
        };
        self.shares -= shares;
        self.value -= value;
        self.free -= value;
        Paid { shares, value }
    }

    /// Adds `reward` planck: the owner's commission (returned, for the owner's
    /// account) comes off first; the rest raises the value as free stake.
    pub fn reward(&mut self, reward: Balance) -> Balance {
        let commission = if self.shares == 0 {
            reward // No holders: everything is the owner's.
        } else {
            mul_div(reward, Balance::from(self.commission), Balance::from(PERMILL)).expect("commission ≤ 1")
        };
        let kept = reward - commission;
        self.value += kept;
        self.free += kept;
        commission
    }

    /// Removes up to `amount` planck of locked stake (a slash); returns what was removed.
    pub fn slash(&mut self, amount: Balance) -> Balance {
        let slashed = amount.min(self.locked());
        self.value -= slashed;
        slashed
    }

    /// Locks `amount` of free stake for a worker (checked by the caller).
    pub fn lock(&mut self, amount: Balance) {
        debug_assert!(amount <= self.free);
        self.free -= amount;
    }

    /// Frees `amount` of locked stake (a stopped worker's, after cooldown).
    pub fn release(&mut self, amount: Balance) {
        debug_assert!(amount <= self.locked());
        self.free += amount;
    }

    /// Whether the queue's head has waited past `grace` blocks at `height`.
    pub fn overdue(&self, height: u64, grace: u64) -> bool {
        self.withdrawals.front().is_some_and(|w| height >= w.queued_at.saturating_add(grace))
    }
}

/// A vault: stake its holders put in, which its owner delegates into stake
/// pools (never into other vaults). Its planck not delegated sit in the
/// vault's own account ([`vault_account`]), which no one holds a key for,
/// and are counted in [`Vault::free`]; its delegated stake is the vault's
/// shares in those pools. The vault's value is both, at the pools' current
/// prices. Transfers to a vault's account are refused. The owner's commission is
/// taken on gains: when the value has grown since the last settlement
/// (rewards in the pools), the owner gets new vault shares worth the
/// commission on the gain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Vault {
    pub id: u64,
    pub owner: PublicKey,
    /// The owner's cut of gains, parts per million.
    pub commission: u32,
    pub shares: Balance,
    /// The vault's value at the last settlement (after its own flows).
    pub settled_value: Balance,
    /// Pools it holds shares in.
    pub pools: Vec<u64>,
    pub withdrawals: VecDeque<Withdrawal>,
    pub created_at: u64,
    /// Planck not delegated, as the vault's own flows put them in its
    /// account (contributions, pool payouts) and took them out (delegations,
    /// payouts): its account's balance may be more (planck credited there
    /// by other means), but only this counts in the vault's value.
    #[serde(default)]
    pub free: Balance,
}

/// The account holding a vault's undelegated planck (and, in pools, its shares).
pub fn vault_account(id: u64) -> PublicKey {
    PublicKey(phalanx_primitives::sha256_parts(&[b"phalanx/vault/v1", &id.to_be_bytes()]).0)
}

pub(crate) fn vault_key(id: u64) -> Vec<u8> {
    [VAULT_PREFIX, &id.to_be_bytes()].concat()
}

pub(crate) fn vault_stake_key(vault: u64, who: &PublicKey) -> Vec<u8> {
    [VAULT_STAKE_PREFIX, &vault.to_be_bytes(), &who.0].concat()
}

pub(crate) fn pool_key(id: u64) -> Vec<u8> {
    [POOL_PREFIX, &id.to_be_bytes()].concat()
}

pub(crate) fn stake_key(pool: u64, who: &PublicKey) -> Vec<u8> {
    [STAKE_PREFIX, &pool.to_be_bytes(), &who.0].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OWNER: PublicKey = PublicKey([7; 32]);
    const PHA: Balance = phalanx_primitives::PLANCK_PER_PHA;

    /// `a/b ≤ c/d` for prices (value per share), exactly.
    fn price_le(a: (Balance, Balance), b: (Balance, Balance)) -> bool {
        ethnum::U256::from(a.0) * ethnum::U256::from(b.1) <= ethnum::U256::from(b.0) * ethnum::U256::from(a.1)
    }

    #[test]
    fn first_contribution_buys_one_share_per_planck_and_rewards_raise_the_price() {
        let mut pool = Pool::new(0, OWNER, 100_000, None, 1);
        let shares = pool.check_contribution(1_000 * PHA).unwrap();
        assert_eq!(shares, 1_000 * PHA);
        pool.contribute(1_000 * PHA, shares);
        let commission = pool.reward(100 * PHA);
        assert_eq!(commission, 10 * PHA, "10% commission");
        assert_eq!(pool.value, 1_090 * PHA);
        // A second contributor pays the new price.
        let bought = pool.check_contribution(109 * PHA).unwrap();
        assert_eq!(bought, 100 * PHA);
        pool.contribute(109 * PHA, bought);
        assert_eq!(pool.pay_out(100 * PHA), Paid { shares: 100 * PHA, value: 109 * PHA });
    }

    #[test]
    fn what_free_stake_cannot_pay_is_left_for_the_queue() {
        let mut pool = Pool::new(0, OWNER, 0, None, 1);
        pool.contribute(100 * PHA, 100 * PHA);
        pool.lock(70 * PHA);
        let paid = pool.pay_out(50 * PHA);
        assert_eq!(paid, Paid { shares: 30 * PHA, value: 30 * PHA });
        assert_eq!(pool.free, 0);
        assert_eq!(pool.slash(100 * PHA), 70 * PHA, "a slash takes locked stake only");
        assert_eq!(pool.value, 0);
        assert_eq!(pool.check_contribution(PHA), Err(StakeError::Bankrupt));
    }

    /// A pool whose few shares were pumped to a high price takes no
    /// contribution: rounding down would cost the contributor up to a share.
    #[test]
    fn contributions_stop_above_the_share_price_cap() {
        let mut pool = Pool::new(0, OWNER, 0, None, 0);
        pool.contribute(CONTRIBUTION_MIN, pool.check_contribution(CONTRIBUTION_MIN).unwrap());
        let all_but_one = pool.shares - 1;
        pool.pay_out(all_but_one);
        assert_eq!((pool.shares, pool.value), (1, 1));
        pool.reward(SHARE_PRICE_MAX - 1);
        assert_eq!(share_price(pool.value, pool.shares), Some(SHARE_PRICE_MAX));
        assert!(pool.check_contribution(CONTRIBUTION_MIN).is_ok(), "at the cap contributions still go in");
        pool.reward(1);
        assert_eq!(
            pool.check_contribution(1_999 * CONTRIBUTION_MIN),
            Err(StakeError::PriceTooHigh { price: SHARE_PRICE_MAX + 1 })
        );
    }

    #[test]
    fn caps_and_minimums_are_enforced() {
        let mut pool = Pool::new(0, OWNER, 0, Some(10 * PHA), 1);
        assert_eq!(pool.check_contribution(CONTRIBUTION_MIN - 1), Err(StakeError::TooSmall));
        pool.contribute(8 * PHA, 8 * PHA);
        assert_eq!(pool.check_contribution(3 * PHA), Err(StakeError::Cap { cap: 10 * PHA, room: 2 * PHA }));
        assert!(pool.check_contribution(2 * PHA).is_ok());
    }

    #[test]
    fn mul_div_is_exact_beyond_128_bit_products() {
        assert_eq!(mul_div(u128::MAX, 3, 3), Some(u128::MAX));
        assert_eq!(mul_div(u128::MAX, 2, 1), None);
        assert_eq!(mul_div(10, 7, 3), Some(23));
        assert_eq!(mul_div(1, 1, 0), None);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Contribute(Balance),
        Withdraw(Balance),
        Reward(Balance),
        Lock(Balance),
        Release(Balance),
        Slash(Balance),
    }

    fn op() -> impl Strategy<Value = Op> {
        let amount = (1u128..=1_000_000u128).prop_map(|n| n * PHA / 1_000 + n % 997);
        prop_oneof![
            amount.clone().prop_map(Op::Contribute),
            (1u128..=1_000_000u128).prop_map(|n| n * PHA / 2_000 + n % 13).prop_map(Op::Withdraw),
            amount.clone().prop_map(Op::Reward),
            amount.clone().prop_map(Op::Lock),
            amount.clone().prop_map(Op::Release),
            amount.prop_map(Op::Slash),
        ]
    }

    proptest! {
        /// Over any sequence: value is conserved (everything that came in
        /// either is in the pool or went out), shares add up, free ≤ value,
        /// and contributions and withdrawals never lower the share price nor
        /// pay more than the holder's exact part.
        #[test]
        fn pool_arithmetic_never_creates_value(commission in 0u32..=PERMILL, ops in proptest::collection::vec(op(), 1..200)) {
            let mut pool = Pool::new(0, OWNER, commission, None, 1);
            let mut held: Balance = 0; // one holder, for the share sum
            let (mut paid_in, mut paid_out, mut rewards, mut commissions, mut slashed): (Balance, Balance, Balance, Balance, Balance) = (0, 0, 0, 0, 0);
            for op in ops {
                let before = (pool.value, pool.shares);
                match op {
                    Op::Contribute(amount) => {
                        if let Ok(shares) = pool.check_contribution(amount) {
                            pool.contribute(amount, shares);
                            held += shares;
                            paid_in += amount;
                            if before.1 > 0 {
                                prop_assert!(price_le(before, (pool.value, pool.shares)), "a contribution lowered the price");
                            }
                        }
                    }
                    Op::Withdraw(shares) => {
                        let shares = shares.min(held);
                        let paid = pool.pay_out(shares);
                        prop_assert!(paid.shares <= shares);
                        // Never more than the exact part of the value the shares bought back.
                        prop_assert!(
                            ethnum::U256::from(paid.value) * ethnum::U256::from(before.1)
                                <= ethnum::U256::from(paid.shares) * ethnum::U256::from(before.0)
                        );
                        held -= paid.shares;
                        paid_out += paid.value;
                        if pool.shares > 0 && before.1 > 0 {
                            prop_assert!(price_le(before, (pool.value, pool.shares)), "a withdrawal lowered the price");
                        }
                    }
                    Op::Reward(amount) => {
                        let commission = pool.reward(amount);
                        rewards += amount;
                        commissions += commission;
                    }
                    Op::Lock(amount) => pool.lock(amount.min(pool.free)),
                    Op::Release(amount) => pool.release(amount.min(pool.locked())),
                    Op::Slash(amount) => slashed += pool.slash(amount),
                }
                prop_assert_eq!(pool.shares, held);
                prop_assert!(pool.free <= pool.value);
                prop_assert_eq!(paid_in + rewards, pool.value + paid_out + commissions + slashed, "value conserved");
            }
            // With all stake freed the last holder cashes out every share
            // and gets the whole value: nothing is stranded in the pool.
            pool.release(pool.locked());
            let value = pool.value;
            let last = pool.pay_out(held);
            prop_assert_eq!(last.shares, held);
            prop_assert_eq!(last.value, value, "the last holder gets the whole value");
            prop_assert_eq!((pool.shares, pool.value, pool.free), (0, 0, 0));
        }
    }
}
