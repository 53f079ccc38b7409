//! The gatekeeper role of a worker: generating, handing over, receiving
//! and confirming master keys as the chain's rotations ask (see
//! `phalanx_state::modules::gatekeeper` for the rules).
//!
//! Everything travels through the chain: the leader of a rotation announces
//! a commitment to the key it generated, then sends each member the key in
//! an envelope sealed to that member's *attested* key-agreement key (taken
//! from the verified registry, so a host cannot substitute its own); a
//! member opens it, checks it against the announced commitment, seals it
//! and confirms. Keys of epochs the chain no longer lists are destroyed.

use crate::identity::Identity;
use crate::seal::Sealer;
use crate::vault::{Vault, VaultError};
use crate::verified::VerifiedChain;
use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_keys::envelope::KeyKind;
use phalanx_keys::{AgentKey, ClusterKey, Envelope, KeyRef, MasterKey, Purpose};
use phalanx_primitives::{Hash, PublicKey, decode_bounded};
use phalanx_state::modules::agents::secret_epoch;
use phalanx_state::{Agent, Cluster, ClusterEpochKey, State, WorkerPayload};
use std::collections::BTreeMap;
use zeroize::{Zeroize, Zeroizing};

/// Blocks to wait before sending the same handover or confirmation again.
pub const RESEND_AFTER_BLOCKS: u64 = 30;

/// What a handover envelope carries.
#[derive(BorshSerialize, BorshDeserialize)]
enum Handover {
    /// A rotation's master key, with earlier epochs' keys (for data not yet re-encrypted).
    Master { rotation: u64, epoch: u64, key: [u8; 32], history: Vec<(u64, [u8; 32])> },
    /// A cluster's key of `epoch`, with the keys of the other epochs the chain keeps.
    Cluster { cluster: Hash, epoch: u64, key: [u8; 32], history: Vec<(u64, [u8; 32])> },
    /// Master keys still in use, from an outgoing holder to the members of a
    /// rotation none of whom holds the current key (so they can re-encrypt
    /// data still sealed under older epochs). Never a key of a later epoch.
    History { history: Vec<(u64, [u8; 32])> },
}

impl Drop for Handover {
    fn drop(&mut self) {
        match self {
            Handover::Master { key, history, .. } | Handover::Cluster { key, history, .. } => {
                key.zeroize();
                history.iter_mut().for_each(|(_, key)| key.zeroize());
            }
            Handover::History { history } => history.iter_mut().for_each(|(_, key)| key.zeroize()),
        }
    }
}

/// A worker's gatekeeper state: its vault and what it sent recently.
#[derive(Debug)]
pub struct Gatekeeper {
    vault: Vault,
    /// (rotation, recipient) → height of the last handover sent.
    handed: BTreeMap<(u64, PublicKey), u64>,
    /// (rotation) → height of the last confirmation or announcement sent.
    said: BTreeMap<u64, u64>,
    /// (cluster or agent, key epoch, worker, what) → height of the last key message of that kind about it.
    cluster_said: BTreeMap<(Hash, u64, PublicKey, KeyMessage), u64>,
}

/// The kinds of cluster and agent key messages, each rate-limited on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum KeyMessage {
    Publish,
    Handover,
    Receipt,
    Reseal,
    Retire,
}

/// Most cluster and agent key messages a gatekeeper sends in one round (a
/// rotation over many agents spreads over rounds instead of flooding the
/// mempool).
pub const ROUND_MESSAGES_MAX: usize = 512;

/// A handover to `to`, sealed to its attested key-agreement key from the
/// verified registry; `None` (logged) if it cannot be sealed.
fn seal_handover(state: &State, to: &PublicKey, epoch: u64, handover: &Handover) -> Option<WorkerPayload> {
    let worker = state.worker(to)?;
    let plaintext = Zeroizing::new(borsh::to_vec(handover).expect("in-memory encoding"));
    let key = KeyRef { kind: KeyKind::Worker, id: Hash(to.0), epoch };
    match Envelope::seal(&worker.info.ecdh, key, Hash::ZERO, Purpose::KeyHandover, &plaintext) {
        Ok((envelope, _)) => Some(WorkerPayload::KeyHandover { to: *to, envelope }),
        Err(error) => {
            tracing::warn!(%error, %to, "cannot seal a key handover");
            None
        }
    }
}

/// The commitment the chain records for `epoch`, current or previous.
fn recorded_commitment(state: &State, epoch: u64) -> Option<[u8; 32]> {
    let epochs = state.key_epochs();
    epochs.current.iter().chain(epochs.previous.iter()).find(|e| e.epoch == epoch).map(|e| e.commitment)
}

/// Whether the master key of `epoch` is still needed: it is current, or a
/// cluster key epoch the chain keeps derives from it.
fn master_in_use(state: &State, epoch: u64) -> bool {
    let current = state.key_epochs().current.as_ref().is_some_and(|c| c.epoch == epoch);
    current
        || (recorded_commitment(state, epoch).is_some()
            && state.clusters().any(|(_, c)| c.keys.iter().any(|k| k.master_epoch == epoch)))
}

impl Gatekeeper {
    pub fn new(vault: Vault) -> Self {
        Gatekeeper { vault, handed: BTreeMap::new(), said: BTreeMap::new(), cluster_said: BTreeMap::new() }
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Reads handovers, keeps the vault in step with the chain, and returns
    /// the messages this worker owes the chain now.
    pub fn duties(
        &mut self,
        chain: &mut VerifiedChain,
        identity: &Identity,
        sealer: &Sealer,
    ) -> Result<Vec<WorkerPayload>, VaultError> {
        let me = identity.public();
        let mut changed = self.receive(chain, identity);
        let state = chain.state();
        let height = state.height();
        let epochs = state.key_epochs();

        // A pending key becomes an epoch key once the chain activates it with us as holder.
        if let Some((rotation, key)) = self.vault.pending_rotation() {
            let current = epochs.current.as_ref();
            let activated = current.is_some_and(|c| c.epoch == key.epoch() && c.commitment == key.commitment());
            let still_rotating = epochs.rotation.as_ref().is_some_and(|r| r.id == rotation);
            if activated && current.is_some_and(|c| c.holders.contains(&me)) {
                let key = key.clone();
                self.vault.insert(key);
                self.vault.clear_pending();
                changed = true;
            } else if !still_rotating && !activated {
                self.vault.clear_pending();
                changed = true;
            }
        }
        // Master keys no kept cluster key derives from (and not current) are destroyed.
        let retained = self.vault.retain(|epoch| master_in_use(state, epoch));
        changed |= retained > 0;

        let mut out = Vec::new();
        if let Some(rotation) = &epochs.rotation {
            let due = |last: Option<&u64>| last.is_none_or(|at| height >= at + RESEND_AFTER_BLOCKS);
            if rotation.leader == me {
                match rotation.commitment {
                    None => {
                        if self.vault.pending(rotation.id).is_none() {
                            // Sealed before it is announced: a crash cannot lose it.
                            self.vault.set_pending(rotation.id, MasterKey::generate(rotation.epoch));
                            changed = true;
                        }
                        if due(self.said.get(&rotation.id)) {
                            let commitment = self.vault.pending(rotation.id).expect("just set").commitment();
                            self.said.insert(rotation.id, height);
                            out.push(WorkerPayload::MasterKeyAnnounce { rotation: rotation.id, commitment });
                        }
                    }
                    Some(commitment) => {
                        if let Some(key) = self.vault.pending(rotation.id).filter(|k| k.commitment() == commitment) {
                            let history: Vec<(u64, [u8; 32])> =
                                self.vault.all().map(|k| (k.epoch(), *k.to_bytes())).collect();
                            for member in &rotation.members {
                                if member == &me || rotation.confirmed.contains(member) {
                                    continue;
                                }
                                if !due(self.handed.get(&(rotation.id, *member))) {
                                    continue;
                                }
                                let handover = Handover::Master {
                                    rotation: rotation.id,
                                    epoch: rotation.epoch,
                                    key: *key.to_bytes(),
                                    history: history.clone(),
                                };
                                if let Some(payload) = seal_handover(state, member, rotation.epoch, &handover) {
                                    self.handed.insert((rotation.id, *member), height);
                                    out.push(payload);
                                }
                            }
                        }
                    }
                }
            } else if let Some(current) = epochs.current.as_ref().filter(|c| c.holders.first() == Some(&me))
                && !rotation.members.iter().any(|m| current.holders.contains(m))
            {
                // The whole set changes: the outgoing first holder gives the
                // new members the master keys still in use.
                let history: Vec<(u64, [u8; 32])> = self.vault.all().map(|k| (k.epoch(), *k.to_bytes())).collect();
                for member in &rotation.members {
                    if !due(self.handed.get(&(rotation.id, *member))) {
                        continue;
                    }
                    let handover = Handover::History { history: history.clone() };
                    if let Some(payload) = seal_handover(state, member, current.epoch, &handover) {
                        self.handed.insert((rotation.id, *member), height);
                        out.push(payload);
                    }
                }
            } else if rotation.members.contains(&me)
                && !rotation.confirmed.contains(&me)
                && rotation.activates_at.is_none()
                && let Some(commitment) = rotation.commitment
                && self.vault.pending(rotation.id).is_some_and(|k| k.commitment() == commitment)
                && due(self.said.get(&rotation.id))
            {
                self.said.insert(rotation.id, height);
                out.push(WorkerPayload::MasterKeyConfirm { rotation: rotation.id, commitment });
            }
        }
        let (payloads, cluster_changed) = self.cluster_duties(state, &me);
        out.extend(payloads);
        changed |= cluster_changed;
        let retired = self.vault.retain_clusters(|cluster, epoch| {
            state.cluster(cluster).is_some_and(|c| c.key(epoch).is_some() && c.workers.contains(&me))
        });
        changed |= retired > 0;
        self.handed.retain(|(rotation, _), _| epochs.rotation.as_ref().is_some_and(|r| r.id == *rotation));
        self.said.retain(|rotation, _| epochs.rotation.as_ref().is_some_and(|r| r.id == *rotation));
        if changed {
            self.vault.save(sealer)?;
        }
        Ok(out)
    }

    /// Cluster and agent keys. The first holder of the current master key
    /// (the publisher) publishes each cluster's and agent's due key epoch,
    /// hands cluster keys to the cluster's workers, re-encrypts secrets to
    /// agents' newest keys and retires epochs nothing needs any more; a
    /// cluster's worker reports each key it holds. At most
    /// [`ROUND_MESSAGES_MAX`] messages a round; the rest follow next round.
    fn cluster_duties(&mut self, state: &State, me: &PublicKey) -> (Vec<WorkerPayload>, bool) {
        let height = state.height();
        let mut out = Vec::new();
        let mut changed = false;
        let current = state.key_epochs().current.as_ref();
        let publisher = current.filter(|c| c.holders.first() == Some(me));
        if let Some(current) = publisher
            && let Some(master) = self.vault.master(current.epoch).cloned()
        {
            for (id, cluster) in state.clusters() {
                if out.len() >= ROUND_MESSAGES_MAX {
                    break;
                }
                if let Some(epoch) = cluster.due_key_epoch(current.epoch)
                    && self.due((*id, epoch, *me, KeyMessage::Publish), height)
                {
                    let public = master.cluster_key_at(id, epoch).secret().public();
                    out.push(WorkerPayload::ClusterKeyPublish { cluster: *id, epoch, public });
                }
                changed |= self.hand_over_cluster_key(state, me, id, cluster, &mut out);
                for kept in &cluster.keys {
                    if cluster.retirable(kept.epoch, height).is_ok()
                        && self.due((*id, kept.epoch, *me, KeyMessage::Retire), height)
                    {
                        out.push(WorkerPayload::ClusterKeyRetire { cluster: *id, epoch: kept.epoch });
                    }
                }
            }
            for (id, agent) in state.agents() {
                if out.len() >= ROUND_MESSAGES_MAX {
                    break;
                }
                self.agent_key_duties(state, me, id, agent, &mut out);
            }
        }
        for (cluster, epoch) in self.vault.cluster_epochs() {
            let Some(published) = state.cluster(&cluster).and_then(|c| c.key(epoch)) else { continue };
            let member = state.cluster(&cluster).is_some_and(|c| c.workers.contains(me));
            if member
                && !published.received.contains(me)
                && self.due((cluster, epoch, *me, KeyMessage::Receipt), height)
            {
                out.push(WorkerPayload::ClusterKeyReceived { cluster, epoch });
            }
        }
        self.cluster_said.retain(|_, at| height < *at + 2 * RESEND_AFTER_BLOCKS);
        (out, changed)
    }

    /// Whether a key message about `key` is due (and if so, records it as sent now).
    fn due(&mut self, key: (Hash, u64, PublicKey, KeyMessage), height: u64) -> bool {
        let due = self.cluster_said.get(&key).is_none_or(|at| height >= at + RESEND_AFTER_BLOCKS);
        if due {
            self.cluster_said.insert(key, height);
        }
        due
    }

    /// The cluster key of a kept key epoch, derived from the master key it
    /// names (if this gatekeeper holds that master key).
    fn derive_cluster_key(&self, cluster: &Hash, kept: &ClusterEpochKey) -> Option<ClusterKey> {
        let key = self.vault.master(kept.master_epoch)?.cluster_key_at(cluster, kept.epoch);
        (key.secret().public() == kept.public).then_some(key)
    }

    /// The agent key of a kept agent key epoch, derived down from the master key.
    fn derive_agent_key(&self, state: &State, agent: &Agent, epoch: u64) -> Option<AgentKey> {
        let kept = agent.key(epoch)?;
        let cluster = state.cluster(&agent.cluster)?.key(kept.cluster_epoch)?;
        let key = self.derive_cluster_key(&agent.cluster, cluster)?.agent_key_at(&agent.id, epoch);
        (key.secret().public() == kept.public).then_some(key)
    }

    /// Hands the newest key of `cluster` (with the other kept epochs, for
    /// data not yet re-encrypted) to each of its workers that has not
    /// reported it; keeps it if this gatekeeper is in the cluster. Returns
    /// whether the vault changed.
    fn hand_over_cluster_key(
        &mut self,
        state: &State,
        me: &PublicKey,
        id: &Hash,
        cluster: &Cluster,
        out: &mut Vec<WorkerPayload>,
    ) -> bool {
        let Some(newest) = cluster.newest_key() else { return false };
        let Some(key) = self.derive_cluster_key(id, newest) else {
            tracing::warn!(cluster = %id, epoch = newest.epoch, "the published cluster key is not one this gatekeeper derives");
            return false;
        };
        let history: Vec<(u64, [u8; 32])> = cluster
            .keys
            .iter()
            .filter(|k| k.epoch != newest.epoch)
            .filter_map(|k| Some((k.epoch, *self.derive_cluster_key(id, k)?.secret().to_bytes())))
            .collect();
        let mut changed = false;
        for worker in &cluster.workers {
            if worker == me {
                // The publisher is in the cluster too: it keeps the keys it derived.
                for (epoch, bytes) in
                    std::iter::once((newest.epoch, *key.secret().to_bytes())).chain(history.iter().copied())
                {
                    if self.vault.cluster(id, epoch).is_none() {
                        self.vault.insert_cluster(ClusterKey::from_bytes(bytes, *id, epoch));
                        changed = true;
                    }
                }
                continue;
            }
            if newest.received.contains(worker)
                || !self.due((*id, newest.epoch, *worker, KeyMessage::Handover), state.height())
            {
                continue;
            }
            let handover = Handover::Cluster {
                cluster: *id,
                epoch: newest.epoch,
                key: *key.secret().to_bytes(),
                history: history.clone(),
            };
            out.extend(seal_handover(state, worker, newest.epoch, &handover));
        }
        changed
    }

    /// An agent's due key, its secrets still sealed under older epochs
    /// (re-encrypted to the newest key) and its retirable epochs.
    fn agent_key_duties(
        &mut self,
        state: &State,
        me: &PublicKey,
        id: &Hash,
        agent: &Agent,
        out: &mut Vec<WorkerPayload>,
    ) {
        let height = state.height();
        let Some(cluster) = state.cluster(&agent.cluster) else { return };
        if let Some(ready) = cluster.ready_key(height)
            && let Some(epoch) = agent.due_key_epoch(ready.epoch)
            && let Some(cluster_key) = self.derive_cluster_key(&agent.cluster, ready)
            && self.due((*id, epoch, *me, KeyMessage::Publish), height)
        {
            let public = cluster_key.agent_key_at(id, epoch).secret().public();
            out.push(WorkerPayload::AgentKeyPublish { agent: *id, epoch, public });
        }
        let Some(newest) = agent.newest_key() else { return };
        let stale: Vec<&phalanx_state::Secret> =
            agent.secrets.iter().filter(|s| secret_epoch(&s.sealed) != Some(newest.epoch)).collect();
        if !stale.is_empty() && self.due((*id, newest.epoch, *me, KeyMessage::Reseal), height) {
            let to = KeyRef { kind: KeyKind::Agent, id: *id, epoch: newest.epoch };
            for secret in stale {
                let Some(old) = secret_epoch(&secret.sealed).and_then(|e| self.derive_agent_key(state, agent, e))
                else {
                    tracing::warn!(agent = %id, name = %secret.name, "a secret is sealed under a key epoch no longer kept");
                    continue;
                };
                match Envelope::reseal(&secret.sealed, old.secret(), &newest.public, to) {
                    Ok(sealed) => out.push(WorkerPayload::SecretResealed {
                        agent: *id,
                        name: secret.name.clone(),
                        replaces: phalanx_primitives::sha256(&secret.sealed),
                        sealed,
                    }),
                    Err(error) => {
                        tracing::warn!(agent = %id, name = %secret.name, %error, "a secret does not re-encrypt")
                    }
                }
            }
        }
        for kept in &agent.keys {
            if agent.retirable(kept.epoch, height).is_ok()
                && self.due((*id, kept.epoch, *me, KeyMessage::Retire), height)
            {
                out.push(WorkerPayload::AgentKeyRetire { agent: *id, epoch: kept.epoch });
            }
        }
    }

    /// Keeps the handed-over master keys of earlier epochs that match the
    /// chain's commitments and are not held yet. Returns whether any was kept.
    fn keep_history(&mut self, state: &State, history: &[(u64, [u8; 32])]) -> bool {
        let mut changed = false;
        for (epoch, key) in history {
            if self.vault.master(*epoch).is_some() {
                continue;
            }
            let key = MasterKey::from_bytes(*key, *epoch);
            if recorded_commitment(state, *epoch) == Some(key.commitment()) {
                self.vault.insert(key);
                changed = true;
            } else {
                tracing::warn!(epoch, "a handed-over master key does not match the chain's commitment");
            }
        }
        changed
    }

    /// Opens the handovers addressed to this worker; keeps what checks out
    /// against the chain's commitments. Returns whether the vault changed.
    fn receive(&mut self, chain: &mut VerifiedChain, identity: &Identity) -> bool {
        let inbox = chain.take_inbox();
        if inbox.is_empty() {
            return false;
        }
        let state = chain.state();
        let secret = identity.ecdh_secret();
        let mut changed = false;
        for envelope in inbox {
            let opened = match Envelope::open(&envelope, &secret) {
                Ok(opened) => opened,
                Err(error) => {
                    tracing::warn!(%error, "a key handover does not open");
                    continue;
                }
            };
            if opened.header.purpose != Purpose::KeyHandover
                || opened.header.key.kind != KeyKind::Worker
                || opened.header.key.id != Hash(identity.public().0)
            {
                tracing::warn!("an envelope that is not a key handover for this worker was ignored");
                continue;
            }
            let Ok(handover) = decode_bounded::<Handover>(&opened.plaintext, 16 * 1024) else {
                tracing::warn!("a key handover is malformed");
                continue;
            };
            match &handover {
                Handover::Master { rotation, epoch, key, history } => {
                    changed |= self.keep_history(state, history);
                    let key = MasterKey::from_bytes(*key, *epoch);
                    let expected = state
                        .key_epochs()
                        .rotation
                        .as_ref()
                        .filter(|r| r.id == *rotation && r.epoch == *epoch)
                        .and_then(|r| r.commitment);
                    if expected == Some(key.commitment()) {
                        self.vault.set_pending(*rotation, key);
                        changed = true;
                    } else if recorded_commitment(state, *epoch) == Some(key.commitment()) {
                        // The rotation already activated: the key is an epoch key now.
                        self.vault.insert(key);
                        changed = true;
                    } else {
                        tracing::warn!(epoch, "a handed-over master key does not match the chain's commitment");
                    }
                }
                Handover::History { history } => changed |= self.keep_history(state, history),
                Handover::Cluster { cluster, epoch, key, history } => {
                    let Some(found) = state.cluster(cluster) else { continue };
                    for (epoch, key) in std::iter::once((epoch, key)).chain(history.iter().map(|(e, k)| (e, k))) {
                        let key = phalanx_keys::ClusterKey::from_bytes(*key, *cluster, *epoch);
                        if found.key(*epoch).is_some_and(|k| k.public == key.secret().public()) {
                            self.vault.insert_cluster(key);
                            changed = true;
                        } else {
                            tracing::warn!(epoch, "a handed-over cluster key does not match the published one");
                        }
                    }
                }
            }
        }
        changed
    }
}
