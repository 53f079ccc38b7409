//! Gatekeeper elections and master-key rotations through the state
//! machine: who is elected, who may announce, confirm and hand over, when an
//! epoch activates, and what governance can change.

use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Keypair, PLANCK_PER_PHA, PublicKey};
use phalanx_state::builder::{Candidate, build_block};
use phalanx_state::modules::registry::{FEATURE_AGENTS, FEATURE_GATEKEEPER};
use phalanx_state::{
    Block, Call, Evidence, GatekeeperParams, Genesis, RegistrationInfo, SignedTransaction, State, Transaction, TxError,
    WorkerMessage, WorkerPayload,
};

struct Chain {
    state: State,
    parent: Block,
}

impl Chain {
    fn new(params: GatekeeperParams) -> Chain {
        let mut genesis = Genesis::dev(vec![Keypair::from_seed(&[42; 32]).public()]);
        genesis.gatekeeper = params;
        let (state, parent) = genesis.build().unwrap();
        Chain { state, parent }
    }

    fn tx(&self, from: &Keypair, call: Call) -> SignedTransaction {
        let nonce = self.state.account(&from.public()).map_or(0, |a| a.nonce);
        let tx =
            Transaction { chain_id: self.state.chain_id(), signer: from.public(), nonce, fee: PLANCK_PER_PHA, call };
        tx.sign(from)
    }

    /// One block with `txs` (all must apply); replayed by a verifier too.
    fn block(&mut self, txs: Vec<SignedTransaction>) {
        let candidates: Vec<Candidate> = txs
            .into_iter()
            .map(|tx| {
                let encoded_len = tx.encode().len();
                Candidate { tx, encoded_len, signature_verified: false }
            })
            .collect();
        let built = build_block(&self.state, self.parent.hash(), self.state.timestamp_ms() + 500, candidates);
        assert!(built.rejected.is_empty(), "{:?}", built.rejected);
        let mut replica = self.state.clone();
        replica.execute_block(&built.block).unwrap();
        assert_eq!(replica, built.state);
        self.state = built.state;
        self.parent = built.block;
    }

    fn register(&mut self, worker: &Keypair, features: u64) {
        let info = RegistrationInfo {
            chain_id: self.state.chain_id(),
            identity: worker.public(),
            ecdh: [1; 32],
            operator: dev_keypair("bob").unwrap().public(),
            features,
            benchmark_score: 1,
        };
        let evidence = Evidence::Simulated { report_data: info.report_data() };
        let tx = self.tx(&dev_keypair("bob").unwrap(), Call::RegisterWorker { info, evidence });
        self.block(vec![tx]);
    }

    fn message(&self, worker: &Keypair, payload: WorkerPayload) -> SignedTransaction {
        let sequence = self.state.worker(&worker.public()).unwrap().next_sequence;
        let message = WorkerMessage { chain_id: self.state.chain_id(), worker: worker.public(), sequence, payload };
        self.tx(&dev_keypair("charlie").unwrap(), Call::WorkerMessage { message: message.sign(worker) })
    }

    fn check(&self, tx: &SignedTransaction) -> Result<(), TxError> {
        self.state.check_tx(tx, tx.encode().len())
    }
}

fn keys(n: u8) -> Vec<Keypair> {
    (1..=n).map(|i| Keypair::from_seed(&[i; 32])).collect()
}

#[test]
fn election_rotation_and_activation() {
    let mut chain = Chain::new(GatekeeperParams { era_blocks: 50, gatekeepers_max: 2, activation_delay: 2 });
    let workers = keys(3);
    chain.register(&workers[0], FEATURE_AGENTS); // not a candidate
    chain.register(&workers[1], FEATURE_GATEKEEPER);
    // The first candidate is elected at the next block, which starts epoch 1 with it as leader.
    chain.block(vec![]);
    assert_eq!(chain.state.gatekeepers().elected, vec![workers[1].public()]);
    let rotation = chain.state.key_epochs().rotation.clone().expect("rotation to epoch 1");
    assert_eq!((rotation.epoch, rotation.leader), (1, workers[1].public()));

    // Only the leader announces; a single-member rotation activates after the delay.
    let commitment = [9; 32];
    let announce = |chain: &Chain, who: &Keypair| {
        chain.message(who, WorkerPayload::MasterKeyAnnounce { rotation: rotation.id, commitment })
    };
    assert!(matches!(chain.check(&announce(&chain, &workers[0])), Err(TxError::Gatekeeping(_))));
    let tx = announce(&chain, &workers[1]);
    chain.block(vec![tx]);
    assert!(matches!(chain.check(&announce(&chain, &workers[1])), Err(TxError::Gatekeeping(_))), "announced once");
    let activates = chain.state.key_epochs().rotation.as_ref().unwrap().activates_at.unwrap();
    while chain.state.height() < activates {
        chain.block(vec![]);
    }
    let current = chain.state.key_epochs().current.clone().expect("epoch 1 is current");
    assert_eq!(
        (current.epoch, current.commitment, current.holders.clone()),
        (1, commitment, vec![workers[1].public()])
    );
    assert!(chain.state.key_epochs().rotation.is_none());

    // Handovers: only gatekeepers, only to registered workers, bounded.
    let handover = |to: PublicKey, size| WorkerPayload::KeyHandover { to, envelope: vec![0; size] };
    assert!(chain.check(&chain.message(&workers[1], handover(workers[0].public(), 200))).is_ok());
    assert!(matches!(
        chain.check(&chain.message(&workers[0], handover(workers[1].public(), 200))),
        Err(TxError::Gatekeeping(_))
    ));
    assert!(matches!(
        chain.check(&chain.message(&workers[1], handover(workers[2].public(), 200))),
        Err(TxError::UnknownWorker(_))
    ));
    assert!(matches!(
        chain.check(&chain.message(&workers[1], handover(workers[0].public(), 5000))),
        Err(TxError::Gatekeeping(_))
    ));

    // A second candidate joins at the next election: rotation to epoch 2 led by the holder.
    chain.register(&workers[2], FEATURE_GATEKEEPER);
    while chain.state.key_epochs().rotation.is_none() {
        chain.block(vec![]);
    }
    let rotation = chain.state.key_epochs().rotation.clone().unwrap();
    assert_eq!(rotation.epoch, 2);
    assert_eq!(rotation.leader, workers[1].public(), "the continuing holder leads");
    assert_eq!(rotation.members.len(), 2);
    let commitment = [7; 32];
    let tx = chain.message(&workers[1], WorkerPayload::MasterKeyAnnounce { rotation: rotation.id, commitment });
    chain.block(vec![tx]);
    let wrong =
        chain.message(&workers[2], WorkerPayload::MasterKeyConfirm { rotation: rotation.id, commitment: [8; 32] });
    assert!(matches!(chain.check(&wrong), Err(TxError::Gatekeeping(_))), "confirming another key");
    let stale = chain.message(&workers[2], WorkerPayload::MasterKeyConfirm { rotation: rotation.id + 1, commitment });
    assert!(matches!(chain.check(&stale), Err(TxError::Gatekeeping(_))), "confirming another rotation");
    let tx = chain.message(&workers[2], WorkerPayload::MasterKeyConfirm { rotation: rotation.id, commitment });
    chain.block(vec![tx]);
    for _ in 0..2 {
        chain.block(vec![]);
    }
    let current = chain.state.key_epochs().current.clone().unwrap();
    assert_eq!((current.epoch, current.holders.len()), (2, 2));
    assert_eq!(chain.state.key_epochs().previous.last().unwrap().epoch, 1);

    // Governance excludes a gatekeeper: re-election at the next block, rotation to epoch 3 without it.
    let alice = dev_keypair("alice").unwrap();
    let exclude = chain.tx(&alice, Call::SetGatekeeper { worker: workers[2].public(), member: Some(false) });
    let not_governance = chain.tx(&workers[0], Call::RotateMasterKey);
    assert!(chain.check(&not_governance).is_err());
    chain.block(vec![exclude]);
    chain.block(vec![]);
    let rotation = chain.state.key_epochs().rotation.clone().unwrap();
    assert_eq!((rotation.epoch, rotation.members.clone()), (3, vec![workers[1].public()]));
    // The excluded gatekeeper still holds epoch 2 (it may hand over old keys) but is not in epoch 3.
    assert!(chain.state.key_epochs().may_hand_over(&workers[2].public()));
    assert!(!rotation.members.contains(&workers[2].public()));
}

#[test]
fn a_stalled_rotation_restarts_or_goes_ahead_with_two_thirds() {
    let mut chain = Chain::new(GatekeeperParams { era_blocks: 10, gatekeepers_max: 3, activation_delay: 2 });
    let workers = keys(3);
    chain.register(&workers[0], FEATURE_GATEKEEPER);
    chain.register(&workers[1], FEATURE_GATEKEEPER);
    chain.register(&workers[2], FEATURE_GATEKEEPER);
    while chain.state.key_epochs().rotation.as_ref().is_none_or(|r| r.members.len() < 3) {
        chain.block(vec![]);
    }
    let first = chain.state.key_epochs().rotation.clone().unwrap();
    // Nobody announces: after an era the rotation starts over.
    while chain.state.key_epochs().rotation.as_ref().unwrap().id == first.id {
        chain.block(vec![]);
    }
    let second = chain.state.key_epochs().rotation.clone().unwrap();
    assert_eq!((second.epoch, second.members.len()), (first.epoch, 3));
    // The leader announces and one member confirms; the third stays silent.
    let commitment = [5; 32];
    let leader = workers.iter().find(|w| w.public() == second.leader).unwrap();
    let other = workers.iter().find(|w| w.public() != second.leader).unwrap();
    let tx = chain.message(leader, WorkerPayload::MasterKeyAnnounce { rotation: second.id, commitment });
    chain.block(vec![tx]);
    let tx = chain.message(other, WorkerPayload::MasterKeyConfirm { rotation: second.id, commitment });
    chain.block(vec![tx]);
    while chain.state.key_epochs().current.is_none() {
        assert!(
            chain.state.height() < second.id + 20,
            "two thirds confirmed: it must activate after the era: {:?} at {}",
            chain.state.key_epochs(),
            chain.state.height()
        );
        chain.block(vec![]);
    }
    let current = chain.state.key_epochs().current.clone().unwrap();
    assert_eq!(current.holders.len(), 2);
}
