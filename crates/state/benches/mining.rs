//! Block processing with 10,000 mining workers in 1,000 pools, against an
//! empty block on a chain without miners (measured in the same run):
//!
//! - `empty_block_no_miners`: the baseline, the per-block work every chain does;
//! - `block_500_transfers_no_miners`: a second baseline, as many plain
//!   signed transfers as the answers below (each answer carries two
//!   signatures: the transaction's and the worker's message);
//! - `empty_block_10k_miners`: the per-block mining rules (one pass over the
//!   miners' deadlines and cooldowns, the pools' queues);
//! - `block_500_answers_10k_miners`: the typical load of 10,000 workers
//!   answering a challenge every ~20 blocks (500 signed heartbeats per
//!   block, each paying its pool and the treasury).
//!
//! Run: `cargo bench -p phalanx-state --bench mining`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Keypair, PLANCK_PER_PHA};
use phalanx_state::builder::{Candidate, build_block};
use phalanx_state::modules::computation::MiningParams;
use phalanx_state::modules::registry::FEATURE_AGENTS;
use phalanx_state::{
    Block, Call, Evidence, Genesis, RegistrationInfo, SignedTransaction, State, Transaction, WorkerMessage,
    WorkerPayload,
};

const POOLS: usize = 1_000;
const WORKERS_PER_POOL: usize = 10;
const ANSWERS: usize = 500;
const PHA: u128 = PLANCK_PER_PHA;

struct Chain {
    state: State,
    parent: Block,
}

impl Chain {
    /// Applies `txs` (signed here, so their signatures are known good) in blocks.
    fn apply(&mut self, txs: Vec<SignedTransaction>) {
        for chunk in txs.chunks(5_000) {
            let candidates = chunk.iter().map(|tx| Candidate {
                tx: tx.clone(),
                encoded_len: tx.encode().len(),
                signature_verified: true,
            });
            let built =
                build_block(&self.state, self.parent.hash(), self.parent.header.timestamp_ms + 1_000, candidates);
            assert!(built.rejected.is_empty(), "{:?}", &built.rejected[..built.rejected.len().min(3)]);
            self.state = built.state;
            self.parent = built.block;
        }
    }

    fn empty_block(&mut self) {
        let built = build_block(&self.state, self.parent.hash(), self.parent.header.timestamp_ms + 1_000, []);
        self.state = built.state;
        self.parent = built.block;
    }
}

fn signed(state: &State, from: &Keypair, nonce: u64, call: Call) -> SignedTransaction {
    Transaction { chain_id: state.chain_id(), signer: from.public(), nonce, fee: PHA / 100, call }.sign(from)
}

fn genesis() -> Chain {
    let mut genesis = Genesis::dev(vec![Keypair::from_seed(&[1; 32]).public()]);
    genesis.mining = MiningParams { challenge_interval: 20, challenge_window: 40, ..MiningParams::default() };
    let (state, parent) = genesis.build().unwrap();
    Chain { state, parent }
}

/// 1,000 owners with a pool each, 10 workers each, all mining.
fn mining_chain() -> (Chain, Vec<Keypair>, Vec<Keypair>) {
    let mut chain = genesis();
    let alice = dev_keypair("alice").unwrap();
    let owners: Vec<Keypair> = (0..POOLS)
        .map(|i| Keypair::from_seed(&[(i % 251) as u8, (i / 251) as u8, 7, 7].repeat(8).try_into().unwrap()))
        .collect();
    let workers: Vec<Keypair> = (0..POOLS * WORKERS_PER_POOL)
        .map(|i| {
            Keypair::from_seed(
                &[(i % 251) as u8, (i / 251 % 251) as u8, (i / 63_001) as u8, 9].repeat(8).try_into().unwrap(),
            )
        })
        .collect();
    let state = &chain.state;
    let funding = owners
        .iter()
        .enumerate()
        .map(|(i, o)| signed(state, &alice, i as u64, Call::Transfer { to: o.public(), amount: 10_000 * PHA }))
        .collect();
    chain.apply(funding);
    let state = &chain.state;
    let mut setup = Vec::new();
    for (p, owner) in owners.iter().enumerate() {
        setup.push(signed(state, owner, 0, Call::CreatePool { commission: 100_000, cap: None }));
        setup.push(signed(state, owner, 1, Call::Contribute { pool: p as u64, amount: 5_000 * PHA }));
    }
    chain.apply(setup);
    let state = &chain.state;
    let mut registrations = Vec::new();
    for (i, worker) in workers.iter().enumerate() {
        let owner = &owners[i / WORKERS_PER_POOL];
        let info = RegistrationInfo {
            chain_id: state.chain_id(),
            identity: worker.public(),
            ecdh: [7; 32],
            operator: owner.public(),
            features: FEATURE_AGENTS,
            benchmark_score: 50_000,
        };
        let evidence = Evidence::Simulated { report_data: info.report_data() };
        registrations.push(signed(
            state,
            owner,
            2 + (i % WORKERS_PER_POOL) as u64,
            Call::RegisterWorker { info, evidence },
        ));
    }
    chain.apply(registrations);
    let state = &chain.state;
    let mut mining = Vec::new();
    for (i, worker) in workers.iter().enumerate() {
        let owner = &owners[i / WORKERS_PER_POOL];
        let nonce = 2 + WORKERS_PER_POOL as u64 + 2 * (i % WORKERS_PER_POOL) as u64;
        mining.push(signed(
            state,
            owner,
            nonce,
            Call::BindWorker { pool: (i / WORKERS_PER_POOL) as u64, worker: worker.public() },
        ));
        mining.push(signed(state, owner, nonce + 1, Call::StartMining { worker: worker.public(), stake: 100 * PHA }));
    }
    chain.apply(mining);
    assert_eq!(chain.state.miners().count(), POOLS * WORKERS_PER_POOL);
    (chain, owners, workers)
}

/// Heartbeats for up to `ANSWERS` workers whose challenge the next block may answer.
fn answers(chain: &Chain, owners: &[Keypair], workers: &[Keypair]) -> Vec<Candidate> {
    let next = chain.state.height() + 1;
    let mut nonces = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (i, worker) in workers.iter().enumerate() {
        let miner = chain.state.miner(&worker.public()).unwrap();
        if !(miner.challenge_at..=miner.deadline).contains(&next) {
            continue;
        }
        let owner = &owners[i / WORKERS_PER_POOL];
        let nonce = nonces.entry(owner.public()).or_insert_with(|| chain.state.account(&owner.public()).unwrap().nonce);
        let registered = chain.state.worker(&worker.public()).unwrap();
        let message = WorkerMessage {
            chain_id: chain.state.chain_id(),
            worker: worker.public(),
            sequence: registered.next_sequence,
            payload: WorkerPayload::MiningHeartbeat { challenge: miner.challenge_at },
        }
        .sign(worker);
        let tx = signed(&chain.state, owner, *nonce, Call::WorkerMessage { message });
        *nonce += 1;
        out.push(Candidate { encoded_len: tx.encode().len(), tx, signature_verified: false });
        if out.len() == ANSWERS {
            break;
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut plain = genesis();
    let (mut chain, owners, workers) = mining_chain();
    // Move to a height where many challenges are open.
    for _ in 0..30 {
        chain.empty_block();
    }
    let candidates = answers(&chain, &owners, &workers);
    assert!(candidates.len() >= ANSWERS / 2, "only {} answers are due", candidates.len());
    let built =
        build_block(&chain.state, chain.parent.hash(), chain.parent.header.timestamp_ms + 1_000, candidates.clone());
    assert!(built.rejected.is_empty(), "{:?}", &built.rejected[..built.rejected.len().min(3)]);
    let answered_block = built.block;
    let empty_with_miners =
        build_block(&chain.state, chain.parent.hash(), chain.parent.header.timestamp_ms + 1_000, []).block;
    plain.empty_block();
    let empty_plain =
        build_block(&plain.state, plain.parent.hash(), plain.parent.header.timestamp_ms + 1_000, []).block;

    let alice = dev_keypair("alice").unwrap();
    let transfers: Vec<Candidate> = (0..answered_block.txs.len() as u64)
        .map(|nonce| {
            let tx = signed(
                &plain.state,
                &alice,
                nonce,
                Call::Transfer { to: Keypair::from_seed(&[3; 32]).public(), amount: PHA },
            );
            Candidate { encoded_len: tx.encode().len(), tx, signature_verified: false }
        })
        .collect();
    let transfer_block =
        build_block(&plain.state, plain.parent.hash(), plain.parent.header.timestamp_ms + 1_000, transfers).block;
    assert_eq!(transfer_block.txs.len(), answered_block.txs.len());

    let mut group = c.benchmark_group("mining_block");
    group.sample_size(20);
    group.bench_function("empty_block_no_miners", |b| {
        b.iter_batched(|| plain.state.clone(), |mut s| s.execute_block(&empty_plain).unwrap(), BatchSize::SmallInput)
    });
    group.bench_function(format!("block_{}_transfers_no_miners", transfer_block.txs.len()), |b| {
        b.iter_batched(|| plain.state.clone(), |mut s| s.execute_block(&transfer_block).unwrap(), BatchSize::SmallInput)
    });
    group.bench_function("empty_block_10k_miners", |b| {
        b.iter_batched(
            || chain.state.clone(),
            |mut s| s.execute_block(&empty_with_miners).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function(format!("block_{}_answers_10k_miners", answered_block.txs.len()), |b| {
        b.iter_batched(|| chain.state.clone(), |mut s| s.execute_block(&answered_block).unwrap(), BatchSize::SmallInput)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
