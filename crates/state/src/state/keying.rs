//! Cluster and agent key epochs: publication, scoped rotations,
//! re-encryption of secrets and retirement (the rules are documented in
//! `modules::clusters`).
//!
//! Only a holder of the current master key publishes keys, re-encrypts
//! secrets and retires epochs. The chain cannot check a public key against
//! a secret it never sees; it checks *which* epoch may be published next,
//! so every holder publishes the same thing, and it checks that retiring an
//! epoch strands no secret and cuts no call short.

use super::State;
use crate::error::TxError;
use crate::events::Event;
use crate::modules::agents::{AGENT_EPOCHS_MAX, AgentEpochKey, SECRET_BYTES_MAX, secret_epoch};
use crate::modules::clusters::{CLUSTER_EPOCHS_MAX, ClusterEpochKey};
use crate::modules::registry::WorkerPayload;
use phalanx_primitives::{Hash, PublicKey};

impl State {
    /// The current master epoch, if `sender` holds it.
    fn held_master_epoch(&self, sender: &PublicKey) -> Result<u64, TxError> {
        self.epochs.current.as_ref().filter(|c| c.holders.contains(sender)).map(|c| c.epoch).ok_or_else(|| {
            TxError::Gatekeeping("only holders of the current master key manage cluster and agent keys".into())
        })
    }

    /// Checks a scoped rotation request (`RotateClusterKey` / `RotateAgentKey`).
    pub(super) fn check_scoped_rotation(
        &self,
        signer: &PublicKey,
        cluster: Option<&Hash>,
        agent: Option<&Hash>,
    ) -> Result<(), TxError> {
        let governance = self.params.governance.contains(signer);
        if let Some(id) = cluster {
            if !governance {
                return Err(TxError::NotGovernance);
            }
            let found = self.clusters.get(id).ok_or_else(|| TxError::Cluster(format!("no cluster {id}")))?;
            if found.newest_key().is_none() {
                return Err(TxError::Cluster(format!("cluster {id} has no key yet")));
            }
            if found.rotation_requested || found.keys.len() > 1 {
                return Err(TxError::Cluster(format!(
                    "the previous rotation of cluster {id} is still finishing (epochs {:?} kept)",
                    found.keys.iter().map(|k| k.epoch).collect::<Vec<_>>()
                )));
            }
        }
        if let Some(id) = agent {
            let found = self.agents.get(id).ok_or_else(|| TxError::Agent(format!("no agent {id}")))?;
            if &found.owner != signer && !governance {
                return Err(TxError::NotAgentOwner(*id));
            }
            if found.newest_key().is_none() {
                return Err(TxError::Agent(format!("agent {id} has no key yet")));
            }
            if found.rotation_requested || found.keys.len() > 1 {
                return Err(TxError::Agent(format!(
                    "the previous rotation of agent {id} is still finishing (epochs {:?} kept)",
                    found.keys.iter().map(|k| k.epoch).collect::<Vec<_>>()
                )));
            }
        }
        Ok(())
    }

    pub(super) fn apply_scoped_rotation(
        &mut self,
        cluster: Option<&Hash>,
        agent: Option<&Hash>,
        emit: &mut impl FnMut(Event),
    ) {
        if let Some(id) = cluster {
            let mut found = self.clusters.get(id).expect("checked").clone();
            found.rotation_requested = true;
            emit(Event::KeyRotationRequested { scope: "cluster".into(), id: *id });
            self.set_cluster(found);
        }
        if let Some(id) = agent {
            let mut found = self.agents.get(id).expect("checked").clone();
            found.rotation_requested = true;
            emit(Event::KeyRotationRequested { scope: "agent".into(), id: *id });
            self.set_agent(found);
        }
    }

    /// Checks a key message from `sender`; `Ok(false)` if it is not one.
    pub(super) fn check_key_message(&self, sender: &PublicKey, payload: &WorkerPayload) -> Result<bool, TxError> {
        let height = self.head.height;
        match payload {
            WorkerPayload::ClusterKeyPublish { cluster, epoch, .. } => {
                let master = self.held_master_epoch(sender)?;
                let found =
                    self.clusters.get(cluster).ok_or_else(|| TxError::Cluster(format!("no cluster {cluster}")))?;
                let due = found.due_key_epoch(master);
                if due != Some(*epoch) {
                    return Err(TxError::Cluster(format!("cluster {cluster} expects key epoch {due:?}, not {epoch}")));
                }
            }
            WorkerPayload::AgentKeyPublish { agent, epoch, .. } => {
                self.held_master_epoch(sender)?;
                let found = self.agents.get(agent).ok_or_else(|| TxError::Agent(format!("no agent {agent}")))?;
                let cluster = self.clusters.get(&found.cluster).expect("agents name existing clusters");
                let ready = cluster
                    .ready_key(height)
                    .ok_or_else(|| TxError::Agent(format!("the key of cluster {} is not ready", found.cluster)))?;
                let due = found.due_key_epoch(ready.epoch);
                if due != Some(*epoch) {
                    return Err(TxError::Agent(format!("agent {agent} expects key epoch {due:?}, not {epoch}")));
                }
            }
            WorkerPayload::ClusterKeyReceived { cluster, epoch } => {
                let found =
                    self.clusters.get(cluster).ok_or_else(|| TxError::Cluster(format!("no cluster {cluster}")))?;
                if !found.workers.contains(sender) {
                    return Err(TxError::Cluster(format!("{sender} is not a worker of {cluster}")));
                }
                let key = found.key(*epoch).ok_or_else(|| TxError::Cluster(format!("no epoch {epoch} key")))?;
                if key.received.contains(sender) {
                    return Err(TxError::Cluster("receipt already reported".into()));
                }
            }
            WorkerPayload::SecretResealed { agent, name, replaces, sealed } => {
                self.held_master_epoch(sender)?;
                let found = self.agents.get(agent).ok_or_else(|| TxError::Agent(format!("no agent {agent}")))?;
                let secret = found
                    .secrets
                    .iter()
                    .find(|s| &s.name == name)
                    .ok_or_else(|| TxError::Agent(format!("the agent has no secret {name:?}")))?;
                if phalanx_primitives::sha256(&secret.sealed) != *replaces {
                    return Err(TxError::Agent(format!("secret {name:?} changed since it was re-encrypted")));
                }
                if sealed.is_empty() || sealed.len() > SECRET_BYTES_MAX {
                    return Err(TxError::Agent(format!("a sealed secret is 1 to {SECRET_BYTES_MAX} bytes")));
                }
                let newest = found.newest_key().map(|k| k.epoch);
                let header =
                    phalanx_keys::Header::peek(sealed).map_err(|e| TxError::Agent(format!("not an envelope: {e}")))?;
                if header.key.kind != phalanx_keys::envelope::KeyKind::Agent
                    || header.key.id != *agent
                    || header.purpose != phalanx_keys::Purpose::Secret
                    || Some(header.key.epoch) != newest
                {
                    return Err(TxError::Agent(format!(
                        "a re-encrypted secret is sealed to the agent's newest key ({newest:?})"
                    )));
                }
                if secret_epoch(&secret.sealed) == newest {
                    return Err(TxError::Agent(format!("secret {name:?} is already under the newest key")));
                }
            }
            WorkerPayload::AgentKeyRetire { agent, epoch } => {
                self.held_master_epoch(sender)?;
                let found = self.agents.get(agent).ok_or_else(|| TxError::Agent(format!("no agent {agent}")))?;
                found.retirable(*epoch, height).map_err(TxError::Agent)?;
            }
            WorkerPayload::ClusterKeyRetire { cluster, epoch } => {
                self.held_master_epoch(sender)?;
                let found =
                    self.clusters.get(cluster).ok_or_else(|| TxError::Cluster(format!("no cluster {cluster}")))?;
                found.retirable(*epoch, height).map_err(TxError::Cluster)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Applies a checked key message from `worker`; `false` if it is not one.
    pub(super) fn apply_key_message(
        &mut self,
        worker: &PublicKey,
        payload: &WorkerPayload,
        emit: &mut impl FnMut(Event),
    ) -> bool {
        let height = self.head.height;
        match payload.clone() {
            WorkerPayload::ClusterKeyPublish { cluster, epoch, public } => {
                let master_epoch = self.epochs.current.as_ref().expect("checked").epoch;
                let mut found = self.clusters.get(&cluster).expect("checked").clone();
                found.keys.push(ClusterEpochKey {
                    epoch,
                    master_epoch,
                    public,
                    received: Vec::new(),
                    published_at: height,
                    agent_keys: 0,
                });
                found.rotation_requested = false;
                emit(Event::ClusterKeyPublished { cluster, epoch });
                let mut dropped = Vec::new();
                while found.keys.len() > CLUSTER_EPOCHS_MAX {
                    dropped.push(found.keys.remove(0).epoch);
                }
                self.set_cluster(found);
                for epoch in dropped {
                    emit(Event::KeyRetired { scope: "cluster".into(), id: cluster, epoch, forced: true });
                    self.drop_agent_keys_of(&cluster, epoch, emit);
                }
            }
            WorkerPayload::AgentKeyPublish { agent, epoch, public } => {
                let mut found = self.agents.get(&agent).expect("checked").clone();
                let mut cluster = self.clusters.get(&found.cluster).expect("checked").clone();
                let cluster_epoch = cluster.ready_key(height).expect("checked").epoch;
                found.keys.push(AgentEpochKey { epoch, cluster_epoch, public, published_at: height });
                found.key_epoch_last = epoch;
                found.rotation_requested = false;
                emit(Event::AgentKeyPublished { agent, epoch, cluster_epoch });
                count_agent_key(&mut cluster.keys, cluster_epoch, true);
                while found.keys.len() > AGENT_EPOCHS_MAX {
                    let old = found.keys.remove(0);
                    count_agent_key(&mut cluster.keys, old.cluster_epoch, false);
                    emit(Event::KeyRetired { scope: "agent".into(), id: agent, epoch: old.epoch, forced: true });
                }
                self.set_cluster(cluster);
                self.set_agent(found);
            }
            WorkerPayload::ClusterKeyReceived { cluster, epoch } => {
                let mut found = self.clusters.get(&cluster).expect("checked").clone();
                let key = found.keys.iter_mut().find(|k| k.epoch == epoch).expect("checked");
                key.received.push(*worker);
                emit(Event::ClusterKeyReceived { cluster, epoch, worker: *worker });
                self.set_cluster(found);
            }
            WorkerPayload::SecretResealed { agent, name, sealed, .. } => {
                let mut found = self.agents.get(&agent).expect("checked").clone();
                let epoch = found.newest_key().expect("checked").epoch;
                found.secrets.iter_mut().find(|s| s.name == name).expect("checked").sealed = sealed;
                emit(Event::SecretResealed { agent, name, epoch });
                self.set_agent(found);
            }
            WorkerPayload::AgentKeyRetire { agent, epoch } => {
                let mut found = self.agents.get(&agent).expect("checked").clone();
                let position = found.keys.iter().position(|k| k.epoch == epoch).expect("checked");
                let old = found.keys.remove(position);
                let mut cluster = self.clusters.get(&found.cluster).expect("agents name existing clusters").clone();
                count_agent_key(&mut cluster.keys, old.cluster_epoch, false);
                emit(Event::KeyRetired { scope: "agent".into(), id: agent, epoch, forced: false });
                self.set_cluster(cluster);
                self.set_agent(found);
            }
            WorkerPayload::ClusterKeyRetire { cluster, epoch } => {
                let mut found = self.clusters.get(&cluster).expect("checked").clone();
                found.keys.retain(|k| k.epoch != epoch);
                emit(Event::KeyRetired { scope: "cluster".into(), id: cluster, epoch, forced: false });
                self.set_cluster(found);
            }
            _ => return false,
        }
        true
    }

    /// Drops the agent keys of `cluster` that derive from its dropped key
    /// `epoch` (only when the limit on kept epochs forced it: a scan of all
    /// agents, which the retirement rules make rare).
    fn drop_agent_keys_of(&mut self, cluster: &Hash, epoch: u64, emit: &mut impl FnMut(Event)) {
        let affected: Vec<Hash> = self
            .agents
            .values()
            .filter(|a| &a.cluster == cluster && a.keys.iter().any(|k| k.cluster_epoch == epoch))
            .map(|a| a.id)
            .collect();
        for id in affected {
            let mut found = self.agents.get(&id).expect("listed").clone();
            for old in found.keys.iter().filter(|k| k.cluster_epoch == epoch) {
                emit(Event::KeyRetired { scope: "agent".into(), id, epoch: old.epoch, forced: true });
            }
            found.keys.retain(|k| k.cluster_epoch != epoch);
            self.set_agent(found);
        }
    }
}

/// Counts an agent key epoch deriving from cluster key `epoch` in or out.
fn count_agent_key(keys: &mut [ClusterEpochKey], epoch: u64, add: bool) {
    if let Some(key) = keys.iter_mut().find(|k| k.epoch == epoch) {
        key.agent_keys = if add { key.agent_keys + 1 } else { key.agent_keys.saturating_sub(1) };
    }
}
