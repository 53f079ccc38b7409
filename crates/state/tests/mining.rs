//! Mining through the state machine: a pool owner binds workers they
//! operate and starts them mining with the pool's free stake; workers
//! answer heartbeat challenges in signed messages and are paid per answer
//! (`reward per block × blocks × share / total share`, 20% to the treasury,
//! the owner's commission off the pool's part); a missed challenge makes a
//! worker unresponsive (its share leaves the total, its V decays until it
//! answers again); a withdrawal waiting past the grace period stops the
//! pool's workers, whose stake returns after the cooldown and serves the
//! queue. Every refusal is checked with `check_tx`, with the block builder
//! (which must leave the state as an empty block would) and with a verifier
//! given a block that includes it anyway. After every block a verifier
//! replays it, the per-block rules are checked against a model of them and
//! the books are checked: issuance = accounts + pools, holders' shares add
//! up, total share = the miners' shares, and each pool's locked stake is
//! exactly the stake of its mining, unresponsive and cooling-down workers.

use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Balance, Keypair, PLANCK_PER_PHA, PublicKey};
use phalanx_state::builder::{Built, Candidate, build_block};
use phalanx_state::genesis::dev_treasury;
use phalanx_state::modules::computation::{self, Miner, MinerState, MiningParams, PPM};
use phalanx_state::{
    Block, BlockError, Call, Event, Evidence, Genesis, RegistrationInfo, SignedTransaction, State, TOTAL_SUPPLY,
    Transaction, TxError, WorkerMessage, WorkerPayload,
};
use std::collections::BTreeMap;

const PHA: Balance = PLANCK_PER_PHA;
const FEE: Balance = PHA / 100;
/// Every worker's benchmark score: the minimum stake is 2,000 × 0.001 PHA = 2 PHA.
const SCORE: u64 = 2_000;
/// Simulated evidence has confidence 5: P weighs 0.7.
const CONF: u32 = 700;
/// Bob's pool takes 10% of the pool's part of rewards.
const COMMISSION: u32 = 100_000;
const STAKE: Balance = 3_000 * PHA;
const POOL: u64 = 0;

fn params() -> MiningParams {
    MiningParams {
        challenge_interval: 5,
        challenge_window: 3,
        cooldown_blocks: 10,
        grace_blocks: 15,
        ..MiningParams::default()
    }
}

fn dev(name: &str) -> Keypair {
    dev_keypair(name).unwrap()
}

fn worker_key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

/// When a worker answers: in the block at its challenge's height, or at the last one of the window.
#[derive(Clone, Copy, Debug)]
enum When {
    Challenge,
    Deadline,
}

/// One answer the chain accepted, with what the model expected of it.
#[derive(Clone, Copy, Debug)]
struct Answer {
    worker: PublicKey,
    height: u64,
    /// Blocks since the worker's last settlement.
    blocks: u64,
    /// Whether the worker was responsive (paid) or recovering (not paid).
    paid: bool,
    reward: Balance,
    /// The worker's share and the total share the reward was computed with.
    share: u128,
    total: u128,
    v_before: Balance,
    v_after: Balance,
}

struct Chain {
    state: State,
    parent: Block,
    /// Every leaf ever written: the state must reload from them.
    leaves: BTreeMap<Vec<u8>, Vec<u8>>,
    answers: Vec<Answer>,
}

impl Chain {
    fn new(mining: MiningParams) -> Chain {
        let mut genesis = Genesis::dev(vec![Keypair::from_seed(&[42; 32]).public()]);
        genesis.mining = mining;
        let (mut state, parent) = genesis.build().unwrap();
        assert_eq!(state.mining_params(), &mining);
        check_invariants(&state);
        let leaves = state.take_changes().into_iter().collect();
        Chain { state, parent, leaves, answers: Vec::new() }
    }

    /// A transaction from `from` with its next nonce plus `ahead` (for
    /// several transactions of one signer in one block).
    fn tx_ahead(&self, from: &Keypair, ahead: u64, call: Call) -> SignedTransaction {
        let nonce = self.state.account(&from.public()).map_or(0, |a| a.nonce) + ahead;
        Transaction { chain_id: self.state.chain_id(), signer: from.public(), nonce, fee: FEE, call }.sign(from)
    }

    fn tx(&self, from: &Keypair, call: Call) -> SignedTransaction {
        self.tx_ahead(from, 0, call)
    }

    /// `worker`'s answer to the challenge at `challenge` (its next message),
    /// submitted by charlie with his next nonce plus `ahead`.
    fn heartbeat_ahead(&self, worker: &Keypair, challenge: u64, ahead: u64) -> SignedTransaction {
        let sequence = self.state.worker(&worker.public()).unwrap().next_sequence;
        let payload = WorkerPayload::MiningHeartbeat { challenge };
        let message = WorkerMessage { chain_id: self.state.chain_id(), worker: worker.public(), sequence, payload };
        self.tx_ahead(&dev("charlie"), ahead, Call::WorkerMessage { message: message.sign(worker) })
    }

    fn heartbeat(&self, worker: &Keypair, challenge: u64) -> SignedTransaction {
        self.heartbeat_ahead(worker, challenge, 0)
    }

    fn build(&self, txs: Vec<SignedTransaction>) -> Built {
        let candidates =
            txs.into_iter().map(|tx| Candidate { encoded_len: tx.encode().len(), tx, signature_verified: false });
        build_block(&self.state, self.parent.hash(), self.state.timestamp_ms() + 500, candidates)
    }

    /// The state the next block's transactions apply to (after its block rules).
    fn preview(&self) -> State {
        self.build(vec![]).state
    }

    /// One block with `txs` (all must apply), replayed by a verifier; the
    /// block rules and the books are checked; returns its events.
    fn block(&mut self, txs: Vec<SignedTransaction>) -> Vec<Event> {
        let built = self.build(txs);
        assert!(built.rejected.is_empty(), "{:?}", built.rejected);
        let mut replica = self.state.clone();
        replica.execute_block(&built.block).unwrap();
        assert_eq!(replica, built.state);
        let events: Vec<Event> = built.events.into_iter().map(|r| r.event).collect();
        check_block_rules(&self.state, &built.state, &events);
        (self.state, self.parent) = (built.state, built.block);
        self.leaves.extend(self.state.take_changes());
        check_invariants(&self.state);
        events
    }

    fn send(&mut self, from: &Keypair, call: Call) -> Vec<Event> {
        let tx = self.tx(from, call);
        self.block(vec![tx])
    }

    /// `tx` is refused by `check_tx` and by the next block, for the same
    /// reason, and that block ends in the state an empty block would; a
    /// block that includes it anyway is invalid and changes nothing.
    fn refused(&self, tx: SignedTransaction) -> TxError {
        let reason = self.state.check_tx(&tx, tx.encode().len()).expect_err("check_tx accepts it");
        let tried = self.build(vec![tx.clone()]);
        assert_eq!(tried.rejected, vec![(tx.hash(), reason.clone())]);
        let empty = self.build(vec![]);
        assert_eq!(tried.state, empty.state, "a refused transaction changed the state");

        let mut forced = empty.block;
        forced.txs.push(tx);
        forced.header.tx_count = 1;
        let mut replica = self.state.clone();
        let before = replica.clone();
        match replica.execute_block(&forced) {
            Err(BlockError::InvalidTransaction { index: 0, error }) => assert_eq!(error, reason),
            other => panic!("a block including the refused transaction gave {other:?}"),
        }
        assert_eq!(replica, before, "an invalid block changed the state");
        reason
    }

    fn refuses(&self, tx: SignedTransaction, needle: &str) {
        let reason = self.refused(tx).to_string();
        assert!(reason.contains(needle), "refused with {reason:?}, expected {needle:?}");
    }

    /// Registers `worker` (simulated evidence, score [`SCORE`]) operated by `operator`; bob submits it.
    fn register(&mut self, worker: &Keypair, operator: &Keypair) {
        let info = RegistrationInfo {
            chain_id: self.state.chain_id(),
            identity: worker.public(),
            ecdh: [1; 32],
            operator: operator.public(),
            features: 0,
            benchmark_score: SCORE,
        };
        let evidence = Evidence::Simulated { report_data: info.report_data() };
        self.send(&dev("bob"), Call::RegisterWorker { info, evidence });
        let registered = self.state.worker(&worker.public()).unwrap();
        assert_eq!((registered.info.operator, registered.confidence), (operator.public(), 5));
    }

    fn miner(&self, worker: &Keypair) -> Miner {
        *self.state.miner(&worker.public()).expect("bound")
    }

    fn balance(&self, who: &PublicKey) -> Balance {
        self.state.account(who).map_or(0, |a| a.free)
    }

    /// One block in which each of `answering` that mines answers its
    /// pending challenge if the block is at the height `When` says. Every
    /// answer is checked against the formulas (reward, treasury part,
    /// commission, V, share, next challenge), and the block's movements of
    /// issuance, the treasury, the owner's account and the pool against
    /// the sum of its answers. Returns the events.
    fn step(&mut self, answering: &[(&Keypair, When)]) -> Vec<Event> {
        let next = self.preview();
        let height = next.height();
        let params = *next.mining_params();
        let mut txs = Vec::new();
        let mut answered = Vec::new();
        for (worker, when) in answering {
            let Some(miner) = next.miner(&worker.public()) else { continue };
            if !matches!(miner.state, MinerState::Mining | MinerState::Unresponsive) {
                continue;
            }
            let at = match when {
                When::Challenge => miner.challenge_at,
                When::Deadline => miner.deadline,
            };
            if at == height {
                txs.push(self.heartbeat_ahead(worker, miner.challenge_at, txs.len() as u64));
                answered.push(*miner);
            }
        }
        if txs.is_empty() {
            return self.block(txs);
        }

        // The model: answers apply in order, each against the total share the previous left.
        let mut total = next.mining_totals().total_share;
        let mut minted = next.mining_totals().minted;
        let mut expected_events = Vec::new();
        let mut expected_miners = Vec::new();
        let (mut rewards, mut to_treasury_sum, mut kept_sum) = (0, 0, 0);
        let mut commissions: BTreeMap<PublicKey, Balance> = BTreeMap::new();
        for miner in &answered {
            let blocks = height - miner.settled_at;
            let pool = next.pool(miner.pool).unwrap();
            let mut answer = Answer {
                worker: miner.worker,
                height,
                blocks,
                paid: miner.state == MinerState::Mining,
                reward: 0,
                share: miner.share,
                total,
                v_before: miner.v,
                v_after: 0,
            };
            if answer.paid {
                let reward = computation::reward(&params, miner.share, total, blocks, minted);
                // The same by hand: the block budget over `blocks`, this worker's part of the total.
                let due = params.reward_per_block * Balance::from(blocks) * miner.share / total;
                assert_eq!(reward, due.min(params.reward_budget - minted), "reward of {}", miner.worker);
                let to_treasury = reward * Balance::from(params.treasury_ppm) / PPM;
                let to_pool = reward - to_treasury;
                // A pool without holders gives the owner everything.
                let commission =
                    if pool.shares == 0 { to_pool } else { to_pool * Balance::from(pool.commission) / 1_000_000 };
                expected_events.push(Event::MiningReward {
                    worker: miner.worker,
                    pool: miner.pool,
                    to_pool,
                    to_treasury,
                    commission,
                });
                *commissions.entry(pool.owner).or_default() += commission;
                rewards += reward;
                to_treasury_sum += to_treasury;
                kept_sum += to_pool - commission;
                minted += reward;
                answer.reward = reward;
                answer.v_after = computation::risen(miner.v, miner.stake, params.v_rise_ppm, blocks);
                assert!(answer.v_after >= miner.v && answer.v_after <= 2 * miner.stake);
            } else {
                answer.v_after = computation::decayed(miner.v, params.v_decay_ppm, blocks);
                expected_events.push(Event::MinerRecovered { worker: miner.worker, v: answer.v_after });
            }
            let share = computation::share(answer.v_after, miner.score, miner.conf_permille);
            total = total - miner.share + share;
            expected_miners.push((miner.worker, answer.v_after, share));
            self.answers.push(answer);
        }

        let pool_before: BTreeMap<u64, (Balance, Balance)> =
            self.state.pools().map(|p| (p.id, (p.value, p.free))).collect();
        let issuance = self.state.total_issuance();
        let treasury = self.balance(&dev_treasury());
        let owners: BTreeMap<PublicKey, Balance> = commissions.keys().map(|o| (*o, self.balance(o))).collect();

        let events = self.block(txs);

        for event in &expected_events {
            assert_eq!(events.iter().filter(|e| *e == event).count(), 1, "expected {event:?} in {events:?}");
        }
        let paid = events.iter().filter(|e| matches!(e, Event::MiningReward { .. } | Event::MinerRecovered { .. }));
        assert_eq!(paid.count(), expected_events.len(), "{events:?}");
        for (worker, v, share) in expected_miners {
            let miner = self.state.miner(&worker).unwrap();
            assert_eq!((miner.state, miner.v, miner.share, miner.settled_at), (MinerState::Mining, v, share, height));
            assert!(miner.challenge_at > height && miner.challenge_at <= height + 2 * params.challenge_interval);
            assert_eq!(miner.deadline, miner.challenge_at + params.challenge_window);
        }
        assert_eq!(self.state.mining_totals().total_share, total);
        assert_eq!(self.state.mining_totals().minted, minted);
        assert_eq!(self.state.total_issuance(), issuance + rewards, "issuance rises by exactly the rewards");
        let fees: Balance =
            events.iter().map(|e| if let Event::FeePaid { amount, .. } = e { *amount } else { 0 }).sum();
        assert_eq!(self.balance(&dev_treasury()), treasury + to_treasury_sum + fees, "the treasury's part");
        for (owner, before) in owners {
            assert_eq!(self.balance(&owner), before + commissions[&owner], "the owner's commission");
        }
        // Each pool's value rises by what it kept, less what it paid out to queued withdrawals.
        let mut kept_check = 0;
        for (id, (value, free)) in pool_before {
            let pool = self.state.pool(id).unwrap();
            let kept: Balance = answered
                .iter()
                .zip(&expected_events)
                .filter(|(m, _)| m.pool == id)
                .map(|(_, e)| match e {
                    Event::MiningReward { to_pool, commission, .. } => to_pool - commission,
                    _ => 0,
                })
                .sum();
            kept_check += kept;
            let withdrawn: Balance = events
                .iter()
                .map(|e| match e {
                    Event::Withdrawn { pool, amount, .. } if *pool == id => *amount,
                    _ => 0,
                })
                .sum();
            let released: Balance = events
                .iter()
                .map(|e| match e {
                    Event::StakeReleased { pool, amount, .. } if *pool == id => *amount,
                    _ => 0,
                })
                .sum();
            assert_eq!(pool.value, value + kept - withdrawn, "pool {id}'s value");
            assert_eq!(pool.free, free + kept + released - withdrawn, "pool {id}'s free stake");
        }
        assert_eq!(kept_check, kept_sum);
        events
    }

    /// Blocks of [`Chain::step`] until the chain is at `height`.
    fn run_to(&mut self, height: u64, answering: &[(&Keypair, When)]) -> Vec<Event> {
        assert!(self.state.height() < height);
        let mut events = Vec::new();
        while self.state.height() < height {
            events = self.step(answering);
        }
        events
    }

    /// Empty blocks until the chain is at `height` (if it is not already).
    fn advance_to(&mut self, height: u64) {
        while self.state.height() < height {
            self.step(&[]);
        }
    }

    /// The state reloaded from every leaf written so far has the same root and records.
    fn check_reload(&self) {
        let loaded = State::load(self.leaves.clone()).unwrap();
        assert_eq!(loaded, self.state);
        assert_eq!(loaded.mining_params(), self.state.mining_params());
        assert_eq!(loaded.mining_totals(), self.state.mining_totals());
        assert_eq!(loaded.miners().collect::<Vec<_>>(), self.state.miners().collect::<Vec<_>>());
        assert_eq!(loaded.pools().collect::<Vec<_>>(), self.state.pools().collect::<Vec<_>>());
    }
}

/// The books, after every block.
fn check_invariants(state: &State) {
    let accounts: Balance = state.accounts().map(|(_, a)| a.free).sum();
    let pools: Balance = state.pools().map(|p| p.value).sum();
    assert_eq!(accounts + pools, state.total_issuance(), "issuance = accounts + pools");
    let totals = state.mining_totals();
    assert_eq!(state.total_issuance(), TOTAL_SUPPLY + totals.minted, "only rewards mint");
    assert!(totals.minted <= state.mining_params().reward_budget);
    let shares: u128 = state.miners().map(|m| m.share).sum();
    assert_eq!(totals.total_share, shares, "total share = the miners' shares");
    for pool in state.pools() {
        let held: Balance = state.stakes_in(pool.id).map(|(_, s)| s.shares).sum();
        assert_eq!(held, pool.shares, "pool {} shares", pool.id);
        assert!(pool.free <= pool.value, "pool {}: free ≤ value", pool.id);
        let locked: Balance = state
            .miners()
            .filter(|m| m.pool == pool.id)
            .filter(|m| matches!(m.state, MinerState::Mining | MinerState::Unresponsive | MinerState::CoolingDown))
            .map(|m| m.stake)
            .sum();
        assert_eq!(pool.value - pool.free, locked, "pool {}: locked stake = its workers' stake", pool.id);
        for w in &pool.withdrawals {
            assert!(w.shares > 0 && w.shares <= state.stake(pool.id, &w.who).shares, "a queued withdrawal is backed");
        }
    }
    let params = state.mining_params();
    let height = state.height();
    for m in state.miners() {
        assert!(state.pool(m.pool).is_some());
        match m.state {
            MinerState::Ready => assert_eq!((m.stake, m.share), (0, 0), "{m:?}"),
            MinerState::Mining => {
                assert!(m.stake > 0 && m.v <= 2 * m.stake, "{m:?}");
                assert_eq!(m.share, computation::share(m.v, m.score, m.conf_permille), "{m:?}");
                assert_eq!(m.deadline, m.challenge_at + params.challenge_window, "{m:?}");
                assert!(height <= m.deadline, "a mining worker past its deadline: {m:?}");
            }
            MinerState::Unresponsive => {
                assert_eq!(m.share, 0, "{m:?}");
                assert!(m.stake > 0 && height <= m.deadline, "{m:?}");
            }
            MinerState::CoolingDown => {
                assert_eq!(m.share, 0, "{m:?}");
                assert!(m.stake > 0 && height < m.cooldown_until, "{m:?}");
            }
        }
    }
}

/// The per-block rules against the state before (`pre`) and after
/// (`post`) a block: exactly the workers past their deadline become
/// unresponsive, exactly the ended cooldowns release their stake, and an
/// overdue pool's mining workers are all stopped.
fn check_block_rules(pre: &State, post: &State, events: &[Event]) {
    let height = post.height();
    let params = post.mining_params();
    let count = |wanted: &dyn Fn(&Event) -> bool| events.iter().filter(|e| wanted(e)).count();
    let (mut unresponsive, mut released) = (0, 0);
    for m in pre.miners() {
        let after = post.miner(&m.worker).unwrap();
        let missed = matches!(m.state, MinerState::Mining | MinerState::Unresponsive) && height > m.deadline;
        let went = m.state == MinerState::Mining && missed;
        let event = Event::MinerUnresponsive { worker: m.worker, challenge: m.challenge_at };
        assert_eq!(events.contains(&event), went, "{m:?} at {height}: {events:?}");
        if went {
            unresponsive += 1;
            assert!(matches!(after.state, MinerState::Unresponsive | MinerState::CoolingDown), "{after:?}");
            assert_eq!((after.share, after.settled_at), (0, height));
            assert_eq!(after.v, m.v, "V is left as it was until the worker answers");
        }
        if missed {
            // A new challenge, which no transaction of this block can have answered.
            assert!(after.challenge_at > height && after.challenge_at <= height + 2 * params.challenge_interval);
            assert_eq!(after.deadline, after.challenge_at + params.challenge_window);
        }
        let due = m.state == MinerState::CoolingDown && height >= m.cooldown_until;
        let event = Event::StakeReleased { worker: m.worker, pool: m.pool, amount: m.stake };
        assert_eq!(events.contains(&event), due, "{m:?} at {height}: {events:?}");
        if due {
            released += 1;
            let restarted =
                events.iter().any(|e| matches!(e, Event::MiningStarted { worker, .. } if *worker == m.worker));
            if !restarted {
                assert_eq!((after.state, after.stake, after.v), (MinerState::Ready, 0, 0), "{after:?}");
            }
        } else if m.state == MinerState::CoolingDown {
            assert_eq!(after, m, "a cooling-down worker is left alone until its cooldown ends");
        }
    }
    assert_eq!(count(&|e| matches!(e, Event::MinerUnresponsive { .. })), unresponsive);
    assert_eq!(count(&|e| matches!(e, Event::StakeReleased { .. })), released);

    for pool in pre.pools() {
        let mining: Vec<&Miner> = pre
            .miners()
            .filter(|m| m.pool == pool.id && matches!(m.state, MinerState::Mining | MinerState::Unresponsive))
            .collect();
        let stopped = events.iter().find_map(|e| match e {
            Event::PoolWorkersStopped { pool: p, workers } if *p == pool.id => Some(*workers),
            _ => None,
        });
        let overdue = pool.overdue(height, params.grace_blocks);
        if let Some(workers) = stopped {
            assert!(overdue, "pool {} stopped its workers before the grace period ended", pool.id);
            assert_eq!(workers as usize, mining.len());
            for m in mining {
                let after = post.miner(&m.worker).unwrap();
                assert_eq!((after.state, after.share), (MinerState::CoolingDown, 0));
                assert_eq!(after.cooldown_until, height + params.cooldown_blocks);
                let event = Event::MiningStopped { worker: m.worker, pool: pool.id, release_at: after.cooldown_until };
                assert!(events.contains(&event), "{events:?}");
            }
        } else if overdue && !mining.is_empty() {
            // Only stake released in this block may have served the queue in time.
            let after = post.pool(pool.id).unwrap();
            assert!(!after.overdue(height, params.grace_blocks), "overdue pool {} kept mining: {events:?}", pool.id);
        }
    }
}

fn has(events: &[Event], event: &Event) -> bool {
    events.contains(event)
}

/// Bob's pool 0 (10% commission) with 4,000 PHA from dave and 3,000 from
/// alice, and workers A and B (operated by bob) bound to it; nothing mines.
fn bound_pool() -> (Chain, Keypair, Keypair) {
    let (alice, bob, dave) = (dev("alice"), dev("bob"), dev("dave"));
    let mut chain = Chain::new(params());
    let events = chain.send(&bob, Call::CreatePool { commission: COMMISSION, cap: None });
    assert!(has(&events, &Event::PoolCreated { pool: POOL, owner: bob.public(), commission: COMMISSION }));
    let contributions = vec![
        chain.tx(&dave, Call::Contribute { pool: POOL, amount: 4_000 * PHA }),
        chain.tx(&alice, Call::Contribute { pool: POOL, amount: 3_000 * PHA }),
    ];
    chain.block(contributions);
    assert_eq!(chain.state.stake(POOL, &dave.public()).shares, 4_000 * PHA);
    assert_eq!(chain.state.stake(POOL, &alice.public()).shares, 3_000 * PHA);
    let (a, b) = (worker_key(1), worker_key(2));
    chain.register(&a, &bob);
    chain.register(&b, &bob);
    let binds = vec![
        chain.tx_ahead(&bob, 0, Call::BindWorker { pool: POOL, worker: a.public() }),
        chain.tx_ahead(&bob, 1, Call::BindWorker { pool: POOL, worker: b.public() }),
    ];
    let events = chain.block(binds);
    assert!(has(&events, &Event::WorkerBound { worker: a.public(), pool: POOL }));
    assert!(has(&events, &Event::WorkerBound { worker: b.public(), pool: POOL }));
    (chain, a, b)
}

/// [`bound_pool`] with A and B mining 3,000 PHA each (1,000 PHA left free).
fn mining_pool() -> (Chain, Keypair, Keypair) {
    let (mut chain, a, b) = bound_pool();
    let bob = dev("bob");
    let starts = vec![
        chain.tx_ahead(&bob, 0, Call::StartMining { worker: a.public(), stake: STAKE }),
        chain.tx_ahead(&bob, 1, Call::StartMining { worker: b.public(), stake: STAKE }),
    ];
    let events = chain.block(starts);
    let share = computation::share(STAKE, SCORE, CONF);
    for w in [&a, &b] {
        assert!(has(&events, &Event::MiningStarted { worker: w.public(), pool: POOL, stake: STAKE, share }));
    }
    let pool = chain.state.pool(POOL).unwrap();
    assert_eq!((pool.value, pool.free), (7_000 * PHA, 1_000 * PHA));
    (chain, a, b)
}

#[test]
fn binding_and_starting_are_the_owners_and_answers_must_match_the_challenge() {
    let (alice, bob, charlie, dave) = (dev("alice"), dev("bob"), dev("charlie"), dev("dave"));
    let mut chain = Chain::new(params());
    chain.send(&bob, Call::CreatePool { commission: COMMISSION, cap: None });
    let contributions = vec![
        chain.tx(&dave, Call::Contribute { pool: POOL, amount: 4_000 * PHA }),
        chain.tx(&alice, Call::Contribute { pool: POOL, amount: 3_000 * PHA }),
    ];
    chain.block(contributions);
    let (a, b, c) = (worker_key(1), worker_key(2), worker_key(3));
    chain.register(&a, &bob);
    chain.register(&b, &bob);
    chain.register(&c, &charlie);

    // Binding: only the pool's owner, only workers they operate, each once.
    let bind = |worker: &Keypair| Call::BindWorker { pool: POOL, worker: worker.public() };
    chain.refuses(chain.tx(&bob, bind(&c)), "is operated by");
    chain.refuses(chain.tx(&charlie, bind(&c)), "only the owner of pool 0");
    chain.refuses(chain.tx(&bob, Call::BindWorker { pool: 9, worker: a.public() }), "no pool 9");
    let stranger = worker_key(9).public();
    let refused = chain.refused(chain.tx(&bob, Call::BindWorker { pool: POOL, worker: stranger }));
    assert_eq!(refused, TxError::UnknownWorker(stranger));
    let events = chain.send(&bob, bind(&a));
    assert_eq!(events.iter().filter(|e| matches!(e, Event::WorkerBound { .. })).count(), 1);
    assert!(has(&events, &Event::WorkerBound { worker: a.public(), pool: POOL }));
    let miner = chain.miner(&a);
    assert_eq!(
        (miner.pool, miner.state, miner.stake, miner.share, miner.conf_permille),
        (POOL, MinerState::Ready, 0, 0, CONF)
    );
    chain.refuses(chain.tx(&bob, bind(&a)), "already bound to pool 0");
    chain.send(&bob, bind(&b));

    // A worker that does not mine has nothing to answer.
    chain.refuses(chain.heartbeat(&a, 0), "does not mine");
    chain.refuses(chain.heartbeat(&c, 0), "does not mine");

    // Starting: the owner, a bound and ready worker, at least the minimum, at most the free stake.
    let minimum = chain.state.minimum_stake(&a.public()).unwrap();
    assert_eq!(minimum, Balance::from(SCORE) * PHA / 1_000, "0.001 PHA per point of score");
    let start = |worker: &Keypair, stake| Call::StartMining { worker: worker.public(), stake };
    chain.refuses(chain.tx(&bob, start(&a, minimum - 1)), "at least");
    chain.refuses(chain.tx(&bob, start(&a, 0)), "at least");
    chain.refuses(chain.tx(&dave, start(&a, STAKE)), "only the owner of pool 0");
    chain.refuses(chain.tx(&bob, start(&c, STAKE)), "bound to no pool");
    chain.refuses(chain.tx(&bob, Call::StopMining { worker: a.public() }), "not mining");
    let free = chain.state.pool(POOL).unwrap().free;
    assert_eq!(free, 7_000 * PHA);
    chain.refuses(chain.tx(&bob, start(&a, free + 1)), "free stake");

    let events = chain.send(&bob, start(&a, STAKE));
    let share = computation::share(STAKE, SCORE, CONF);
    assert_eq!(share, 4_103, "√(3000² + (2·2000·0.7)²)");
    assert!(has(&events, &Event::MiningStarted { worker: a.public(), pool: POOL, stake: STAKE, share }));
    let height = chain.state.height();
    let miner = chain.miner(&a);
    assert_eq!(
        (miner.state, miner.stake, miner.v, miner.score, miner.share, miner.settled_at),
        (MinerState::Mining, STAKE, STAKE, SCORE, share, height)
    );
    assert!(miner.challenge_at > height && miner.challenge_at <= height + 10);
    assert_eq!(miner.deadline, miner.challenge_at + 3);
    let pool = chain.state.pool(POOL).unwrap();
    assert_eq!((pool.value, pool.free), (7_000 * PHA, 4_000 * PHA));
    assert_eq!(chain.state.mining_totals().total_share, share);
    chain.refuses(chain.tx(&bob, start(&a, STAKE)), "not ready");
    chain.refuses(chain.tx(&bob, start(&b, 4_000 * PHA + 1)), "free stake");
    chain.send(&bob, start(&b, STAKE));
    assert_eq!(chain.state.pool(POOL).unwrap().free, 1_000 * PHA);
    assert_eq!(chain.state.mining_totals().total_share, 2 * share);
    chain.refuses(chain.tx(&dave, Call::StopMining { worker: a.public() }), "only the owner of pool 0");
    chain.refuses(chain.tx(&charlie, Call::StopMining { worker: b.public() }), "only the owner of pool 0");

    // Answers: only to the pending challenge, only inside its window.
    let (mut early, mut late, mut at_deadline) = (false, false, false);
    let mut answered = 0;
    while answered < 6 {
        let next = chain.preview();
        let height = next.height();
        for w in [&a, &b] {
            let m = *next.miner(&w.public()).unwrap();
            chain.refuses(chain.heartbeat(w, m.challenge_at + 1), "pending challenge");
            chain.refuses(chain.heartbeat(w, m.challenge_at - 1), "pending challenge");
            // Before the window (both for `check_tx` at this height and in the next block).
            if m.challenge_at > height {
                chain.refuses(chain.heartbeat(w, m.challenge_at), "is answered in blocks");
                early = true;
            }
        }
        // A answers at its challenge, B at the last block of its window.
        let before = chain.answers.len();
        chain.step(&[(&a, When::Challenge), (&b, When::Deadline)]);
        for answer in &chain.answers[before..] {
            answered += 1;
            if answer.worker == b.public() {
                at_deadline = true;
                // Too late for the answered challenge: the next one is pending.
                let m = chain.miner(&b);
                let old = answer.height - 3;
                assert!(old < m.challenge_at);
                chain.refuses(chain.heartbeat(&b, old), "pending challenge");
                late = true;
            }
        }
    }
    assert!(early && late && at_deadline, "early {early}, late {late}, at the deadline {at_deadline}");
    // A message the worker already sent (its sequence is used) is refused whatever it says.
    let m = chain.miner(&a);
    let sequence = chain.state.worker(&a.public()).unwrap().next_sequence;
    assert!(sequence >= 3);
    let payload = WorkerPayload::MiningHeartbeat { challenge: m.challenge_at };
    let message =
        WorkerMessage { chain_id: chain.state.chain_id(), worker: a.public(), sequence: sequence - 1, payload };
    let replayed = chain.tx(&charlie, Call::WorkerMessage { message: message.sign(&a) });
    assert_eq!(chain.refused(replayed), TxError::StaleSequence { expected: sequence, got: sequence - 1 });
    assert!(chain.answers.iter().all(|a| a.paid && a.reward > 0), "{:?}", chain.answers);
    chain.check_reload();
}

#[test]
fn an_unanswered_challenge_makes_a_worker_unresponsive_until_it_answers_again() {
    let (mut chain, a, b) = mining_pool();
    let params = params();

    // Both answer for a while: rewards are split by share.
    let start = chain.state.height();
    chain.run_to(start + 25, &[(&a, When::Challenge), (&b, When::Challenge)]);
    let shared: Vec<Answer> = chain.answers.clone();
    assert!(shared.iter().filter(|x| x.worker == a.public()).count() >= 2, "{shared:?}");
    assert!(shared.iter().filter(|x| x.worker == b.public()).count() >= 2, "{shared:?}");
    for answer in &shared {
        assert!(answer.paid);
        assert!(answer.total > answer.share, "both mine: {answer:?}");
        assert!(answer.reward < params.reward_per_block * Balance::from(answer.blocks), "{answer:?}");
        assert!(answer.v_after > answer.v_before, "V rises while answering: {answer:?}");
    }

    // B stops answering: after its deadline it is unresponsive and its share leaves the total.
    let pending = chain.miner(&b);
    assert_eq!(pending.state, MinerState::Mining);
    let v_before = pending.v;
    assert!(v_before > STAKE);
    if chain.state.height() < pending.deadline {
        chain.run_to(pending.deadline, &[(&a, When::Challenge)]);
    }
    assert_eq!(chain.miner(&b).state, MinerState::Mining, "still inside its window");
    let events = chain.step(&[(&a, When::Challenge)]);
    let went_at = chain.state.height();
    assert_eq!(went_at, pending.deadline + 1);
    assert!(has(&events, &Event::MinerUnresponsive { worker: b.public(), challenge: pending.challenge_at }));
    let miner = chain.miner(&b);
    assert_eq!((miner.state, miner.share, miner.v, miner.stake), (MinerState::Unresponsive, 0, v_before, STAKE));
    assert_eq!(chain.state.mining_totals().total_share, chain.miner(&a).share);
    assert_eq!(chain.state.pool(POOL).unwrap().locked(), 2 * STAKE, "the stake stays locked");
    chain.refuses(chain.heartbeat(&b, pending.challenge_at), "pending challenge");

    // A alone takes the whole block budget, split 20% treasury, 10% of the rest to bob.
    let alone_from = chain.answers.len();
    chain.run_to(went_at + 15, &[(&a, When::Challenge)]);
    let alone = &chain.answers[alone_from..];
    assert!(alone.len() >= 2, "{alone:?}");
    for answer in alone {
        assert_eq!(answer.worker, a.public());
        assert_eq!(answer.share, answer.total);
        assert_eq!(answer.reward, 2 * PHA * Balance::from(answer.blocks), "{answer:?}");
    }
    let bob = dev("bob").public();
    let before = (chain.balance(&bob), chain.state.pool(POOL).unwrap().value, chain.state.total_issuance());
    let m = *chain.preview().miner(&a.public()).unwrap();
    chain.advance_to(m.challenge_at - 1);
    let blocks = m.challenge_at - m.settled_at;
    let events = chain.step(&[(&a, When::Challenge)]);
    let reward = 2 * PHA * Balance::from(blocks);
    let (to_treasury, to_pool) = (reward / 5, reward * 4 / 5);
    let commission = to_pool / 10;
    assert!(has(&events, &Event::MiningReward { worker: a.public(), pool: POOL, to_pool, to_treasury, commission }));
    assert_eq!(chain.balance(&bob), before.0 + commission);
    assert_eq!(chain.state.pool(POOL).unwrap().value, before.1 + to_pool - commission);
    assert_eq!(chain.state.total_issuance(), before.2 + reward);

    // B stays unresponsive over several rescheduled challenges, then answers: V decayed meanwhile.
    let still = chain.miner(&b);
    assert_eq!((still.state, still.settled_at, still.v), (MinerState::Unresponsive, went_at, v_before));
    assert!(still.challenge_at > pending.challenge_at);
    let recovering = chain.miner(&b).challenge_at.max(chain.state.height() + 1);
    let mut recovered = None;
    while recovered.is_none() {
        let answering: &[(&Keypair, When)] = if chain.state.height() + 1 >= recovering {
            &[(&a, When::Challenge), (&b, When::Challenge)]
        } else {
            &[(&a, When::Challenge)]
        };
        let events = chain.step(answering);
        recovered = events.iter().find_map(|e| match e {
            Event::MinerRecovered { worker, v } if *worker == b.public() => Some(*v),
            _ => None,
        });
        if recovered.is_some() {
            assert!(
                !events.iter().any(|e| matches!(e, Event::MiningReward { worker, .. } if *worker == b.public())),
                "a recovering answer is not paid"
            );
        }
    }
    let v = recovered.unwrap();
    let height = chain.state.height();
    assert!(height - went_at >= 15);
    assert_eq!(v, computation::decayed(v_before, params.v_decay_ppm, height - went_at));
    assert!(v < v_before, "V decayed: {v} < {v_before}");
    // 0.1% per block of 3,000-odd PHA: at least 3 PHA per block.
    assert!(v_before - v >= 3 * PHA * Balance::from(height - went_at));
    let miner = chain.miner(&b);
    assert_eq!((miner.state, miner.v, miner.settled_at), (MinerState::Mining, v, height));
    assert_eq!(miner.share, computation::share(v, SCORE, CONF));
    assert!(miner.share < computation::share(v_before, SCORE, CONF));
    assert_eq!(chain.state.mining_totals().total_share, chain.miner(&a).share + miner.share);

    // Its next answer is paid again, for the blocks since it recovered.
    let paid_from = chain.answers.len();
    while !chain.answers[paid_from..].iter().any(|x| x.worker == b.public()) {
        chain.step(&[(&a, When::Challenge), (&b, When::Challenge)]);
    }
    let answer = chain.answers[paid_from..].iter().find(|x| x.worker == b.public()).unwrap();
    assert!(answer.paid && answer.reward > 0 && answer.height - answer.blocks == height, "{answer:?}");
    chain.check_reload();
}

#[test]
fn a_withdrawal_past_the_grace_period_stops_the_pools_workers() {
    let (mut chain, a, b) = mining_pool();
    let params = params();
    let dave = dev("dave");
    let both = [(&a, When::Challenge), (&b, When::Challenge)];
    let start = chain.state.height();
    chain.run_to(start + 12, &both);
    assert!(!chain.answers.is_empty());

    // Most stake is locked: dave's withdrawal of everything is paid in part and queued for the rest.
    let pool = chain.state.pool(POOL).unwrap().clone();
    assert_eq!(pool.locked(), 2 * STAKE);
    let shares = chain.state.stake(POOL, &dave.public()).shares;
    assert_eq!(shares, 4_000 * PHA);
    assert!(pool.value_of(shares) > pool.free);
    assert!(pool.value > 7_000 * PHA, "rewards raised the value");
    let before = chain.balance(&dave.public());
    let events = chain.send(&dave, Call::Withdraw { pool: POOL, shares });
    let queued_at = chain.state.height();
    let (paid_shares, paid) = events
        .iter()
        .find_map(|e| match e {
            Event::Withdrawn { pool: POOL, who, shares, amount } if *who == dave.public() => Some((*shares, *amount)),
            _ => None,
        })
        .expect("part paid at once");
    assert!(paid_shares > 0 && paid_shares < shares);
    assert_eq!(paid_shares, pool.free * pool.shares / pool.value, "the shares free stake buys back");
    assert_eq!(paid, paid_shares * pool.value / pool.shares);
    assert!(paid <= pool.free);
    let rest = shares - paid_shares;
    assert!(has(&events, &Event::WithdrawalQueued { pool: POOL, who: dave.public(), shares: rest }));
    assert_eq!(chain.balance(&dave.public()), before + paid - FEE);
    assert_eq!(chain.state.stake(POOL, &dave.public()).shares, rest);
    let after = chain.state.pool(POOL).unwrap();
    assert_eq!((after.value, after.free), (pool.value - paid, pool.free - paid));
    assert_eq!(after.withdrawals.len(), 1);
    assert_eq!((after.withdrawals[0].who, after.withdrawals[0].shares), (dave.public(), rest));
    assert_eq!(after.withdrawals[0].queued_at, queued_at);

    // The grace period: the workers go on mining; rewards serve the queue as far as they go.
    let mut served = 0;
    while chain.state.height() < queued_at + params.grace_blocks - 1 {
        let events = chain.step(&both);
        served += withdrawn_by(&events, &dave.public()).1;
        assert!(!events.iter().any(|e| matches!(e, Event::PoolWorkersStopped { .. })));
    }
    assert!(served > 0, "rewards paid part of the queue");
    for w in [&a, &b] {
        assert!(matches!(chain.miner(w).state, MinerState::Mining | MinerState::Unresponsive));
    }
    let queue = chain.state.pool(POOL).unwrap().withdrawals.clone();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].queued_at, queued_at, "a partly served withdrawal keeps its place and age");
    let rest = queue[0].shares;
    assert_eq!(chain.state.stake(POOL, &dave.public()).shares, rest);

    let events = chain.step(&both);
    let stopped_at = chain.state.height();
    assert_eq!(stopped_at, queued_at + params.grace_blocks);
    assert!(has(&events, &Event::PoolWorkersStopped { pool: POOL, workers: 2 }), "{events:?}");
    let release_at = stopped_at + params.cooldown_blocks;
    for w in [&a, &b] {
        assert!(has(&events, &Event::MiningStopped { worker: w.public(), pool: POOL, release_at }));
        let miner = chain.miner(w);
        assert_eq!((miner.state, miner.share, miner.stake), (MinerState::CoolingDown, 0, STAKE));
        chain.refuses(chain.heartbeat(w, miner.challenge_at), "does not mine");
    }
    assert_eq!(chain.state.mining_totals().total_share, 0);
    assert_eq!(chain.state.pool(POOL).unwrap().locked(), 2 * STAKE, "still locked while cooling down");

    // The cooldown: nothing moves until it ends.
    let minted = chain.state.mining_totals().minted;
    let dave_before = chain.balance(&dave.public());
    chain.run_to(release_at - 1, &both);
    assert_eq!(chain.state.mining_totals().minted, minted);
    assert_eq!(chain.balance(&dave.public()), dave_before);
    assert_eq!(chain.state.stake(POOL, &dave.public()).shares, rest);
    for w in [&a, &b] {
        assert_eq!(chain.miner(w).state, MinerState::CoolingDown);
    }

    // The release: both stakes return to the pool and the queued withdrawal is served.
    let pool = chain.state.pool(POOL).unwrap().clone();
    let events = chain.step(&both);
    for w in [&a, &b] {
        assert!(has(&events, &Event::StakeReleased { worker: w.public(), pool: POOL, amount: STAKE }));
        let miner = chain.miner(w);
        assert_eq!((miner.state, miner.stake, miner.v, miner.share), (MinerState::Ready, 0, 0, 0));
    }
    let (shares_paid, amount) = withdrawn_by(&events, &dave.public());
    assert_eq!(shares_paid, rest);
    assert_eq!(amount, pool.value_of(rest), "served at the share price, rounded down");
    assert_eq!(chain.state.stake(POOL, &dave.public()).shares, 0);
    assert_eq!(chain.balance(&dave.public()), dave_before + amount);
    let after = chain.state.pool(POOL).unwrap();
    assert!(after.withdrawals.is_empty());
    assert_eq!((after.value, after.free), (pool.value - amount, pool.value - amount));
    assert_eq!(after.shares, chain.state.stake(POOL, &dev("alice").public()).shares);
    // Dave got more than he put in: the rewards while his stake mined.
    let total_paid = paid + served + amount;
    assert!(total_paid > 4_000 * PHA, "dave was paid {total_paid} for 4,000 PHA");
    assert_eq!(chain.balance(&dave.public()), before - FEE + total_paid);

    // The pool is no longer overdue: a restart is not stopped again.
    chain.send(&dev("bob"), Call::StartMining { worker: a.public(), stake: STAKE });
    chain.run_to(chain.state.height() + params.grace_blocks, &[(&a, When::Challenge)]);
    assert_eq!(chain.miner(&a).state, MinerState::Mining);
    chain.check_reload();
}

/// The shares bought back from `who` and the planck paid for them in `events`.
fn withdrawn_by(events: &[Event], who: &PublicKey) -> (Balance, Balance) {
    events.iter().fold((0, 0), |(shares, paid), e| match e {
        Event::Withdrawn { pool: POOL, who: w, shares: s, amount } if w == who => (shares + s, paid + amount),
        _ => (shares, paid),
    })
}

#[test]
fn the_owner_stops_a_worker_and_its_stake_returns_after_the_cooldown() {
    let (mut chain, a, b) = mining_pool();
    let params = params();
    let (bob, dave) = (dev("bob"), dev("dave"));
    let start = chain.state.height();
    // A answers, B does not: B goes unresponsive.
    while chain.miner(&b).state != MinerState::Unresponsive {
        chain.step(&[(&a, When::Challenge)]);
        assert!(chain.state.height() < start + 20);
    }

    chain.refuses(chain.tx(&dave, Call::StopMining { worker: a.public() }), "only the owner of pool 0");
    let total = chain.state.mining_totals().total_share;
    let pool = chain.state.pool(POOL).unwrap().clone();
    let events = chain.send(&bob, Call::StopMining { worker: a.public() });
    let stopped_at = chain.state.height();
    let release_at = stopped_at + params.cooldown_blocks;
    assert!(has(&events, &Event::MiningStopped { worker: a.public(), pool: POOL, release_at }));
    let miner = chain.miner(&a);
    assert_eq!(
        (miner.state, miner.share, miner.stake, miner.cooldown_until),
        (MinerState::CoolingDown, 0, STAKE, release_at)
    );
    assert_eq!(chain.state.mining_totals().total_share, total - computation::share(chain.miner(&a).v, SCORE, CONF));
    assert_eq!(chain.state.mining_totals().total_share, 0, "B is unresponsive, A stopped");
    let after = chain.state.pool(POOL).unwrap();
    assert_eq!((after.value, after.free), (pool.value, pool.free), "stopping frees nothing yet");
    chain.refuses(chain.tx(&bob, Call::StopMining { worker: a.public() }), "not mining");
    chain.refuses(chain.tx(&bob, Call::StartMining { worker: a.public(), stake: STAKE }), "not ready");
    chain.refuses(chain.heartbeat(&a, miner.challenge_at), "does not mine");

    // An unresponsive worker can be stopped too.
    let events = chain.send(&bob, Call::StopMining { worker: b.public() });
    let b_release = chain.state.height() + params.cooldown_blocks;
    assert!(has(&events, &Event::MiningStopped { worker: b.public(), pool: POOL, release_at: b_release }));
    assert_eq!(chain.miner(&b).state, MinerState::CoolingDown);

    chain.run_to(release_at - 1, &[]);
    assert_eq!(chain.miner(&a).state, MinerState::CoolingDown);
    let free = chain.state.pool(POOL).unwrap().free;
    let events = chain.step(&[]);
    assert!(has(&events, &Event::StakeReleased { worker: a.public(), pool: POOL, amount: STAKE }));
    assert!(!events.iter().any(|e| matches!(e, Event::StakeReleased { worker, .. } if *worker == b.public())));
    let miner = chain.miner(&a);
    assert_eq!((miner.state, miner.stake, miner.v, miner.share), (MinerState::Ready, 0, 0, 0));
    assert_eq!(chain.state.pool(POOL).unwrap().free, free + STAKE);

    // Ready again: it starts with exactly the minimum stake.
    let minimum = chain.state.minimum_stake(&a.public()).unwrap();
    let events = chain.send(&bob, Call::StartMining { worker: a.public(), stake: minimum });
    let share = computation::share(minimum, SCORE, CONF);
    assert_eq!(share, 2_800, "√(2² + 2800²)");
    assert!(has(&events, &Event::MiningStarted { worker: a.public(), pool: POOL, stake: minimum, share }));
    assert_eq!(chain.state.height(), b_release, "B was stopped one block after A");
    assert!(has(&events, &Event::StakeReleased { worker: b.public(), pool: POOL, amount: STAKE }));
    assert_eq!(chain.miner(&b).state, MinerState::Ready);
    assert_eq!(chain.state.mining_totals().total_share, share);
    chain.run_to(b_release + 15, &[(&a, When::Challenge)]);
    assert_eq!(chain.state.pool(POOL).unwrap().locked(), minimum);
    let paid = chain.answers.iter().filter(|x| x.worker == a.public() && x.height > stopped_at).count();
    assert!(paid >= 1, "the restarted worker is paid again");
    chain.check_reload();
}

#[test]
fn rewards_stop_at_the_budget() {
    let mut mining = params();
    mining.reward_budget = 7 * PHA + 1;
    let mut chain = Chain::new(mining);
    let bob = dev("bob");
    chain.send(&bob, Call::CreatePool { commission: COMMISSION, cap: None });
    chain.send(&dev("dave"), Call::Contribute { pool: POOL, amount: 4_000 * PHA });
    let a = worker_key(1);
    chain.register(&a, &bob);
    chain.send(&bob, Call::BindWorker { pool: POOL, worker: a.public() });
    chain.send(&bob, Call::StartMining { worker: a.public(), stake: STAKE });
    while chain.state.mining_totals().minted < mining.reward_budget {
        chain.step(&[(&a, When::Challenge)]);
        assert!(chain.state.height() < 40);
    }
    assert_eq!(chain.state.mining_totals().minted, mining.reward_budget);
    assert_eq!(chain.state.total_issuance(), TOTAL_SUPPLY + mining.reward_budget);
    let last = *chain.answers.last().unwrap();
    assert!(last.reward < 2 * PHA * Balance::from(last.blocks), "the last reward is what the budget had left");
    // Further answers are accepted and pay nothing.
    let answers = chain.answers.len();
    while chain.answers.len() < answers + 2 {
        chain.step(&[(&a, When::Challenge)]);
    }
    assert!(chain.answers[answers..].iter().all(|x| x.paid && x.reward == 0));
    assert_eq!(chain.state.total_issuance(), TOTAL_SUPPLY + mining.reward_budget);
    chain.check_reload();
}

/// `check_tx` (the mempool's check, against the finalized state at height
/// H) judges an answer's window at H, while the next block applies it at
/// H + 1: an answer the next block would take is refused, and one it would
/// refuse is admitted.
#[test]
fn check_tx_judges_an_answer_by_the_block_it_would_go_into() {
    let (mut chain, a, _b) = mining_pool();
    while chain.miner(&a).challenge_at != chain.state.height() + 1 {
        chain.step(&[(&a, When::Challenge)]);
        assert!(chain.state.height() < 500, "no challenge one block ahead");
    }
    let m = chain.miner(&a);
    let tx = chain.heartbeat(&a, m.challenge_at);
    assert!(chain.build(vec![tx.clone()]).rejected.is_empty(), "the next block takes the answer");
    assert_eq!(chain.state.check_tx(&tx, tx.encode().len()), Ok(()), "so the mempool should admit it");

    chain.advance_to(m.deadline);
    let tx = chain.heartbeat(&a, m.challenge_at);
    assert_eq!(chain.build(vec![tx.clone()]).rejected.len(), 1, "the next block refuses the answer");
    assert!(chain.state.check_tx(&tx, tx.encode().len()).is_err(), "so the mempool should refuse it");
}
