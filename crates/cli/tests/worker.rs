//! Workers against a real `phalanx dev` over real sockets: registration,
//! the chain's attestation policy, a malicious host feeding the worker's
//! verified chain, and kill -9 recovery from a sealed checkpoint.

mod common;

use common::{DevNode, dev, free_port, hex_tx, phalanx, transfer, wait_height};
use jsonrpsee::http_client::HttpClient;
use phalanx_primitives::{Keypair, PLANCK_PER_PHA};
use phalanx_rpc::{PhalanxClient, RawBlock};
use phalanx_state::{AttestationPolicy, Block, Call, Evidence, RegistrationInfo, Transaction};
use phalanx_worker::{SyncError, VerifiedChain};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn workers(node: &DevNode) -> Vec<serde_json::Value> {
    node.cli_json(&["worker", "list"])
}

/// Waits until `count` workers are registered.
fn wait_workers(node: &DevNode, count: usize) -> Vec<serde_json::Value> {
    let started = Instant::now();
    loop {
        let list = workers(node);
        if list.len() >= count {
            return list;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "only {} of {count} workers registered", list.len());
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn submit(client: &HttpClient, from: &Keypair, call: Call) -> Result<phalanx_primitives::Hash, String> {
    let info = client.chain_info().await.unwrap();
    let nonce = client.state_account(from.public().to_string()).await.unwrap().next_nonce;
    let tx = Transaction { chain_id: info.chain_id, signer: from.public(), nonce, fee: PLANCK_PER_PHA / 10, call };
    client.tx_submit(hex_tx(&tx.sign(from))).await.map_err(|e| e.to_string())
}

async fn wait_final(client: &HttpClient, hash: phalanx_primitives::Hash) {
    let started = Instant::now();
    while !matches!(client.tx_status(hash).await.unwrap(), phalanx_rpc::TxStatus::Finalized { .. }) {
        assert!(started.elapsed() < Duration::from_secs(30), "transaction {hash} not finalized");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reencode(block: &Block) -> Vec<u8> {
    block.encode()
}

/// The host feeds the worker's verified chain a tampered block, a bad
/// certificate, another block's certificate, a skipped block, a replayed
/// block and a truncated block: each is refused with its reason and the
/// verified state stays put; the genuine chain then verifies to the node's
/// own head state root.
async fn host_tampering_is_refused(client: &HttpClient) {
    let genesis = client.chain_genesis().await.unwrap();
    assert_eq!(genesis.chain_id(), client.chain_info().await.unwrap().chain_id);
    let head = client.chain_head().await.unwrap();
    let raw: Vec<RawBlock> = client.chain_raw_blocks(1, head.height).await.unwrap();
    assert_eq!(raw.len() as u64, head.height);
    // The first block with transactions after block 1, so that a block
    // before it can be replayed (block 1 itself may carry the first ones).
    let with_txs = 1 + raw[1..]
        .iter()
        .position(|r| Block::decode(&r.block).unwrap().header.tx_count > 0)
        .expect("a block with transactions after block 1");
    assert!(with_txs + 1 < raw.len(), "a block after the target");
    let store_dir = tempfile::tempdir().unwrap();
    let mut chain = VerifiedChain::from_genesis(&genesis, store_dir.path()).unwrap();
    for r in &raw[..with_txs] {
        chain.apply(&r.block, &r.certificate).unwrap();
    }
    let root = |chain: &VerifiedChain| chain.store().status().unwrap().root;
    let (height, hash, state, root_before) = (chain.height(), chain.hash(), chain.state().clone(), root(&chain));
    assert_eq!(root_before, chain.header().state_root);
    let target = &raw[with_txs];
    let block = Block::decode(&target.block).unwrap();

    let mut tampered_tx = block.clone();
    tampered_tx.txs[0].tx.fee += 1;
    let refusals: Vec<(&str, Result<_, SyncError>)> = vec![
        ("tampered transaction", chain.apply(&reencode(&tampered_tx), &target.certificate)),
        ("tampered header", {
            let mut b = block.clone();
            b.header.timestamp_ms += 1;
            chain.apply(&reencode(&b), &target.certificate)
        }),
        ("bad certificate", {
            let mut certificate = target.certificate.clone();
            let last = certificate.len() - 1;
            certificate[last] ^= 1;
            chain.apply(&target.block, &certificate)
        }),
        ("another block's certificate", chain.apply(&target.block, &raw[with_txs + 1].certificate)),
        ("skipped block", chain.apply(&raw[with_txs + 1].block, &raw[with_txs + 1].certificate)),
        ("replayed block", chain.apply(&raw[with_txs - 1].block, &raw[with_txs - 1].certificate)),
        ("truncated block", chain.apply(&target.block[..target.block.len() - 3], &target.certificate)),
    ];
    for (what, result) in refusals {
        let error = result.expect_err(what);
        let expected = match what {
            "tampered transaction" => matches!(error, SyncError::Replay { .. }),
            "tampered header" | "bad certificate" | "another block's certificate" => {
                matches!(error, SyncError::Certificate { .. })
            }
            "skipped block" | "replayed block" => matches!(error, SyncError::Height { .. }),
            _ => matches!(error, SyncError::Decode(_)),
        };
        assert!(expected, "{what}: unexpected error {error}");
        assert_eq!((chain.height(), chain.hash(), root(&chain)), (height, hash, root_before), "{what} changed state");
        assert_eq!(chain.state(), &state, "{what} changed state");
    }
    // In a batch (verified on every core, then replayed in order), a bad
    // block stops the batch there: the blocks before it are verified, the
    // rest wait.
    let rest = &raw[with_txs..];
    assert!(rest.len() >= 4, "enough blocks for a batch");
    let mut batch: Vec<(&[u8], &[u8])> = rest.iter().map(|r| (r.block.as_slice(), r.certificate.as_slice())).collect();
    let mut forged = Block::decode(&rest[2].block).unwrap();
    forged.header.timestamp_ms += 1;
    let forged = reencode(&forged);
    batch[2].0 = &forged;
    let refused = chain.apply_batch(&batch).unwrap_err();
    assert_eq!(refused.index, 2);
    assert!(matches!(*refused.error, SyncError::Certificate { .. }), "{}", refused.error);
    assert_eq!(chain.height(), block.header.height + 1);
    let batch: Vec<(&[u8], &[u8])> = rest[2..].iter().map(|r| (r.block.as_slice(), r.certificate.as_slice())).collect();
    assert_eq!(chain.apply_batch(&batch).unwrap(), batch.len());
    assert_eq!(chain.height(), head.height);
    assert_eq!(root(&chain), head.state_root);
}

#[test]
fn dev_workers_register_and_the_chain_judges_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = common::free_ports(2).to_string();
    let node =
        DevNode::start_with(dir.path(), free_port(), free_port(), &["--workers", "2", "--gateway-port", &gateway]);
    tokio::runtime::Runtime::new().unwrap().block_on(judges_evidence(&node, dir.path()));
}

async fn judges_evidence(node: &DevNode, dir: &std::path::Path) {
    let client = node.client();
    let listed = wait_workers(node, 2);
    assert_eq!(listed.len(), 2);
    for worker in &listed {
        assert_eq!(worker["tee"], "simulated");
        assert_eq!(worker["confidence"], 5);
        assert!(worker["info"]["benchmark_score"].as_u64().unwrap() > 0);
    }

    // The first dev worker is the gatekeeper: it generates epoch 1's master
    // key; a governance rotation moves the network to epoch 2 without a pause.
    let epoch = |node: &DevNode| -> Option<u64> {
        let status: serde_json::Value = node.cli_json(&["keys", "status"]);
        status["epochs"]["current"]["epoch"].as_u64()
    };
    let wait_epoch = |node: &DevNode, wanted: u64| {
        let started = Instant::now();
        while epoch(node) != Some(wanted) {
            assert!(started.elapsed() < Duration::from_secs(60), "epoch {wanted} never activated");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_epoch(node, 1);
    let rotated: serde_json::Value = node.cli_json(&["keys", "rotate", "--from", "alice"]);
    assert_eq!(rotated["status"]["status"], "finalized", "{rotated}");
    wait_epoch(node, 2);
    let refused = phalanx().args(["keys", "rotate", "--from", "bob", "--rpc", &node.url()]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("only a governance account"));

    // Some blocks with transactions for the host-tampering checks.
    let chain_id = client.chain_info().await.unwrap().chain_id;
    let (alice, eve) = (dev("alice"), Keypair::from_seed(&[77; 32]));
    let nonce = client.state_account(alice.public().to_string()).await.unwrap().next_nonce;
    for i in 0..3 {
        let tx = transfer(chain_id, &alice, nonce + i, eve.public(), PLANCK_PER_PHA);
        let hash = client.tx_submit(hex_tx(&tx)).await.unwrap();
        wait_final(&client, hash).await;
    }
    let height = client.chain_head().await.unwrap().height;
    wait_height(&client, height + 2).await;
    host_tampering_is_refused(&client).await;

    // A registration whose report data commits to other keys is refused.
    let identity = Keypair::from_seed(&[5; 32]);
    let info = RegistrationInfo {
        chain_id,
        identity: identity.public(),
        ecdh: [1; 32],
        operator: dev("dave").public(),
        features: 1,
        benchmark_score: 10,
    };
    let mut other = info.clone();
    other.ecdh = [2; 32];
    let evidence = Evidence::Simulated { report_data: other.report_data() };
    let error = submit(&client, &dev("dave"), Call::RegisterWorker { info, evidence }).await.unwrap_err();
    assert!(error.contains("report data does not match the registration"), "{error}");

    // Governance closes the door to simulated evidence: a new worker is refused.
    let strict = AttestationPolicy::default();
    let hash = submit(&client, &alice, Call::SetAttestationPolicy { policy: strict.clone() }).await.unwrap();
    wait_final(&client, hash).await;
    assert_eq!(client.registry_policy().await.unwrap(), strict);
    let worker_dir = dir.join("late-worker");
    let log = dir.join("late-worker.log");
    let mut late = start_worker(node, &worker_dir, "dave", &log);
    let started = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("submission refused") {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no refusal in the worker's log:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(text.contains("this chain does not accept simulated evidence"), "{text}");
    assert_eq!(workers(node).len(), 2);
    late.kill().unwrap();
    late.wait().unwrap();
}

fn start_worker(node: &DevNode, data_dir: &std::path::Path, operator: &str, log: &std::path::Path) -> Child {
    start_worker_with(node, data_dir, operator, log, &[])
}

fn start_worker_with(
    node: &DevNode,
    data_dir: &std::path::Path,
    operator: &str,
    log: &std::path::Path,
    extra: &[&str],
) -> Child {
    let log_file = std::fs::File::create(log).unwrap();
    phalanx()
        .args(["worker", "--node", &node.url(), "--operator", operator, "--checkpoint-every", "1", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn,phalanx_worker=info")
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// `kill -9` a worker and start it again: same identity (sealed), resumed
/// from its sealed checkpoint rather than from genesis, still one worker.
#[test]
fn worker_survives_kill_9_from_its_sealed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path());
    tokio::runtime::Runtime::new().unwrap().block_on(kill_9_and_resume(&node, dir.path()));
}

async fn kill_9_and_resume(node: &DevNode, dir: &std::path::Path) {
    let client = node.client();
    let worker_dir = dir.join("worker");
    let first_log = dir.join("first.log");
    let mut worker = start_worker(node, &worker_dir, "bob", &first_log);
    let listed = wait_workers(node, 1);
    let identity = listed[0]["identity"].as_str().unwrap().to_string();
    let registered_at = listed[0]["registered_at"].as_u64().unwrap();
    // Let a checkpoint past the registration be sealed.
    wait_height(&client, registered_at + 6).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let sealed = std::fs::read(worker_dir.join("checkpoint.sealed")).unwrap();
    assert!(sealed.starts_with(b"PHXS1\n"), "checkpoint is sealed");
    assert!(!std::fs::read(worker_dir.join("identity.sealed")).unwrap().is_empty());
    worker.kill().unwrap(); // SIGKILL
    worker.wait().unwrap();

    let second_log = dir.join("second.log");
    let mut again = start_worker(node, &worker_dir, "bob", &second_log);
    let started = Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&second_log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with("worker ") && l.contains("started")) {
            break line.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "worker did not start:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(line.contains(&identity), "same identity: {line}");
    assert!(line.contains("sealed identity"), "{line}");
    let resumed: u64 = line
        .split("resumed from checkpoint at height ")
        .nth(1)
        .and_then(|rest| rest.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("did not resume from a checkpoint: {line}"));
    assert!(resumed > registered_at, "checkpoint at {resumed} is past the registration at {registered_at}");
    // It carries on as the same, still registered worker.
    let started = Instant::now();
    while !std::fs::read_to_string(&second_log).unwrap_or_default().contains("worker registered at height") {
        assert!(started.elapsed() < Duration::from_secs(30), "restarted worker is not registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = workers(node);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["identity"], identity.as_str());
    assert_eq!(list[0]["registered_at"], registered_at);
    again.kill().unwrap();
    again.wait().unwrap();
}

/// A fresh worker started with `--state-sync` joins at the node's head
/// (checked in its runtime) instead of replaying from genesis, then
/// registers and follows the chain like any worker.
#[test]
fn a_fresh_worker_joins_by_state_sync() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        wait_height(&node.client(), 30).await;
        let log = dir.path().join("worker.log");
        let mut worker = start_worker_with(&node, &dir.path().join("worker"), "charlie", &log, &["--state-sync"]);
        let started = Instant::now();
        let joined_at: u64 = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(height) = text
                .split("joined by state sync at height ")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .and_then(|h| h.parse().ok())
            {
                break height;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the worker did not join:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(joined_at >= 30, "joined at the head, not genesis: {joined_at}");
        let listed = wait_workers(&node, 1);
        assert!(listed[0]["registered_at"].as_u64().unwrap() > joined_at);
        worker.kill().unwrap();
        worker.wait().unwrap();
    });
}
