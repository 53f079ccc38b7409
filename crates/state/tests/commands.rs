//! Agent commands through the state machine: who may send one (the owner
//! always, anyone for a public agent, listed accounts for an allowlisted
//! one, only the owner for a paid one, and a worker of the agent's cluster
//! on the agent's behalf), how payloads are bounded (plain JSON, or a call
//! envelope sealed to a key the agent keeps) and how commands are numbered
//! (`Agent::commands`, `Event::AgentCommand { seq }`, in transaction order).
//! Every refusal is checked with `check_tx`, with the block builder (which
//! must leave the state as an empty block would) and with a verifier given
//! a block that includes it anyway.

mod common;

use common::{Fixture, dev, public};
use phalanx_keys::envelope::KeyKind;
use phalanx_keys::{Envelope, KeyRef, Purpose};
use phalanx_primitives::{Hash, Keypair, sha256};
use phalanx_state::modules::agents::{COMMAND_BYTES_MAX, CommandPayload, CommandSender};
use phalanx_state::{Access, AgentChange, Call, Event, EventRecord, Language, WorkerPayload, agent_id};

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
