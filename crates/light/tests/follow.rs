//! The light client against a real node over real RPC: a chain whose
//! validator set changes twice through governance, served by a node's RPC
//! server; answers the client checks as they come, and the same answers
//! tampered in each way a lying node could.

use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use phalanx_light::{ClientError, LightClient, LightError, Trusted};
use phalanx_node::chain::{Chain, ChainConfig};
use phalanx_node::consensus::{ValidatorSecret, certificate::CertificateError, validator_secret};
use phalanx_node::store::Store;
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Keypair, PLANCK_PER_PHA, PublicKey};
use phalanx_rpc::{PhalanxClient, StateProofs};
use phalanx_state::builder::Candidate;
use phalanx_state::leaves::Leaf;
use phalanx_state::{Block, Call, ConsensusParams, Genesis, Transaction, ValidatorEntry};
use phalanx_statedb::ProofError;
use std::sync::Arc;

const EPOCH: u64 = 4;

/// Validator sets: epoch 0 the genesis set {1}; block 1 schedules {2},
/// which takes over after block 3 (epoch 1); block 5 schedules {2, 3},
/// which takes over after block 7 (epoch 2 on).
fn sets() -> Vec<Vec<(PublicKey, ValidatorSecret)>> {
    let member = |seed: u8| (Keypair::from_seed(&[seed; 32]).public(), validator_secret(&[seed; 32]));
    vec![vec![member(1)], vec![member(2)], vec![member(2), member(3)]]
}

fn set_for_epoch(epoch: u64) -> Vec<(PublicKey, ValidatorSecret)> {
    sets().swap_remove(epoch.min(2) as usize)
}

fn genesis() -> Genesis {
    let mut genesis = Genesis::dev(sets()[0].iter().map(|(key, _)| *key).collect());
    genesis.consensus = ConsensusParams { epoch_blocks: EPOCH };
    genesis
}

/// `count` blocks of the chain, each with its certificate by its epoch's set.
fn blocks(count: u64) -> Vec<(Block, Vec<u8>)> {
    let mut dev = phalanx_node::dev::DevBlocks::new(&genesis()).unwrap();
    let alice = dev_keypair("alice").unwrap();
    let mut out = Vec::new();
    // Recent timestamps: a client refuses a head older than ten minutes.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for height in 1..=count {
        let state = dev.state.clone();
        let schedule = match height {
            1 => Some((0, 1)),
            5 => Some((1, 2)),
            _ => None,
        };
        let mut candidates = Vec::new();
        if let Some((nonce, set)) = schedule {
            let validators = sets()[set]
                .iter()
                .map(|(key, _)| ValidatorEntry { key: *key, address: "127.0.0.1:1".into() })
                .collect();
            let tx = Transaction {
                chain_id: state.chain_id(),
                signer: alice.public(),
                nonce,
                fee: PLANCK_PER_PHA,
                call: Call::SetValidators { validators },
            }
            .sign(&alice);
            candidates.push(Candidate { encoded_len: tx.encode().len(), tx, signature_verified: false });
        }
        let built = dev.build(now_ms - 60_000 + height * 500, candidates).unwrap();
        assert!(built.rejected.is_empty());
        let epoch = height / EPOCH;
        let set = set_for_epoch(epoch);
        let keys: Vec<PublicKey> = set.iter().map(|(key, _)| *key).collect();
        let secrets: Vec<ValidatorSecret> = set.into_iter().map(|(_, secret)| secret).collect();
        let hash = built.block.hash();
        let certificate = phalanx_node::consensus::certificate::sign(&keys, &secrets, hash, epoch, height);
        out.push((built.block, certificate));
    }
    out
}

struct Node {
    chain: Arc<Chain>,
    client: HttpClient,
    _server: jsonrpsee::server::ServerHandle,
}

async fn node() -> Node {
    let store = Arc::new(Store::in_memory().unwrap());
    let chain = Arc::new(Chain::open(genesis(), store, ChainConfig::default()).unwrap());
    let config = phalanx_node::rpc::RpcConfig::local(0);
    let (address, server) = phalanx_node::rpc::serve(chain.clone(), &config).await.unwrap();
    let client = HttpClientBuilder::default().build(format!("http://{address}")).unwrap();
    Node { chain, client, _server: server }
}

fn keys(leaves: &[Leaf]) -> Vec<String> {
    phalanx_light::client::proof_keys(leaves)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_light_client_follows_validator_changes_and_refuses_tampered_answers() {
    let chain = blocks(12);
    let node = node().await;
    for (block, certificate) in &chain[..8] {
        node.chain.commit(block, certificate).unwrap();
    }
    let alice = dev_keypair("alice").unwrap().public();
    let nobody = Keypair::from_seed(&[9; 32]).public();
    let leaves = [Leaf::Account(alice), Leaf::Account(nobody)];
    let at_8 = node.client.state_proof(keys(&leaves), None).await.unwrap();
    assert_eq!(at_8.header.height, 8);
    for (block, certificate) in &chain[8..] {
        node.chain.commit(block, certificate).unwrap();
    }

    // Untampered: the client follows both changes and verifies the head.
    let cache = tempfile::tempdir().unwrap();
    let mut light = LightClient::connect(&node.client, Some(cache.path()), None).await.unwrap();
    assert_eq!(light.trusted().epoch, 0);
    let verified = light.read(&leaves).await.unwrap();
    assert_eq!(verified.height(), 12);
    let account: phalanx_state::Account = verified.value(Leaf::Account(alice)).unwrap().unwrap();
    assert_eq!(account.nonce, 2);
    assert_eq!(verified.value::<phalanx_state::Account>(Leaf::Account(nobody)).unwrap(), None);
    let trusted = light.trusted().clone();
    assert_eq!((trusted.epoch, trusted.height), (2, 12));
    assert_eq!(trusted.validators, sets()[2].iter().map(|(key, _)| *key).collect::<Vec<_>>());
    // The cache carries the trust: a new client starts from epoch 2.
    let again = LightClient::connect(&node.client, Some(cache.path()), None).await.unwrap();
    assert_eq!(again.trusted(), &trusted);
    // A client pinned to another chain refuses the node.
    let other = phalanx_primitives::sha256(b"another chain");
    let refused = LightClient::connect(&node.client, None, Some(other)).await.unwrap_err();
    assert!(matches!(refused, ClientError::Light(LightError::OtherChain { .. })), "{refused}");

    let honest = node.client.state_proof(keys(&leaves), None).await.unwrap();
    // The local clock for these checks: just after the head.
    let now = honest.header.timestamp_ms + 1_000;
    let check = |answer: &StateProofs| trusted.clone().verify_read(answer, &leaves, now);
    check(&honest).unwrap();
    // An older state, honestly certified, verifies (at its own height).
    assert_eq!(check(&at_8).unwrap().height(), 8);

    // A changed value.
    let mut changed = honest.clone();
    let mut account = account;
    account.free += 1;
    changed.leaves[0].value = Some(borsh::to_vec(&account).unwrap());
    let error = check(&changed).unwrap_err();
    assert!(matches!(error, LightError::Proof { source: ProofError::ValueNotProven, .. }), "{error}");
    assert!(error.to_string().contains(&format!("the proof of account {alice}")), "{error}");
    // Absence claimed for a present key (the absent key's proof under its name).
    let mut hidden = honest.clone();
    hidden.leaves[0] = hidden.leaves[1].clone();
    hidden.leaves[0].key = Leaf::Account(alice).key();
    let error = check(&hidden).unwrap_err();
    assert!(matches!(error, LightError::Proof { .. }), "{error}");
    // A proof for another key.
    let mut swapped = honest.clone();
    swapped.leaves.swap(0, 1);
    let error = check(&swapped).unwrap_err();
    assert!(matches!(error, LightError::Proof { source: ProofError::OtherKey, .. }), "{error}");
    // Proofs from another height under the head's header.
    let mut old_proofs = honest.clone();
    old_proofs.leaves = at_8.leaves.clone();
    let error = check(&old_proofs).unwrap_err();
    assert!(matches!(error, LightError::Proof { .. }), "{error}");
    // A forged certificate.
    let mut forged = honest.clone();
    let last = forged.certificate.len() - 1;
    forged.certificate[last] ^= 1;
    let error = check(&forged).unwrap_err();
    assert!(matches!(error, LightError::Certificate { height: 12, .. }), "{error}");
    // A stale certificate: block 11's, for block 12's header.
    let mut stale = honest.clone();
    stale.certificate = chain[10].1.clone();
    let error = check(&stale).unwrap_err();
    assert!(matches!(error, LightError::Certificate { source: CertificateError::WrongBlock { .. }, .. }), "{error}");
    // A header that does not match its certificate (another state root).
    let mut header = honest.clone();
    header.header.state_root = at_8.header.state_root;
    header.leaves = at_8.leaves.clone();
    let error = check(&header).unwrap_err();
    assert!(matches!(error, LightError::Certificate { source: CertificateError::WrongBlock { .. }, .. }), "{error}");
    // A leaf left out.
    let mut short = honest.clone();
    short.leaves.pop();
    assert!(matches!(check(&short).unwrap_err(), LightError::LeafCount { asked: 2, got: 1 }));
    // A client that never saw the changes (a node hiding them): the head's
    // certificate is not its set's (here it does not even decode for a set of one).
    let error = Trusted::from_genesis(&genesis()).verify_read(&honest, &leaves, now).unwrap_err();
    assert!(matches!(error, LightError::Certificate { height: 12, .. }), "{error}");
    // A head older than the bound.
    let late = honest.header.timestamp_ms + phalanx_light::HEAD_AGE_MAX_MS + 1_000;
    let error = trusted.clone().verify_read(&honest, &leaves, late).unwrap_err();
    assert!(matches!(error, LightError::Stale { height: 12, .. }), "{error}");

    // Transitions: the node made them when it committed blocks 3 and 7.
    let transitions = node.client.chain_validator_transitions(0).await.unwrap();
    assert_eq!(transitions.iter().map(|t| t.header.height).collect::<Vec<_>>(), vec![3, 7]);
    assert_eq!(node.client.chain_validator_transitions(1).await.unwrap().len(), 1);
    assert!(node.client.chain_validator_transitions(2).await.unwrap().is_empty());
    let mut from_genesis = Trusted::from_genesis(&genesis());
    // Skipping the first change: the second is not certified by the genesis set.
    let error = from_genesis.clone().follow(&transitions[1]).unwrap_err();
    assert!(matches!(error, LightError::Certificate { .. }), "{error}");
    // A change whose proven set was altered.
    let mut altered = transitions[0].clone();
    altered.validators.value = Some(borsh::to_vec(&vec![nobody]).unwrap());
    let error = from_genesis.clone().follow(&altered).unwrap_err();
    assert!(matches!(error, LightError::Proof { leaf: Leaf::Validators, .. }), "{error}");
    // A block that does not end an epoch.
    let mut not_last = transitions[0].clone();
    not_last.header = chain[1].0.header.clone();
    let error = from_genesis.clone().follow(&not_last).unwrap_err();
    assert!(error.to_string().contains("does not end a consensus epoch"), "{error}");
    from_genesis.follow(&transitions[0]).unwrap();
    from_genesis.follow(&transitions[1]).unwrap();
    assert_eq!((from_genesis.epoch, &from_genesis.validators), (2, &trusted.validators));

    // A follower that syncs the chain in one batch keeps the same transitions.
    let follower = node_batched(&chain).await;
    let batched = follower.client.chain_validator_transitions(0).await.unwrap();
    assert_eq!(
        serde_json::to_value(&batched).unwrap(),
        serde_json::to_value(&transitions).unwrap(),
        "a batch commit proves the same changes"
    );
}

async fn node_batched(chain: &[(Block, Vec<u8>)]) -> Node {
    let node = node().await;
    node.chain.commit_batch(chain).unwrap();
    node
}

/// Asking a height other than the head, or too many keys, gets a clear error.
#[tokio::test(flavor = "multi_thread")]
async fn proofs_are_served_at_the_head_within_bounds() {
    let chain = blocks(5);
    let node = node().await;
    for (block, certificate) in &chain {
        node.chain.commit(block, certificate).unwrap();
    }
    let leaves = [Leaf::Validators];
    let at_head = node.client.state_proof(keys(&leaves), Some(5)).await.unwrap();
    assert_eq!(at_head.header.height, 5);
    let error = node.client.state_proof(keys(&leaves), Some(3)).await.unwrap_err().to_string();
    assert!(error.contains("keeps only the state of its finalized head (height 5)"), "{error}");
    let too_many = vec![format!("0x{}", hex::encode(Leaf::Validators.key())); phalanx_rpc::PROOF_KEYS_MAX + 1];
    let error = node.client.state_proof(too_many, None).await.unwrap_err().to_string();
    assert!(error.contains("ask for 1 to 64 keys"), "{error}");
    let error = node.client.state_proof(vec!["0xzz".into()], None).await.unwrap_err().to_string();
    assert!(error.contains("is not hex"), "{error}");
    let long = format!("0x{}", "ab".repeat(phalanx_statedb::leaf::LEAF_KEY_BYTES_MAX + 1));
    let error = node.client.state_proof(vec![long], None).await.unwrap_err().to_string();
    assert!(error.contains("at most 256 bytes"), "{error}");
}
