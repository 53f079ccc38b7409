//! Cost of applying a block of signed transfers, against the floor set by
//! verifying the same signatures alone (measured in the same run, so the
//! ratio is meaningful on a noisy machine).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Keypair, PLANCK_PER_PHA};
use phalanx_state::builder::{Candidate, build_block};
use phalanx_state::{Call, Genesis, Transaction};

const TXS: usize = 1_000;

fn bench(c: &mut Criterion) {
    let (state, genesis) = Genesis::dev(vec![Keypair::from_seed(&[1; 32]).public()]).build().unwrap();
    let alice = dev_keypair("alice").unwrap();
    let fee = PLANCK_PER_PHA / 100;
    let txs: Vec<_> = (0..TXS as u64)
        .map(|nonce| {
            let to = Keypair::from_seed(&[(nonce % 200) as u8; 32]).public();
            Transaction {
                chain_id: state.chain_id(),
                signer: alice.public(),
                nonce,
                fee,
                call: Call::Transfer { to, amount: 1 },
            }
            .sign(&alice)
        })
        .collect();
    let candidates: Vec<Candidate> = txs
        .iter()
        .map(|tx| Candidate { tx: tx.clone(), encoded_len: tx.encode().len(), signature_verified: false })
        .collect();
    let block = build_block(&state, genesis.hash(), 1, candidates.clone()).block;
    assert_eq!(block.txs.len(), TXS);

    let mut group = c.benchmark_group("block_of_1000_transfers");
    group.throughput(Throughput::Elements(TXS as u64));
    group.sample_size(20);
    group.bench_function("baseline_verify_signatures_only", |b| {
        b.iter(|| txs.iter().all(|tx| tx.verify_signature().is_ok()))
    });
    group.bench_function("execute_block", |b| {
        b.iter_batched(|| state.clone(), |mut s| s.execute_block(&block).unwrap(), BatchSize::SmallInput)
    });
    group.bench_function("build_block_preverified", |b| {
        let preverified: Vec<Candidate> =
            candidates.iter().cloned().map(|c| Candidate { signature_verified: true, ..c }).collect();
        b.iter_batched(|| preverified.clone(), |c| build_block(&state, genesis.hash(), 1, c), BatchSize::SmallInput)
    });
    group.finish();

    // The state root's cost is measured by `phalanx bench state` (the store).
}

criterion_group!(benches, bench);
criterion_main!(benches);
