//! The `computation` module: mining, in the shape of Phala's computation
//! pallet.
//!
//! A pool owner binds registered workers (which they operate) to their pool
//! and starts them mining with stake locked from the pool's free stake (at
//! least `stake_per_score × P`, P the worker's benchmark score). A mining
//! worker has a value score V (it starts at its stake, rises while the
//! worker answers heartbeat challenges, up to twice the stake, and decays
//! while it does not) and a share `√(V² + (2·P·conf)²)` (V in whole PHA,
//! conf the confidence factor of its attestation: 1 for levels 1–3, 0.8 for
//! 4, 0.7 for 5). The chain challenges each mining worker at a height drawn
//! from its randomness; the worker answers with a signed message within the
//! window. An answer pays the blocks since the last payout: `reward per
//! block × blocks × share / total share`, 80% to the worker's pool (the
//! owner's commission first) and 20% to the treasury, minted within the
//! genesis reward budget. A challenge left unanswered makes the worker
//! unresponsive: its share leaves the total (no rewards) and V decays until
//! it answers again. Stopping starts a cooldown, after which the stake
//! returns to the pool's free stake. A pool whose oldest withdrawal waited
//! past the grace period has its workers stopped.
//!
//! Everything is integer: V in planck, shares and ratios in `u128`, ppm
//! (parts per million) for rates.
//!
//! Leaves: `0x07 0x00` [`MiningTotals`], `0x07 0x01 ‖ worker` one [`Miner`],
//! `0x07 0x02` [`MiningParams`].

use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{Balance, Hash, PLANCK_PER_PHA, PublicKey};

pub(crate) const TOTALS_KEY: &[u8] = &[0x07, 0x00];
pub(crate) const MINER_PREFIX: &[u8] = &[0x07, 0x01];
pub(crate) const PARAMS_KEY: &[u8] = &[0x07, 0x02];

/// Parts per million.
pub const PPM: u128 = 1_000_000;
/// Most workers mining (or cooling down) at once.
pub const MINERS_MAX: usize = 100_000;

/// Mining parameters, in the genesis file (`mining`); absent means these defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MiningParams {
    /// Planck minted per block for all mining workers together.
    pub reward_per_block: Balance,
    /// Most planck mining ever mints.
    pub reward_budget: Balance,
    /// The treasury's part of each reward, ppm.
    pub treasury_ppm: u32,
    /// Minimum stake per point of benchmark score, planck.
    pub stake_per_score: Balance,
    /// Blocks between challenges on average (the next one comes 1 to
    /// 2 × this many blocks after an answer).
    pub challenge_interval: u64,
    /// Blocks a worker has to answer a challenge.
    pub challenge_window: u64,
    /// V rises by this ppm of itself per block while the worker answers.
    pub v_rise_ppm: u32,
    /// V decays by this ppm of itself per block while it does not.
    pub v_decay_ppm: u32,
    /// Blocks from stopping to the stake's release.
    pub cooldown_blocks: u64,
    /// Blocks a pool's oldest withdrawal may wait before its workers are stopped.
    pub grace_blocks: u64,
}

impl Default for MiningParams {
    fn default() -> Self {
        MiningParams {
            reward_per_block: 2 * PLANCK_PER_PHA,
            reward_budget: 300_000_000 * PLANCK_PER_PHA,
            treasury_ppm: 200_000,
            stake_per_score: PLANCK_PER_PHA / 1_000,
            challenge_interval: 20,
            challenge_window: 10,
            v_rise_ppm: 100,
            v_decay_ppm: 1_000,
            cooldown_blocks: 100,
            grace_blocks: 200,
        }
    }
}

/// What a bound worker is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MinerState {
    /// Bound to a pool, not mining.
    Ready,
    Mining,
    /// Missed a challenge: no rewards, V decays, until it answers the next one.
    Unresponsive,
    /// Stopped: the stake returns to the pool at `cooldown_until`.
    CoolingDown,
}

/// A worker bound to a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Miner {
    pub worker: PublicKey,
    pub pool: u64,
    pub state: MinerState,
    /// Locked from the pool while mining or cooling down.
    pub stake: Balance,
    /// The value score, in planck.
    pub v: Balance,
    /// Benchmark score P when mining started.
    pub score: u64,
    /// Confidence factor, per mille.
    pub conf_permille: u32,
    /// This worker's part of [`MiningTotals::total_share`] (0 unless mining).
    pub share: u128,
    /// Height up to which rewards were paid and V updated.
    pub settled_at: u64,
    /// The pending challenge's height and the last height to answer it.
    pub challenge_at: u64,
    pub deadline: u64,
    pub cooldown_until: u64,
    /// Planck earned for the pool in all (before commission), for reports.
    pub earned: Balance,
}

impl Miner {
    /// The height at which the block-level rules must look at this miner:
    /// the block after its answer deadline (mining or unresponsive), or the
    /// end of its cooldown; `None` when no block rule applies to it.
    pub fn due_at(&self) -> Option<u64> {
        match self.state {
            MinerState::Mining | MinerState::Unresponsive => Some(self.deadline.saturating_add(1)),
            MinerState::CoolingDown => Some(self.cooldown_until),
            MinerState::Ready => None,
        }
    }
}

/// Indexes over the miners, derived from them (never stored, so they add
/// nothing to the root): which miners are due at which height, and which
/// are bound to which pool. The block-level rules read these instead of
/// passing over every miner every block.
#[derive(Clone, Debug, Default)]
pub struct MinerIndex {
    due: imbl::OrdSet<(u64, PublicKey)>,
    by_pool: imbl::OrdSet<(u64, PublicKey)>,
}

impl MinerIndex {
    /// Records that a miner changed from `old` (absent when new) to `new`.
    pub fn update(&mut self, old: Option<&Miner>, new: &Miner) {
        if let Some(old) = old {
            if let Some(at) = old.due_at() {
                self.due.remove(&(at, old.worker));
            }
            self.by_pool.remove(&(old.pool, old.worker));
        }
        if let Some(at) = new.due_at() {
            self.due.insert((at, new.worker));
        }
        self.by_pool.insert((new.pool, new.worker));
    }

    /// Miners due at or before `height`, earliest first.
    pub fn due_by(&self, height: u64) -> Vec<PublicKey> {
        self.due.range(..=(height, PublicKey([0xff; 32]))).map(|(_, worker)| *worker).collect()
    }

    /// Workers bound to pool `id`.
    pub fn of_pool(&self, id: u64) -> Vec<PublicKey> {
        self.by_pool.range((id, PublicKey([0; 32]))..=(id, PublicKey([0xff; 32]))).map(|(_, worker)| *worker).collect()
    }
}

/// Chain-wide mining figures.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub struct MiningTotals {
    /// Sum of the shares of mining workers.
    pub total_share: u128,
    /// Planck minted as rewards so far (≤ the budget).
    pub minted: Balance,
    /// Chained from every block's parent hash: where challenges are drawn from.
    pub randomness: Hash,
}

/// The confidence factor of an attestation level, per mille (Phala's values).
pub fn conf_permille(confidence: u8) -> u32 {
    match confidence {
        0..=3 => 1_000,
        4 => 800,
        _ => 700,
    }
}

/// `√(V² + (2·P·conf)²)`, V in whole PHA.
pub fn share(v: Balance, score: u64, conf_permille: u32) -> u128 {
    let v = v / PLANCK_PER_PHA;
    let p = 2 * u128::from(score) * u128::from(conf_permille) / 1_000;
    (v * v + p * p).isqrt()
}

/// V after `blocks` of answering: `V × (1 + rise)^blocks`, approximated
/// per settlement as `V + V × rise × blocks`, capped at twice the stake.
pub fn risen(v: Balance, stake: Balance, rise_ppm: u32, blocks: u64) -> Balance {
    let rise = crate::modules::staking::mul_div(v, u128::from(rise_ppm) * u128::from(blocks), PPM).unwrap_or(u128::MAX);
    v.saturating_add(rise).min(stake.saturating_mul(2))
}

/// V after `blocks` unresponsive: `V − V × decay × blocks`, at least 0.
pub fn decayed(v: Balance, decay_ppm: u32, blocks: u64) -> Balance {
    let decay =
        crate::modules::staking::mul_div(v, u128::from(decay_ppm) * u128::from(blocks), PPM).unwrap_or(u128::MAX);
    v.saturating_sub(decay)
}

/// The reward for `share` of `total` over `blocks`, within what the budget has left.
pub fn reward(params: &MiningParams, share: u128, total: u128, blocks: u64, minted: Balance) -> Balance {
    if total == 0 || share == 0 {
        return 0;
    }
    let budget = params.reward_per_block.saturating_mul(u128::from(blocks));
    let due = crate::modules::staking::mul_div(budget, share, total).unwrap_or(0);
    due.min(params.reward_budget.saturating_sub(minted))
}

/// The height of the next challenge after `height`, from `randomness`.
pub fn next_challenge(randomness: &Hash, worker: &PublicKey, height: u64, interval: u64) -> u64 {
    let draw =
        phalanx_primitives::sha256_parts(&[b"phalanx/challenge/v1", &randomness.0, &worker.0, &height.to_le_bytes()]);
    let value = u64::from_le_bytes(draw.0[..8].try_into().expect("8 bytes"));
    height + 1 + value % (2 * interval.max(1))
}

pub(crate) fn miner_key(worker: &PublicKey) -> Vec<u8> {
    [MINER_PREFIX, &worker.0].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHA: Balance = PLANCK_PER_PHA;

    #[test]
    fn the_miner_index_follows_state_deadline_cooldown_and_pool() {
        let miner = |n: u8, pool: u64, state: MinerState, deadline: u64, cooldown_until: u64| Miner {
            worker: PublicKey([n; 32]),
            pool,
            state,
            stake: 0,
            v: 0,
            score: 0,
            conf_permille: 1_000,
            share: 0,
            settled_at: 0,
            challenge_at: 0,
            deadline,
            cooldown_until,
            earned: 0,
        };
        let mut index = MinerIndex::default();
        let a = miner(1, 7, MinerState::Mining, 10, 0);
        let b = miner(2, 7, MinerState::Ready, 5, 0);
        let c = miner(3, 8, MinerState::CoolingDown, 0, 12);
        for m in [&a, &b, &c] {
            index.update(None, m);
        }
        assert_eq!(index.due_by(10), Vec::<PublicKey>::new(), "a is due the block after its deadline");
        assert_eq!(index.due_by(11), vec![a.worker]);
        assert_eq!(index.due_by(12), vec![a.worker, c.worker]);
        assert_eq!(index.of_pool(7), vec![a.worker, b.worker]);
        // a answers (new deadline 30) and moves to pool 8; c's cooldown ends (ready).
        let a2 = Miner { deadline: 30, pool: 8, ..a };
        let c2 = Miner { state: MinerState::Ready, ..c };
        index.update(Some(&a), &a2);
        index.update(Some(&c), &c2);
        assert_eq!(index.due_by(29), Vec::<PublicKey>::new());
        assert_eq!(index.due_by(31), vec![a.worker]);
        assert_eq!(index.of_pool(7), vec![b.worker]);
        assert_eq!(index.of_pool(8), vec![a.worker, c.worker]);
        assert!(index.of_pool(9).is_empty());
    }

    #[test]
    fn share_follows_phalas_formula() {
        // V = 3,000 PHA, P = 2,000 at confidence 1: √(3000² + 4000²) = 5000.
        assert_eq!(share(3_000 * PHA, 2_000, conf_permille(1)), 5_000);
        // Confidence 5 weighs P by 0.7: 2·2000·0.7 = 2800; √(3000² + 2800²) = 4103.6…
        assert_eq!(share(3_000 * PHA, 2_000, conf_permille(5)), 4_103);
        assert_eq!(share(0, 0, 1_000), 0);
    }

    #[test]
    fn v_rises_to_twice_the_stake_and_decays_to_zero() {
        assert_eq!(risen(1_000 * PHA, 1_000 * PHA, 100, 10), 1_001 * PHA);
        assert_eq!(risen(1_000 * PHA, 1_000 * PHA, 100, 1_000_000), 2_000 * PHA);
        assert_eq!(decayed(1_000 * PHA, 1_000, 10), 990 * PHA);
        assert_eq!(decayed(1_000 * PHA, 1_000, 2_000), 0);
    }

    #[test]
    fn rewards_split_the_block_budget_by_share_and_stop_at_the_budget() {
        let params = MiningParams::default();
        assert_eq!(reward(&params, 1, 4, 10, 0), 5 * PHA, "a quarter of 10 blocks × 2 PHA");
        assert_eq!(reward(&params, 1, 4, 10, params.reward_budget - PHA), PHA, "only what is left");
        assert_eq!(reward(&params, 0, 4, 10, 0), 0);
    }

    #[test]
    fn challenges_come_within_twice_the_interval() {
        let worker = PublicKey([3; 32]);
        let mut seen = std::collections::BTreeSet::new();
        for height in 0..500 {
            let at = next_challenge(&Hash([height as u8; 32]), &worker, height, 20);
            assert!((height + 1..=height + 40).contains(&at));
            seen.insert(at - height);
        }
        assert!(seen.len() > 30, "draws spread over the range: {seen:?}");
    }
}
