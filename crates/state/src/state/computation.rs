//! Mining transactions and block rules (the formulas are in
//! `modules::computation`, documented in `docs/economics.md`).
//!
//! Per block: the randomness moves on; challenges whose window closed
//! unanswered make their workers unresponsive; cooldowns that ended release
//! stake to the pool; pools whose oldest withdrawal waited past the grace
//! period have their workers stopped. Each of these touches only the
//! workers concerned, after one pass over the mining workers' deadlines.

use super::State;
use crate::error::TxError;
use crate::events::Event;
use crate::modules::computation::{
    self, MINERS_MAX, Miner, MinerState, MiningParams, MiningTotals, conf_permille, share,
};
use phalanx_primitives::{Balance, Hash, PublicKey, encode};

impl State {
    /// Mining parameters.
    pub fn mining_params(&self) -> &MiningParams {
        &self.mining
    }

    /// Chain-wide mining figures.
    pub fn mining_totals(&self) -> &MiningTotals {
        &self.totals
    }

    /// The worker's mining record, if it is bound to a pool.
    pub fn miner(&self, worker: &PublicKey) -> Option<&Miner> {
        self.miners.get(worker)
    }

    /// Every bound worker.
    pub fn miners(&self) -> impl Iterator<Item = &Miner> {
        self.miners.values()
    }

    fn set_miner(&mut self, miner: Miner) {
        self.write(computation::miner_key(&miner.worker), encode(&miner));
        self.miner_index.update(self.miners.get(&miner.worker), &miner);
        self.miners.insert(miner.worker, miner);
    }

    pub(super) fn set_totals(&mut self, totals: MiningTotals) {
        self.totals = totals;
        self.write(computation::TOTALS_KEY.to_vec(), encode(&totals));
    }

    /// The pool `id`, if `signer` owns it.
    fn owned_pool(&self, signer: &PublicKey, id: u64) -> Result<&crate::modules::staking::Pool, TxError> {
        let pool = self.pools.get(&id).ok_or_else(|| TxError::Staking(format!("no pool {id}")))?;
        if &pool.owner != signer {
            return Err(TxError::Staking(format!("only the owner of pool {id} manages its workers")));
        }
        Ok(pool)
    }

    /// The miner record of `worker`, if `signer` owns its pool.
    fn owned_miner(&self, signer: &PublicKey, worker: &PublicKey) -> Result<&Miner, TxError> {
        let miner =
            self.miners.get(worker).ok_or_else(|| TxError::Mining(format!("worker {worker} is bound to no pool")))?;
        self.owned_pool(signer, miner.pool)?;
        Ok(miner)
    }

    pub(super) fn check_bind(&self, signer: &PublicKey, pool: u64, worker: &PublicKey) -> Result<(), TxError> {
        self.owned_pool(signer, pool)?;
        let registered = self.workers.get(worker).ok_or(TxError::UnknownWorker(*worker))?;
        if &registered.info.operator != signer {
            return Err(TxError::Mining(format!(
                "worker {worker} is operated by {}, not the pool's owner",
                registered.info.operator
            )));
        }
        if let Some(bound) = self.miners.get(worker) {
            return Err(TxError::Mining(format!("worker {worker} is already bound to pool {}", bound.pool)));
        }
        if self.miners.len() >= MINERS_MAX {
            return Err(TxError::Mining(format!("at most {MINERS_MAX} workers are bound at once")));
        }
        Ok(())
    }

    pub(super) fn apply_bind(&mut self, pool: u64, worker: PublicKey, emit: &mut impl FnMut(Event)) {
        let confidence = self.workers.get(&worker).expect("checked").confidence;
        self.set_miner(Miner {
            worker,
            pool,
            state: MinerState::Ready,
            stake: 0,
            v: 0,
            score: 0,
            conf_permille: conf_permille(confidence),
            share: 0,
            settled_at: self.head.height,
            challenge_at: 0,
            deadline: 0,
            cooldown_until: 0,
            earned: 0,
        });
        emit(Event::WorkerBound { worker, pool });
    }

    /// The least stake `worker` may mine with.
    pub fn minimum_stake(&self, worker: &PublicKey) -> Option<Balance> {
        let registered = self.workers.get(worker)?;
        Some(self.mining.stake_per_score.saturating_mul(u128::from(registered.info.benchmark_score)))
    }

    pub(super) fn check_start(&self, signer: &PublicKey, worker: &PublicKey, stake: Balance) -> Result<(), TxError> {
        let miner = self.owned_miner(signer, worker)?;
        if miner.state != MinerState::Ready {
            return Err(TxError::Mining(format!("worker {worker} is {:?}, not ready", miner.state)));
        }
        let minimum = self.minimum_stake(worker).ok_or(TxError::UnknownWorker(*worker))?;
        if stake < minimum.max(1) {
            return Err(TxError::Mining(format!("worker {worker} mines with at least {minimum} planck of stake")));
        }
        let pool = self.pools.get(&miner.pool).expect("bound to a pool");
        if stake > pool.free {
            return Err(TxError::Mining(format!("pool {} has {} planck of free stake", pool.id, pool.free)));
        }
        Ok(())
    }

    pub(super) fn apply_start(&mut self, worker: PublicKey, stake: Balance, emit: &mut impl FnMut(Event)) {
        let mut miner = *self.miners.get(&worker).expect("checked");
        let mut pool = self.pools.get(&miner.pool).expect("checked").clone();
        pool.lock(stake);
        self.set_pool(pool);
        let height = self.head.height;
        miner.state = MinerState::Mining;
        miner.stake = stake;
        miner.v = stake;
        miner.score = self.workers.get(&worker).expect("registered").info.benchmark_score;
        miner.share = share(miner.v, miner.score, miner.conf_permille);
        miner.settled_at = height;
        self.schedule_challenge(&mut miner);
        let mut totals = self.totals;
        totals.total_share += miner.share;
        self.set_totals(totals);
        emit(Event::MiningStarted { worker, pool: miner.pool, stake, share: miner.share });
        self.set_miner(miner);
    }

    pub(super) fn check_stop(&self, signer: &PublicKey, worker: &PublicKey) -> Result<(), TxError> {
        let miner = self.owned_miner(signer, worker)?;
        if !matches!(miner.state, MinerState::Mining | MinerState::Unresponsive) {
            return Err(TxError::Mining(format!("worker {worker} is {:?}, not mining", miner.state)));
        }
        Ok(())
    }

    /// Stops a mining worker: its share leaves the total and its stake
    /// cools down. Rewards since the last answer are not paid (only answers pay).
    pub(super) fn stop_mining(&mut self, worker: PublicKey, emit: &mut impl FnMut(Event)) {
        let mut miner = *self.miners.get(&worker).expect("checked");
        let mut totals = self.totals;
        totals.total_share -= miner.share;
        self.set_totals(totals);
        miner.share = 0;
        miner.state = MinerState::CoolingDown;
        miner.cooldown_until = self.head.height + self.mining.cooldown_blocks;
        emit(Event::MiningStopped { worker, pool: miner.pool, release_at: miner.cooldown_until });
        self.set_miner(miner);
    }

    fn schedule_challenge(&self, miner: &mut Miner) {
        let height = self.head.height;
        miner.challenge_at =
            computation::next_challenge(&self.totals.randomness, &miner.worker, height, self.mining.challenge_interval);
        miner.deadline = miner.challenge_at + self.mining.challenge_window;
    }

    /// Checks a heartbeat answer from `worker` to the challenge at `challenge`.
    pub(super) fn check_answer(&self, worker: &PublicKey, challenge: u64) -> Result<(), TxError> {
        let miner = self.miners.get(worker).ok_or_else(|| TxError::Mining(format!("worker {worker} does not mine")))?;
        if !matches!(miner.state, MinerState::Mining | MinerState::Unresponsive) {
            return Err(TxError::Mining(format!("worker {worker} does not mine")));
        }
        if challenge != miner.challenge_at {
            return Err(TxError::Mining(format!(
                "the pending challenge of {worker} is at {}, not {challenge}",
                miner.challenge_at
            )));
        }
        let height = self.head.height;
        if height < miner.challenge_at || height > miner.deadline {
            return Err(TxError::Mining(format!(
                "the challenge at {challenge} is answered in blocks {} to {}",
                miner.challenge_at, miner.deadline
            )));
        }
        Ok(())
    }

    /// An answer: pays the blocks since the last settlement (a responsive
    /// worker) or ends the unresponsive spell (V decayed meanwhile), then
    /// draws the next challenge.
    pub(super) fn apply_answer(&mut self, worker: PublicKey, emit: &mut impl FnMut(Event)) {
        let mut miner = *self.miners.get(&worker).expect("checked");
        let height = self.head.height;
        let blocks = height - miner.settled_at;
        let mut totals = self.totals;
        match miner.state {
            MinerState::Mining => {
                let reward = computation::reward(&self.mining, miner.share, totals.total_share, blocks, totals.minted);
                totals.minted += reward;
                let to_treasury =
                    crate::modules::staking::mul_div(reward, u128::from(self.mining.treasury_ppm), computation::PPM)
                        .expect("ppm ≤ 1");
                let to_pool = reward - to_treasury;
                self.set_issuance(self.issuance + reward);
                self.credit(self.params.treasury, to_treasury, emit);
                let mut pool = self.pools.get(&miner.pool).expect("bound").clone();
                let commission = pool.reward(to_pool);
                let owner = pool.owner;
                self.credit(owner, commission, emit);
                miner.earned += to_pool;
                emit(Event::MiningReward { worker, pool: miner.pool, to_pool, to_treasury, commission });
                self.serve_withdrawals(pool, emit);
                miner.v = computation::risen(miner.v, miner.stake, self.mining.v_rise_ppm, blocks);
            }
            MinerState::Unresponsive => {
                miner.v = computation::decayed(miner.v, self.mining.v_decay_ppm, blocks);
                miner.state = MinerState::Mining;
                emit(Event::MinerRecovered { worker, v: miner.v });
            }
            MinerState::Ready | MinerState::CoolingDown => unreachable!("checked"),
        }
        totals.total_share -= miner.share;
        miner.share = share(miner.v, miner.score, miner.conf_permille);
        totals.total_share += miner.share;
        self.set_totals(totals);
        miner.settled_at = height;
        self.schedule_challenge(&mut miner);
        self.set_miner(miner);
    }

    /// Block rules of mining (see the module header).
    pub(super) fn begin_mining_block(&mut self, parent: &Hash, emit: &mut impl FnMut(Event)) {
        let mut totals = self.totals;
        totals.randomness =
            phalanx_primitives::sha256_parts(&[b"phalanx/randomness/v1", &totals.randomness.0, &parent.0]);
        self.set_totals(totals);
        if self.miners.is_empty() {
            return;
        }
        let height = self.head.height;
        let (mut missed, mut released) = (Vec::new(), Vec::new());
        // In key order, as a pass over all miners would visit them.
        let mut due = self.miner_index.due_by(height);
        due.sort_unstable();
        for worker in due {
            let miner = self.miners.get(&worker).expect("indexed");
            match miner.state {
                MinerState::Mining if height > miner.deadline => missed.push(miner.worker),
                MinerState::Unresponsive if height > miner.deadline => missed.push(miner.worker),
                MinerState::CoolingDown if height >= miner.cooldown_until => released.push(miner.worker),
                _ => {}
            }
        }
        for worker in missed {
            let mut miner = *self.miners.get(&worker).expect("listed");
            if miner.state == MinerState::Mining {
                // No reward and no rise for the blocks since its last answer;
                // V decays from here until it answers again.
                let mut totals = self.totals;
                totals.total_share -= miner.share;
                self.set_totals(totals);
                miner.share = 0;
                miner.state = MinerState::Unresponsive;
                miner.settled_at = height;
                emit(Event::MinerUnresponsive { worker, challenge: miner.challenge_at });
            }
            self.schedule_challenge(&mut miner);
            self.set_miner(miner);
        }
        for worker in released {
            let mut miner = *self.miners.get(&worker).expect("listed");
            let mut pool = self.pools.get(&miner.pool).expect("bound").clone();
            pool.release(miner.stake);
            emit(Event::StakeReleased { worker, pool: miner.pool, amount: miner.stake });
            miner.state = MinerState::Ready;
            miner.stake = 0;
            miner.v = 0;
            self.set_miner(miner);
            self.serve_withdrawals(pool, emit);
        }
        // Pools whose oldest withdrawal waited too long stop their workers.
        let overdue: Vec<u64> =
            self.pools.values().filter(|p| p.overdue(height, self.mining.grace_blocks)).map(|p| p.id).collect();
        for id in overdue {
            let mining: Vec<PublicKey> = self
                .miner_index
                .of_pool(id)
                .into_iter()
                .filter(|w| matches!(self.miners[w].state, MinerState::Mining | MinerState::Unresponsive))
                .collect();
            if mining.is_empty() {
                continue;
            }
            emit(Event::PoolWorkersStopped { pool: id, workers: mining.len() as u32 });
            for worker in mining {
                self.stop_mining(worker, emit);
            }
        }
    }
}
