//! Gatekeepers end to end, in one process: real worker runtimes (simulated
//! TEE, sealed vaults) and a chain built block by block with real
//! certificates. Every message a runtime owes goes into the next block,
//! which every runtime then verifies and replays; nothing is shortcut.
//!
//! Three gatekeepers are elected and share epoch 1; a fourth is added and
//! all four share epoch 2; one is removed and the other three move to epoch
//! 3, which the removed one never learns: it cannot open what is sealed to
//! an epoch-3 agent key. Master keys nothing derives from any more are
//! destroyed on every gatekeeper. Cluster-only and agent-only rotations move
//! an agent's secrets to its new key and retire the old epochs everywhere.

use phalanx_keys::envelope::KeyKind;
use phalanx_keys::{Envelope, KeyRef, Purpose};
use phalanx_node::dev::dev_genesis;
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Hash, PLANCK_PER_PHA};
use phalanx_state::builder::Candidate;
use phalanx_state::modules::agents::secret_epoch;
use phalanx_state::modules::clusters::RETIRE_GRACE_BLOCKS;
use phalanx_state::modules::registry::FEATURE_GATEKEEPER;
use phalanx_state::{AgentChange, Call, GatekeeperParams, Language, SignedTransaction, State, Transaction};
use phalanx_worker::Runtime;
use phalanx_worker::tee::sim::SimPlatform;

struct Network {
    genesis: phalanx_state::Genesis,
    /// Builds the blocks, with their state roots.
    dev: phalanx_node::dev::DevBlocks,
    state: State,
    runtimes: Vec<Runtime>,
    dirs: Vec<tempfile::TempDir>,
    /// Every block so far, encoded with its certificate (for restarted workers).
    blocks: Vec<(Vec<u8>, Vec<u8>)>,
}

fn start(genesis: &phalanx_state::Genesis, dir: &std::path::Path) -> Runtime {
    let platform = Box::new(SimPlatform::new(dir.join("sim-sealing.key")));
    let operator = dev_keypair("bob").unwrap().public();
    Runtime::start(platform, dir, genesis, Some(genesis.chain_id()), operator, FEATURE_GATEKEEPER, 1).unwrap()
}

fn signed(state: &State, from: &str, nonce: u64, call: Call) -> SignedTransaction {
    let key = dev_keypair(from).unwrap();
    Transaction { chain_id: state.chain_id(), signer: key.public(), nonce, fee: PLANCK_PER_PHA, call }.sign(&key)
}

impl Network {
    fn new(workers: usize) -> Network {
        Self::with(workers, GatekeeperParams { era_blocks: 10, gatekeepers_max: 3, activation_delay: 2 })
    }

    fn with(workers: usize, params: GatekeeperParams) -> Network {
        let mut genesis = dev_genesis();
        genesis.gatekeeper = params;
        let dev = phalanx_node::dev::DevBlocks::new(&genesis).unwrap();
        let state = dev.state.clone();
        let mut dirs = Vec::new();
        let mut runtimes = Vec::new();
        for _ in 0..workers {
            let dir = tempfile::tempdir().unwrap();
            runtimes.push(start(&genesis, dir.path()));
            dirs.push(dir);
        }
        Network { genesis, dev, state, runtimes, dirs, blocks: Vec::new() }
    }

    /// Kills worker `index` (drops it without any goodbye) and starts it
    /// again from its data folder; it verifies the chain from genesis again.
    fn restart(&mut self, index: usize) {
        let identity = self.runtimes[index].identity();
        self.runtimes[index] = start(&self.genesis, self.dirs[index].path());
        assert_eq!(self.runtimes[index].identity(), identity, "same sealed identity");
        let raw: Vec<(&[u8], &[u8])> = self.blocks.iter().map(|(b, c)| (b.as_slice(), c.as_slice())).collect();
        self.runtimes[index].apply_blocks(&raw).unwrap();
    }

    /// One round: every runtime's registration or owed messages (paid by
    /// bob), plus governance calls by alice, in one certified block that
    /// every runtime verifies and replays.
    fn step(&mut self, governance: Vec<Call>) {
        let nonce = |name: &str| self.state.account(&dev_keypair(name).unwrap().public()).unwrap().nonce;
        let (mut bob_nonce, mut alice_nonce) = (nonce("bob"), nonce("alice"));
        let mut txs = Vec::new();
        for runtime in &mut self.runtimes {
            let calls: Vec<Call> = if runtime.registered().is_none() {
                let (info, evidence) = runtime.registration().unwrap();
                vec![Call::RegisterWorker { info, evidence }]
            } else {
                let payloads = runtime.gatekeeper_duties();
                runtime.sign_messages(payloads).into_iter().map(|message| Call::WorkerMessage { message }).collect()
            };
            for call in calls {
                txs.push(signed(&self.state, "bob", bob_nonce, call));
                bob_nonce += 1;
            }
        }
        for call in governance {
            txs.push(signed(&self.state, "alice", alice_nonce, call));
            alice_nonce += 1;
        }
        let candidates: Vec<Candidate> = txs
            .into_iter()
            .map(|tx| {
                let encoded_len = tx.encode().len();
                Candidate { tx, encoded_len, signature_verified: false }
            })
            .collect();
        let (built, cert) = self.dev.next(self.state.timestamp_ms() + 500, candidates).unwrap();
        assert!(built.rejected.is_empty(), "every owed message applies: {:?}", built.rejected);
        let encoded = built.block.encode();
        for runtime in &mut self.runtimes {
            runtime.apply_blocks(&[(encoded.as_slice(), cert.as_slice())]).unwrap();
        }
        self.state = built.state;
        self.blocks.push((encoded, cert));
    }

    /// Steps until epoch `epoch` is current with `holders` holders.
    fn run_until_epoch(&mut self, epoch: u64, holders: usize) {
        for _ in 0..200 {
            if let Some(current) = &self.state.key_epochs().current
                && current.epoch == epoch
                && current.holders.len() == holders
            {
                // One more round so every runtime sees the activation.
                self.step(vec![]);
                return;
            }
            self.step(vec![]);
        }
        panic!("epoch {epoch} with {holders} holders never activated: {:?}", self.state.key_epochs());
    }

    /// Exactly the epoch's holders hold its key, and all the same one.
    fn check_holders(&self, epoch: u64) -> Vec<usize> {
        let current = self.state.key_epochs().current.clone().unwrap();
        assert_eq!(current.epoch, epoch);
        let mut holding = Vec::new();
        for (index, runtime) in self.runtimes.iter().enumerate() {
            let holder = current.holders.contains(&runtime.identity());
            match runtime.master_commitment(epoch) {
                Some(commitment) => {
                    assert!(holder, "worker {index} holds epoch {epoch} without being a holder");
                    assert_eq!(commitment, current.commitment, "worker {index} holds another key");
                    holding.push(index);
                }
                None => assert!(!holder, "holder {index} lacks the epoch {epoch} key"),
            }
        }
        holding
    }
}

#[test]
fn three_gatekeepers_then_four_then_one_removed() {
    let mut network = Network::new(4);
    network.run_until_epoch(1, 3);
    let first = network.check_holders(1);
    assert_eq!(first.len(), 3);
    let outsider = (0..4).find(|i| !first.contains(i)).unwrap();
    assert!(network.runtimes[outsider].master_epochs().is_empty(), "a non-member receives no key");

    // A fourth gatekeeper: governance raises the set size.
    let params = GatekeeperParams { era_blocks: 10, gatekeepers_max: 4, activation_delay: 2 };
    network.step(vec![Call::SetGatekeeperParams { params }]);
    network.run_until_epoch(2, 4);
    assert_eq!(network.check_holders(2).len(), 4);
    // No cluster key derives from epoch 1 any more (there are no clusters):
    // every gatekeeper, the newcomer included, has destroyed it.
    for runtime in &network.runtimes {
        assert_eq!(runtime.master_epochs(), vec![2], "only the current master key is kept");
    }

    let cluster = Hash([0xc1; 32]);
    let agent = Hash([0xa9; 32]);
    let seal = |network: &Network, holder: usize, epoch: u64, text: &[u8]| {
        let public = network.runtimes[holder].agent_public_key(&cluster, &agent, epoch).unwrap();
        let key = KeyRef { kind: KeyKind::Agent, id: agent, epoch };
        Envelope::seal(&public, key, agent, Purpose::Secret, text).unwrap().0
    };

    // Governance removes one gatekeeper: epoch 3 goes ahead without it.
    let removed = first[0];
    let worker = network.runtimes[removed].identity();
    network.step(vec![Call::SetGatekeeper { worker, member: Some(false) }]);
    network.run_until_epoch(3, 3);
    let holders = network.check_holders(3);
    assert!(!holders.contains(&removed));
    assert!(!network.runtimes[removed].master_epochs().contains(&3));

    let after = seal(&network, holders[0], 3, b"sealed in epoch 3");
    for &h in &holders {
        let opened = network.runtimes[h].open_for_agent(&cluster, &after).unwrap();
        assert_eq!(opened.plaintext.as_slice(), b"sealed in epoch 3");
    }
    let refused = network.runtimes[removed].open_for_agent(&cluster, &after).unwrap_err();
    assert!(refused.to_string().contains("no key of epoch 3"), "{refused}");
    assert!(network.runtimes[removed].master_epochs().is_empty(), "the removed gatekeeper keeps no master key");
}

/// A gatekeeper killed in the middle of a rotation and restarted: the
/// rotation completes with the key that was announced before the crash (the
/// leader sealed it before announcing), and a member killed after receiving
/// its key but before confirming confirms after the restart.
#[test]
fn rotation_survives_gatekeepers_crashing_midway() {
    let mut network = Network::new(3);
    // Until the rotation to epoch 1 with all three members has its key announced.
    let announced = loop {
        network.step(vec![]);
        if let Some(rotation) = &network.state.key_epochs().rotation
            && rotation.members.len() == 3
            && let Some(commitment) = rotation.commitment
        {
            break (rotation.clone(), commitment);
        }
        assert!(network.state.height() < 100, "no announcement");
    };
    let (rotation, commitment) = announced;
    let leader = network.runtimes.iter().position(|r| r.identity() == rotation.leader).unwrap();
    network.restart(leader);

    // Let the handovers land, then kill a member that has its key but has not confirmed.
    let member = (0..3).find(|&i| i != leader).unwrap();
    network.step(vec![]); // the restarted leader hands over
    network.restart(member);
    network.run_until_epoch(1, 3);
    let current = network.state.key_epochs().current.clone().unwrap();
    assert_eq!(current.commitment, commitment, "the key announced before the crash is the one activated");
    assert_eq!(network.check_holders(1).len(), 3);
}

/// Cluster keys: published on chain per epoch, handed to the cluster's
/// workers only, following master rotations; a worker removed from the
/// cluster gets no later key, and keys of retired epochs are destroyed.
#[test]
fn cluster_keys_reach_cluster_workers_and_follow_rotations() {
    let mut network = Network::with(4, GatekeeperParams { era_blocks: 10, gatekeepers_max: 1, activation_delay: 2 });
    network.run_until_epoch(1, 1);
    let gatekeeper = network.check_holders(1)[0];
    let others: Vec<usize> = (0..4).filter(|&i| i != gatekeeper).collect();
    let (a, b, outside) = (others[0], others[1], others[2]);

    network.step(vec![Call::CreateCluster { name: "inference".into() }]);
    let cluster = *network.state.clusters().next().unwrap().0;
    let add = |network: &Network, i: usize| Call::SetClusterWorker {
        cluster,
        worker: network.runtimes[i].identity(),
        member: true,
    };
    // The gatekeeper serves in the cluster too.
    let calls = vec![add(&network, a), add(&network, b), add(&network, gatekeeper)];
    network.step(calls);
    let received = |network: &Network, epoch: u64| {
        network.state.cluster(&cluster).unwrap().key(epoch).map_or(0, |k| k.received.len())
    };
    let run_until_received = |network: &mut Network, epoch: u64, count: usize| {
        for _ in 0..100 {
            if received(network, epoch) == count {
                network.step(vec![]);
                return;
            }
            network.step(vec![]);
        }
        panic!("cluster key of epoch {epoch} not received: {:?}", network.state.cluster(&cluster));
    };
    run_until_received(&mut network, 1, 3);

    let agent = Hash([0xa1; 32]);
    // Clients will take agent keys from the chain (agents issue); here the gatekeeper derives it.
    let seal = |network: &Network, epoch: u64, text: &[u8]| {
        let public = network.runtimes[gatekeeper].agent_public_key(&cluster, &agent, epoch).unwrap();
        let key = KeyRef { kind: KeyKind::Agent, id: agent, epoch };
        Envelope::seal(&public, key, agent, Purpose::State, text).unwrap().0
    };
    let opens =
        |network: &Network, i: usize, envelope: &[u8]| network.runtimes[i].open_for_agent(&cluster, envelope).is_ok();
    let one = seal(&network, 1, b"epoch 1");
    assert!(opens(&network, a, &one) && opens(&network, b, &one), "cluster workers derive the agent key");
    assert!(!opens(&network, outside, &one), "a worker outside the cluster has no key");
    assert!(network.runtimes[outside].cluster_keys().is_empty());

    // A master rotation: the cluster's epoch-2 key reaches both; epoch 1 still opens.
    network.step(vec![Call::RotateMasterKey]);
    network.run_until_epoch(2, 1);
    run_until_received(&mut network, 2, 3);
    let two = seal(&network, 2, b"epoch 2");
    assert!(opens(&network, a, &two) && opens(&network, b, &two));
    assert!(opens(&network, a, &one), "the previous epoch keeps decrypting");

    // b leaves the cluster; the next epoch's key reaches a only, and epoch 1 is retired.
    let leave = Call::SetClusterWorker { cluster, worker: network.runtimes[b].identity(), member: false };
    network.step(vec![leave]);
    network.step(vec![Call::RotateMasterKey]);
    network.run_until_epoch(3, 1);
    run_until_received(&mut network, 3, 2);
    let three = seal(&network, 3, b"epoch 3");
    assert!(opens(&network, a, &three));
    assert!(!opens(&network, b, &three), "a worker removed from the cluster gets no later key");
    assert!(network.runtimes[b].cluster_keys().is_empty(), "and destroys the keys it had");
    // With no agent key deriving from them, older epochs retire after the grace period.
    for _ in 0..(2 * RETIRE_GRACE_BLOCKS) {
        network.step(vec![]);
    }
    let kept: Vec<u64> = network.state.cluster(&cluster).unwrap().keys.iter().map(|k| k.epoch).collect();
    assert_eq!(kept, vec![3], "older cluster key epochs are retired on chain");
    assert!(!opens(&network, a, &one) && !opens(&network, a, &two), "retired epochs' keys are destroyed");
    assert_eq!(network.runtimes[a].cluster_keys(), vec![(cluster, 3)]);
    assert_eq!(network.runtimes[gatekeeper].master_epochs(), vec![3]);
}

/// Steps until `done` holds (at most 300 blocks).
fn run_until(network: &mut Network, what: &str, done: impl Fn(&State) -> bool) {
    for _ in 0..300 {
        if done(&network.state) {
            network.step(vec![]);
            return;
        }
        network.step(vec![]);
    }
    panic!("{what} never happened");
}

/// Cluster-only, agent-only and master rotations with a deployed agent and
/// a secret: each moves the agent to a new key epoch, a gatekeeper
/// re-encrypts the secret to it, the old epochs retire, and the cluster's
/// workers destroy their old keys. The secret opens under every new key.
#[test]
fn scoped_rotations_move_secrets_and_retire_old_keys() {
    let mut network = Network::with(3, GatekeeperParams { era_blocks: 10, gatekeepers_max: 1, activation_delay: 2 });
    network.run_until_epoch(1, 1);
    let gatekeeper = network.check_holders(1)[0];
    let workers: Vec<usize> = (0..3).filter(|&i| i != gatekeeper).collect();
    network.step(vec![Call::CreateCluster { name: "inference".into() }]);
    let cluster = *network.state.clusters().next().unwrap().0;
    let adds = workers
        .iter()
        .map(|&i| Call::SetClusterWorker { cluster, worker: network.runtimes[i].identity(), member: true })
        .collect();
    network.step(adds);
    let code = b"export default { fetch() { return new Response('hi') } }".to_vec();
    network.step(vec![Call::DeployAgent { name: "a".into(), cluster, language: Language::JavaScript, code }]);
    let agent = *network.state.agents().next().unwrap().0;
    run_until(&mut network, "the agent's first key", |s| s.agent(&agent).unwrap().newest_key().is_some());
    assert_eq!(network.state.agent(&agent).unwrap().newest_key().unwrap().epoch, 1);

    // The owner (alice deployed it) seals a secret to the published key.
    let seal_secret = |network: &Network| {
        let newest = network.state.agent(&agent).unwrap().newest_key().unwrap().clone();
        let key = KeyRef { kind: KeyKind::Agent, id: agent, epoch: newest.epoch };
        Envelope::seal(&newest.public, key, agent, Purpose::Secret, b"sk-planted").unwrap().0
    };
    let sealed = seal_secret(&network);
    let change = AgentChange::SetSecret { name: "API_KEY".into(), sealed };
    network.step(vec![Call::ManageAgent { agent, change }]);

    // Each rotation: (request, expected agent epoch, expected cluster epoch).
    let rotations = [
        (Call::RotateClusterKey { cluster }, 2, 2),
        (Call::RotateAgentKey { agent }, 3, 2),
        (Call::RotateMasterKey, 4, 3),
    ];
    for (request, agent_epoch, cluster_epoch) in rotations {
        network.step(vec![request]);
        let settled = |s: &State| {
            let found = s.agent(&agent).unwrap();
            let keys: Vec<u64> = found.keys.iter().map(|k| k.epoch).collect();
            let clusters: Vec<u64> = s.cluster(&cluster).unwrap().keys.iter().map(|k| k.epoch).collect();
            keys == vec![agent_epoch]
                && clusters == vec![cluster_epoch]
                && secret_epoch(&found.secrets[0].sealed) == Some(agent_epoch)
        };
        run_until(&mut network, &format!("agent epoch {agent_epoch}, cluster epoch {cluster_epoch}"), settled);
        let found = network.state.agent(&agent).unwrap();
        assert_eq!(found.newest_key().unwrap().cluster_epoch, cluster_epoch);
        for &w in &workers {
            assert_eq!(network.runtimes[w].cluster_keys(), vec![(cluster, cluster_epoch)], "old keys destroyed");
            let opened = network.runtimes[w].open_for_agent(&cluster, &found.secrets[0].sealed).unwrap();
            assert_eq!(opened.plaintext.as_slice(), b"sk-planted", "the secret survives the rotation");
        }
    }
    assert_eq!(network.runtimes[gatekeeper].master_epochs(), vec![2]);
    // A second request while one is finishing is refused with a reason.
    network.step(vec![Call::RotateAgentKey { agent }]);
    let nonce = network.state.account(&dev_keypair("alice").unwrap().public()).unwrap().nonce;
    let again = signed(&network.state, "alice", nonce, Call::RotateAgentKey { agent });
    let refused = network.state.check_tx(&again, again.encode().len()).unwrap_err();
    assert!(refused.to_string().contains("still finishing"), "{refused}");
}

/// Governance replaces the whole gatekeeper set at once: the outgoing holder
/// gives the new gatekeeper the master key still in use, so the agent's
/// secret, sealed under the old epoch, is re-encrypted to the new one; the
/// outgoing gatekeeper never learns the new key and destroys the old one
/// once nothing derives from it.
#[test]
fn a_whole_new_gatekeeper_set_inherits_the_keys_still_in_use() {
    let mut network = Network::with(3, GatekeeperParams { era_blocks: 10, gatekeepers_max: 1, activation_delay: 2 });
    network.run_until_epoch(1, 1);
    let old = network.check_holders(1)[0];
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let (worker, new) = (others[0], others[1]);
    network.step(vec![Call::CreateCluster { name: "inference".into() }]);
    let cluster = *network.state.clusters().next().unwrap().0;
    network.step(vec![Call::SetClusterWorker { cluster, worker: network.runtimes[worker].identity(), member: true }]);
    let code = b"export default { fetch() { return new Response('hi') } }".to_vec();
    network.step(vec![Call::DeployAgent { name: "a".into(), cluster, language: Language::JavaScript, code }]);
    let agent = *network.state.agents().next().unwrap().0;
    run_until(&mut network, "the agent's first key", |s| s.agent(&agent).unwrap().newest_key().is_some());
    let newest = network.state.agent(&agent).unwrap().newest_key().unwrap().clone();
    let key = KeyRef { kind: KeyKind::Agent, id: agent, epoch: newest.epoch };
    let sealed = Envelope::seal(&newest.public, key, agent, Purpose::Secret, b"sk-inherited").unwrap().0;
    network.step(vec![Call::ManageAgent { agent, change: AgentChange::SetSecret { name: "K".into(), sealed } }]);

    let (old_id, new_id) = (network.runtimes[old].identity(), network.runtimes[new].identity());
    network.step(vec![
        Call::SetGatekeeper { worker: old_id, member: Some(false) },
        Call::SetGatekeeper { worker: new_id, member: Some(true) },
    ]);
    network.run_until_epoch(2, 1);
    assert_eq!(network.check_holders(2), vec![new]);
    run_until(&mut network, "the secret moving to the new epoch and the old one retiring", |s| {
        let found = s.agent(&agent).unwrap();
        let clusters: Vec<u64> = s.cluster(&cluster).unwrap().keys.iter().map(|k| k.epoch).collect();
        found.keys.len() == 1 && clusters == vec![2] && secret_epoch(&found.secrets[0].sealed) == Some(2)
    });
    let found = network.state.agent(&agent).unwrap();
    let opened = network.runtimes[worker].open_for_agent(&cluster, &found.secrets[0].sealed).unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"sk-inherited");
    assert_eq!(network.runtimes[new].master_epochs(), vec![2]);
    assert!(network.runtimes[old].master_epochs().is_empty(), "the outgoing gatekeeper keeps nothing");
}
