//! A fresh worker joins by state sync inside its runtime: the host fetches
//! a node's offer over real RPC, the runtime checks it from the genesis on
//! and syncs the state store, then verifies the next blocks as usual. An
//! offer that does not verify is refused and nothing synced is kept.

use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use phalanx_node::chain::{Chain, ChainConfig};
use phalanx_node::dev::dev_genesis;
use phalanx_node::store::Store;
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Keypair, PLANCK_PER_PHA};
use phalanx_rpc::PhalanxClient;
use phalanx_state::builder::Candidate;
use phalanx_state::{Block, Call, Transaction};
use phalanx_worker::runtime::JoinOffer;
use phalanx_worker::tee::sim::SimPlatform;
use phalanx_worker::{Resumed, Runtime};
use std::sync::Arc;

fn blocks(count: u64) -> Vec<(Block, Vec<u8>)> {
    let mut dev = phalanx_node::dev::DevBlocks::new(&dev_genesis()).unwrap();
    let alice = dev_keypair("alice").unwrap();
    (0..count)
        .map(|nonce| {
            let to = Keypair::from_seed(&phalanx_primitives::sha256(&nonce.to_be_bytes()).0).public();
            let call = Call::Transfer { to, amount: PLANCK_PER_PHA };
            let chain_id = dev.state.chain_id();
            let tx = Transaction { chain_id, signer: alice.public(), nonce, fee: PLANCK_PER_PHA, call }.sign(&alice);
            let candidate = Candidate { encoded_len: tx.encode().len(), tx, signature_verified: false };
            let (built, certificate) = dev.next(dev.state.timestamp_ms() + 500, [candidate]).unwrap();
            (built.block, certificate)
        })
        .collect()
}

async fn offer(client: &HttpClient, tamper: impl Fn(&mut Vec<u8>) + Send + Sync + 'static) -> JoinOffer {
    let start = client.state_sync_target().await.unwrap();
    let raw = client.chain_raw_blocks(start.header.height, 1).await.unwrap();
    let fetch = phalanx_light::client::sync_fetcher(tokio::runtime::Handle::current(), client.clone());
    JoinOffer {
        transitions: client.chain_validator_transitions(0).await.unwrap(),
        start,
        raw_block: raw[0].block.clone(),
        fetch: Box::new(move |request| {
            let mut answer = fetch(request)?;
            tamper(&mut answer);
            Ok(answer)
        }),
    }
}

fn start(dir: &std::path::Path, offer: JoinOffer) -> Result<Runtime, phalanx_worker::runtime::StartError> {
    let platform = Box::new(SimPlatform::new(dir.join("sim-sealing.key")));
    let genesis = dev_genesis();
    let operator = dev_keypair("bob").unwrap().public();
    Runtime::start_joining(platform, dir, &genesis, Some(genesis.chain_id()), operator, 0, 1, offer)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_worker_joins_from_a_verified_state() {
    let chain = blocks(30);
    let store = Arc::new(Store::in_memory().unwrap());
    let node = Arc::new(Chain::open(dev_genesis(), store, ChainConfig::default()).unwrap());
    node.commit_batch(&chain[..20]).unwrap();
    let (address, _server) =
        phalanx_node::rpc::serve(node.clone(), &phalanx_node::rpc::RpcConfig::local(0)).await.unwrap();
    let client = HttpClientBuilder::default().build(format!("http://{address}")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join(phalanx_worker::runtime::STATE_DIR);

    // Tampered operations: refused, nothing synced kept.
    let lying = offer(&client, |answer| {
        let middle = answer.len() / 2;
        answer[middle] ^= 1;
    })
    .await;
    let error = tokio::task::block_in_place(|| start(dir.path(), lying)).unwrap_err().to_string();
    assert!(error.contains("the synced state did not verify"), "{error}");
    assert!(!state_dir.exists(), "nothing synced is kept");
    // Another block than the certified one: refused before anything is fetched.
    let mut other_block = offer(&client, |_| {}).await;
    other_block.raw_block = chain[3].0.encode();
    let error = tokio::task::block_in_place(|| start(dir.path(), other_block)).unwrap_err().to_string();
    assert!(error.contains("is not the block its certificate finalizes"), "{error}");

    // The honest offer: the worker is at the node's head with its state.
    let honest = offer(&client, |_| {}).await;
    let mut runtime = tokio::task::block_in_place(|| start(dir.path(), honest)).unwrap();
    assert_eq!(runtime.resumed, Resumed::Synced(20));
    assert_eq!(runtime.chain().header(), &node.finalized().header);
    assert!(runtime.chain().state() == &node.finalized().state);
    // It verifies the next blocks like any worker, to the node's roots.
    for (block, certificate) in &chain[20..] {
        node.commit(block, certificate).unwrap();
        runtime.apply_block(&block.encode(), certificate).unwrap();
    }
    assert_eq!(runtime.chain().header().state_root, node.finalized().header.state_root);
    // Its checkpoint resumes it (no second join).
    tokio::task::block_in_place(|| runtime.save_checkpoint()).unwrap();
    drop(runtime);
    let again = tokio::task::block_in_place(|| start(dir.path(), offer_unused())).unwrap();
    assert_eq!(again.resumed, Resumed::Checkpoint(30));
}

/// An offer the runtime must not use (it resumes from its checkpoint).
fn offer_unused() -> JoinOffer {
    JoinOffer {
        transitions: Vec::new(),
        start: phalanx_rpc::SyncStart {
            header: blocks(1)[0].0.header.clone(),
            certificate: Vec::new(),
            target: Vec::new(),
        },
        raw_block: Vec::new(),
        fetch: Box::new(|_| Err("not to be called".into())),
    }
}
