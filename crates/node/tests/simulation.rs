//! Deterministic simulation of a four-validator network.
//!
//! The production validator wiring (`consensus::validator::start`: simplex,
//! marshal, buffered broadcast, the [`Chain`] application) runs on
//! commonware's deterministic runtime (virtual time, seeded scheduler) over
//! its simulated p2p network (links with latency and jitter). Each validator
//! has its own [`Chain`] over its own in-memory [`Store`], and its own storage
//! partitions for the consensus journal and marshal's archives.
//!
//! The scenario: 4 validators finalize blocks while signed transfers are
//! submitted; validator 3 crashes (its supervised root task is aborted, which
//! takes every task it started with it) after finalizing a few blocks; the
//! other 3 (a quorum) keep finalizing. Optionally validator 3 then restarts
//! on the same database and storage partitions and catches up.
//!
//! Since the runtime is deterministic, the same seed replays the exact same
//! execution, which the determinism test checks through the runtime's
//! auditor (a hash of every scheduling, network and storage event).

use commonware_cryptography::Signer;
use commonware_p2p::simulated::{self, Link, Network};
use commonware_runtime::{Clock, Handle, Quota, Runner, Spawner, Supervisor, deterministic};
use commonware_utils::{NZU32, NZUsize, ordered::Set, probability};
use phalanx_node::chain::{Chain, ChainConfig};
use phalanx_node::consensus::application::Pacing;
use phalanx_node::consensus::certificate::{self, CertificateError};
use phalanx_node::consensus::validator::{
    self, CHANNEL_BACKFILL, CHANNEL_BLOCKS, CHANNEL_CERTIFICATES, CHANNEL_RESOLVER, CHANNEL_VOTES, Channels, Timing,
    ValidatorConfig,
};
use phalanx_node::consensus::{ValidatorKey, ValidatorSecret, account_key, validator_secret};
use phalanx_node::store::Store;
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Balance, Hash, PLANCK_PER_PHA, PublicKey, sha256};
use phalanx_state::{Call, Genesis, SignedTransaction, TOTAL_SUPPLY, Transaction};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Number of validators; any 3 of them are a quorum.
const VALIDATORS: usize = 4;
/// The validator that crashes.
const CRASHED: usize = 3;
/// Validator 3 crashes once it has finalized this height.
const CRASH_AT: u64 = 3;
/// Blocks every surviving validator must finalize after the crash.
const BLOCKS_AFTER_CRASH: u64 = 12;
/// Transfer pairs submitted (alice -> bob and charlie -> dave, nonces 0..).
const TRANSFER_PAIRS: u64 = 10;
/// One pair is submitted every this many driver ticks.
const SUBMIT_EVERY_TICKS: u64 = 3;
/// How often the driver looks at the validators (virtual time).
const TICK: Duration = Duration::from_millis(50);
/// Give up (fail) after this many ticks without reaching the goal.
const TICKS_MAX: u64 = 2_000;
/// Fee of every transfer: far above the dev chain's minimum.
const FEE: Balance = PLANCK_PER_PHA / 100;
/// Seed of the main scenario.
const SEED: u64 = 7;

/// Whether validator 3 comes back after the crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterCrash {
    StayDown,
    Restart,
}

/// What one simulation left behind.
struct Run {
    /// The runtime auditor's digest of every event of the execution.
    auditor: String,
    /// The chain of each validator at the end (validator 3's restarted chain
    /// if it was restarted, otherwise the one that crashed).
    chains: Vec<Arc<Chain>>,
    /// The finalized height of validator 3 when it crashed.
    crashed_height: u64,
    /// The finalized heights of every validator at the moment of the crash.
    heights_at_crash: Vec<u64>,
    /// The height the restarted validator 3 resumed from (its database head).
    resumed_height: Option<u64>,
    /// Every submitted transfer.
    transfers: Vec<SignedTransaction>,
    /// The validator set, as the state machine names it.
    validators: Vec<PublicKey>,
}

impl Run {
    /// Validators that are expected to be up to date at the end.
    fn live(&self, after: AfterCrash) -> Vec<usize> {
        (0..VALIDATORS).filter(|&i| i != CRASHED || after == AfterCrash::Restart).collect()
    }

    fn height(&self, i: usize) -> u64 {
        self.chains[i].finalized().header.height
    }

    /// Everything that must be identical when the same seed runs again.
    fn fingerprint(&self) -> Fingerprint {
        let blocks = (0..VALIDATORS)
            .map(|i| (0..=self.height(i)).map(|h| self.chains[i].store().block(h).unwrap().unwrap().hash()).collect())
            .collect();
        Fingerprint {
            auditor: self.auditor.clone(),
            crashed_height: self.crashed_height,
            heights_at_crash: self.heights_at_crash.clone(),
            blocks,
            state_roots: self.chains.iter().map(|c| c.store().state().status().unwrap().root).collect(),
        }
    }
}

/// The observable outcome of a run, compared across runs with the same seed.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    auditor: String,
    crashed_height: u64,
    heights_at_crash: Vec<u64>,
    /// Per validator: the hash of every finalized block from genesis.
    blocks: Vec<Vec<Hash>>,
    /// Per validator: the state root of its finalized head.
    state_roots: Vec<Hash>,
}

/// The deterministic runtime for `seed`, and its start time. The virtual
/// clock starts after the genesis timestamp (it defaults to the Unix epoch,
/// before genesis, and no block could ever be proposed).
fn runner(genesis: &Genesis, seed: u64) -> (deterministic::Config, std::time::SystemTime) {
    let start = UNIX_EPOCH + Duration::from_millis(genesis.timestamp_ms) + Duration::from_secs(1);
    let config = deterministic::Config::new()
        .with_seed(seed)
        .with_start_time(start)
        .with_timeout(Some(TICK * TICKS_MAX as u32 * 2));
    (config, start)
}

/// The simulated network between `keys`: every pair linked with 30 ms of
/// latency and 10 ms of jitter, nothing lost.
async fn network(
    context: &deterministic::Context,
    keys: &[ValidatorKey],
) -> simulated::Oracle<ValidatorKey, deterministic::Context> {
    let (network, oracle) = Network::new_with_peers(
        context.child("network"),
        simulated::Config {
            max_size: validator::P2P_MESSAGE_BYTES_MAX,
            max_peers_per_set: NZUsize!(keys.len()),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(1),
        },
        Set::from_iter_dedup(keys.iter().cloned()),
    )
    .await;
    network.start();
    for a in keys {
        for b in keys.iter().filter(|b| *b != a) {
            let link = Link {
                latency: Duration::from_millis(30),
                jitter: Duration::from_millis(10),
                success_rate: probability!(1.0),
            };
            oracle.add_link(a.clone(), b.clone(), link).await.unwrap();
        }
    }
    oracle
}

/// Starts validator `i` on `chain` as one supervised root task: aborting
/// the returned handle crashes the whole validator.
async fn spawn(
    context: &deterministic::Context,
    oracle: &simulated::Oracle<ValidatorKey, deterministic::Context>,
    secret: &ValidatorSecret,
    i: usize,
    chain: Arc<Chain>,
) -> Handle<()> {
    let control = oracle.control(secret.public_key());
    let quota = Quota::per_second(NZU32!(100_000));
    let register = async |channel| control.register(channel, quota).await.unwrap();
    let channels = Channels {
        votes: register(CHANNEL_VOTES).await,
        certificates: register(CHANNEL_CERTIFICATES).await,
        resolver: register(CHANNEL_RESOLVER).await,
        blocks: register(CHANNEL_BLOCKS).await,
        backfill: register(CHANNEL_BACKFILL).await,
    };
    let config = ValidatorConfig {
        secret: secret.clone(),
        // The same prefix after a restart: the same journal and archives.
        partition_prefix: format!("validator-{i}"),
        timing: timing(),
        pacing: pacing(),
        mailbox_size: 1024,
    };
    let manager = oracle.manager();
    context.child("validator").with_attribute("index", i).spawn(move |context| async move {
        let validator = validator::start(context, config, chain, manager, control, channels, None).await;
        let _ = validator.engine.await;
    })
}

fn secret(i: usize) -> ValidatorSecret {
    validator_secret(&sha256(format!("phalanx/simulation/validator/{i}").as_bytes()).0)
}

fn timing() -> Timing {
    Timing {
        leader_timeout: Duration::from_secs(1),
        certification_timeout: Duration::from_secs(2),
        timeout_retry: Duration::from_secs(5),
        fetch_timeout: Duration::from_secs(1),
    }
}

fn pacing() -> Pacing {
    Pacing { min_block_interval: Duration::from_millis(50), empty_block_interval: Duration::from_millis(200) }
}

/// Transfer `k` of a pair: `k + 1` PHA with nonce `k`.
fn transfer(chain_id: Hash, from: &str, to: &str, k: u64) -> SignedTransaction {
    let key = dev_keypair(from).unwrap();
    Transaction {
        chain_id,
        signer: key.public(),
        nonce: k,
        fee: FEE,
        call: Call::Transfer { to: dev_keypair(to).unwrap().public(), amount: transfer_amount(k) },
    }
    .sign(&key)
}

fn transfer_amount(k: u64) -> Balance {
    Balance::from(k + 1) * PLANCK_PER_PHA
}

fn account(name: &str) -> PublicKey {
    dev_keypair(name).unwrap().public()
}

/// Whether `chain` has finalized every transfer (both signers used all nonces).
fn transfers_finalized(chain: &Chain) -> bool {
    let state = &chain.finalized().state;
    ["alice", "charlie"].iter().all(|name| state.account(&account(name)).is_some_and(|a| a.nonce == TRANSFER_PAIRS))
}

/// Runs the scenario with `seed`: 4 validators, transfers, validator 3 crashes
/// at [`CRASH_AT`], the others finalize [`BLOCKS_AFTER_CRASH`] more blocks and
/// every transfer; then, with [`AfterCrash::Restart`], validator 3 restarts on
/// the same storage and runs until it has caught up with them.
fn simulate(seed: u64, after: AfterCrash) -> Run {
    let secrets: Vec<ValidatorSecret> = (0..VALIDATORS).map(secret).collect();
    let keys: Vec<ValidatorKey> = secrets.iter().map(|s| s.public_key()).collect();
    let validators: Vec<PublicKey> = keys.iter().map(account_key).collect();
    let genesis = Genesis::dev(validators.clone());
    // The virtual clock starts after the genesis timestamp (it defaults to the
    // Unix epoch, before genesis, and no block could ever be proposed).
    let (config, start) = runner(&genesis, seed);
    deterministic::Runner::new(config).start(|context| async move {
        let oracle = network(&context, &keys).await;

        let spawn_validator = async |i: usize, chain: Arc<Chain>| spawn(&context, &oracle, &secrets[i], i, chain).await;

        let stores: Vec<Arc<Store>> = (0..VALIDATORS).map(|_| Arc::new(Store::in_memory().unwrap())).collect();
        let mut chains: Vec<Arc<Chain>> = stores
            .iter()
            .map(|store| Arc::new(Chain::open(genesis.clone(), store.clone(), ChainConfig::default()).unwrap()))
            .collect();
        let mut handles: Vec<Option<Handle<()>>> = Vec::new();
        for (i, chain) in chains.iter().enumerate() {
            handles.push(Some(spawn_validator(i, chain.clone()).await));
        }

        let chain_id = chains[0].finalized().state.chain_id();
        let mut transfers = Vec::new();
        let mut crash: Option<(u64, Vec<u64>)> = None;
        let mut restarted: Option<(u64, u64)> = None; // (resumed height, height to reach)
        let mut tick = 0;
        loop {
            context.sleep(TICK).await;
            tick += 1;
            let heights: Vec<u64> = chains.iter().map(|c| c.finalized().header.height).collect();
            assert!(tick < TICKS_MAX, "seed {seed}: no progress to the goal after {tick} ticks; heights {heights:?}");

            // Transfers arrive over time, to the mempool of every running
            // validator (whichever leads next proposes them).
            let pair = transfers.len() as u64 / 2;
            if pair < TRANSFER_PAIRS && tick % SUBMIT_EVERY_TICKS == 0 {
                for tx in [transfer(chain_id, "alice", "bob", pair), transfer(chain_id, "charlie", "dave", pair)] {
                    for (chain, _) in chains.iter().zip(&handles).filter(|(_, handle)| handle.is_some()) {
                        chain.submit(&tx.encode()).unwrap();
                    }
                    transfers.push(tx);
                }
            }

            let Some((_, honest_at_crash)) = &crash else {
                if heights[CRASHED] >= CRASH_AT {
                    handles[CRASHED].take().unwrap().abort();
                    // The abort reaches the validator's child tasks when the
                    // scheduler next polls its root task: only then is it
                    // down, and its height final.
                    context.sleep(TICK).await;
                    let heights: Vec<u64> = chains.iter().map(|c| c.finalized().header.height).collect();
                    crash = Some((heights[CRASHED], heights));
                }
                continue;
            };
            let honest_done = (0..VALIDATORS)
                .filter(|&i| i != CRASHED)
                .all(|i| heights[i] >= honest_at_crash[i] + BLOCKS_AFTER_CRASH && transfers_finalized(&chains[i]));
            match (after, restarted) {
                (AfterCrash::StayDown, _) if honest_done => break,
                (AfterCrash::Restart, None) if honest_done => {
                    // Restart on the same database and storage partitions,
                    // as a process restart would.
                    let chain = Arc::new(
                        Chain::open(genesis.clone(), stores[CRASHED].clone(), ChainConfig::default()).unwrap(),
                    );
                    let resumed = chain.finalized().header.height;
                    chains[CRASHED] = chain.clone();
                    handles[CRASHED] = Some(spawn_validator(CRASHED, chain).await);
                    let target = heights.iter().copied().max().unwrap() + 3;
                    restarted = Some((resumed, target));
                }
                (AfterCrash::Restart, Some((_, target)))
                    if heights.iter().all(|&h| h >= target) && transfers_finalized(&chains[CRASHED]) =>
                {
                    break;
                }
                _ => {}
            }
        }
        let (crashed_height, heights_at_crash) = crash.unwrap();
        let auditor = context.auditor().state();
        let heights: Vec<u64> = chains.iter().map(|c| c.finalized().header.height).collect();
        println!(
            "seed {seed}, {after:?}: {:?} of virtual time; validator {CRASHED} crashed at height {crashed_height} \
             (heights then {heights_at_crash:?}), resumed from {:?}; final heights {heights:?}; auditor {auditor}",
            context.current().duration_since(start).unwrap(),
            restarted.map(|(resumed, _)| resumed),
        );
        Run {
            auditor,
            chains,
            crashed_height,
            heights_at_crash,
            resumed_height: restarted.map(|(resumed, _)| resumed),
            transfers,
            validators,
        }
    })
}

/// Checks that `bytes` certifies `block` for the validator set, does not
/// certify another block (`other`), and stops verifying once altered.
fn check_certificate(rng: &mut impl rand_core::CryptoRng, run: &Run, block: Hash, other: Hash, bytes: &[u8]) {
    // The simulated chains stay in consensus epoch 0 (dev genesis: 1,000 blocks an epoch).
    let certified = certificate::verify(rng, &run.validators, block, 0, bytes)
        .unwrap_or_else(|e| panic!("certificate of block {block} rejected: {e}"));
    assert_eq!(certified.block, block);
    assert!(matches!(
        certificate::verify(rng, &run.validators, other, 0, bytes),
        Err(CertificateError::WrongBlock { .. })
    ));
    let mut tampered = bytes.to_vec();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(certificate::verify(rng, &run.validators, block, 0, &tampered).is_err());
    assert!(matches!(
        certificate::verify(rng, &run.validators, block, 1, bytes),
        Err(CertificateError::WrongEpoch { expected: 1, certified: 0 })
    ));
}

/// Checks what every live validator must agree on: one chain of blocks (same
/// hashes and state roots at every common height), each block certified by
/// the validator set, every transfer finalized with the expected balances.
///
/// Every stored block carries its own certificate, also on a restarted
/// validator that finalized some blocks implicitly while catching up (the
/// finalizer fetches their certificates from peers; see `run_finalizer`).
fn check_agreement(run: &Run, after: AfterCrash) {
    let live = run.live(after);
    let common = live.iter().map(|&i| run.height(i)).min().unwrap();
    let reference = run.chains[live[0]].store();
    let mut rng = commonware_utils::test_rng();
    for &i in &live {
        let store = run.chains[i].store();
        let finalized = run.chains[i].finalized();
        // The finalized state is the state the head block commits to.
        let head = store.block(finalized.header.height).unwrap().unwrap();
        assert_eq!(head.hash(), finalized.hash);
        assert_eq!(head.header.state_root, store.state().status().unwrap().root, "validator {i}: head state root");

        let mut parent = store.block(0).unwrap().unwrap();
        assert_eq!(parent.hash(), run.chains[i].genesis_hash());
        for h in 1..=finalized.header.height {
            let block = store.block(h).unwrap().unwrap();
            assert_eq!(block.header.height, h);
            assert_eq!(block.header.parent, parent.hash(), "validator {i}: block {h} does not extend {}", h - 1);
            if h <= common {
                let theirs = reference.block(h).unwrap().unwrap();
                assert_eq!(block.hash(), theirs.hash(), "validators {i} and {} fork at height {h}", live[0]);
                assert_eq!(block.header.state_root, theirs.header.state_root);
            }
            // Anyone holding just the validator set can check a certificate.
            let bytes = store.certificate(h).unwrap().unwrap();
            assert!(!bytes.is_empty(), "validator {i} stored no certificate for block {h}");
            check_certificate(&mut rng, run, block.hash(), parent.hash(), &bytes);
            parent = block;
        }
        // Every transfer was finalized exactly once, at the same place everywhere.
        for tx in &run.transfers {
            let location = store.tx_location(&tx.hash()).unwrap();
            assert!(location.is_some(), "validator {i}: transfer {} not finalized", tx.hash());
            assert_eq!(location, reference.tx_location(&tx.hash()).unwrap());
        }
        let state = &finalized.state;
        let genesis = Genesis::dev(run.validators.clone()).build().unwrap().0;
        let balance = |state: &phalanx_state::State, name: &str| state.account(&account(name)).unwrap().free;
        let sent: Balance = (0..TRANSFER_PAIRS).map(transfer_amount).sum();
        let fees = FEE * Balance::from(TRANSFER_PAIRS);
        assert_eq!(balance(state, "bob"), balance(&genesis, "bob") + sent);
        assert_eq!(balance(state, "dave"), balance(&genesis, "dave") + sent);
        assert_eq!(balance(state, "alice"), balance(&genesis, "alice") - sent - fees);
        assert_eq!(balance(state, "charlie"), balance(&genesis, "charlie") - sent - fees);
        assert_eq!(state.total_issuance(), TOTAL_SUPPLY);
    }
}

/// One validator of four crashes and the other three keep finalizing: their
/// heights grow well past the crash, every transfer is finalized, they agree
/// on every block hash and state root, each block's certificate verifies
/// against the validator set (and a tampered one does not), and the crashed
/// validator stays where it stopped.
#[test]
fn three_of_four_keep_finalizing_after_a_crash() {
    let run = simulate(SEED, AfterCrash::StayDown);
    assert!(run.crashed_height >= CRASH_AT);
    assert_eq!(run.height(CRASHED), run.crashed_height, "a crashed validator finalizes nothing");
    for i in run.live(AfterCrash::StayDown) {
        assert!(
            run.height(i) >= run.heights_at_crash[i] + BLOCKS_AFTER_CRASH,
            "validator {i} stalled after the crash: {} -> {}",
            run.heights_at_crash[i],
            run.height(i)
        );
    }
    check_agreement(&run, AfterCrash::StayDown);
    // The crashed validator's blocks are a prefix of the others' chain.
    let reference = run.chains[0].store();
    let crashed = run.chains[CRASHED].store();
    let mut rng = commonware_utils::test_rng();
    for h in 1..=run.crashed_height {
        let block = crashed.block(h).unwrap().unwrap();
        assert_eq!(block.hash(), reference.block(h).unwrap().unwrap().hash());
        check_certificate(&mut rng, &run, block.hash(), block.header.parent, &crashed.certificate(h).unwrap().unwrap());
    }
}

/// The crashed validator restarts on the same database and consensus storage:
/// it resumes from the height it had finalized (not from genesis), catches up
/// with the others (backfilling what it missed) and ends on the same chain and
/// state root. Every block it holds is certified: by its own stored
/// certificate, or (for a block marshal finalized implicitly while catching
/// up, which today is stored without one) by a later certified block on the
/// hash chain and by the certificate the other validators hold for it.
#[test]
fn crashed_validator_restarts_and_catches_up() {
    let run = simulate(SEED, AfterCrash::Restart);
    assert_eq!(run.resumed_height, Some(run.crashed_height), "restart resumes from the stored head");
    assert!(run.height(CRASHED) > run.crashed_height + BLOCKS_AFTER_CRASH);
    check_agreement(&run, AfterCrash::Restart);
}

/// The same seed replays the same execution: identical auditor digest (every
/// scheduling, message and storage event), crash point, blocks and state
/// roots. A different seed (different link jitter and scheduling) gives a
/// different execution.
#[test]
fn same_seed_same_execution() {
    let first = simulate(SEED, AfterCrash::StayDown).fingerprint();
    let second = simulate(SEED, AfterCrash::StayDown).fingerprint();
    assert_eq!(first, second);
    let other = simulate(SEED + 1, AfterCrash::StayDown).fingerprint();
    assert_ne!(first.auditor, other.auditor);
}

/// Governance changes the validator set. Five nodes run the production
/// wiring; the genesis set is validators 0–3 (epochs of 10 blocks) and
/// validator 4 starts as an observer. A `SetValidators` transaction (alice
/// is governance) names 1–4: from the first block of the next epoch,
/// validator 4 votes and validator 0 only observes. Then validators 0 and 1
/// stop: the 3 that remain are a quorum of the new set only because
/// validator 4 votes, and finality continues. Every block's certificate is
/// from its epoch and verifies against that epoch's set; the change happened
/// exactly after the last block of an epoch, and all nodes agree.
#[test]
fn governance_changes_the_validator_set() {
    const NODES: usize = 5;
    const EPOCH: u64 = 10;
    let secrets: Vec<ValidatorSecret> = (0..NODES).map(secret).collect();
    let keys: Vec<ValidatorKey> = secrets.iter().map(|s| s.public_key()).collect();
    let accounts: Vec<PublicKey> = keys.iter().map(account_key).collect();
    let mut genesis = Genesis::dev(accounts[..4].to_vec());
    genesis.consensus = phalanx_state::ConsensusParams { epoch_blocks: EPOCH };
    let (config, _) = runner(&genesis, SEED);
    deterministic::Runner::new(config).start(|context| async move {
        let oracle = network(&context, &keys).await;
        let stores: Vec<Arc<Store>> = (0..NODES).map(|_| Arc::new(Store::in_memory().unwrap())).collect();
        let mut chains: Vec<Arc<Chain>> = stores
            .iter()
            .map(|store| Arc::new(Chain::open(genesis.clone(), store.clone(), ChainConfig::default()).unwrap()))
            .collect();
        let mut handles = Vec::new();
        for (i, chain) in chains.iter().enumerate() {
            handles.push(Some(spawn(&context, &oracle, &secrets[i], i, chain.clone()).await));
        }
        let height = |i: usize| chains[i].finalized().header.height;

        // Governance names validators 1–4 once the chain is moving.
        let alice = dev_keypair("alice").unwrap();
        let entries = (1..NODES)
            .map(|i| phalanx_state::ValidatorEntry { key: accounts[i], address: format!("10.0.0.{i}:7000") })
            .collect();
        let chain_id = chains[0].finalized().state.chain_id();
        let change = Transaction {
            chain_id,
            signer: alice.public(),
            nonce: 0,
            fee: FEE,
            call: Call::SetValidators { validators: entries },
        }
        .sign(&alice);
        let mut submitted = false;
        let mut stopped_at: Option<u64> = None;
        for tick in 0.. {
            context.sleep(TICK).await;
            assert!(tick < TICKS_MAX, "no progress; heights {:?}", (0..NODES).map(height).collect::<Vec<_>>());
            if !submitted && height(0) >= 3 {
                for chain in &chains[..4] {
                    chain.submit(&change.encode()).unwrap();
                }
                submitted = true;
            }
            // Once every node is in epoch 2, stop validators 0 and 1.
            if stopped_at.is_none() && (0..NODES).all(|i| height(i) >= 2 * EPOCH + 2) {
                for handle in &mut handles[..2] {
                    handle.take().unwrap().abort();
                }
                context.sleep(TICK).await;
                stopped_at = Some((2..NODES).map(height).min().unwrap());
            }
            if let Some(at) = stopped_at
                && (2..NODES).all(|i| height(i) >= at + 2 * EPOCH)
            {
                break;
            }
        }

        // Where the change was scheduled and where it took over.
        let store = chains[4].store();
        let scheduled = (1..=height(4))
            .find(|&h| store.tx_location(&change.hash()).unwrap().is_some_and(|(at, _)| at == h))
            .expect("the change was finalized");
        assert!(scheduled < EPOCH, "scheduled in epoch 0, at height {scheduled}");
        let changed_at: Vec<u64> = (1..=height(4))
            .filter(|&h| {
                store.events(h).unwrap().unwrap().iter().any(|record| {
                    matches!(&record.event, phalanx_state::Event::ValidatorSetChanged { epoch: 1, validators }
                        if validators == &accounts[1..])
                })
            })
            .collect();
        assert_eq!(changed_at, vec![EPOCH - 1], "the set changes after the last block of epoch 0 only");

        // Every block of validator 4's chain is certified in its own epoch
        // by that epoch's set; epoch-1+ certificates do not verify against
        // the genesis set, and all live nodes hold the same blocks.
        let mut rng = commonware_utils::test_rng();
        let genesis_set = &accounts[..4];
        let new_set = &accounts[1..];
        for h in 1..=height(4) {
            let block = store.block(h).unwrap().unwrap();
            let bytes = store.certificate(h).unwrap().unwrap();
            let epoch = h / EPOCH;
            if epoch == 0 {
                certificate::verify(&mut rng, genesis_set, block.hash(), 0, &bytes)
                    .unwrap_or_else(|e| panic!("block {h}: {e}"));
            } else if !bytes.is_empty() || h % EPOCH == EPOCH - 1 {
                certificate::verify(&mut rng, new_set, block.hash(), epoch, &bytes)
                    .unwrap_or_else(|e| panic!("block {h} (epoch {epoch}): {e}"));
                assert!(certificate::verify(&mut rng, genesis_set, block.hash(), epoch, &bytes).is_err());
            }
            for (i, chain) in chains.iter().enumerate().take(4).skip(2) {
                if h <= chain.finalized().header.height {
                    assert_eq!(chain.store().block(h).unwrap().unwrap().hash(), block.hash(), "node {i} forks at {h}");
                }
            }
        }
        // Old epochs' consensus journals are removed; the current one is kept.
        use commonware_runtime::Storage as _;
        let epoch_now = height(4) / EPOCH;
        for i in 2..NODES {
            let old = context.scan(&format!("validator-{i}-simplex-0")).await.unwrap_or_default();
            assert!(old.is_empty(), "node {i} kept the journal of epoch 0: {old:?}");
            let current = context.scan(&format!("validator-{i}-simplex-{epoch_now}")).await.unwrap_or_default();
            assert!(!current.is_empty(), "node {i} has a journal for epoch {epoch_now}");
        }
        // The removed validator kept following as an observer until it stopped.
        assert!(chains[0].store().block(2 * EPOCH).unwrap().is_some(), "validator 0 followed into epoch 2");
        assert_eq!(chains[0].finalized().state.validators(), new_set);

        // Validator 1 restarts on its storage after missing two epoch
        // changes: it catches up across them (votes of a later epoch make it
        // fetch its epoch's last finalization) and votes again.
        let resumed = chains[1].finalized().header.height;
        let restarted = Arc::new(Chain::open(genesis.clone(), stores[1].clone(), ChainConfig::default()).unwrap());
        chains[1] = restarted.clone();
        let _validator_1 = spawn(&context, &oracle, &secrets[1], 1, restarted.clone()).await;
        let target = (2..NODES).map(|i| chains[i].finalized().header.height).max().unwrap() + EPOCH;
        for tick in 0.. {
            context.sleep(TICK).await;
            assert!(tick < TICKS_MAX, "validator 1 did not catch up: at {}", restarted.finalized().header.height);
            if restarted.finalized().header.height >= target {
                break;
            }
        }
        assert!(target / EPOCH > resumed / EPOCH + 2, "the restart crossed at least two epoch changes");
        let h = restarted.finalized().header.height;
        let common = h.min(chains[2].finalized().header.height);
        let hash = |chain: &Chain| chain.store().block(common).unwrap().unwrap().hash();
        assert_eq!(hash(&restarted), hash(&chains[2]), "the restarted validator is on the same chain");
        println!(
            "validator set changed after block {}; validators 0 and 1 stopped at {stopped_at:?}; validator 1 resumed \
             from {resumed} and caught up to {h}; final heights {:?}",
            EPOCH - 1,
            (0..NODES).map(|i| chains[i].finalized().header.height).collect::<Vec<_>>()
        );
    });
}
