//! A fresh node joins by state sync from a real node's RPC: it ends at the
//! upstream's head with the same state and root, follows the next blocks
//! like the upstream, and refuses a lying upstream (a tampered operations
//! answer, a target with another root, a header that is not the certified
//! one) without keeping anything.

use phalanx_node::chain::{Chain, ChainConfig};
use phalanx_node::store::{Store, state_dir};
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Keypair, PLANCK_PER_PHA};
use phalanx_state::builder::Candidate;
use phalanx_state::{Block, Call, Transaction};
use serde_json::Value;
use std::sync::Arc;

/// `count` certified dev blocks, each with transfers from alice to new accounts.
fn blocks(count: u64) -> Vec<(Block, Vec<u8>)> {
    let mut dev = phalanx_node::dev::DevBlocks::new(&phalanx_node::dev::dev_genesis()).unwrap();
    let alice = dev_keypair("alice").unwrap();
    let mut nonce = 0;
    let mut out = Vec::new();
    for height in 1..=count {
        let mut candidates = Vec::new();
        for i in 0..20u64 {
            let to = Keypair::from_seed(&phalanx_primitives::sha256(&[height, i].map(u64::to_be_bytes).concat()).0);
            let call = Call::Transfer { to: to.public(), amount: PLANCK_PER_PHA };
            let chain_id = dev.state.chain_id();
            let tx = Transaction { chain_id, signer: alice.public(), nonce, fee: PLANCK_PER_PHA, call }.sign(&alice);
            nonce += 1;
            candidates.push(Candidate { encoded_len: tx.encode().len(), tx, signature_verified: false });
        }
        let (built, certificate) = dev.next(dev.state.timestamp_ms() + 500, candidates).unwrap();
        assert!(built.rejected.is_empty());
        out.push((built.block, certificate));
    }
    out
}

async fn upstream(chain: &[(Block, Vec<u8>)]) -> (Arc<Chain>, String, jsonrpsee::server::ServerHandle) {
    let store = Arc::new(Store::in_memory().unwrap());
    let node = Arc::new(Chain::open(phalanx_node::dev::dev_genesis(), store, ChainConfig::default()).unwrap());
    node.commit_batch(chain).unwrap();
    let config = phalanx_node::rpc::RpcConfig::local(0);
    let (address, handle) = phalanx_node::rpc::serve(node.clone(), &config).await.unwrap();
    (node, format!("http://{address}"), handle)
}

/// How a proxy in front of the upstream lies.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// Flips a byte in the middle of every `state_syncOps` answer.
    Operations,
    /// Serves a sync target whose state root is another.
    TargetRoot,
    /// Serves the head block's parent instead of the head block.
    Block,
}

fn flip(hex: &str, at: usize) -> String {
    let mut digits: Vec<char> = hex.chars().collect();
    digits[at] = if digits[at] == '0' { '1' } else { '0' };
    digits.into_iter().collect()
}

async fn proxy(upstream: String, lie: Lie) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let http = reqwest::Client::new();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |axum::Json(request): axum::Json<Value>| {
            let (http, upstream) = (http.clone(), upstream.clone());
            async move {
                let method = request["method"].as_str().unwrap_or_default().to_string();
                let mut request = request;
                if let (Lie::Block, "chain_rawBlocks") = (lie, method.as_str()) {
                    request["params"][0] = (request["params"][0].as_u64().unwrap() - 1).into();
                }
                let bytes = http.post(&upstream).json(&request).send().await.unwrap().bytes().await.unwrap();
                let mut answer: Value = match (lie, method.as_str()) {
                    (Lie::Operations, "state_syncOps") | (Lie::TargetRoot, "state_syncTarget") => {
                        serde_json::from_slice(&bytes).unwrap()
                    }
                    _ => return ([(axum::http::header::CONTENT_TYPE, "application/json")], bytes.to_vec()),
                };
                match lie {
                    Lie::Operations => {
                        let hex = answer["result"].as_str().unwrap().to_string();
                        answer["result"] = flip(&hex, hex.len() / 2).into();
                    }
                    // The target is borsh: height (8 bytes), then the root.
                    Lie::TargetRoot => {
                        let hex = answer["result"]["target"].as_str().unwrap().to_string();
                        answer["result"]["target"] = flip(&hex, 2 + 2 * 8 + 1).into();
                    }
                    Lie::Block => unreachable!(),
                }
                ([(axum::http::header::CONTENT_TYPE, "application/json")], serde_json::to_vec(&answer).unwrap())
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn join(url: String, path: std::path::PathBuf) -> Result<Store, phalanx_node::state_sync::JoinError> {
    phalanx_node::state_sync::join(&phalanx_node::dev::dev_genesis(), &url, &path)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_node_joins_from_a_verified_state_and_refuses_a_lying_one() {
    let chain = blocks(40);
    let (node, url, _server) = upstream(&chain[..30]).await;
    let dir = tempfile::tempdir().unwrap();

    // Each lie is refused, naming what did not verify, and nothing is kept.
    for (lie, expected) in [
        (Lie::Operations, "the state did not verify"),
        (Lie::TargetRoot, "the state sync target does not match block"),
        (Lie::Block, "is not the block its certificate finalizes"),
    ] {
        let lying = proxy(url.clone(), lie).await;
        let path = dir.path().join(format!("{lie:?}.redb"));
        let error = tokio::task::spawn_blocking({
            let path = path.clone();
            move || join(lying, path).map(|_| ()).unwrap_err().to_string()
        })
        .await
        .unwrap();
        assert!(error.contains(expected), "{lie:?}: {error}");
        assert!(!path.exists() && !state_dir(&path).exists(), "{lie:?}: nothing kept");
    }

    // The honest upstream: the joined node is at its head, with its state.
    let path = dir.path().join("chain.redb");
    let store = tokio::task::spawn_blocking({
        let (url, path) = (url.clone(), path.clone());
        move || join(url, path)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(store.base().unwrap(), 30);
    let joined = Chain::open(phalanx_node::dev::dev_genesis(), Arc::new(store), ChainConfig::default()).unwrap();
    let (theirs, ours) = (node.finalized(), joined.finalized());
    assert_eq!((ours.header.height, ours.header.state_root), (30, theirs.header.state_root));
    assert!(ours.state == theirs.state, "the typed state loads from the synced leaves");
    // Both follow the next blocks to the same roots.
    for (block, certificate) in &chain[30..] {
        node.commit(block, certificate).unwrap();
        joined.commit(block, certificate).unwrap();
    }
    assert_eq!(joined.finalized().header.state_root, node.finalized().header.state_root);
    assert_eq!(joined.store().state().status().unwrap().root, chain[39].0.header.state_root);
    // Blocks below the one it joined at are not stored; those after are.
    assert!(joined.store().block(29).unwrap().is_none());
    assert!(joined.store().block(35).unwrap().is_some());
    // A second join into a used directory is refused, and leaves it be.
    let again = tokio::task::spawn_blocking({
        let path = path.clone();
        move || join(url, path).map(|_| ()).unwrap_err().to_string()
    })
    .await
    .unwrap();
    assert!(again.contains("exists already"), "{again}");
    assert!(path.exists() && joined.store().state().status().unwrap().height == Some(40));
}
