//! `phalanx bench state`: the cost of committing the state per block as the
//! state grows (issue 21's baseline and, later, its figure).
//!
//! Builds a state of `--accounts` accounts (a dev genesis plus synthetic
//! account leaves, loaded the way a node loads its stored state), stores it,
//! then runs `--blocks` blocks of `--changes` signed transfers to distinct
//! accounts (signatures checked beforehand, as a validator's mempool does)
//! and measures, per block: building it (execution and the state root), the
//! root alone, and the durable commit of its changes. Then the process RSS,
//! the database's size on disk and the time to reopen it (open and load the
//! state).
//!
//! The same blocks are also committed to the authenticated store
//! (`phalanx-statedb`, qmdb), loaded with the same state: per block the
//! batch of changed leaves, its root and its durable commit, then the
//! memory it added and its reopen time. The full rebuild of the old root,
//! measured in the same run on the same state, is the baseline.

use anyhow::Context;
use phalanx_node::store::{FinalizedBlock, Store};
use phalanx_primitives::{Keypair, PLANCK_PER_PHA, PublicKey, encode, mnemonic::dev_keypair};
use phalanx_state::builder::{Candidate, build_block};
use phalanx_state::{Account, account_key};
use phalanx_state::{Call, Genesis, State, Transaction};
use std::time::Instant;

/// Leaves per batch when the authenticated store is first loaded.
const LOAD_BATCH: usize = 200_000;

/// Transfers per sender per block (each of four dev accounts sends a quarter).
const SENDERS: [&str; 4] = ["alice", "bob", "charlie", "dave"];

fn synthetic(n: u64) -> PublicKey {
    PublicKey(phalanx_primitives::sha256_parts(&[b"phalanx/bench-state", &n.to_be_bytes()]).0)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| if m.is_file() { m.len() } else { 0 })
        .sum()
}

pub(crate) fn run(accounts: u64, changes: usize, blocks: usize, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(accounts >= changes as u64, "--accounts must be at least --changes");
    anyhow::ensure!((1..=10_000).contains(&changes), "--changes is 1 to 10,000 (the block's transaction limit)");
    let dir = tempfile_dir()?;
    let started = Instant::now();
    let (genesis_state, genesis_block) = Genesis::dev(vec![Keypair::from_seed(&[1; 32]).public()]).build()?;
    let mut leaves = genesis_state.clone().take_changes();
    leaves.extend(
        (0..accounts).map(|n| (account_key(&synthetic(n)), encode(&Account { nonce: 0, free: PLANCK_PER_PHA }))),
    );
    let store = Store::open(&dir.join("chain.redb"))?;
    store.initialize(&genesis_block, &mut genesis_state.clone())?;
    store.write_leaves(&leaves)?;
    let rss_before_statedb = crate::bench_agent::rss_bytes()?;
    let statedb_dir = dir.join("statedb");
    let statedb = phalanx_statedb::StateService::open(&statedb_dir)?;
    let t = Instant::now();
    for chunk in leaves.chunks(LOAD_BATCH) {
        statedb.apply(0, chunk.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect())?;
    }
    let statedb_load_s = t.elapsed().as_secs_f64();
    let rss_statedb = crate::bench_agent::rss_bytes()?.saturating_sub(rss_before_statedb);
    let mut state = State::load(leaves).context("loading the synthetic state")?;
    let setup_s = started.elapsed().as_secs_f64();

    let keys: Vec<Keypair> =
        SENDERS.iter().map(|name| dev_keypair(name)).collect::<Option<_>>().context("the dev accounts")?;
    let fee = PLANCK_PER_PHA / 100;
    let (mut parent, mut next_recipient) = (genesis_block, 0u64);
    let (mut build_ms, mut root_ms, mut commit_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut statedb_ms = Vec::new();
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
        let mut built = build_block(&state, parent.hash(), state.timestamp_ms() + 500, candidates);
        build_ms.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(built.rejected.is_empty(), "transfers refused: {:?}", &built.rejected[..1]);
        let t = Instant::now();
        let root = built.state.root();
        root_ms.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(root == built.block.header.state_root, "the root differs from the header's");
        let t = Instant::now();
        let changes = built.state.take_changes();
        let events = built.events.clone();
        store.commit_block(&FinalizedBlock {
            block: &built.block,
            certificate: &[],
            events: &events,
            changes: &changes,
        })?;
        commit_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let writes = changes.into_iter().map(|(k, v)| (k, Some(v))).collect();
        let t = Instant::now();
        statedb.apply(built.block.header.height, writes)?;
        statedb_ms.push(t.elapsed().as_secs_f64() * 1e3);
        (state, parent) = (built.state, built.block);
    }
    let rss = crate::bench_agent::rss_bytes()?;
    let disk = dir_bytes(&dir);
    drop((state, store));
    let t = Instant::now();
    let reopened = Store::open(&dir.join("chain.redb"))?;
    let loaded = reopened.load_state()?;
    let reopen_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(loaded.height() == blocks as u64, "the reopened state is at {}", loaded.height());
    drop((loaded, reopened));
    drop(statedb);
    let t = Instant::now();
    let reopened = phalanx_statedb::StateService::open(&statedb_dir)?;
    let (height, _) = reopened.status()?;
    let statedb_reopen_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(height == Some(blocks as u64), "the reopened state store is at {height:?}");
    drop(reopened);
    let statedb_disk = dir_bytes_deep(&statedb_dir);
    let _ = std::fs::remove_dir_all(&dir);

    let total: Vec<f64> = build_ms.iter().zip(&commit_ms).map(|(b, c)| b + c).collect();
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    // The authenticated path: execution without the old root, then the store's batch.
    let execute: Vec<f64> = build_ms.iter().zip(&root_ms).map(|(b, r)| b - r).collect();
    let statedb_total: Vec<f64> = execute.iter().zip(&statedb_ms).map(|(e, s)| e + s).collect();
    let (statedb_total, statedb_ms) = (sorted(statedb_total), sorted(statedb_ms));
    let (total, build_ms, root_ms, commit_only) = (sorted(total), sorted(build_ms), sorted(root_ms), sorted(commit_ms));
    let p = crate::bench::percentile;
    let value = serde_json::json!({
        "accounts": accounts,
        "changes": changes,
        "blocks": blocks,
        "commit_ms_p50": p(&total, 0.5),
        "commit_ms_p99": p(&total, 0.99),
        "build_ms_p50": p(&build_ms, 0.5),
        "root_ms_p50": p(&root_ms, 0.5),
        "store_commit_ms_p50": p(&commit_only, 0.5),
        "rss_bytes": rss,
        "disk_bytes": disk,
        "reopen_ms": reopen_ms,
        "setup_s": setup_s,
        "statedb": {
            "commit_ms_p50": p(&statedb_total, 0.5),
            "commit_ms_p99": p(&statedb_total, 0.99),
            "batch_ms_p50": p(&statedb_ms, 0.5),
            "batch_ms_p99": p(&statedb_ms, 0.99),
            "rss_bytes": rss_statedb,
            "rss_bytes_per_account": rss_statedb as f64 / accounts as f64,
            "disk_bytes": statedb_disk,
            "reopen_ms": statedb_reopen_ms,
            "load_s": statedb_load_s,
        },
        "baseline_rebuild_ms_p50": p(&root_ms, 0.5),
    });
    crate::output::emit(json, &value, || {
        format!(
            "{accounts} accounts, {changes} transfers a block, {blocks} blocks:\n\
             per block (execute + root + durable commit): p50 {:.1} ms, p99 {:.1} ms\n\
             of which the state root alone: p50 {:.1} ms; the store's commit: p50 {:.1} ms\n\
             RSS {:.0} MiB, on disk {:.0} MiB, reopen (open + load the state) {:.0} ms\n\
             authenticated store (qmdb): per block (execute + batch + root + durable commit) p50 {:.1} ms, p99 {:.1} ms;\n\
             the batch alone p50 {:.1} ms, p99 {:.1} ms (the old root's full rebuild: p50 {:.1} ms)\n\
             its memory {:.0} MiB ({:.0} bytes an account), on disk {:.0} MiB, reopen {:.0} ms, first load {:.1} s",
            p(&total, 0.5),
            p(&total, 0.99),
            p(&root_ms, 0.5),
            p(&commit_only, 0.5),
            rss as f64 / (1 << 20) as f64,
            disk as f64 / (1 << 20) as f64,
            reopen_ms,
            p(&statedb_total, 0.5),
            p(&statedb_total, 0.99),
            p(&statedb_ms, 0.5),
            p(&statedb_ms, 0.99),
            p(&root_ms, 0.5),
            rss_statedb as f64 / (1 << 20) as f64,
            rss_statedb as f64 / accounts as f64,
            statedb_disk as f64 / (1 << 20) as f64,
            statedb_reopen_ms,
            statedb_load_s,
        )
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("phalanx-bench-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Bytes of all files under `dir`, at any depth.
fn dir_bytes_deep(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_bytes_deep(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
