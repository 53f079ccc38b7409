//! The worker registry through the state machine's public API: evidence
//! judged against the chain's attestation policy (simulated and genuine
//! Intel DCAP quotes), and signed, sequenced worker messages.

use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Hash, Keypair, PLANCK_PER_PHA};
use phalanx_state::builder::{Candidate, build_block};
use phalanx_state::modules::registry::FEATURE_AGENTS;
use phalanx_state::{
    AttestationPolicy, Block, Call, Evidence, Genesis, RegistrationInfo, SignedTransaction, State, TeeKind,
    Transaction, TxError, WorkerMessage, WorkerPayload,
};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../attest/tests/data");

fn chain(attestation: AttestationPolicy, timestamp_ms: u64) -> (State, Block) {
    let mut genesis = Genesis::dev(vec![Keypair::from_seed(&[42; 32]).public()]);
    genesis.attestation = attestation;
    genesis.timestamp_ms = timestamp_ms;
    genesis.build().unwrap()
}

fn dev_chain() -> (State, Block) {
    chain(Genesis::dev(vec![]).attestation, 1_767_225_600_000)
}

fn tx(state: &State, from: &Keypair, call: Call) -> SignedTransaction {
    let nonce = state.account(&from.public()).map_or(0, |a| a.nonce);
    Transaction { chain_id: state.chain_id(), signer: from.public(), nonce, fee: PLANCK_PER_PHA / 10, call }.sign(from)
}

fn check(state: &State, tx: &SignedTransaction) -> Result<(), TxError> {
    state.check_tx(tx, tx.encode().len())
}

/// Applies one transaction in a block and returns the new state.
fn apply(state: &State, parent: &Block, tx: SignedTransaction) -> (State, Block) {
    let encoded_len = tx.encode().len();
    let built = build_block(
        state,
        parent.hash(),
        state.timestamp_ms() + 1000,
        [Candidate { tx, encoded_len, signature_verified: false }],
    );
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    let mut replica = state.clone();
    replica.execute_block(&built.block).unwrap();
    assert_eq!(replica, built.state);
    (built.state, built.block)
}

fn info(state: &State, identity: &Keypair) -> RegistrationInfo {
    RegistrationInfo {
        chain_id: state.chain_id(),
        identity: identity.public(),
        ecdh: [7; 32],
        operator: dev_keypair("bob").unwrap().public(),
        features: FEATURE_AGENTS,
        benchmark_score: 1234,
    }
}

fn simulated(info: &RegistrationInfo) -> Evidence {
    Evidence::Simulated { report_data: info.report_data() }
}

fn register(state: &State, info: RegistrationInfo, evidence: Evidence) -> SignedTransaction {
    tx(state, &dev_keypair("bob").unwrap(), Call::RegisterWorker { info, evidence })
}

#[test]
fn simulated_worker_registers_on_a_dev_chain() {
    let (state, genesis) = dev_chain();
    let identity = Keypair::from_seed(&[1; 32]);
    let info = info(&state, &identity);
    let (state, _) = apply(&state, &genesis, register(&state, info.clone(), simulated(&info)));
    let worker = state.worker(&identity.public()).expect("registered");
    assert_eq!(worker.info, info);
    assert_eq!(
        (worker.tee, worker.confidence, worker.registered_at, worker.next_sequence),
        (TeeKind::Simulated, 5, 1, 0)
    );
    assert_eq!(state.workers().count(), 1);
}

#[test]
fn refused_registrations_change_nothing() {
    let (state, _) = dev_chain();
    let identity = Keypair::from_seed(&[1; 32]);
    let good = info(&state, &identity);

    // Report data that commits to other keys.
    let mut other = good.clone();
    other.ecdh = [8; 32];
    let err = check(&state, &register(&state, good.clone(), simulated(&other))).unwrap_err();
    assert_eq!(err, TxError::Attestation("report data does not match the registration".into()));

    // A registration made for another chain.
    let mut elsewhere = good.clone();
    elsewhere.chain_id = Hash([5; 32]);
    let err = check(&state, &register(&state, elsewhere.clone(), simulated(&elsewhere))).unwrap_err();
    assert!(err.to_string().contains("registration is for chain"), "{err}");

    // A chain whose policy (the default, fail-closed) refuses simulated evidence.
    let (strict, _) = chain(AttestationPolicy::default(), 1_767_225_600_000);
    let good = info(&strict, &identity);
    let err = check(&strict, &register(&strict, good.clone(), simulated(&good))).unwrap_err();
    assert_eq!(err, TxError::Attestation("this chain does not accept simulated evidence".into()));
    assert_eq!(strict.workers().count(), 0);
}

#[test]
fn governance_can_close_the_door_to_simulated_workers() {
    let (state, genesis) = dev_chain();
    let strict = AttestationPolicy::default();
    let bob = dev_keypair("bob").unwrap();
    let not_governance = tx(&state, &bob, Call::SetAttestationPolicy { policy: strict.clone() });
    assert_eq!(check(&state, &not_governance), Err(TxError::NotGovernance));
    let alice = dev_keypair("alice").unwrap();
    let (state, _) = apply(&state, &genesis, tx(&state, &alice, Call::SetAttestationPolicy { policy: strict.clone() }));
    assert_eq!(state.attestation_policy(), &strict);
    let info = info(&state, &Keypair::from_seed(&[1; 32]));
    assert!(matches!(check(&state, &register(&state, info.clone(), simulated(&info))), Err(TxError::Attestation(_))));
}

fn golden(name: &str) -> (Vec<u8>, Vec<u8>) {
    let quote = std::fs::read(format!("{DATA}/{name}")).unwrap();
    let collateral = std::fs::read(format!("{DATA}/{name}_collateral.json")).unwrap();
    (quote, collateral)
}

/// Genuine SGX evidence goes through the whole verification on chain, at the
/// block's timestamp: it verifies, and is refused only because its report
/// data (made by Intel's sample enclave) does not commit to our keys. The
/// same evidence with a flipped byte, outside the collateral's validity, or
/// under a measurement allowlist that does not name it, is refused earlier,
/// each with its own reason.
#[test]
fn genuine_dcap_evidence_is_verified_on_chain() {
    let in_window_ms = 1_751_000_000_000; // 2025-06-27, inside the sample collateral's validity.
    let (state, _) = chain(AttestationPolicy::default(), in_window_ms);
    let (quote, collateral) = golden("sgx_quote");
    let info = info(&state, &Keypair::from_seed(&[1; 32]));
    let dcap =
        |quote: &[u8], collateral: &[u8]| Evidence::Dcap { quote: quote.to_vec(), collateral: collateral.to_vec() };

    let registration = register(&state, info.clone(), dcap(&quote, &collateral));
    assert!(registration.encode().len() > 16 * 1024, "a registration is larger than ordinary transactions");
    let err = check(&state, &registration).unwrap_err();
    assert_eq!(err, TxError::Attestation("report data does not match the registration".into()));

    let mut flipped = quote.clone();
    flipped[100] ^= 1; // inside the report body
    let err = check(&state, &register(&state, info.clone(), dcap(&flipped, &collateral))).unwrap_err().to_string();
    assert!(err.contains("does not verify"), "{err}");

    let (late, _) = chain(AttestationPolicy::default(), 1_800_000_000_000);
    let info_late = RegistrationInfo { chain_id: late.chain_id(), ..info.clone() };
    let err = check(&late, &register(&late, info_late, dcap(&quote, &collateral))).unwrap_err().to_string();
    assert!(err.contains("does not verify"), "{err}");

    let mut allowlist = AttestationPolicy::default();
    allowlist.dcap.measurements = vec!["00".repeat(32)];
    let (narrow, _) = chain(allowlist, in_window_ms);
    let info_narrow = RegistrationInfo { chain_id: narrow.chain_id(), ..info.clone() };
    let err = check(&narrow, &register(&narrow, info_narrow, dcap(&quote, &collateral))).unwrap_err().to_string();
    assert!(err.contains("not on the policy's allowlist"), "{err}");

    let (tdx_quote, tdx_collateral) = golden("tdx_quote");
    let err = check(&state, &register(&state, info.clone(), dcap(&quote, &tdx_collateral))).unwrap_err().to_string();
    assert!(err.contains("does not verify"), "swapped collateral: {err}");
    let err = check(&state, &register(&state, info, dcap(&tdx_quote, &tdx_collateral))).unwrap_err();
    assert_eq!(err, TxError::Attestation("report data does not match the registration".into()), "genuine TDX");
}

#[test]
fn oversized_evidence_is_refused() {
    let (state, _) = dev_chain();
    let info = info(&state, &Keypair::from_seed(&[1; 32]));
    let evidence = Evidence::Dcap { quote: vec![0; 17 * 1024], collateral: vec![] };
    let err = check(&state, &register(&state, info, evidence)).unwrap_err().to_string();
    assert!(err.contains("evidence too large"), "{err}");
    // Other calls keep the ordinary limit.
    let bob = dev_keypair("bob").unwrap();
    let policy = AttestationPolicy {
        dcap: phalanx_attest::AttestationPolicy { accepted_advisories: vec!["X".repeat(20_000)], ..Default::default() },
        ..Default::default()
    };
    let big = tx(&state, &bob, Call::SetAttestationPolicy { policy });
    assert!(matches!(check(&state, &big), Err(TxError::TooLarge { max: 16384, .. })));
}

#[test]
fn worker_messages_are_signed_and_sequenced() {
    let (state, genesis) = dev_chain();
    let identity = Keypair::from_seed(&[1; 32]);
    let info = info(&state, &identity);
    let (state, block) = apply(&state, &genesis, register(&state, info.clone(), simulated(&info)));
    let charlie = dev_keypair("charlie").unwrap();
    let message =
        |sequence, payload| WorkerMessage { chain_id: state.chain_id(), worker: identity.public(), sequence, payload };
    let send = |state: &State, message| tx(state, &charlie, Call::WorkerMessage { message });

    let first = message(0, WorkerPayload::Heartbeat { synced_height: 1 }).sign(&identity);
    let (after, _) = apply(&state, &block, send(&state, first.clone()));
    let worker = after.worker(&identity.public()).unwrap();
    assert_eq!((worker.next_sequence, worker.synced_height, worker.heartbeat_at), (1, 1, 2));

    // Replay, gap, forgery, unknown sender, wrong chain, a claim about the future.
    assert_eq!(check(&after, &send(&after, first)), Err(TxError::StaleSequence { expected: 1, got: 0 }));
    let gap = message(2, WorkerPayload::Benchmark { score: 9 }).sign(&identity);
    assert_eq!(check(&after, &send(&after, gap)), Err(TxError::FutureSequence { expected: 1, got: 2 }));
    let mut forged = message(1, WorkerPayload::Benchmark { score: 9 }).sign(&identity);
    forged.message.payload = WorkerPayload::Benchmark { score: 10_000 };
    assert!(matches!(check(&after, &send(&after, forged)), Err(TxError::BadMessageSignature(_))));
    let stranger = Keypair::from_seed(&[9; 32]);
    let unknown = WorkerMessage { worker: stranger.public(), ..message(0, WorkerPayload::Benchmark { score: 1 }) };
    assert_eq!(check(&after, &send(&after, unknown.sign(&stranger))), Err(TxError::UnknownWorker(stranger.public())));
    let other_chain = WorkerMessage { chain_id: Hash([3; 32]), ..message(1, WorkerPayload::Benchmark { score: 1 }) };
    assert!(matches!(
        check(&after, &send(&after, other_chain.sign(&identity))),
        Err(TxError::MessageWrongChain { .. })
    ));
    let ahead = message(1, WorkerPayload::Heartbeat { synced_height: 99 }).sign(&identity);
    assert_eq!(
        check(&after, &send(&after, ahead)),
        Err(TxError::HeartbeatAhead { claimed: 99, height: 3 }),
        "judged at the block it would go into"
    );

    // The next message in sequence applies; a renewal keeps the sequence.
    let next = message(1, WorkerPayload::Benchmark { score: 4321 }).sign(&identity);
    let (after, block) = apply(&after, &block, send(&after, next));
    assert_eq!(after.worker(&identity.public()).unwrap().info.benchmark_score, 4321);
    let (after, _) = apply(&after, &block, register(&after, info.clone(), simulated(&info)));
    let worker = after.worker(&identity.public()).unwrap();
    assert_eq!((worker.next_sequence, worker.registered_at, worker.attested_at), (2, 1, 4));
}

#[test]
fn reload_from_leaves_keeps_the_registry() {
    let (state, genesis) = dev_chain();
    let identity = Keypair::from_seed(&[1; 32]);
    let info = info(&state, &identity);
    let mut full = std::collections::BTreeMap::new();
    let mut first = state.clone();
    full.extend(first.take_changes());
    let (mut after, _) = apply(&state, &genesis, register(&state, info.clone(), simulated(&info)));
    full.extend(after.take_changes());
    let loaded = State::load(full).unwrap();
    assert_eq!(loaded, after);
    assert_eq!(loaded.worker(&identity.public()), after.worker(&identity.public()));
    assert_eq!(loaded.attestation_policy(), after.attestation_policy());
}
