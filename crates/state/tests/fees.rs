//! Agent fees through the state machine: deposits in and out, usage
//! reports from a worker of the agent's cluster charging the caller's
//! deposit at the agent's price (for the worker's operator, or its pool) plus
//! the network fee (for the treasury), never below zero; forged, replayed
//! and out-of-cluster reports refused. Each refusal is checked with
//! `check_tx`, the block builder and a verifier.

use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Hash, Keypair, PLANCK_PER_PHA, PublicKey};
use phalanx_state::builder::{Built, Candidate, build_block};
use phalanx_state::modules::registry::{FEATURE_AGENTS, FEATURE_GATEKEEPER};
use phalanx_state::{
    AgentChange, Block, BlockError, Call, Event, EventRecord, Evidence, GatekeeperParams, Genesis, Language,
    RegistrationInfo, SignedTransaction, State, TOTAL_SUPPLY, Transaction, TxError, WorkerMessage, WorkerPayload,
    agent_id, cluster_id,
};
struct Chain {
    state: State,
    parent: Block,
}

impl Chain {
    /// A transaction from `from` with its next nonce plus `ahead` (for
    /// several transactions of one signer in one block).
    fn tx_ahead(&self, from: &Keypair, ahead: u64, call: Call) -> SignedTransaction {
        let nonce = self.state.account(&from.public()).map_or(0, |a| a.nonce) + ahead;
        Transaction { chain_id: self.state.chain_id(), signer: from.public(), nonce, fee: PLANCK_PER_PHA, call }
            .sign(from)
    }

    fn tx(&self, from: &Keypair, call: Call) -> SignedTransaction {
        self.tx_ahead(from, 0, call)
    }

    /// A message from `worker` (its next sequence plus `ahead`), submitted by charlie.
    fn message_ahead(&self, worker: &Keypair, ahead: u64, payload: WorkerPayload) -> SignedTransaction {
        let sequence = self.state.worker(&worker.public()).unwrap().next_sequence + ahead;
        let message = WorkerMessage { chain_id: self.state.chain_id(), worker: worker.public(), sequence, payload };
        self.tx_ahead(&dev("charlie"), ahead, Call::WorkerMessage { message: message.sign(worker) })
    }

    fn message(&self, worker: &Keypair, payload: WorkerPayload) -> SignedTransaction {
        self.message_ahead(worker, 0, payload)
    }

    fn build(&self, txs: Vec<SignedTransaction>) -> Built {
        let candidates =
            txs.into_iter().map(|tx| Candidate { encoded_len: tx.encode().len(), tx, signature_verified: false });
        build_block(&self.state, self.parent.hash(), self.state.timestamp_ms() + 500, candidates)
    }

    /// One block with `txs` (all must apply), replayed by a verifier; its events.
    fn block(&mut self, txs: Vec<SignedTransaction>) -> Vec<EventRecord> {
        let built = self.build(txs);
        assert!(built.rejected.is_empty(), "{:?}", built.rejected);
        let mut replica = self.state.clone();
        replica.execute_block(&built.block).unwrap();
        assert_eq!(replica.root(), built.state.root());
        (self.state, self.parent) = (built.state, built.block);
        built.events
    }

    fn send(&mut self, from: &Keypair, call: Call) -> Vec<EventRecord> {
        let tx = self.tx(from, call);
        self.block(vec![tx])
    }

    fn report(&mut self, worker: &Keypair, payload: WorkerPayload) -> Vec<EventRecord> {
        let tx = self.message(worker, payload);
        self.block(vec![tx])
    }

    /// `tx` is refused by `check_tx` and by the next block, for the same
    /// reason, and that block ends in the state an empty block would; a
    /// block that includes it anyway is invalid and changes nothing.
    fn refused(&self, tx: SignedTransaction) -> TxError {
        let reason = self.state.check_tx(&tx, tx.encode().len()).expect_err("check_tx accepts it");
        let tried = self.build(vec![tx.clone()]);
        assert_eq!(tried.rejected, vec![(tx.hash(), reason.clone())]);
        let empty = self.build(vec![]);
        assert_eq!(tried.state.root(), empty.state.root(), "a refused transaction changed the state");

        let mut forced = empty.block;
        forced.txs.push(tx);
        forced.header.tx_count = 1;
        let mut replica = self.state.clone();
        let root = replica.root();
        match replica.execute_block(&forced) {
            Err(BlockError::InvalidTransaction { index: 0, error }) => assert_eq!(error, reason),
            other => panic!("a block including the refused transaction gave {other:?}"),
        }
        assert_eq!(replica.root(), root, "an invalid block changed the state");
        reason
    }

    fn refuses(&self, tx: SignedTransaction, needle: &str) {
        let reason = self.refused(tx).to_string();
        assert!(reason.contains(needle), "refused with {reason:?}, expected {needle:?}");
    }

    fn register(&mut self, worker: &Keypair, features: u64) {
        let info = RegistrationInfo {
            chain_id: self.state.chain_id(),
            identity: worker.public(),
            ecdh: [1; 32],
            operator: dev("bob").public(),
            features,
            benchmark_score: 1,
        };
        let evidence = Evidence::Simulated { report_data: info.report_data() };
        self.send(&dev("bob"), Call::RegisterWorker { info, evidence });
    }

    /// Completes the coming master-key rotation (one gatekeeper).
    fn activate(&mut self, gatekeeper: &Keypair) {
        while self.state.key_epochs().rotation.is_none() {
            self.block(vec![]);
        }
        let rotation = self.state.key_epochs().rotation.clone().unwrap();
        let commitment = [rotation.epoch as u8; 32];
        self.report(gatekeeper, WorkerPayload::MasterKeyAnnounce { rotation: rotation.id, commitment });
        while self.state.key_epochs().rotation.is_some() {
            self.block(vec![]);
        }
        assert_eq!(self.state.key_epochs().current.as_ref().unwrap().epoch, rotation.epoch);
    }
}

fn dev(name: &str) -> Keypair {
    dev_keypair(name).unwrap()
}

/// A "published" public key: the chain cannot tell it from a derived one.
struct Fixture {
    chain: Chain,
    /// The only gatekeeper: holds master epoch 1; not in the cluster.
    /// The cluster's only worker.
    member: Keypair,
    /// A registered agents worker outside the cluster.
    outsider: Keypair,
    /// Owned by bob, on `cluster`, public, no keys.
    agent: Hash,
}

impl Fixture {
    fn new() -> Fixture {
        let mut genesis = Genesis::dev(vec![Keypair::from_seed(&[42; 32]).public()]);
        genesis.gatekeeper = GatekeeperParams { era_blocks: 1000, gatekeepers_max: 1, activation_delay: 1 };
        let (state, parent) = genesis.build().unwrap();
        let mut chain = Chain { state, parent };
        let (gk, member, outsider) =
            (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]), Keypair::from_seed(&[3; 32]));
        chain.register(&gk, FEATURE_GATEKEEPER);
        chain.register(&member, FEATURE_AGENTS);
        chain.register(&outsider, FEATURE_AGENTS);
        chain.activate(&gk);
        let create = chain.tx(&dev("alice"), Call::CreateCluster { name: "main".into() });
        let cluster = cluster_id(&create.hash());
        chain.block(vec![create]);
        chain.send(&dev("alice"), Call::SetClusterWorker { cluster, worker: member.public(), member: true });
        let code = b"export default { command() {} };".to_vec();
        let deploy = chain
            .tx(&dev("bob"), Call::DeployAgent { name: "a".into(), cluster, language: Language::JavaScript, code });
        let agent = agent_id(&deploy.hash());
        chain.block(vec![deploy]);
        let found = chain.state.agent(&agent).unwrap();
        assert_eq!((found.commands, &found.access, found.paused), (0, &phalanx_state::Access::Public, false));
        Fixture { chain, member, outsider, agent }
    }
}

const PHA: u128 = PLANCK_PER_PHA;

fn usage(agent: Hash, caller: PublicKey, calls: u64, cpu_ms: u64, egress_bytes: u64) -> WorkerPayload {
    WorkerPayload::Usage { agent, caller, calls, cpu_ms, egress_bytes }
}

fn books(state: &State) {
    let accounts: u128 = state.accounts().map(|(_, a)| a.free).sum();
    let deposits: u128 = state.deposits().map(|(_, d)| *d).sum();
    let pools: u128 = state.pools().map(|p| p.value).sum();
    assert_eq!(accounts + deposits + pools, state.total_issuance(), "issuance = accounts + deposits + pools");
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

    // Withdrawals: at most the deposit.
    c.send(&dave, Call::Deposit { amount: 2 * PHA });
    c.refuses(c.tx(&dave, Call::WithdrawDeposit { amount: 2 * PHA + 1 }), "withdraw 1 to");
    c.refuses(c.tx(&dave, Call::WithdrawDeposit { amount: 0 }), "withdraw 1 to");
    c.refuses(c.tx(&dave, Call::Deposit { amount: 0 }), "deposit at least 1 planck");
    let before = c.state.account(&dave.public()).unwrap().free;
    c.send(&dave, Call::WithdrawDeposit { amount: 2 * PHA });
    assert_eq!(c.state.deposit(&dave.public()), 0);
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
