//! `phalanx bench worker`: how fast a worker catches up with a chain, and
//! how fast quotes verify.
//!
//! Builds a chain of signed transfers in memory with real finalization
//! certificates (signed by the dev validator's key exactly as consensus
//! would), stores it in a node's database and serves it over JSON-RPC on a
//! loopback port. Then, in one run, five ways through the same blocks:
//! 1. replay only: `State::execute_block` on decoded blocks (the floor:
//!    what any verifier must do);
//! 2. verify in process: `VerifiedChain::apply_batch` on the encoded
//!    bytes, 1,024 at a time (decode and signatures on every core, then
//!    parent link, certificate, replay in order);
//! 3. the worker's catch-up over RPC: fetch batches from the node, then 2;
//! 4. a fresh non-validator node's catch-up over RPC (`follower`): fetch,
//!    link, certificate, execute and commit each block durably to its own
//!    database, as `phalanx node` without a key does;
//! 5. a fresh worker joining by state sync at the head (`--state-sync`:
//!    the offer and the state checked in its runtime), against replaying
//!    5,000 blocks at the rate of 3.
//!
//! Quote verification is measured on the genuine SGX and TDX quotes that
//! ship as test vectors, against one ed25519 verification as the baseline.

use phalanx_node::chain::{Chain, ChainConfig};
use phalanx_node::dev::{DevBlocks, dev_genesis};
use phalanx_node::rpc::{RpcConfig, serve};
use phalanx_node::store::Store;
use phalanx_primitives::mnemonic::{DEV_ACCOUNTS, dev_keypair};
use phalanx_primitives::{Keypair, PLANCK_PER_PHA};
use phalanx_state::builder::Candidate;
use phalanx_state::{Block, Call, Transaction};
use phalanx_worker::VerifiedChain;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SGX_QUOTE: &[u8] = include_bytes!("../../attest/tests/data/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("../../attest/tests/data/sgx_quote_collateral.json");
const TDX_QUOTE: &[u8] = include_bytes!("../../attest/tests/data/tdx_quote");
const TDX_COLLATERAL: &[u8] = include_bytes!("../../attest/tests/data/tdx_quote_collateral.json");
/// Inside both sample collaterals' validity.
const QUOTE_NOW: u64 = 1_751_000_000;

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Builds `blocks` blocks of `txs_per_block` transfers each, certified.
/// A certified block with its events.
type CertifiedBlock = (Block, Vec<u8>, Vec<phalanx_state::EventRecord>);

fn build_chain(blocks: u64, txs_per_block: usize) -> anyhow::Result<Vec<CertifiedBlock>> {
    let genesis = dev_genesis();
    let mut dev = DevBlocks::new(&genesis)?;
    let senders: Vec<Keypair> = DEV_ACCOUNTS.iter().map(|n| dev_keypair(n).expect("dev account")).collect();
    let mut nonces = vec![0u64; senders.len()];
    // A fixed set of recipients: the state stays small.
    let recipients: Vec<_> = (0..64u8).map(|i| Keypair::from_seed(&[i; 32]).public()).collect();
    let mut chain = Vec::with_capacity(blocks as usize);
    for height in 1..=blocks {
        let chain_id = dev.state.chain_id();
        let candidates: Vec<Candidate> = (0..txs_per_block)
            .map(|i| {
                let who = (height as usize + i) % senders.len();
                let tx = Transaction {
                    chain_id,
                    signer: senders[who].public(),
                    nonce: nonces[who],
                    fee: PLANCK_PER_PHA / 100,
                    call: Call::Transfer { to: recipients[(height as usize * 7 + i) % recipients.len()], amount: 1 },
                }
                .sign(&senders[who]);
                nonces[who] += 1;
                let encoded_len = tx.encode().len();
                Candidate { tx, encoded_len, signature_verified: true }
            })
            .collect();
        let (built, certificate) = dev.next(genesis.timestamp_ms + height * 1000, candidates)?;
        anyhow::ensure!(built.rejected.is_empty(), "generated transfers apply");
        chain.push((built.block, certificate, built.events));
    }
    Ok(chain)
}

pub(crate) async fn run(blocks: u64, txs_per_block: usize) -> anyhow::Result<()> {
    anyhow::ensure!(blocks > 0, "need at least one block");
    let started = Instant::now();
    let chain = tokio::task::spawn_blocking(move || build_chain(blocks, txs_per_block)).await??;
    eprintln!("built {blocks} blocks of {txs_per_block} transfers in {:.1} s", started.elapsed().as_secs_f64());

    // Store them as a node would (one durable commit per block) and serve them.
    let dir = std::env::temp_dir().join(format!("phalanx-bench-worker-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(Store::open(&dir.join("chain.redb"))?);
    let genesis = dev_genesis();
    let (mut genesis_state, genesis_block) = genesis.build()?;
    store.initialize(&genesis_block, &mut genesis_state)?;
    let node = Arc::new(Chain::open(genesis.clone(), store, ChainConfig::default())?);
    let certified: Vec<(Block, Vec<u8>)> = chain.iter().map(|(b, c, _)| (b.clone(), c.clone())).collect();
    for batch in certified.chunks(1_000) {
        node.commit_batch(batch)?;
    }
    let (address, handle) = serve(node, &RpcConfig::local(0)).await?;

    // 1. Replay only.
    let txs = blocks as usize * txs_per_block;
    let decoded: Vec<Block> = chain.iter().map(|(b, _, _)| b.clone()).collect();
    let replay = tokio::task::spawn_blocking(move || {
        let mut state = genesis_state;
        let started = Instant::now();
        for block in &decoded {
            state.execute_block(block).expect("valid block");
        }
        started.elapsed()
    })
    .await?;

    // 2. Verified in process, from bytes.
    let encoded: Vec<(Vec<u8>, Vec<u8>)> = chain.iter().map(|(b, c, _)| (b.encode(), c.clone())).collect();
    let (genesis_for_verify, dir_for_verify) = (genesis.clone(), dir.join("verified-state"));
    let verified = tokio::task::spawn_blocking(move || -> anyhow::Result<Duration> {
        let mut verified = VerifiedChain::from_genesis(&genesis_for_verify, &dir_for_verify)?;
        let raw: Vec<(&[u8], &[u8])> = encoded.iter().map(|(b, c)| (b.as_slice(), c.as_slice())).collect();
        let started = Instant::now();
        for batch in raw.chunks(phalanx_rpc::RAW_BLOCKS_MAX as usize) {
            verified.apply_batch(batch)?;
        }
        Ok(started.elapsed())
    })
    .await??;

    // 3. A worker catching up over RPC.
    let worker_dir = dir.join("worker");
    std::fs::create_dir_all(&worker_dir)?;
    let platform = Box::new(phalanx_worker::tee::sim::SimPlatform::new(worker_dir.join("sim-sealing.key")));
    let runtime = phalanx_worker::Runtime::start(
        platform,
        &worker_dir,
        &genesis,
        Some(genesis.chain_id()),
        dev_keypair("bob").expect("dev account").public(),
        1,
        1,
    )?;
    let client = jsonrpsee::http_client::HttpClientBuilder::default()
        .max_response_size(64 * 1024 * 1024)
        .build(format!("http://{address}"))?;
    let started = Instant::now();
    let runtime = phalanx_worker::host::catch_up(&client, Box::new(runtime)).await.map_err(anyhow::Error::msg)?;
    let over_rpc = started.elapsed();
    anyhow::ensure!(runtime.chain().height() == blocks, "worker stopped at {}", runtime.chain().height());

    // 4. A non-validator node catching up over RPC into its own database.
    let follower_store = Arc::new(Store::open(&dir.join("follower.redb"))?);
    let follower = Arc::new(Chain::open(genesis.clone(), follower_store, ChainConfig::default())?);
    let url = format!("http://{address}");
    let mut held = phalanx_node::follower::Uncertified::default();
    let started = Instant::now();
    while follower.finalized().header.height < blocks {
        let committed = phalanx_node::follower::sync_round(&follower, &client, &url, &mut held).await?;
        anyhow::ensure!(committed > 0, "the follower stopped at {}", follower.finalized().header.height);
    }
    let follower_over_rpc = started.elapsed();

    // 5. A fresh worker joining by state sync at the head (checked in its
    // runtime), against replaying 5,000 blocks at the rate of 3.
    let joiner_dir = dir.join("joiner");
    std::fs::create_dir_all(&joiner_dir)?;
    let started = Instant::now();
    let offer = phalanx_worker::host::join_offer(&client, genesis.consensus.epoch_blocks).await?;
    let (joiner_genesis, joiner_path) = (genesis.clone(), joiner_dir.clone());
    let joined = tokio::task::spawn_blocking(move || {
        let platform = Box::new(phalanx_worker::tee::sim::SimPlatform::new(joiner_path.join("sim-sealing.key")));
        let operator = dev_keypair("bob").expect("dev account").public();
        let chain_id = Some(joiner_genesis.chain_id());
        phalanx_worker::Runtime::start_joining(platform, &joiner_path, &joiner_genesis, chain_id, operator, 1, 1, offer)
    })
    .await??;
    let join_elapsed = started.elapsed();
    anyhow::ensure!(joined.chain().height() == blocks, "the worker joined at {}", joined.chain().height());
    drop(joined);
    let replay_5000 = over_rpc.mul_f64(5_000.0 / blocks as f64);
    let _ = handle.stop();
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "worker catch-up, {blocks} blocks x {txs_per_block} signed transfers, {} cores (one run, same machine):",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for (what, elapsed) in [
        ("replay only (baseline)", replay),
        ("verify in process (decode, certificate, replay)", verified),
        ("worker over JSON-RPC (fetch, verify)", over_rpc),
        ("non-validator node over JSON-RPC (fetch, verify, commit)", follower_over_rpc),
    ] {
        println!(
            "  {what:<56} {:>9.0} blocks/s {:>9.0} tx/s  {:>5.2}x baseline time",
            per_second(blocks as usize, elapsed),
            per_second(txs, elapsed),
            elapsed.as_secs_f64() / replay.as_secs_f64(),
        );
    }

    println!(
        "  worker joining by state sync at block {blocks}: {:.2} s; replaying 5,000 blocks over RPC: {:.2} s ({:.2}x)",
        join_elapsed.as_secs_f64(),
        replay_5000.as_secs_f64(),
        join_elapsed.as_secs_f64() / replay_5000.as_secs_f64()
    );

    // Quote verification against ed25519 verification.
    let policy = phalanx_attest::AttestationPolicy::default();
    let key = Keypair::from_seed(&[1; 32]);
    let signature = key.sign(b"phalanx/bench/v1", b"message");
    let measure = |f: &dyn Fn()| {
        let started = Instant::now();
        let mut count = 0;
        while started.elapsed() < Duration::from_secs(2) {
            f();
            count += 1;
        }
        per_second(count, started.elapsed())
    };
    let ed25519 = measure(&|| key.public().verify(b"phalanx/bench/v1", b"message", &signature).expect("valid"));
    let sgx = measure(&|| {
        phalanx_attest::verify_quote(SGX_QUOTE, SGX_COLLATERAL, QUOTE_NOW, &policy).expect("genuine SGX quote");
    });
    let tdx = measure(&|| {
        phalanx_attest::verify_quote(TDX_QUOTE, TDX_COLLATERAL, QUOTE_NOW, &policy).expect("genuine TDX quote");
    });
    println!("quote verification (genuine quotes with collateral, one core):");
    println!("  ed25519 signature (baseline) {ed25519:>9.0}/s");
    println!("  SGX DCAP quote               {sgx:>9.0}/s  ({:.0} ed25519 verifications each)", ed25519 / sgx);
    println!("  TDX DCAP quote               {tdx:>9.0}/s  ({:.0} ed25519 verifications each)", ed25519 / tdx);
    Ok(())
}
