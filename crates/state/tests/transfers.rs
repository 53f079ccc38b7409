//! State machine behaviour through its public API: transfers, fees, refusals,
//! block execution and reloading from leaves.

use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Hash, Keypair, PLANCK_PER_PHA, PublicKey};
use phalanx_state::builder::{Candidate, build_block};
use phalanx_state::{Block, BlockError, Call, Genesis, SignedTransaction, State, TOTAL_SUPPLY, Transaction, TxError};

fn setup() -> (State, Block) {
    Genesis::dev(vec![Keypair::from_seed(&[42; 32]).public()]).build().unwrap()
}

fn transfer(state: &State, from: &Keypair, nonce: u64, to: PublicKey, amount: u128) -> SignedTransaction {
    Transaction {
        chain_id: state.chain_id(),
        signer: from.public(),
        nonce,
        fee: PLANCK_PER_PHA / 100,
        call: Call::Transfer { to, amount },
    }
    .sign(from)
}

fn candidate(tx: SignedTransaction) -> Candidate {
    let encoded_len = tx.encode().len();
    Candidate { tx, encoded_len, signature_verified: false }
}

fn sum_of_balances(state: &State) -> u128 {
    state.accounts().map(|(_, a)| a.free).sum()
}

#[test]
fn transfer_moves_funds_and_pays_fee_to_treasury() {
    let (state, genesis) = setup();
    let (alice, bob) = (dev_keypair("alice").unwrap(), dev_keypair("bob").unwrap());
    let treasury = state.params().treasury;
    let before = |who: &PublicKey| state.account(who).unwrap().free;
    let tx = transfer(&state, &alice, 0, bob.public(), 5 * PLANCK_PER_PHA);
    let built = build_block(&state, genesis.hash(), 1, [candidate(tx.clone())]);
    assert!(built.rejected.is_empty());
    let after = &built.state;
    assert_eq!(after.account(&alice.public()).unwrap().free, before(&alice.public()) - 5 * PLANCK_PER_PHA - tx.tx.fee);
    assert_eq!(after.account(&bob.public()).unwrap().free, before(&bob.public()) + 5 * PLANCK_PER_PHA);
    assert_eq!(after.account(&treasury).unwrap().free, before(&treasury) + tx.tx.fee);
    assert_eq!(after.account(&alice.public()).unwrap().nonce, 1);
    assert_eq!(sum_of_balances(after), TOTAL_SUPPLY);
    assert_eq!(after.total_issuance(), TOTAL_SUPPLY);

    // A verifier replaying the block reaches the same state and commits
    // the same leaves (the state root over them is the store's, set later).
    let mut replica = state.clone();
    replica.execute_block(&built.block).unwrap();
    assert_eq!(replica, built.state);
    assert_eq!(replica.block_writes(), built.state.block_writes());
    assert!(replica.block_writes().len() >= 4, "alice, bob, the treasury and the head at least");
    assert_eq!(built.block.header.state_root, Hash::ZERO, "no root until the store gives one");
}

#[test]
fn refusals_are_clear_and_change_nothing() {
    let (state, _) = setup();
    let (alice, bob) = (dev_keypair("alice").unwrap(), dev_keypair("bob").unwrap());
    let before = state.clone();
    let stranger = Keypair::from_seed(&[3; 32]);
    let check = |tx: &SignedTransaction| state.check_tx(tx, tx.encode().len());

    let mut bad_sig = transfer(&state, &alice, 0, bob.public(), 1);
    bad_sig.signature.0[0] ^= 1;
    assert!(matches!(check(&bad_sig), Err(TxError::BadSignature(_))));
    assert_eq!(check(&transfer(&state, &alice, 1, bob.public(), 1)), Err(TxError::FutureNonce { expected: 0, got: 1 }));
    assert_eq!(check(&transfer(&state, &stranger, 0, bob.public(), 1)), Err(TxError::UnknownAccount));
    let everything = state.account(&alice.public()).unwrap().free;
    assert!(matches!(
        check(&transfer(&state, &alice, 0, bob.public(), everything)),
        Err(TxError::InsufficientBalance { .. })
    ));
    assert!(matches!(check(&transfer(&state, &alice, 0, bob.public(), u128::MAX)), Err(TxError::Overflow(_))));
    let mut cheap = transfer(&state, &alice, 0, bob.public(), 1).tx;
    cheap.fee = 1;
    assert!(matches!(check(&cheap.sign(&alice)), Err(TxError::FeeTooLow { .. })));
    let mut other_chain = transfer(&state, &alice, 0, bob.public(), 1).tx;
    other_chain.chain_id = Hash([1; 32]);
    assert!(matches!(check(&other_chain.sign(&alice)), Err(TxError::WrongChain { .. })));
    let governance_call = |signer: &Keypair| {
        Transaction {
            chain_id: state.chain_id(),
            signer: signer.public(),
            nonce: 0,
            fee: PLANCK_PER_PHA,
            call: Call::SetFeeSchedule { base_fee: 0, byte_fee: 0 },
        }
        .sign(signer)
    };
    assert_eq!(check(&governance_call(&bob)), Err(TxError::NotGovernance));
    assert_eq!(check(&governance_call(&alice)), Ok(()));
    assert_eq!(state, before);
}

#[test]
fn stale_nonce_after_apply_and_builder_skips_invalid() {
    let (state, genesis) = setup();
    let (alice, bob) = (dev_keypair("alice").unwrap(), dev_keypair("bob").unwrap());
    let first = transfer(&state, &alice, 0, bob.public(), 1);
    let replay = first.clone();
    let built = build_block(&state, genesis.hash(), 1, [candidate(first), candidate(replay)]);
    assert_eq!(built.block.txs.len(), 1);
    assert_eq!(built.rejected.len(), 1);
    assert_eq!(built.rejected[0].1, TxError::StaleNonce { expected: 1, got: 0 });
}

#[test]
fn tampered_blocks_are_refused_and_state_is_kept() {
    let (state, genesis) = setup();
    let (alice, bob) = (dev_keypair("alice").unwrap(), dev_keypair("bob").unwrap());
    let built = build_block(&state, genesis.hash(), 10, [candidate(transfer(&state, &alice, 0, bob.public(), 7))]);
    let before = state.clone();

    let mut wrong_root = built.block.clone();
    wrong_root.header.tx_root = Hash([0; 32]);
    let mut replica = state.clone();
    assert!(matches!(replica.execute_block(&wrong_root), Err(BlockError::RootMismatch { which: "transaction", .. })));
    let mut wrong_events = built.block.clone();
    wrong_events.header.events_root = Hash([0; 32]);
    assert!(matches!(replica.execute_block(&wrong_events), Err(BlockError::RootMismatch { which: "events", .. })));
    assert_eq!(replica, before);

    let mut bigger_amount = built.block.clone();
    if let Call::Transfer { amount, .. } = &mut bigger_amount.txs[0].tx.call {
        *amount += 1;
    }
    assert!(matches!(replica.execute_block(&bigger_amount), Err(BlockError::InvalidTransaction { index: 0, .. })));

    let mut skipped_height = built.block.clone();
    skipped_height.header.height = 2;
    assert!(matches!(replica.execute_block(&skipped_height), Err(BlockError::Height { .. })));
    assert_eq!(replica, before);
    assert_eq!(replica.height(), 0);

    replica.execute_block(&built.block).unwrap();
    assert_eq!(replica, built.state);
    // The same block cannot be applied twice.
    assert!(replica.execute_block(&built.block).is_err());
}

#[test]
fn reload_from_leaves_reproduces_the_state() {
    let (mut state, genesis) = setup();
    let (alice, bob) = (dev_keypair("alice").unwrap(), dev_keypair("bob").unwrap());
    let mut leaves: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = state.take_changes().into_iter().collect();
    let mut built = build_block(&state, genesis.hash(), 5, [candidate(transfer(&state, &alice, 0, bob.public(), 9))]);
    leaves.extend(built.state.take_changes());
    let reloaded = State::load(leaves).unwrap();
    assert_eq!(reloaded, built.state);
    assert_eq!(reloaded.height(), 1);
    assert_eq!(reloaded.account(&bob.public()), built.state.account(&bob.public()));
}

#[test]
fn genesis_rules() {
    let validator = Keypair::from_seed(&[42; 32]).public();
    let mut genesis = Genesis::dev(vec![validator]);
    genesis.balances[0].1 += 1;
    assert!(matches!(genesis.build(), Err(phalanx_state::GenesisError::Supply { .. })));
    let genesis = Genesis::dev(vec![]);
    assert!(matches!(genesis.build(), Err(phalanx_state::GenesisError::Validators)));
    // JSON round trip keeps the chain id.
    let genesis = Genesis::dev(vec![validator]);
    let json = serde_json::to_string_pretty(&genesis).unwrap();
    let back: Genesis = serde_json::from_str(&json).unwrap();
    assert_eq!(back.chain_id(), genesis.chain_id());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    /// Any sequence of transfers among a few accounts conserves the supply,
    /// and replaying the built blocks reproduces every root.
    #[test]
    fn transfers_conserve_supply(ops in proptest::collection::vec((0usize..4, 0usize..5, 0u128..200_000_000 * PLANCK_PER_PHA), 1..40)) {
        let names = ["alice", "bob", "charlie", "dave"];
        let keys: Vec<Keypair> = names.iter().map(|n| dev_keypair(n).unwrap()).collect();
        let (mut state, genesis) = setup();
        let mut replica = state.clone();
        let mut parent = genesis.hash();
        for (block_index, chunk) in ops.chunks(7).enumerate() {
            let mut nonces: Vec<u64> = keys.iter().map(|k| state.account(&k.public()).unwrap().nonce).collect();
            let candidates: Vec<Candidate> = chunk.iter().map(|&(from, to, amount)| {
                let to_key = if to == 4 { Keypair::from_seed(&[77; 32]).public() } else { keys[to].public() };
                let tx = transfer(&state, &keys[from], nonces[from], to_key, amount);
                nonces[from] += 1;
                candidate(tx)
            }).collect();
            let built = build_block(&state, parent, 100 + block_index as u64, candidates);
            proptest::prop_assert_eq!(sum_of_balances(&built.state), TOTAL_SUPPLY);
            replica.execute_block(&built.block).unwrap();
            proptest::prop_assert_eq!(&replica, &built.state);
            parent = built.block.hash();
            state = built.state;
        }
    }
}
