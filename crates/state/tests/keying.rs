//! Cluster and agent key epochs through the state machine: who may publish
//! which epoch and when (master-key holders, the due epoch, cluster keys
//! ready for agent keys), scoped rotations, re-encryption of secrets to an
//! agent's newest key, retirement (newest kept, no stranded secret or agent
//! key, grace period) and the limits on kept epochs. Every refusal is checked
//! with `check_tx` and with the block builder, which must leave the state as
//! an empty block would.

use phalanx_keys::envelope::KeyKind;
use phalanx_keys::{Envelope, KeyRef, Purpose, SecretKey};
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Hash, Keypair, PLANCK_PER_PHA, sha256};
use phalanx_state::builder::{Built, Candidate, build_block};
use phalanx_state::modules::agents::AGENT_EPOCHS_MAX;
use phalanx_state::modules::clusters::{CLUSTER_EPOCHS_MAX, RECEIPT_WAIT_BLOCKS, RETIRE_GRACE_BLOCKS};
use phalanx_state::modules::registry::{FEATURE_AGENTS, FEATURE_GATEKEEPER};
use phalanx_state::{
    AgentChange, Block, Call, Event, EventRecord, Evidence, GatekeeperParams, Genesis, Language, RegistrationInfo,
    SignedTransaction, State, Transaction, TxError, WorkerMessage, WorkerPayload, agent_id, cluster_id,
};

struct Chain {
    state: State,
    parent: Block,
}

impl Chain {
    fn tx(&self, from: &Keypair, call: Call) -> SignedTransaction {
        let nonce = self.state.account(&from.public()).map_or(0, |a| a.nonce);
        Transaction { chain_id: self.state.chain_id(), signer: from.public(), nonce, fee: PLANCK_PER_PHA, call }
            .sign(from)
    }

    fn message(&self, worker: &Keypair, payload: WorkerPayload) -> SignedTransaction {
        let sequence = self.state.worker(&worker.public()).unwrap().next_sequence;
        let message = WorkerMessage { chain_id: self.state.chain_id(), worker: worker.public(), sequence, payload };
        self.tx(&dev("charlie"), Call::WorkerMessage { message: message.sign(worker) })
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
        assert_eq!(replica, built.state);
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
    /// reason, and that block ends in the state an empty block would.
    fn refused(&self, tx: SignedTransaction) -> TxError {
        let reason = self.state.check_tx(&tx, tx.encode().len()).expect_err("check_tx accepts it");
        let tried = self.build(vec![tx.clone()]);
        assert_eq!(tried.rejected, vec![(tx.hash(), reason.clone())]);
        assert_eq!(tried.state, self.build(vec![]).state, "a refused message changed the state");
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

    /// Empty blocks until the chain is at `height`.
    fn advance_to(&mut self, height: u64) {
        assert!(self.state.height() <= height);
        while self.state.height() < height {
            self.block(vec![]);
        }
    }

    fn cluster_epochs(&self, cluster: &Hash) -> Vec<u64> {
        self.state.cluster(cluster).unwrap().keys.iter().map(|k| k.epoch).collect()
    }

    fn agent_epochs(&self, agent: &Hash) -> Vec<u64> {
        self.state.agent(agent).unwrap().keys.iter().map(|k| k.epoch).collect()
    }

    /// Kept agent key epochs deriving from cluster key `epoch`, as the cluster counts them.
    fn agent_keys_of(&self, cluster: &Hash, epoch: u64) -> u64 {
        self.state.cluster(cluster).unwrap().key(epoch).unwrap().agent_keys
    }
}

fn dev(name: &str) -> Keypair {
    dev_keypair(name).unwrap()
}

/// A "published" public key: the chain cannot tell it from a derived one.
fn public(n: u64) -> [u8; 32] {
    SecretKey::from_bytes([n as u8; 32]).public()
}

/// A secret sealed to agent key epoch `epoch` (whose public key is `public(key)`).
fn seal(agent: Hash, epoch: u64, key: u64, plaintext: &[u8]) -> Vec<u8> {
    let to = KeyRef { kind: KeyKind::Agent, id: agent, epoch };
    Envelope::seal(&public(key), to, agent, Purpose::Secret, plaintext).unwrap().0
}

fn has(events: &[EventRecord], event: Event) -> bool {
    events.iter().any(|r| r.event == event)
}

fn retired(scope: &str, id: Hash, epoch: u64, forced: bool) -> Event {
    Event::KeyRetired { scope: scope.into(), id, epoch, forced }
}

fn cluster_publish(cluster: Hash, epoch: u64) -> WorkerPayload {
    WorkerPayload::ClusterKeyPublish { cluster, epoch, public: public(epoch) }
}

fn agent_publish(agent: Hash, epoch: u64) -> WorkerPayload {
    WorkerPayload::AgentKeyPublish { agent, epoch, public: public(100 + epoch) }
}

fn received(cluster: Hash, epoch: u64) -> WorkerPayload {
    WorkerPayload::ClusterKeyReceived { cluster, epoch }
}

struct Fixture {
    chain: Chain,
    /// The only gatekeeper: holds master epoch 1.
    gk: Keypair,
    /// The cluster's only worker; holds no master key.
    member: Keypair,
    cluster: Hash,
    /// Owned by bob, on `cluster`, no keys yet.
    agent: Hash,
}

impl Fixture {
    fn new() -> Fixture {
        let mut genesis = Genesis::dev(vec![Keypair::from_seed(&[42; 32]).public()]);
        genesis.gatekeeper = GatekeeperParams { era_blocks: 1000, gatekeepers_max: 1, activation_delay: 1 };
        let (state, parent) = genesis.build().unwrap();
        let mut chain = Chain { state, parent };
        let (gk, member) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        chain.register(&gk, FEATURE_GATEKEEPER);
        chain.register(&member, FEATURE_AGENTS);
        chain.activate(&gk);
        let create = chain.tx(&dev("alice"), Call::CreateCluster { name: "main".into() });
        let cluster = cluster_id(&create.hash());
        chain.block(vec![create]);
        chain.send(&dev("alice"), Call::SetClusterWorker { cluster, worker: member.public(), member: true });
        let code = b"export default {};".to_vec();
        let deploy = chain
            .tx(&dev("bob"), Call::DeployAgent { name: "a".into(), cluster, language: Language::JavaScript, code });
        let agent = agent_id(&deploy.hash());
        chain.block(vec![deploy]);
        Fixture { chain, gk, member, cluster, agent }
    }

    /// Cluster key epoch 1, received by the member, and agent key epoch 1.
    fn keyed() -> Fixture {
        let mut f = Fixture::new();
        f.chain.report(&f.gk, cluster_publish(f.cluster, 1));
        f.chain.report(&f.member, received(f.cluster, 1));
        f.chain.report(&f.gk, agent_publish(f.agent, 1));
        assert_eq!((f.chain.cluster_epochs(&f.cluster), f.chain.agent_epochs(&f.agent)), (vec![1], vec![1]));
        f
    }
}

#[test]
fn holders_publish_the_due_epoch_once_the_cluster_key_is_ready() {
    let Fixture { chain: ref mut c, ref gk, ref member, cluster, agent } = Fixture::new();
    c.refuses(c.message(member, cluster_publish(cluster, 1)), "gatekeeping: only holders of the current master key");
    c.refuses(c.message(gk, cluster_publish(cluster, 2)), "expects key epoch Some(1), not 2");
    c.refuses(c.message(gk, agent_publish(agent, 1)), "is not ready");

    let events = c.report(gk, cluster_publish(cluster, 1));
    assert!(has(&events, Event::ClusterKeyPublished { cluster, epoch: 1 }));
    let key = c.state.cluster(&cluster).unwrap().key(1).unwrap().clone();
    assert_eq!((key.master_epoch, key.public, key.published_at), (1, public(1), c.state.height()));
    assert!(key.received.is_empty());
    c.refuses(c.message(gk, cluster_publish(cluster, 1)), "expects key epoch None, not 1");

    // The member has not reported holding it, and RECEIPT_WAIT_BLOCKS have not passed.
    c.refuses(c.message(gk, agent_publish(agent, 1)), "agent: the key of cluster");
    c.refuses(c.message(gk, received(cluster, 1)), "is not a worker of");
    c.report(member, received(cluster, 1));
    c.refuses(c.message(member, received(cluster, 1)), "receipt already reported");
    assert!(c.state.height() < key.published_at + RECEIPT_WAIT_BLOCKS);

    c.refuses(c.message(member, agent_publish(agent, 1)), "only holders of the current master key");
    c.refuses(c.message(gk, agent_publish(agent, 2)), "expects key epoch Some(1), not 2");
    let events = c.report(gk, agent_publish(agent, 1));
    assert!(has(&events, Event::AgentKeyPublished { agent, epoch: 1, cluster_epoch: 1 }));
    let key = c.state.agent(&agent).unwrap().key(1).unwrap().clone();
    assert_eq!((key.cluster_epoch, key.public, key.published_at), (1, public(101), c.state.height()));
    assert_eq!(c.agent_keys_of(&cluster, 1), 1);
    c.refuses(c.message(gk, agent_publish(agent, 2)), "expects key epoch None, not 2");
}

#[test]
fn rotation_reencryption_and_retirement() {
    let Fixture { chain: ref mut c, ref gk, ref member, cluster, agent } = Fixture::keyed();
    let (alice, bob, charlie) = (dev("alice"), dev("bob"), dev("charlie"));
    let secret = seal(agent, 1, 101, b"sk-1");
    let set = AgentChange::SetSecret { name: "API_KEY".into(), sealed: secret.clone() };
    c.send(&bob, Call::ManageAgent { agent, change: set });

    // Agent rotation: the owner (or governance), one at a time.
    assert_eq!(c.refused(c.tx(&bob, Call::RotateClusterKey { cluster })), TxError::NotGovernance);
    assert_eq!(c.refused(c.tx(&charlie, Call::RotateAgentKey { agent })), TxError::NotAgentOwner(agent));
    let events = c.send(&bob, Call::RotateAgentKey { agent });
    assert!(has(&events, Event::KeyRotationRequested { scope: "agent".into(), id: agent }));
    assert!(c.state.agent(&agent).unwrap().rotation_requested);
    c.refuses(c.tx(&alice, Call::RotateAgentKey { agent }), "is still finishing");
    c.refuses(c.message(gk, agent_publish(agent, 3)), "expects key epoch Some(2), not 3");
    c.report(gk, agent_publish(agent, 2));
    let agent2_at = c.state.height();
    assert_eq!(c.agent_epochs(&agent), vec![1, 2]);
    assert!(!c.state.agent(&agent).unwrap().rotation_requested);
    assert_eq!(c.agent_keys_of(&cluster, 1), 2);
    c.refuses(c.tx(&bob, Call::RotateAgentKey { agent }), "is still finishing (epochs [1, 2] kept)");

    // Re-encryption to the newest agent key; epoch 1 stays while the secret is under it.
    let reseal = |replaces, sealed| WorkerPayload::SecretResealed { agent, name: "API_KEY".into(), replaces, sealed };
    let resealed = seal(agent, 2, 102, b"sk-1");
    let retire = |epoch| WorkerPayload::AgentKeyRetire { agent, epoch };
    c.refuses(c.message(gk, retire(2)), "the newest key is never retired");
    c.refuses(c.message(gk, retire(1)), "1 secrets are still sealed under epoch 1");
    c.refuses(c.message(gk, reseal(sha256(b"older"), resealed.clone())), "changed since it was re-encrypted");
    let to_old = seal(agent, 1, 101, b"sk-1");
    c.refuses(c.message(gk, reseal(sha256(&secret), to_old)), "sealed to the agent's newest key (Some(2))");
    c.refuses(c.message(member, reseal(sha256(&secret), resealed.clone())), "only holders");
    let events = c.report(gk, reseal(sha256(&secret), resealed.clone()));
    assert!(has(&events, Event::SecretResealed { agent, name: "API_KEY".into(), epoch: 2 }));
    assert_eq!(c.state.agent(&agent).unwrap().secrets[0].sealed, resealed);
    c.refuses(c.message(gk, reseal(sha256(&resealed), seal(agent, 2, 102, b"x"))), "already under the newest key");

    // Grace: block agent2_at + RETIRE_GRACE_BLOCKS is the first that may retire epoch 1.
    let grace = agent2_at + RETIRE_GRACE_BLOCKS;
    c.advance_to(grace - 2);
    c.refuses(c.message(gk, retire(1)), &format!("epoch 1 stays until block {grace}"));
    c.refuses(c.message(member, retire(1)), "only holders");
    c.block(vec![]);
    let events = c.report(gk, retire(1));
    assert_eq!(c.state.height(), grace);
    assert!(has(&events, retired("agent", agent, 1, false)));
    assert_eq!(c.agent_epochs(&agent), vec![2]);
    assert_eq!(c.agent_keys_of(&cluster, 1), 1);
    c.refuses(c.message(gk, retire(1)), "keeps no key of epoch 1");

    // Cluster rotation: governance only, one at a time, the due epoch is newest + 1.
    let events = c.send(&alice, Call::RotateClusterKey { cluster });
    assert!(has(&events, Event::KeyRotationRequested { scope: "cluster".into(), id: cluster }));
    assert_eq!(c.state.cluster(&cluster).unwrap().due_key_epoch(1), Some(2));
    c.refuses(c.tx(&alice, Call::RotateClusterKey { cluster }), "is still finishing");
    c.refuses(c.message(gk, cluster_publish(cluster, 3)), "expects key epoch Some(2), not 3");
    c.report(gk, cluster_publish(cluster, 2));
    let cluster2_at = c.state.height();
    let newest = c.state.cluster(&cluster).unwrap().newest_key().unwrap().clone();
    assert_eq!((newest.epoch, newest.master_epoch, newest.published_at), (2, 1, cluster2_at));
    assert_eq!(c.cluster_epochs(&cluster), vec![1, 2]);
    assert!(!c.state.cluster(&cluster).unwrap().rotation_requested);
    c.refuses(c.tx(&alice, Call::RotateClusterKey { cluster }), "is still finishing (epochs [1, 2] kept)");
    let retire_cluster = |epoch| WorkerPayload::ClusterKeyRetire { cluster, epoch };
    c.refuses(c.message(gk, retire_cluster(2)), "the newest key is never retired");
    c.refuses(c.message(gk, retire_cluster(1)), "1 agent key epochs still derive from epoch 1");

    // The member never reports epoch 2: agent keys wait RECEIPT_WAIT_BLOCKS for it.
    c.advance_to(cluster2_at + RECEIPT_WAIT_BLOCKS - 2);
    c.refuses(c.message(gk, agent_publish(agent, 3)), "is not ready");
    c.block(vec![]);
    let events = c.report(gk, agent_publish(agent, 3));
    assert_eq!(c.state.height(), cluster2_at + RECEIPT_WAIT_BLOCKS);
    assert!(has(&events, Event::AgentKeyPublished { agent, epoch: 3, cluster_epoch: 2 }));
    let agent3_at = c.state.height();
    assert_eq!((c.agent_keys_of(&cluster, 1), c.agent_keys_of(&cluster, 2)), (1, 1));

    // Cluster epoch 1 goes once no agent key derives from it.
    c.report(gk, reseal(sha256(&resealed), seal(agent, 3, 103, b"sk-1")));
    c.advance_to(agent3_at + RETIRE_GRACE_BLOCKS - 1);
    c.refuses(c.message(gk, retire_cluster(1)), "1 agent key epochs still derive from epoch 1");
    c.report(gk, retire(2));
    assert_eq!(c.agent_keys_of(&cluster, 1), 0);
    let events = c.report(gk, retire_cluster(1));
    assert!(has(&events, retired("cluster", cluster, 1, false)));
    assert_eq!(c.cluster_epochs(&cluster), vec![2]);
    c.refuses(c.message(gk, retire_cluster(1)), "keeps no key of epoch 1");
}

#[test]
fn an_older_cluster_epoch_stays_through_the_grace_period() {
    let Fixture { chain: ref mut c, ref gk, ref member, cluster, .. } = Fixture::new();
    c.report(gk, cluster_publish(cluster, 1));
    c.send(&dev("alice"), Call::RotateClusterKey { cluster });
    c.report(gk, cluster_publish(cluster, 2));
    let grace = c.state.height() + RETIRE_GRACE_BLOCKS;
    let retire = || WorkerPayload::ClusterKeyRetire { cluster, epoch: 1 };
    c.refuses(c.message(member, retire()), "only holders");
    c.advance_to(grace - 2);
    c.refuses(c.message(gk, retire()), &format!("cluster: epoch 1 stays until block {grace}"));
    c.block(vec![]);
    let events = c.report(gk, retire());
    assert!(has(&events, retired("cluster", cluster, 1, false)));
    assert_eq!(c.cluster_epochs(&cluster), vec![2]);
}

/// Scoped rotations alone never keep more than two epochs (a rotation is
/// refused while an older epoch is kept), but master-key rotations make new
/// cluster and agent epochs due whatever is kept, so the limits are reached:
/// the oldest epochs are then dropped with `forced = true`, secrets or not.
#[test]
fn kept_epochs_are_bounded() {
    let Fixture { chain: ref mut c, ref gk, ref member, cluster, agent } = Fixture::keyed();
    let (alice, bob) = (dev("alice"), dev("bob"));
    let set = AgentChange::SetSecret { name: "OLD".into(), sealed: seal(agent, 1, 101, b"x") };
    c.send(&bob, Call::ManageAgent { agent, change: set });
    c.send(&bob, Call::RotateAgentKey { agent });
    c.report(gk, agent_publish(agent, 2));
    c.refuses(c.tx(&bob, Call::RotateAgentKey { agent }), "is still finishing (epochs [1, 2] kept)");
    c.refuses(c.tx(&alice, Call::RotateAgentKey { agent }), "is still finishing (epochs [1, 2] kept)");

    let forced = |events: Vec<EventRecord>| -> Vec<Event> {
        events.into_iter().map(|r| r.event).filter(|e| matches!(e, Event::KeyRetired { .. })).collect()
    };
    let none = Vec::new;
    assert_eq!((CLUSTER_EPOCHS_MAX, AGENT_EPOCHS_MAX), (4, 4), "the table below assumes these limits");
    for master in 2..=5 {
        c.send(&alice, Call::RotateMasterKey);
        c.activate(gk);
        let by_cluster = forced(c.report(gk, cluster_publish(cluster, master)));
        let agents_then = c.agent_epochs(&agent);
        c.report(member, received(cluster, master));
        let by_agent = forced(c.report(gk, agent_publish(agent, master + 1)));
        // (forced by the cluster key, agent epochs then, forced by the agent key, cluster epochs, agent epochs)
        let expected = match master {
            2 => (none(), vec![1, 2], none(), vec![1, 2], vec![1, 2, 3]),
            3 => (none(), vec![1, 2, 3], none(), vec![1, 2, 3], vec![1, 2, 3, 4]),
            // The fifth agent epoch drops the oldest, though a secret is still under it.
            4 => (none(), vec![1, 2, 3, 4], vec![retired("agent", agent, 1, true)], vec![1, 2, 3, 4], vec![2, 3, 4, 5]),
            // The fifth cluster epoch drops the oldest, and with it the agent key deriving from it.
            _ => (
                vec![retired("cluster", cluster, 1, true), retired("agent", agent, 2, true)],
                vec![3, 4, 5],
                none(),
                vec![2, 3, 4, 5],
                vec![3, 4, 5, 6],
            ),
        };
        let kept = (c.cluster_epochs(&cluster), c.agent_epochs(&agent));
        assert_eq!((by_cluster, agents_then, by_agent, kept.0, kept.1), expected, "master epoch {master}");
    }
    assert_eq!(c.state.cluster(&cluster).unwrap().key(5).unwrap().master_epoch, 5);
    let counts: Vec<u64> = (2..=5).map(|e| c.agent_keys_of(&cluster, e)).collect();
    assert_eq!(counts, vec![1, 1, 1, 1], "agent epochs 3 to 6 derive from cluster epochs 2 to 5");
}

/// Regression: when the limit on kept cluster epochs drops every key an
/// agent keeps, its next key epoch still follows the highest one it ever
/// had, so an epoch number never names two different keys (a secret sealed
/// to the old one would otherwise look current and never be flagged).
#[test]
fn an_agent_key_epoch_never_names_two_keys() {
    let Fixture { chain: ref mut c, ref gk, ref member, cluster, agent } = Fixture::keyed();
    let (alice, bob) = (dev("alice"), dev("bob"));
    // The agent alone rotates to epoch 5 under cluster epoch 1, retiring 1 to 4.
    for epoch in 2..=5 {
        c.send(&bob, Call::RotateAgentKey { agent });
        c.report(gk, agent_publish(agent, epoch));
        c.advance_to(c.state.height() + RETIRE_GRACE_BLOCKS);
        c.report(gk, WorkerPayload::AgentKeyRetire { agent, epoch: epoch - 1 });
    }
    assert_eq!(c.agent_epochs(&agent), vec![5]);
    // Four master rotations publish cluster epochs 2 to 5 with no agent key in between.
    for master in 2..=5 {
        c.send(&alice, Call::RotateMasterKey);
        c.activate(gk);
        c.report(gk, cluster_publish(cluster, master));
    }
    assert_eq!(c.cluster_epochs(&cluster), vec![2, 3, 4, 5]);
    assert!(c.agent_epochs(&agent).is_empty(), "the agent's only key derived from the dropped cluster epoch");
    c.report(member, received(cluster, 5));
    c.refuses(c.message(gk, agent_publish(agent, 5)), "expects key epoch Some(6), not 5");
    c.report(gk, agent_publish(agent, 6));
    assert_eq!(c.agent_epochs(&agent), vec![6]);
}
