//! `phalanx bench state`: the cost of committing the state per block as the
//! state grows (issue 21's figure).
//!
//! Builds a state of `--accounts` accounts (a dev genesis plus synthetic
//! account leaves, loaded the way a node loads its stored state, and written
//! to both of a node's stores), then runs `--blocks` blocks of `--changes`
//! signed transfers to distinct accounts (signatures checked beforehand, as
//! a validator's mempool does) and measures, per block, the node's path:
//! executing it, committing its changed leaves to the authenticated store
//! (`phalanx-statedb`: one batch, its root, a durable commit) and to redb.
//! The baseline, measured in the same run on the same leaves, is the state
//! root as it was computed before the store: a Merkle root rebuilt over
//! every leaf's (cached) hash. Then the process RSS, the size on disk and
//! the time to reopen both stores and load the state.

use anyhow::Context;
use phalanx_node::store::{FinalizedBlock, Store};
use phalanx_primitives::{Hash, Keypair, PLANCK_PER_PHA, PublicKey, encode, mnemonic::dev_keypair};
use phalanx_state::builder::{Candidate, build_block};
use phalanx_state::{Account, account_key, merkle};
use phalanx_state::{Call, Genesis, State, Transaction};
use phalanx_statedb::Parent;
use std::collections::BTreeMap;
use std::time::Instant;

/// Transfers per sender per block (each of four dev accounts sends a quarter).
const SENDERS: [&str; 4] = ["alice", "bob", "charlie", "dave"];
/// Leaves per batch when the authenticated store is first loaded.
const LOAD_BATCH: usize = 200_000;

fn synthetic(n: u64) -> PublicKey {
    PublicKey(phalanx_primitives::sha256_parts(&[b"phalanx/bench-state", &n.to_be_bytes()]).0)
}

/// Bytes of all files under `dir`, at any depth.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

pub(crate) fn run(accounts: u64, changes: usize, blocks: usize, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(accounts >= changes as u64, "--accounts must be at least --changes");
    anyhow::ensure!((1..=10_000).contains(&changes), "--changes is 1 to 10,000 (the block's transaction limit)");
    let dir = std::env::temp_dir().join(format!("phalanx-bench-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let (mut genesis_state, genesis_block) = Genesis::dev(vec![Keypair::from_seed(&[1; 32]).public()]).build()?;
    let genesis_leaves = genesis_state.block_writes();
    let synthetic_leaf = |n: u64| (account_key(&synthetic(n)), encode(&Account { nonce: 0, free: PLANCK_PER_PHA }));
    // Leaves are generated chunk by chunk, never all at once, so the RSS
    // measured after each phase is what that phase holds.
    let chunks = || {
        (0..accounts).step_by(LOAD_BATCH).map(move |start| {
            (start..(start + LOAD_BATCH as u64).min(accounts)).map(synthetic_leaf).collect::<Vec<_>>()
        })
    };
    let rss_start = crate::bench_agent::rss_bytes()?;
    let store = Store::open(&dir.join("chain.redb"))?;
    store.initialize(&genesis_block, &mut genesis_state)?;
    drop(genesis_state);
    let t = Instant::now();
    for chunk in chunks() {
        store.write_leaves(&chunk)?;
        store.state().apply(0, chunk.into_iter().map(|(k, v)| (k, Some(v))).collect())?;
    }
    let load_s = t.elapsed().as_secs_f64();
    let rss_stores = crate::bench_agent::rss_bytes()?;
    let mut state =
        State::load(genesis_leaves.iter().cloned().chain(chunks().flatten())).context("loading the synthetic state")?;
    let rss_state = crate::bench_agent::rss_bytes()?;
    // The old root's cache: every leaf's hash.
    let mut leaf_hashes: BTreeMap<Vec<u8>, Hash> = genesis_leaves
        .iter()
        .cloned()
        .chain(chunks().flatten())
        .map(|(k, v)| {
            let hash = merkle::leaf_hash(&k, &v);
            (k, hash)
        })
        .collect();
    let rss_baseline_cache = crate::bench_agent::rss_bytes()?;
    let setup_s = started.elapsed().as_secs_f64();

    let keys: Vec<Keypair> =
        SENDERS.iter().map(|name| dev_keypair(name)).collect::<Option<_>>().context("the dev accounts")?;
    let fee = PLANCK_PER_PHA / 100;
    let (mut parent, mut next_recipient) = (genesis_block, 0u64);
    let (mut execute_ms, mut commit_ms, mut redb_ms, mut baseline_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..blocks {
        let candidates: Vec<Candidate> = (0..changes)
            .map(|i| {
                let from = &keys[i % keys.len()];
                let nonce = state.account(&from.public()).map_or(0, |a| a.nonce) + (i / keys.len()) as u64;
                let to = synthetic(next_recipient % accounts);
                next_recipient += 1;
                let tx = Transaction {
                    chain_id: state.chain_id(),
                    signer: from.public(),
                    nonce,
                    fee,
                    call: Call::Transfer { to, amount: 1 },
                }
                .sign(from);
                Candidate { encoded_len: tx.encode().len(), tx, signature_verified: true }
            })
            .collect();
        let t = Instant::now();
        let built = build_block(&state, parent.hash(), state.timestamp_ms() + 500, candidates);
        execute_ms.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(built.rejected.is_empty(), "transfers refused: {:?}", &built.rejected[..1]);
        let writes = built.state.block_writes();

        // The baseline: the old root, rebuilt over every leaf's hash.
        let t = Instant::now();
        for (key, value) in &writes {
            leaf_hashes.insert(key.clone(), merkle::leaf_hash(key, value));
        }
        std::hint::black_box(merkle::root(leaf_hashes.values().copied()));
        baseline_ms.push(t.elapsed().as_secs_f64() * 1e3);

        // The node's path: the changed leaves as one batch, its root, a durable commit.
        let height = built.block.header.height;
        let t = Instant::now();
        let speculation = store.state().speculate(
            Parent::Committed,
            height,
            writes.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        )?;
        store.state().commit(speculation)?;
        commit_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let mut built = built.with_state_root(speculation.root);

        let t = Instant::now();
        let state_size = store.state().status()?.size;
        let changes = built.state.take_changes();
        let events = built.events.clone();
        store.commit_block(&FinalizedBlock {
            block: &built.block,
            certificate: &[],
            events: &events,
            changes: &changes,
            state_size,
            transition: None,
        })?;
        redb_ms.push(t.elapsed().as_secs_f64() * 1e3);
        (state, parent) = (built.state, built.block);
    }
    let rss = crate::bench_agent::rss_bytes()?;
    drop(leaf_hashes);
    let (disk_redb, disk_statedb) =
        (std::fs::metadata(dir.join("chain.redb")).map_or(0, |m| m.len()), dir_bytes(&dir.join("chain.state")));
    drop((state, store));
    let t = Instant::now();
    let reopened = Store::open(&dir.join("chain.redb"))?;
    let loaded = reopened.load_state()?;
    let reopen_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(loaded.height() == blocks as u64, "the reopened state is at {}", loaded.height());
    drop((loaded, reopened));
    let _ = std::fs::remove_dir_all(&dir);

    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let (execute_ms, commit_ms, redb_ms, baseline_ms) =
        (sorted(execute_ms), sorted(commit_ms), sorted(redb_ms), sorted(baseline_ms));
    let p = crate::bench::percentile;
    let value = serde_json::json!({
        "accounts": accounts,
        "changes": changes,
        "blocks": blocks,
        "commit_ms_p50": p(&commit_ms, 0.5),
        "commit_ms_p99": p(&commit_ms, 0.99),
        "baseline_rebuild_ms_p50": p(&baseline_ms, 0.5),
        "baseline_rebuild_ms_p99": p(&baseline_ms, 0.99),
        "execute_ms_p50": p(&execute_ms, 0.5),
        "redb_commit_ms_p50": p(&redb_ms, 0.5),
        "rss_bytes": rss,
        "rss_bytes_at_start": rss_start,
        "rss_bytes_stores_loaded": rss_stores,
        "rss_bytes_state_loaded": rss_state,
        "rss_bytes_old_root_cache_built": rss_baseline_cache,
        "stores_bytes_per_account": rss_stores.saturating_sub(rss_start) / accounts,
        "state_bytes_per_account": rss_state.saturating_sub(rss_stores) / accounts,
        "old_root_cache_bytes_per_account": rss_baseline_cache.saturating_sub(rss_state) / accounts,
        "disk_bytes_redb": disk_redb,
        "disk_bytes_statedb": disk_statedb,
        "reopen_ms": reopen_ms,
        "statedb_load_s": load_s,
        "setup_s": setup_s,
    });
    crate::output::emit(json, &value, || {
        format!(
            "{accounts} accounts, {changes} transfers a block, {blocks} blocks:\n\
             state commitment (changed leaves, root, durable commit): p50 {:.1} ms, p99 {:.1} ms\n\
             baseline, the old root rebuilt over every leaf: p50 {:.1} ms, p99 {:.1} ms\n\
             execution p50 {:.1} ms; redb commit p50 {:.1} ms\n\
             RSS {:.0} MiB; per account: stores {} B, typed state {} B, the old root's leaf-hash cache {} B; on disk: redb {:.0} MiB, \
             state store {:.0} MiB; reopen (both stores, load the state) {:.0} ms; first load of the store {:.1} s",
            p(&commit_ms, 0.5),
            p(&commit_ms, 0.99),
            p(&baseline_ms, 0.5),
            p(&baseline_ms, 0.99),
            p(&execute_ms, 0.5),
            p(&redb_ms, 0.5),
            rss as f64 / (1 << 20) as f64,
            rss_stores.saturating_sub(rss_start) / accounts,
            rss_state.saturating_sub(rss_stores) / accounts,
            rss_baseline_cache.saturating_sub(rss_state) / accounts,
            disk_redb as f64 / (1 << 20) as f64,
            disk_statedb as f64 / (1 << 20) as f64,
            reopen_ms,
            load_s,
        )
    })
}
