//! Agent fees through the state machine: deposits in and out (withdrawals
//! unbond first, still chargeable by calls admitted before), usage reports
//! from a worker of the agent's cluster charging the caller's deposit at the
//! price the calls were admitted at or the agent's price now, whichever is
//! lower (for the worker's operator, or its pool), plus the network fee (for
//! the treasury), never below zero; forged, replayed and out-of-cluster
//! reports refused. Each refusal is checked with
//! `check_tx`, the block builder and a verifier (`tests/common`).

mod common;

use common::{Fixture, dev};
use phalanx_primitives::{Hash, PLANCK_PER_PHA, PublicKey};
use phalanx_state::{AgentChange, Call, Event, State, TOTAL_SUPPLY, TxError, WorkerPayload};

const PHA: u128 = PLANCK_PER_PHA;

/// A report of calls admitted at a price of 1 PHA per call (above every
/// price these tests set, so the agent's price now applies).
fn usage(agent: Hash, caller: PublicKey, calls: u64, cpu_ms: u64, egress_bytes: u64) -> WorkerPayload {
    usage_at(agent, caller, PHA, calls, cpu_ms, egress_bytes)
}

fn usage_at(agent: Hash, caller: PublicKey, price: u128, calls: u64, cpu_ms: u64, egress_bytes: u64) -> WorkerPayload {
    WorkerPayload::Usage { agent, caller, price, calls, cpu_ms, egress_bytes }
}

fn books(state: &State) {
    let accounts: u128 = state.accounts().map(|(_, a)| a.free).sum();
    let deposits: u128 = state.deposits().map(|(_, d)| *d).sum();
    let unbonding: u128 = state.unbondings().map(|(_, u)| u.amount).sum();
    let pools: u128 = state.pools().map(|p| p.value).sum();
    assert_eq!(
        accounts + deposits + unbonding + pools,
        state.total_issuance(),
        "issuance = accounts + deposits + unbonding + pools"
    );
    assert_eq!(state.total_issuance(), TOTAL_SUPPLY);
}

#[test]
fn usage_charges_the_callers_deposit_for_the_worker_and_the_treasury() {
    let Fixture { chain: ref mut c, ref member, ref outsider, agent, .. } = Fixture::new();
    let (bob, dave) = (dev("bob"), dev("dave"));
    c.send(&bob, Call::ManageAgent { agent, change: AgentChange::Price { price: PHA / 10 } });
    let events = c.send(&dave, Call::Deposit { amount: 5 * PHA });
    assert!(
        events.iter().any(|r| r.event == Event::Deposited { who: dave.public(), amount: 5 * PHA, deposit: 5 * PHA })
    );
    assert_eq!(c.state.deposit(&dave.public()), 5 * PHA);
    books(&c.state);

    // 10 calls, 25 ms of CPU, 3 KiB + 1 byte out.
    let fees = *c.state.fee_params();
    let network = fees.network_fee(10, 25, 3 * 1024 + 1);
    assert_eq!(network, 10 * fees.call_fee + 25 * fees.cpu_ms_fee + 4 * fees.egress_kib_fee);
    let operator = c.state.worker(&member.public()).unwrap().info.operator;
    let (operator_before, treasury) = (c.state.account(&operator).unwrap().free, c.state.params().treasury);
    let treasury_before = c.state.account(&treasury).unwrap().free;
    let events = c.report(member, usage(agent, dave.public(), 10, 25, 3 * 1024 + 1));
    let charged = events.iter().find_map(|r| match r.event {
        Event::UsageCharged { to_worker, to_treasury, unpaid, calls, .. } => {
            Some((to_worker, to_treasury, unpaid, calls))
        }
        _ => None,
    });
    assert_eq!(charged, Some((PHA, network, 0, 10)));
    assert_eq!(c.state.deposit(&dave.public()), 5 * PHA - PHA - network);
    // The worker (no pool) earns for its operator; the treasury gets the
    // network fee besides the message transaction's own fee.
    let tx_fees: u128 = events
        .iter()
        .filter_map(|r| match r.event {
            Event::FeePaid { amount, .. } => Some(amount),
            _ => None,
        })
        .sum();
    assert_eq!(c.state.account(&operator).unwrap().free, operator_before + PHA);
    assert_eq!(c.state.account(&treasury).unwrap().free, treasury_before + network + tx_fees);
    books(&c.state);

    // A deposit never goes below zero: what it cannot cover is left unpaid.
    let left = c.state.deposit(&dave.public());
    let events = c.report(member, usage(agent, dave.public(), 100, 0, 0));
    let charged = events.iter().find_map(|r| match r.event {
        Event::UsageCharged { to_worker, to_treasury, unpaid, .. } => Some((to_worker, to_treasury, unpaid)),
        _ => None,
    });
    let due = 100 * (PHA / 10) + fees.network_fee(100, 0, 0);
    assert_eq!(charged, Some((left, 0, due - left)));
    assert_eq!(c.state.deposit(&dave.public()), 0);
    books(&c.state);

    // Withdrawals: at most the deposit; they unbond before they are paid back.
    c.send(&dave, Call::Deposit { amount: 2 * PHA });
    c.refuses(c.tx(&dave, Call::WithdrawDeposit { amount: 2 * PHA + 1 }), "withdraw 1 to");
    c.refuses(c.tx(&dave, Call::WithdrawDeposit { amount: 0 }), "withdraw 1 to");
    c.refuses(c.tx(&dave, Call::Deposit { amount: 0 }), "deposit at least 1 planck");
    let before = c.state.account(&dave.public()).unwrap().free;
    c.send(&dave, Call::WithdrawDeposit { amount: 2 * PHA });
    assert_eq!(c.state.deposit(&dave.public()), 0);
    let unbonding = c.state.unbonding(&dave.public()).unwrap();
    assert_eq!(unbonding.amount, 2 * PHA);
    assert_eq!(unbonding.release_at_ms, c.state.timestamp_ms() + fees.deposit_unbonding_ms);
    assert_eq!(c.state.account(&dave.public()).unwrap().free, before - PHA, "only the fee so far");
    books(&c.state);
    while c.state.timestamp_ms() < unbonding.release_at_ms {
        c.block(vec![]);
    }
    assert_eq!(c.state.unbonding(&dave.public()), None);
    assert_eq!(c.state.account(&dave.public()).unwrap().free, before + 2 * PHA - PHA, "back, less the 1 PHA fee");
    books(&c.state);

    // Refused reports: outside the cluster, bounds, forged, replayed.
    c.refuses(c.message(outsider, usage(agent, dave.public(), 1, 0, 0)), "is not in the cluster");
    c.refuses(c.message(member, usage(agent, dave.public(), 0, 0, 0)), "covers 1 to");
    c.refuses(c.message(member, usage(agent, dave.public(), 1, 60_001, 0)), "more CPU or egress");
    let mut forged = c.message(member, usage(agent, dave.public(), 1, 0, 0));
    if let Call::WorkerMessage { message } = &mut forged.tx.call {
        message.message.payload = usage(agent, dave.public(), 1_000, 0, 0);
    }
    let forged = forged.tx.sign(&dev("charlie"));
    assert!(matches!(c.refused(forged), TxError::BadMessageSignature(_)));
    let report = c.message(member, usage(agent, dave.public(), 1, 0, 0));
    let replay = report.clone();
    c.block(vec![report]);
    assert!(matches!(c.refused(replay), TxError::StaleSequence { .. } | TxError::StaleNonce { .. }));
}

/// Finding 11: a call admitted at 0.01 PHA is charged 0.01 PHA, however
/// high the owner raised the price while it ran; a price lowered meanwhile
/// applies instead.
#[test]
fn a_call_is_charged_at_most_the_price_it_was_admitted_at() {
    let Fixture { chain: ref mut c, ref member, agent, .. } = Fixture::new();
    let (bob, dave) = (dev("bob"), dev("dave"));
    c.send(&bob, Call::ManageAgent { agent, change: AgentChange::Price { price: PHA / 100 } });
    c.send(&dave, Call::Deposit { amount: 100 * PHA });
    // The gateway admitted one call at 0.01 PHA; the owner raises the price to 1,000,000 PHA.
    c.send(&bob, Call::ManageAgent { agent, change: AgentChange::Price { price: 1_000_000 * PHA } });
    let network = c.state.fee_params().network_fee(1, 0, 0);
    let events = c.report(member, usage_at(agent, dave.public(), PHA / 100, 1, 0, 0));
    let charged = events.iter().find_map(|r| match r.event {
        Event::UsageCharged { to_worker, to_treasury, unpaid, .. } => Some((to_worker, to_treasury, unpaid)),
        _ => None,
    });
    assert_eq!(charged, Some((PHA / 100, network, 0)), "the admitted price, not the new one");
    assert_eq!(c.state.deposit(&dave.public()), 100 * PHA - PHA / 100 - network);
    // A price lowered since admission is what the caller pays.
    c.send(&bob, Call::ManageAgent { agent, change: AgentChange::Price { price: PHA / 1_000 } });
    let events = c.report(member, usage_at(agent, dave.public(), PHA / 100, 1, 0, 0));
    assert!(
        events.iter().any(|r| matches!(r.event, Event::UsageCharged { to_worker, .. } if to_worker == PHA / 1_000))
    );
    books(&c.state);
}

/// Finding 12: withdrawing a deposit while calls run does not make them
/// free: the withdrawn planck unbond, the calls' report still charges them,
/// and only the rest is paid back.
#[test]
fn calls_in_flight_are_charged_to_a_withdrawn_deposit() {
    let Fixture { chain: ref mut c, ref member, agent, .. } = Fixture::new();
    let (bob, dave) = (dev("bob"), dev("dave"));
    c.send(&bob, Call::ManageAgent { agent, change: AgentChange::Price { price: PHA / 10 } });
    c.send(&dave, Call::Deposit { amount: 10 * PHA });
    // 50 calls admitted against the 10 PHA; dave withdraws it all meanwhile.
    let events = c.send(&dave, Call::WithdrawDeposit { amount: 10 * PHA });
    assert!(events.iter().any(|r| matches!(r.event, Event::DepositUnbonding { amount, .. } if amount == 10 * PHA)));
    assert_eq!(c.state.deposit(&dave.public()), 0, "no new call is admitted against it");
    let network = c.state.fee_params().network_fee(50, 0, 0);
    let events = c.report(member, usage_at(agent, dave.public(), PHA / 10, 50, 0, 0));
    let charged = events.iter().find_map(|r| match r.event {
        Event::UsageCharged { to_worker, to_treasury, unpaid, .. } => Some((to_worker, to_treasury, unpaid)),
        _ => None,
    });
    assert_eq!(charged, Some((5 * PHA, network, 0)), "served and paid, from the unbonding deposit");
    let left = c.state.unbonding(&dave.public()).unwrap();
    assert_eq!(left.amount, 10 * PHA - 5 * PHA - network);
    let before = c.state.account(&dave.public()).unwrap().free;
    while c.state.timestamp_ms() < left.release_at_ms {
        c.block(vec![]);
    }
    assert_eq!(c.state.account(&dave.public()).unwrap().free, before + left.amount, "the rest comes back");
    assert_eq!(c.state.unbonding(&dave.public()), None);
    books(&c.state);
}

#[derive(Clone, Debug)]
enum Op {
    Deposit {
        who: usize,
        milli: u128,
    },
    Withdraw {
        who: usize,
        milli: u128,
    },
    Usage {
        who: usize,
        admitted_milli: u128,
        calls: u64,
        cpu_ms: u64,
        egress: u64,
    },
    Price {
        milli: u128,
    },
    /// Chain time passes: 1 to 300 empty blocks of 0.5 s.
    Wait {
        blocks: u32,
    },
    Forged {
        who: usize,
        calls: u64,
    },
    Replay,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0..3usize, 1..5_000u128).prop_map(|(who, milli)| Op::Deposit { who, milli }),
        1 => (0..3usize, 1..6_000u128).prop_map(|(who, milli)| Op::Withdraw { who, milli }),
        4 => (0..3usize, 0..200u128, 1..400u64, 0..90_000u64, 0..10_000_000u64)
            .prop_map(|(who, admitted_milli, calls, cpu_ms, egress)| Op::Usage { who, admitted_milli, calls, cpu_ms, egress }),
        1 => (0..200u128).prop_map(|milli| Op::Price { milli }),
        1 => (1..300u32).prop_map(|blocks| Op::Wait { blocks }),
        1 => (0..3usize, 1..100u64).prop_map(|(who, calls)| Op::Forged { who, calls }),
        1 => Just(Op::Replay),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Random deposits, withdrawals (racing the usage of calls admitted
    /// before them), price changes, the passing of time and usage reports
    /// (some beyond what deposits hold, some forged or replayed), each
    /// through a real block: after every block the books balance (issuance =
    /// accounts + deposits + unbonding + pools, and never changes: fees move
    /// planck, they do not make it), every charge is exactly what its report
    /// justifies at the lower of the admitted price and the price of that
    /// block (never above the admitted price), capped by what the deposit
    /// and its unbonding part hold, the rest unpaid; a withdrawal never
    /// makes a call free that its deposit covered; unbonded planck come back
    /// only after their time; and refusals change nothing.
    #[test]
    fn random_fee_traffic_keeps_the_books(ops in proptest::collection::vec(op(), 1..40)) {
        let Fixture { chain: ref mut c, ref member, agent, .. } = Fixture::new();
        let callers = [dev("dave"), dev("alice"), dev("bob")];
        let fees = *c.state.fee_params();
        let mut last_report = None;
        for op in ops {
            match op {
                Op::Deposit { who, milli } => {
                    let tx = c.tx(&callers[who], Call::Deposit { amount: milli * PHA / 1000 });
                    c.block(vec![tx]);
                }
                Op::Withdraw { who, milli } => {
                    let amount = milli * PHA / 1000;
                    let tx = c.tx(&callers[who], Call::WithdrawDeposit { amount });
                    if amount > c.state.deposit(&callers[who].public()) {
                        c.refuses(tx, "withdraw 1 to");
                    } else {
                        c.block(vec![tx]);
                    }
                }
                Op::Price { milli } => {
                    c.send(&dev("bob"), Call::ManageAgent { agent, change: AgentChange::Price { price: milli * PHA / 1000 } });
                }
                Op::Wait { blocks } => {
                    let due: Vec<(phalanx_primitives::PublicKey, u128, u64)> =
                        c.state.unbondings().map(|(who, u)| (*who, u.amount, u.release_at_ms)).collect();
                    let before: Vec<u128> = due.iter().map(|(who, ..)| c.state.account(who).map_or(0, |a| a.free)).collect();
                    for _ in 0..blocks {
                        c.block(vec![]);
                    }
                    for ((who, amount, at), before) in due.into_iter().zip(before) {
                        let now = c.state.account(&who).map_or(0, |a| a.free);
                        if c.state.timestamp_ms() >= at {
                            assert_eq!(now, before + amount, "unbonded planck come back after their time");
                            assert_eq!(c.state.unbonding(&who), None);
                        } else {
                            assert_eq!(now, before, "and not before");
                        }
                    }
                }
                Op::Usage { who, admitted_milli, calls, cpu_ms, egress } => {
                    let caller = callers[who].public();
                    let admitted = admitted_milli * PHA / 1000;
                    let report = c.message(member, usage_at(agent, caller, admitted, calls, cpu_ms, egress));
                    if cpu_ms > calls * 60_000 {
                        c.refuses(report, "more CPU or egress");
                        continue;
                    }
                    let unbonding = c.state.unbonding(&caller).map_or(0, |u| u.amount);
                    let deposit = c.state.deposit(&caller) + unbonding;
                    let price = c.state.agent(&agent).unwrap().price.min(admitted);
                    last_report = Some(report.clone());
                    let events = c.block(vec![report]);
                    let charged = events.iter().find_map(|r| match r.event {
                        Event::UsageCharged { to_worker, to_treasury, unpaid, .. } => Some((to_worker, to_treasury, unpaid)),
                        _ => None,
                    });
                    let (to_worker, to_treasury, unpaid) = charged.expect("a charge event");
                    let due_worker = price * u128::from(calls);
                    let due_network = fees.network_fee(calls, cpu_ms, egress);
                    assert_eq!(to_worker, due_worker.min(deposit), "the price comes first");
                    assert_eq!(to_treasury, due_network.min(deposit - to_worker));
                    assert_eq!(to_worker + to_treasury + unpaid, due_worker + due_network, "nothing charged twice or lost");
                    assert!(to_worker <= admitted * u128::from(calls), "never above the admitted price");
                    let after = c.state.deposit(&caller) + c.state.unbonding(&caller).map_or(0, |u| u.amount);
                    assert_eq!(after, deposit - to_worker - to_treasury, "charged to the deposit, then to what unbonds");
                }
                Op::Forged { who, calls } => {
                    // The worker signed a report of 1 call; the forger
                    // raises it (to at least 2, so the payload does differ).
                    let mut forged = c.message(member, usage(agent, callers[who].public(), 1, 0, 0));
                    if let Call::WorkerMessage { message } = &mut forged.tx.call {
                        message.message.payload = usage(agent, callers[who].public(), calls + 1, 0, 0);
                    }
                    let forged = forged.tx.sign(&dev("charlie"));
                    assert!(matches!(c.refused(forged), TxError::BadMessageSignature(_)));
                }
                Op::Replay => {
                    if let Some(report) = last_report.clone() {
                        assert!(matches!(c.refused(report), TxError::StaleSequence { .. } | TxError::StaleNonce { .. }));
                    }
                }
            }
            books(&c.state);
        }
    }
}
