//! Agent commands: messages the chain orders for an agent's
//! `command(message, env, ctx)`.
//!
//! The chain does not run agents. It decides who may send a command, bounds
//! it, and numbers it: each agent counts its commands (`Agent::commands`),
//! and the event `AgentCommand { agent, seq }` tells every worker of the
//! agent's cluster which number the command has, so each applies every
//! command once, in order, whatever it missed or replayed.
//!
//! Who may send: the owner always; anyone for a public agent; listed
//! accounts for an allowlisted one. Paid agents take commands only from
//! their owner until deposits exist. From inside the agent (`ctx.submit`),
//! a worker of the agent's cluster sends the command on the agent's behalf.
//! A paused agent takes no commands.

use super::State;
use crate::error::TxError;
use crate::events::Event;
use crate::modules::agents::{Access, COMMAND_BYTES_MAX, CommandPayload, CommandSender};
use phalanx_primitives::Hash;

impl State {
    /// Checks a command for `agent` from `from`.
    pub(super) fn check_command(
        &self,
        from: &CommandSender,
        agent: &Hash,
        payload: &CommandPayload,
    ) -> Result<(), TxError> {
        let found = self.agents.get(agent).ok_or_else(|| TxError::Agent(format!("no agent {agent}")))?;
        if found.paused {
            return Err(TxError::Agent(format!("agent {agent} is paused and takes no commands")));
        }
        let bytes = payload.bytes();
        if bytes.is_empty() || bytes.len() > COMMAND_BYTES_MAX {
            return Err(TxError::Agent(format!("a command payload is 1 to {COMMAND_BYTES_MAX} bytes")));
        }
        match payload {
            CommandPayload::Plain(json) => {
                if serde_json::from_slice::<serde::de::IgnoredAny>(json).is_err() {
                    return Err(TxError::Agent("a plain command payload must be JSON".into()));
                }
            }
            CommandPayload::Sealed(envelope) => {
                let header =
                    phalanx_keys::Header::peek(envelope).map_err(|e| TxError::Agent(format!("sealed command: {e}")))?;
                let names_agent = header.key.kind == phalanx_keys::envelope::KeyKind::Agent
                    && header.key.id == *agent
                    && header.agent == *agent;
                let request = header.direction == phalanx_keys::envelope::Direction::Request && header.sequence == 0;
                if !names_agent || !request || header.purpose != phalanx_keys::envelope::Purpose::Call {
                    return Err(TxError::Agent(format!("a sealed command must be a call envelope for agent {agent}")));
                }
                if found.key(header.key.epoch).is_none() {
                    return Err(TxError::Agent(format!(
                        "agent {agent} keeps no key of epoch {} (seal to its newest key)",
                        header.key.epoch
                    )));
                }
            }
        }
        match from {
            CommandSender::Account(account) => {
                let allowed = *account == found.owner
                    || match &found.access {
                        Access::Public => true,
                        Access::Allowlist { accounts } => accounts.contains(account),
                        Access::Paid => false,
                    };
                if !allowed {
                    let why = match found.access {
                        Access::Paid => "agent takes paid commands only once deposits exist; only its owner may send",
                        _ => "the agent's access policy does not list this account",
                    };
                    return Err(TxError::Agent(format!("command refused: {why}")));
                }
            }
            CommandSender::Agent(id) => {
                if id != agent {
                    return Err(TxError::WorkerMessage("an agent submits commands only to itself".into()));
                }
            }
        }
        Ok(())
    }

    /// Checks that `worker` may send a command on behalf of `agent`: it must
    /// be a member of the agent's cluster.
    pub(super) fn check_worker_command(
        &self,
        worker: &phalanx_primitives::PublicKey,
        agent: &Hash,
    ) -> Result<(), TxError> {
        let found = self.agents.get(agent).ok_or_else(|| TxError::Agent(format!("no agent {agent}")))?;
        let member = self.clusters.get(&found.cluster).is_some_and(|c| c.workers.contains(worker));
        if !member {
            return Err(TxError::WorkerMessage(format!("worker {worker} is not in the cluster of agent {agent}")));
        }
        Ok(())
    }

    /// Numbers a checked command. Nothing can fail here.
    pub(super) fn apply_command(&mut self, from: CommandSender, agent: &Hash, emit: &mut impl FnMut(Event)) {
        let mut found = self.agents.get(agent).expect("checked").clone();
        found.commands += 1;
        emit(Event::AgentCommand { agent: *agent, seq: found.commands, from });
        self.set_agent(found);
    }
}
