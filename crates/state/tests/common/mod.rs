//! The chain harness the state tests share: a chain built block by block
//! from a dev genesis, transactions and worker messages signed with the
//! right nonces and sequences, refusals checked three ways (`check_tx`, the
//! block builder, a verifier given a block that includes the transaction),
//! and a fixture with a gatekeeper, a cluster with one worker, an outsider
//! worker and an agent. Each test file uses part of it.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part of the harness

use phalanx_keys::SecretKey;
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Hash, Keypair, PLANCK_PER_PHA};
use phalanx_state::builder::{Built, Candidate, build_block};
use phalanx_state::modules::registry::{FEATURE_AGENTS, FEATURE_GATEKEEPER};
use phalanx_state::{
    Access, Block, BlockError, Call, EventRecord, Evidence, GatekeeperParams, Genesis, Language, RegistrationInfo,
    SignedTransaction, State, Transaction, TxError, WorkerMessage, WorkerPayload, agent_id, cluster_id,
};

pub struct Chain {
    pub state: State,
    pub parent: Block,
}

impl Chain {
    /// A transaction from `from` with its next nonce plus `ahead` (for
    /// several transactions of one signer in one block).
    pub fn tx_ahead(&self, from: &Keypair, ahead: u64, call: Call) -> SignedTransaction {
        let nonce = self.state.account(&from.public()).map_or(0, |a| a.nonce) + ahead;
        Transaction { chain_id: self.state.chain_id(), signer: from.public(), nonce, fee: PLANCK_PER_PHA, call }
            .sign(from)
    }

    pub fn tx(&self, from: &Keypair, call: Call) -> SignedTransaction {
        self.tx_ahead(from, 0, call)
    }

    /// A message from `worker` (its next sequence plus `ahead`), submitted by charlie.
    pub fn message_ahead(&self, worker: &Keypair, ahead: u64, payload: WorkerPayload) -> SignedTransaction {
        let sequence = self.state.worker(&worker.public()).unwrap().next_sequence + ahead;
        let message = WorkerMessage { chain_id: self.state.chain_id(), worker: worker.public(), sequence, payload };
        self.tx_ahead(&dev("charlie"), ahead, Call::WorkerMessage { message: message.sign(worker) })
    }

    pub fn message(&self, worker: &Keypair, payload: WorkerPayload) -> SignedTransaction {
        self.message_ahead(worker, 0, payload)
    }

    pub fn build(&self, txs: Vec<SignedTransaction>) -> Built {
        let candidates =
            txs.into_iter().map(|tx| Candidate { encoded_len: tx.encode().len(), tx, signature_verified: false });
        build_block(&self.state, self.parent.hash(), self.state.timestamp_ms() + 500, candidates)
    }

    /// One block with `txs` (all must apply), replayed by a verifier; its events.
    pub fn block(&mut self, txs: Vec<SignedTransaction>) -> Vec<EventRecord> {
        let built = self.build(txs);
        assert!(built.rejected.is_empty(), "{:?}", built.rejected);
        let mut replica = self.state.clone();
        replica.execute_block(&built.block).unwrap();
        assert_eq!(replica, built.state);
        (self.state, self.parent) = (built.state, built.block);
        built.events
    }

    pub fn send(&mut self, from: &Keypair, call: Call) -> Vec<EventRecord> {
        let tx = self.tx(from, call);
        self.block(vec![tx])
    }

    pub fn report(&mut self, worker: &Keypair, payload: WorkerPayload) -> Vec<EventRecord> {
        let tx = self.message(worker, payload);
        self.block(vec![tx])
    }

    /// `tx` is refused by `check_tx` and by the next block, for the same
    /// reason, and that block ends in the state an empty block would; a
    /// block that includes it anyway is invalid and changes nothing.
    pub fn refused(&self, tx: SignedTransaction) -> TxError {
        let reason = self.state.check_tx(&tx, tx.encode().len()).expect_err("check_tx accepts it");
        let tried = self.build(vec![tx.clone()]);
        assert_eq!(tried.rejected, vec![(tx.hash(), reason.clone())]);
        let empty = self.build(vec![]);
        assert_eq!(tried.state, empty.state, "a refused transaction changed the state");

        let mut forced = empty.block;
        forced.txs.push(tx);
        forced.header.tx_count = 1;
        let mut replica = self.state.clone();
        let before = replica.clone();
        match replica.execute_block(&forced) {
            Err(BlockError::InvalidTransaction { index: 0, error }) => assert_eq!(error, reason),
            other => panic!("a block including the refused transaction gave {other:?}"),
        }
        assert_eq!(replica, before, "an invalid block changed the state");
        reason
    }

    pub fn refuses(&self, tx: SignedTransaction, needle: &str) {
        let reason = self.refused(tx).to_string();
        assert!(reason.contains(needle), "refused with {reason:?}, expected {needle:?}");
    }

    pub fn register(&mut self, worker: &Keypair, features: u64) {
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
    pub fn activate(&mut self, gatekeeper: &Keypair) {
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

    pub fn commands(&self, agent: &Hash) -> u64 {
        self.state.agent(agent).unwrap().commands
    }
}

pub fn dev(name: &str) -> Keypair {
    dev_keypair(name).unwrap()
}

/// A "published" public key: the chain cannot tell it from a derived one.
pub fn public(n: u64) -> [u8; 32] {
    SecretKey::from_bytes([n as u8; 32]).public()
}

pub struct Fixture {
    pub chain: Chain,
    /// The only gatekeeper: holds master epoch 1; not in the cluster.
    pub gk: Keypair,
    /// The cluster's only worker.
    pub member: Keypair,
    /// A registered agents worker outside the cluster.
    pub outsider: Keypair,
    pub cluster: Hash,
    /// Owned by bob, on `cluster`, public, no keys.
    pub agent: Hash,
}

impl Fixture {
    pub fn new() -> Fixture {
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
        assert_eq!((found.commands, &found.access, found.paused), (0, &Access::Public, false));
        Fixture { chain, gk, member, outsider, cluster, agent }
    }

    /// Cluster key epoch 1, received by the member, and agent key epoch 1
    /// (public key `public(101)`).
    pub fn keyed() -> Fixture {
        let mut f = Fixture::new();
        let cluster = f.cluster;
        f.chain.report(&f.gk, WorkerPayload::ClusterKeyPublish { cluster, epoch: 1, public: public(1) });
        f.chain.report(&f.member, WorkerPayload::ClusterKeyReceived { cluster, epoch: 1 });
        f.chain.report(&f.gk, WorkerPayload::AgentKeyPublish { agent: f.agent, epoch: 1, public: public(101) });
        let keys: Vec<u64> = f.chain.state.agent(&f.agent).unwrap().keys.iter().map(|k| k.epoch).collect();
        assert_eq!(keys, vec![1]);
        f
    }
}
