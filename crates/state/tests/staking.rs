//! Stake pools through transactions: create, contribute, withdraw (paid
//! from free stake, the rest queued and served when stake is freed), with
//! the invariants checked after every block of random sequences: issuance
//! equals the accounts plus the pools' value, holders' shares add up to
//! each pool's, nothing goes negative, and a verifier replaying each block
//! reaches the same root.

use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Keypair, PLANCK_PER_PHA};
use phalanx_state::builder::{Candidate, build_block};
use phalanx_state::{Block, Call, Genesis, SignedTransaction, State, TOTAL_SUPPLY, Transaction, TxError};
use proptest::prelude::*;

const PHA: u128 = PLANCK_PER_PHA;

fn setup() -> (State, Block) {
    Genesis::dev(vec![Keypair::from_seed(&[42; 32]).public()]).build().unwrap()
}

fn tx(state: &State, from: &Keypair, call: Call) -> SignedTransaction {
    let nonce = state.account(&from.public()).map_or(0, |a| a.nonce);
    Transaction { chain_id: state.chain_id(), signer: from.public(), nonce, fee: PHA / 100, call }.sign(from)
}

/// Signs `call` as `from` and applies it in its own block; returns the refusal, if any.
fn apply(state: &mut State, parent: &mut Block, from: &Keypair, call: Call) -> Result<(), TxError> {
    let signed = tx(state, from, call);
    let encoded_len = signed.encode().len();
    state.check_tx(&signed, encoded_len)?;
    let built = build_block(
        state,
        parent.hash(),
        parent.header.timestamp_ms + 1_000,
        [Candidate { tx: signed, encoded_len, signature_verified: false }],
    );
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    let mut replica = state.clone();
    replica.execute_block(&built.block).unwrap();
    assert_eq!(replica, built.state);
    *state = built.state;
    *parent = built.block;
    Ok(())
}

fn check_invariants(state: &State) {
    for vault in state.vaults() {
        let held: u128 = state.vault_stakes_in(vault.id).map(|(_, s)| s.shares).sum();
        assert_eq!(held, vault.shares, "vault {} shares", vault.id);
        for w in &vault.withdrawals {
            assert!(
                w.shares > 0 && w.shares <= state.vault_stake(vault.id, &w.who).shares,
                "a queued vault withdrawal is backed"
            );
        }
    }
    let accounts: u128 = state.accounts().map(|(_, a)| a.free).sum();
    let pools: u128 = state.pools().map(|p| p.value).sum();
    assert_eq!(accounts + pools, state.total_issuance(), "issuance = accounts + pools");
    assert_eq!(state.total_issuance(), TOTAL_SUPPLY, "nothing minted or burned without rewards or slashes");
    for pool in state.pools() {
        let held: u128 = state.stakes_in(pool.id).map(|(_, s)| s.shares).sum();
        assert_eq!(held, pool.shares, "pool {} shares", pool.id);
        assert!(pool.free <= pool.value);
        for w in &pool.withdrawals {
            assert!(w.shares > 0 && w.shares <= state.stake(pool.id, &w.who).shares, "a queued withdrawal is backed");
        }
    }
}

#[test]
fn contributions_buy_shares_and_withdrawals_pay_them_back() {
    let (mut state, mut parent) = setup();
    let (alice, bob, dave) = (dev_keypair("alice").unwrap(), dev_keypair("bob").unwrap(), dev_keypair("dave").unwrap());
    apply(&mut state, &mut parent, &bob, Call::CreatePool { commission: 200_000, cap: Some(5_000 * PHA) }).unwrap();
    let pool = state.pool(0).unwrap();
    assert_eq!((pool.owner, pool.commission, pool.cap), (bob.public(), 200_000, Some(5_000 * PHA)));

    let before = state.account(&dave.public()).unwrap().free;
    apply(&mut state, &mut parent, &dave, Call::Contribute { pool: 0, amount: 1_000 * PHA }).unwrap();
    assert_eq!(state.stake(0, &dave.public()).shares, 1_000 * PHA);
    assert_eq!(state.account(&dave.public()).unwrap().free, before - 1_000 * PHA - PHA / 100);
    apply(&mut state, &mut parent, &alice, Call::Contribute { pool: 0, amount: 3_000 * PHA }).unwrap();
    check_invariants(&state);

    // The cap, the minimum, unknown pools and shares one does not hold are refused.
    let refused = apply(&mut state, &mut parent, &dave, Call::Contribute { pool: 0, amount: 1_001 * PHA });
    assert!(matches!(&refused, Err(TxError::Staking(m)) if m.contains("cap")), "{refused:?}");
    let refused = apply(&mut state, &mut parent, &dave, Call::Contribute { pool: 0, amount: 1 });
    assert!(matches!(&refused, Err(TxError::Staking(m)) if m.contains("at least")), "{refused:?}");
    let refused = apply(&mut state, &mut parent, &dave, Call::Contribute { pool: 9, amount: PHA });
    assert!(matches!(&refused, Err(TxError::Staking(m)) if m.contains("no pool 9")), "{refused:?}");
    let refused = apply(&mut state, &mut parent, &dave, Call::Withdraw { pool: 0, shares: 1_000 * PHA + 1 });
    assert!(matches!(&refused, Err(TxError::Staking(m)) if m.contains("you hold")), "{refused:?}");
    let refused = apply(&mut state, &mut parent, &bob, Call::CreatePool { commission: 1_000_001, cap: None });
    assert!(matches!(&refused, Err(TxError::Staking(m)) if m.contains("parts per million")), "{refused:?}");
    let too_much = tx(&state, &dave, Call::Contribute { pool: 0, amount: u128::MAX / 2 });
    assert!(matches!(
        state.check_tx(&too_much, too_much.encode().len()),
        Err(TxError::Staking(_) | TxError::InsufficientBalance { .. })
    ));

    // All stake is free: a withdrawal is paid at once, at the share price.
    let before = state.account(&dave.public()).unwrap().free;
    apply(&mut state, &mut parent, &dave, Call::Withdraw { pool: 0, shares: 400 * PHA }).unwrap();
    assert_eq!(state.stake(0, &dave.public()).shares, 600 * PHA);
    assert_eq!(state.account(&dave.public()).unwrap().free, before + 400 * PHA - PHA / 100);
    assert!(state.pool(0).unwrap().withdrawals.is_empty());
    check_invariants(&state);
}

#[test]
fn vaults_delegate_into_pools_and_pay_back_through_them() {
    use phalanx_state::modules::staking::vault_account;
    let (mut state, mut parent) = setup();
    let (alice, bob, dave) = (dev_keypair("alice").unwrap(), dev_keypair("bob").unwrap(), dev_keypair("dave").unwrap());
    apply(&mut state, &mut parent, &bob, Call::CreatePool { commission: 0, cap: None }).unwrap();
    apply(&mut state, &mut parent, &alice, Call::CreateVault { commission: 100_000 }).unwrap();
    let vault = vault_account(0);
    apply(&mut state, &mut parent, &dave, Call::VaultContribute { vault: 0, amount: 1_000 * PHA }).unwrap();
    assert_eq!(state.vault_stake(0, &dave.public()).shares, 1_000 * PHA);
    assert_eq!(state.vault_free(0), 1_000 * PHA);

    // Only the owner delegates, at most what is not delegated, only into pools.
    let refused = apply(&mut state, &mut parent, &dave, Call::Delegate { vault: 0, pool: 0, amount: PHA });
    assert!(matches!(&refused, Err(TxError::Staking(m)) if m.contains("only the owner")), "{refused:?}");
    let refused = apply(&mut state, &mut parent, &alice, Call::Delegate { vault: 0, pool: 0, amount: 1_001 * PHA });
    assert!(matches!(&refused, Err(TxError::Staking(m)) if m.contains("not delegated")), "{refused:?}");
    let refused = apply(&mut state, &mut parent, &alice, Call::Delegate { vault: 0, pool: 7, amount: PHA });
    assert!(matches!(&refused, Err(TxError::Staking(m)) if m.contains("no pool 7")), "{refused:?}");
    apply(&mut state, &mut parent, &alice, Call::Delegate { vault: 0, pool: 0, amount: 800 * PHA }).unwrap();
    assert_eq!(state.stake(0, &vault).shares, 800 * PHA, "the vault holds pool shares as its own account");
    assert_eq!(state.vault_free(0), 200 * PHA);
    assert_eq!(state.vault_value(state.vault(0).unwrap()), 1_000 * PHA, "delegating keeps the value");
    check_invariants(&state);

    // Dave withdraws 500: 200 paid from free planck, 300 wait in the vault's queue.
    let before = state.account(&dave.public()).unwrap().free;
    apply(&mut state, &mut parent, &dave, Call::VaultWithdraw { vault: 0, shares: 500 * PHA }).unwrap();
    assert_eq!(state.account(&dave.public()).unwrap().free, before + 200 * PHA - PHA / 100);
    assert_eq!(state.vault(0).unwrap().withdrawals[0].shares, 300 * PHA);
    check_invariants(&state);
    // The owner undelegates: the pool pays the vault, the vault pays dave.
    apply(&mut state, &mut parent, &alice, Call::Undelegate { vault: 0, pool: 0, shares: 300 * PHA }).unwrap();
    assert!(state.vault(0).unwrap().withdrawals.is_empty());
    assert_eq!(state.account(&dave.public()).unwrap().free, before + 500 * PHA - PHA / 100, "one fee: his withdrawal");
    assert_eq!(state.vault_stake(0, &dave.public()).shares, 500 * PHA);
    check_invariants(&state);
    assert_eq!(state.total_issuance(), TOTAL_SUPPLY);
}

#[derive(Clone, Debug)]
enum Op {
    Create { who: usize, commission: u32 },
    Contribute { who: usize, pool: u64, milli: u128 },
    Withdraw { who: usize, pool: u64, permille: u128 },
    CreateVault { who: usize },
    VaultContribute { who: usize, vault: u64, milli: u128 },
    VaultWithdraw { who: usize, vault: u64, permille: u128 },
    Delegate { who: usize, vault: u64, pool: u64, permille: u128 },
    Undelegate { who: usize, vault: u64, pool: u64, permille: u128 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0usize..4, 0u32..=1_000_000).prop_map(|(who, commission)| Op::Create { who, commission }),
        4 => (0usize..4, 0u64..3, 1u128..5_000_000).prop_map(|(who, pool, milli)| Op::Contribute { who, pool, milli }),
        3 => (0usize..4, 0u64..3, 1u128..=1_000).prop_map(|(who, pool, permille)| Op::Withdraw { who, pool, permille }),
        1 => (0usize..4).prop_map(|who| Op::CreateVault { who }),
        3 => (0usize..4, 0u64..2, 1u128..5_000_000).prop_map(|(who, vault, milli)| Op::VaultContribute { who, vault, milli }),
        2 => (0usize..4, 0u64..2, 1u128..=1_000).prop_map(|(who, vault, permille)| Op::VaultWithdraw { who, vault, permille }),
        3 => (0usize..4, 0u64..2, 0u64..3, 1u128..=1_000).prop_map(|(who, vault, pool, permille)| Op::Delegate { who, vault, pool, permille }),
        2 => (0usize..4, 0u64..2, 0u64..3, 1u128..=1_000).prop_map(|(who, vault, pool, permille)| Op::Undelegate { who, vault, pool, permille }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random contributions and withdrawals by four accounts over up to
    /// three pools: the invariants hold after every block, refusals change
    /// nothing, and the share price never moves (no rewards or slashes yet:
    /// every pool's value equals its shares exactly).
    #[test]
    fn random_pool_activity_keeps_the_books(ops in proptest::collection::vec(op(), 1..40)) {
        let (mut state, mut parent) = setup();
        let people: Vec<Keypair> = ["alice", "bob", "charlie", "dave"].iter().map(|n| dev_keypair(n).unwrap()).collect();
        for op in ops {
            let before = state.clone();
            let (who, call) = match op {
                Op::Create { who, commission } => (who, Call::CreatePool { commission, cap: None }),
                Op::Contribute { who, pool, milli } => (who, Call::Contribute { pool, amount: milli * PHA / 1_000 }),
                Op::Withdraw { who, pool, permille } => {
                    let held = state.stake(pool, &people[who].public()).shares;
                    (who, Call::Withdraw { pool, shares: held * permille / 1_000 })
                }
                Op::CreateVault { who } => (who, Call::CreateVault { commission: 50_000 }),
                Op::VaultContribute { who, vault, milli } => (who, Call::VaultContribute { vault, amount: milli * PHA / 1_000 }),
                Op::VaultWithdraw { who, vault, permille } => {
                    let held = state.vault_stake(vault, &people[who].public()).shares;
                    (who, Call::VaultWithdraw { vault, shares: held * permille / 1_000 })
                }
                Op::Delegate { who, vault, pool, permille } => {
                    (who, Call::Delegate { vault, pool, amount: state.vault_free(vault) * permille / 1_000 })
                }
                Op::Undelegate { who, vault, pool, permille } => {
                    let held = state.stake(pool, &phalanx_state::modules::staking::vault_account(vault)).shares;
                    (who, Call::Undelegate { vault, pool, shares: held * permille / 1_000 })
                }
            };
            if apply(&mut state, &mut parent, &people[who], call).is_err() {
                prop_assert_eq!(&state, &before, "a refusal changed the state");
            }
            check_invariants(&state);
            for pool in state.pools() {
                prop_assert_eq!(pool.value, pool.shares, "without rewards the price stays 1 planck per share");
            }
            for vault in state.vaults() {
                prop_assert_eq!(state.vault_value(vault), vault.shares, "without gains a vault's price stays 1 too");
            }
        }
    }
}
