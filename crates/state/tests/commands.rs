//! Agent commands through the state machine: who may send one (the owner
//! always, anyone for a public agent, listed accounts for an allowlisted
//! one, only the owner for a paid one, and a worker of the agent's cluster
//! on the agent's behalf), how payloads are bounded (plain JSON, or a call
//! envelope sealed to a key the agent keeps) and how commands are numbered
//! (`Agent::commands`, `Event::AgentCommand { seq }`, in transaction order).
//! Every refusal is checked with `check_tx`, with the block builder (which
//! must leave the state as an empty block would) and with a verifier given
//! a block that includes it anyway.

use phalanx_keys::envelope::KeyKind;
use phalanx_keys::{Envelope, KeyRef, Purpose, SecretKey};
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Hash, Keypair, PLANCK_PER_PHA, sha256};
use phalanx_state::builder::{Built, Candidate, build_block};
use phalanx_state::modules::agents::{COMMAND_BYTES_MAX, CommandPayload, CommandSender};
use phalanx_state::modules::registry::{FEATURE_AGENTS, FEATURE_GATEKEEPER};
use phalanx_state::{
    Access, AgentChange, Block, BlockError, Call, Event, EventRecord, Evidence, GatekeeperParams, Genesis, Language,
    RegistrationInfo, SignedTransaction, State, Transaction, TxError, WorkerMessage, WorkerPayload, agent_id,
    cluster_id,
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

    fn commands(&self, agent: &Hash) -> u64 {
        self.state.agent(agent).unwrap().commands
    }
}

fn dev(name: &str) -> Keypair {
    dev_keypair(name).unwrap()
}

/// A "published" public key: the chain cannot tell it from a derived one.
fn public(n: u64) -> [u8; 32] {
    SecretKey::from_bytes([n as u8; 32]).public()
}

fn plain(json: &str) -> CommandPayload {
    CommandPayload::Plain(json.as_bytes().to_vec())
}

/// An envelope to `key` (with the made-up recipient `public(recipient)`).
fn envelope(key: KeyRef, agent: Hash, purpose: Purpose, recipient: u64, plaintext: &[u8]) -> CommandPayload {
    CommandPayload::Sealed(Envelope::seal(&public(recipient), key, agent, purpose, plaintext).unwrap().0)
}

/// A call envelope for agent key `epoch` of `agent`.
fn sealed(agent: Hash, epoch: u64, recipient: u64, plaintext: &[u8]) -> CommandPayload {
    envelope(KeyRef { kind: KeyKind::Agent, id: agent, epoch }, agent, Purpose::Call, recipient, plaintext)
}

fn send(agent: Hash, payload: CommandPayload) -> Call {
    Call::SendToAgent { agent, payload }
}

fn from_agent(agent: Hash, payload: CommandPayload) -> WorkerPayload {
    WorkerPayload::AgentCommand { agent, payload }
}

fn command(agent: Hash, seq: u64, from: CommandSender) -> Event {
    Event::AgentCommand { agent, seq, from }
}

fn by(who: &Keypair) -> CommandSender {
    CommandSender::Account(who.public())
}

/// The `AgentCommand` events, in order.
fn commands(events: &[EventRecord]) -> Vec<Event> {
    events.iter().map(|r| r.event.clone()).filter(|e| matches!(e, Event::AgentCommand { .. })).collect()
}

fn manage(agent: Hash, change: AgentChange) -> Call {
    Call::ManageAgent { agent, change }
}

struct Fixture {
    chain: Chain,
    /// The only gatekeeper: holds master epoch 1; not in the cluster.
    gk: Keypair,
    /// The cluster's only worker.
    member: Keypair,
    /// A registered agents worker outside the cluster.
    outsider: Keypair,
    cluster: Hash,
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
        assert_eq!((found.commands, &found.access, found.paused), (0, &Access::Public, false));
        Fixture { chain, gk, member, outsider, cluster, agent }
    }

    /// Cluster key epoch 1, received by the member, and agent key epoch 1
    /// (public key `public(101)`).
    fn keyed() -> Fixture {
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

#[test]
fn owner_commands_are_numbered_in_order() {
    let Fixture { chain: ref mut c, agent, .. } = Fixture::new();
    let (bob, charlie) = (dev("bob"), dev("charlie"));

    let events = c.send(&bob, send(agent, plain(r#"{"op":"inc","by":1}"#)));
    assert_eq!(commands(&events), vec![command(agent, 1, by(&bob))]);
    assert_eq!(c.commands(&agent), 1);
    let events = c.send(&bob, send(agent, plain(r#"["second"]"#)));
    assert_eq!(commands(&events), vec![command(agent, 2, by(&bob))]);
    assert_eq!(c.commands(&agent), 2);

    // Two commands in one block are numbered in transaction order, whoever sends them.
    let first = c.tx(&charlie, send(agent, plain("3")));
    let second = c.tx(&bob, send(agent, plain("4")));
    let events = c.block(vec![first, second]);
    let numbered: Vec<(u32, Event)> = events
        .into_iter()
        .filter(|r| matches!(r.event, Event::AgentCommand { .. }))
        .map(|r| (r.tx_index, r.event))
        .collect();
    assert_eq!(numbered, vec![(0, command(agent, 3, by(&charlie))), (1, command(agent, 4, by(&bob)))]);
    assert_eq!(c.commands(&agent), 4);

    // And so are two commands of one signer in one block.
    let first = c.tx_ahead(&bob, 0, send(agent, plain(r#"{"n":5}"#)));
    let second = c.tx_ahead(&bob, 1, send(agent, plain(r#"{"n":6}"#)));
    let events = c.block(vec![first, second]);
    assert_eq!(commands(&events), vec![command(agent, 5, by(&bob)), command(agent, 6, by(&bob))]);
    assert_eq!(c.commands(&agent), 6);

    // The count belongs to the agent: another agent starts from 1.
    let code = b"export default {};".to_vec();
    let cluster = c.state.agent(&agent).unwrap().cluster;
    let deploy = c.tx(&charlie, Call::DeployAgent { name: "b".into(), cluster, language: Language::TypeScript, code });
    let other = agent_id(&deploy.hash());
    c.block(vec![deploy]);
    let events = c.send(&bob, send(other, plain("{}")));
    assert_eq!(commands(&events), vec![command(other, 1, by(&bob))]);
    assert_eq!((c.commands(&agent), c.commands(&other)), (6, 1));
}

#[test]
fn who_may_send_follows_the_access_policy() {
    let Fixture { chain: ref mut c, agent, .. } = Fixture::new();
    let (bob, charlie, dave) = (dev("bob"), dev("charlie"), dev("dave"));
    let hello = || send(agent, plain(r#"{"hello":true}"#));

    // Public: any funded account.
    let events = c.send(&dave, hello());
    assert_eq!(commands(&events), vec![command(agent, 1, by(&dave))]);

    // Allowlist: listed accounts and the owner.
    c.send(&bob, manage(agent, AgentChange::Access { access: Access::Allowlist { accounts: vec![charlie.public()] } }));
    c.refuses(c.tx(&dave, hello()), "the agent's access policy does not list this account");
    assert_eq!(c.commands(&agent), 1);
    let events = c.send(&charlie, hello());
    assert_eq!(commands(&events), vec![command(agent, 2, by(&charlie))]);
    let events = c.send(&bob, hello());
    assert_eq!(commands(&events), vec![command(agent, 3, by(&bob))]);

    // Paid: only the owner, until deposits exist.
    c.send(&bob, manage(agent, AgentChange::Access { access: Access::Paid }));
    c.refuses(c.tx(&charlie, hello()), "only its owner may send");
    c.refuses(c.tx(&dave, hello()), "only its owner may send");
    let events = c.send(&bob, hello());
    assert_eq!(commands(&events), vec![command(agent, 4, by(&bob))]);

    // A new owner is the one who may send.
    c.send(&bob, manage(agent, AgentChange::Transfer { to: dave.public() }));
    c.refuses(c.tx(&bob, hello()), "only its owner may send");
    let events = c.send(&dave, hello());
    assert_eq!(commands(&events), vec![command(agent, 5, by(&dave))]);
    assert_eq!(c.commands(&agent), 5);
}

#[test]
fn bad_commands_are_refused() {
    let Fixture { chain: ref mut c, agent, cluster, .. } = Fixture::new();
    let (bob, charlie) = (dev("bob"), dev("charlie"));

    let nobody = sha256(b"no such agent");
    c.refuses(c.tx(&bob, send(nobody, plain("{}"))), &format!("agent: no agent {nobody}"));

    // Size: 1 to COMMAND_BYTES_MAX bytes, plain or sealed.
    let bounds = format!("a command payload is 1 to {COMMAND_BYTES_MAX} bytes");
    c.refuses(c.tx(&bob, send(agent, CommandPayload::Plain(vec![]))), &bounds);
    c.refuses(c.tx(&bob, send(agent, CommandPayload::Sealed(vec![]))), &bounds);
    let json_of = |len: usize| format!("\"{}\"", "x".repeat(len - 2));
    assert_eq!(json_of(COMMAND_BYTES_MAX + 1).len(), COMMAND_BYTES_MAX + 1);
    c.refuses(c.tx(&bob, send(agent, plain(&json_of(COMMAND_BYTES_MAX + 1)))), &bounds);
    let big = sealed(agent, 1, 101, &vec![b'1'; COMMAND_BYTES_MAX]);
    assert!(big.bytes().len() > COMMAND_BYTES_MAX);
    c.refuses(c.tx(&bob, send(agent, big)), &bounds);

    // Plain payloads are JSON.
    for bad in ["not json", "{\"a\":", "{} {}", "\u{0}"] {
        c.refuses(c.tx(&bob, send(agent, plain(bad))), "a plain command payload must be JSON");
    }

    // Sealed payloads are call envelopes for this agent, to a key it keeps.
    c.refuses(c.tx(&bob, send(agent, CommandPayload::Sealed(b"{\"not\":\"sealed\"}".to_vec()))), "sealed command:");
    c.refuses(c.tx(&bob, send(agent, CommandPayload::Sealed(vec![0; 200]))), "sealed command:");
    let call_envelope = format!("a sealed command must be a call envelope for agent {agent}");
    let other = sha256(b"another agent");
    let at = |kind, id| KeyRef { kind, id, epoch: 1 };
    let wrong = [
        // Sealed for another agent, under its key.
        envelope(at(KeyKind::Agent, other), other, Purpose::Call, 101, b"{}"),
        // Another agent's key, this agent's payload; and the reverse.
        envelope(at(KeyKind::Agent, other), agent, Purpose::Call, 101, b"{}"),
        envelope(at(KeyKind::Agent, agent), other, Purpose::Call, 101, b"{}"),
        // Another kind of key.
        envelope(at(KeyKind::Cluster, agent), agent, Purpose::Call, 101, b"{}"),
        envelope(at(KeyKind::Cluster, cluster), agent, Purpose::Call, 101, b"{}"),
        envelope(at(KeyKind::Worker, agent), agent, Purpose::Call, 101, b"{}"),
        // Another purpose.
        envelope(at(KeyKind::Agent, agent), agent, Purpose::Secret, 101, b"{}"),
        envelope(at(KeyKind::Agent, agent), agent, Purpose::State, 101, b"{}"),
        envelope(at(KeyKind::Agent, agent), agent, Purpose::Log, 101, b"{}"),
    ];
    for payload in wrong {
        c.refuses(c.tx(&bob, send(agent, payload)), &call_envelope);
    }
    // The agent keeps no key yet.
    c.refuses(c.tx(&bob, send(agent, sealed(agent, 1, 101, b"{}"))), "keeps no key of epoch 1");
    c.refuses(c.tx(&bob, send(agent, sealed(agent, 0, 101, b"{}"))), "keeps no key of epoch 0");

    // A paused agent takes no commands, from anyone, good or bad.
    c.send(&bob, manage(agent, AgentChange::Pause));
    let paused = format!("agent {agent} is paused and takes no commands");
    c.refuses(c.tx(&bob, send(agent, plain("{}"))), &paused);
    c.refuses(c.tx(&charlie, send(agent, plain("{}"))), &paused);
    c.refuses(c.tx(&bob, send(agent, plain("not json"))), &paused);
    c.send(&bob, manage(agent, AgentChange::Resume));

    // Nothing refused was counted; the largest payload is accepted.
    assert_eq!(c.commands(&agent), 0);
    let events = c.send(&charlie, send(agent, plain(&json_of(COMMAND_BYTES_MAX))));
    assert_eq!(commands(&events), vec![command(agent, 1, by(&charlie))]);
}

#[test]
fn sealed_commands_name_a_kept_key() {
    let Fixture { chain: ref mut c, agent, ref gk, .. } = Fixture::keyed();
    let bob = dev("bob");
    c.refuses(
        c.tx(&bob, send(agent, sealed(agent, 2, 102, b"{}"))),
        "keeps no key of epoch 2 (seal to its newest key)",
    );
    c.refuses(c.tx(&bob, send(agent, sealed(agent, 0, 101, b"{}"))), "keeps no key of epoch 0");
    // A response envelope (no worker could open it as a request) uses up no number.
    let key = KeyRef { kind: KeyKind::Agent, id: agent, epoch: 1 };
    let (_, response_key) = Envelope::seal(&public(101), key, agent, Purpose::Call, b"{}").unwrap();
    let response = CommandPayload::Sealed(response_key.seal(7, b"{}"));
    c.refuses(c.tx(&bob, send(agent, response)), "a sealed command must be a call envelope");
    let events = c.send(&bob, send(agent, sealed(agent, 1, 101, br#"{"secret":"order"}"#)));
    assert_eq!(commands(&events), vec![command(agent, 1, by(&bob))]);

    // After a rotation both kept epochs are accepted.
    c.send(&bob, Call::RotateAgentKey { agent });
    c.report(gk, WorkerPayload::AgentKeyPublish { agent, epoch: 2, public: public(102) });
    let events = c.send(&bob, send(agent, sealed(agent, 2, 102, b"{}")));
    assert_eq!(commands(&events), vec![command(agent, 2, by(&bob))]);
    let events = c.send(&bob, send(agent, sealed(agent, 1, 101, b"{}")));
    assert_eq!(commands(&events), vec![command(agent, 3, by(&bob))]);
    c.refuses(c.tx(&bob, send(agent, sealed(agent, 3, 103, b"{}"))), "keeps no key of epoch 3");
}

#[test]
fn workers_of_the_cluster_send_for_the_agent() {
    let Fixture { chain: ref mut c, ref gk, ref member, ref outsider, agent, cluster } = Fixture::new();
    let (alice, bob) = (dev("alice"), dev("bob"));
    let itself = CommandSender::Agent(agent);

    let sequence = c.state.worker(&member.public()).unwrap().next_sequence;
    let events = c.report(member, from_agent(agent, plain(r#"{"tick":1}"#)));
    assert_eq!(commands(&events), vec![command(agent, 1, itself)]);
    assert!(events.iter().any(|r| r.event == Event::WorkerMessage { worker: member.public(), sequence }));
    assert_eq!(c.state.worker(&member.public()).unwrap().next_sequence, sequence + 1);
    assert_eq!(c.commands(&agent), 1);

    // Workers outside the cluster may not, whatever their role.
    let not_member =
        |w: &Keypair| format!("worker message: worker {} is not in the cluster of agent {agent}", w.public());
    c.refuses(c.message(outsider, from_agent(agent, plain("{}"))), &not_member(outsider));
    c.refuses(c.message(gk, from_agent(agent, plain("{}"))), &not_member(gk));
    let nobody = sha256(b"no such agent");
    c.refuses(c.message(member, from_agent(nobody, plain("{}"))), &format!("no agent {nobody}"));

    // The payload rules are the same as for accounts.
    c.refuses(c.message(member, from_agent(agent, plain("nope"))), "a plain command payload must be JSON");
    c.refuses(c.message(member, from_agent(agent, CommandPayload::Plain(vec![]))), "a command payload is 1 to");
    c.refuses(c.message(member, from_agent(agent, sealed(agent, 1, 101, b"{}"))), "keeps no key of epoch 1");

    // The access policy binds accounts, not the agent itself.
    c.send(&bob, manage(agent, AgentChange::Access { access: Access::Paid }));
    let owner = c.tx(&bob, send(agent, plain("2")));
    let worker = c.message(member, from_agent(agent, plain("3")));
    let events = c.block(vec![owner, worker]);
    assert_eq!(commands(&events), vec![command(agent, 2, by(&bob)), command(agent, 3, itself)]);

    // Two messages of one worker in one block, in order.
    let first = c.message_ahead(member, 0, from_agent(agent, plain("4")));
    let second = c.message_ahead(member, 1, from_agent(agent, plain("5")));
    let events = c.block(vec![first, second]);
    assert_eq!(commands(&events), vec![command(agent, 4, itself), command(agent, 5, itself)]);

    // Paused: not even from its cluster.
    c.send(&bob, manage(agent, AgentChange::Pause));
    c.refuses(c.message(member, from_agent(agent, plain("{}"))), &format!("agent {agent} is paused"));
    c.send(&bob, manage(agent, AgentChange::Resume));

    // Membership is read at the time of the message.
    c.send(&alice, Call::SetClusterWorker { cluster, worker: outsider.public(), member: true });
    let events = c.report(outsider, from_agent(agent, plain("6")));
    assert_eq!(commands(&events), vec![command(agent, 6, itself)]);
    c.send(&alice, Call::SetClusterWorker { cluster, worker: member.public(), member: false });
    c.refuses(c.message(member, from_agent(agent, plain("{}"))), &not_member(member));
    assert_eq!(c.commands(&agent), 6);
}
