//! Agent logs: each call's `console` output, sealed inside the worker to the
//! owner's log key from the chain (`Agent::log_key`) and kept in memory.
//!
//! A batch is the JSON lines of one call in an envelope (purpose `Log`,
//! key kind `Account`, id the owner's account) that only the owner's log key
//! opens; the gateway serves the sealed batches at `GET /logs/{agent}`, so
//! the host, the network and anyone else see ciphertext only. Agents whose
//! owner set no log key keep no logs. Kept: the last
//! [`LOG_BATCHES_PER_AGENT_MAX`] batches of at most [`LOG_AGENTS_MAX`]
//! agents (the agent heard from longest ago goes first); a restart loses them.

use phalanx_keys::envelope::KeyKind;
use phalanx_keys::{Envelope, KeyRef, Purpose};
use phalanx_primitives::{Hash, PublicKey};
use phalanx_sandbox::LogLine;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Batches kept per agent.
pub const LOG_BATCHES_PER_AGENT_MAX: usize = 256;
/// Agents whose logs are kept at once.
pub const LOG_AGENTS_MAX: usize = 4096;
/// Batches in one `GET /logs/{agent}` answer.
pub const LOG_BATCHES_PER_ANSWER_MAX: usize = 64;

/// Where one agent's logs go: the agent and its owner's log key.
#[derive(Clone, Copy, Debug)]
pub struct LogTarget {
    pub agent: Hash,
    pub owner: PublicKey,
    pub key: [u8; 32],
}

impl LogTarget {
    /// The target of `agent`'s logs, if its owner set a log key.
    pub fn of(agent: &phalanx_state::Agent) -> Option<LogTarget> {
        Some(LogTarget { agent: agent.id, owner: agent.owner, key: agent.log_key? })
    }
}

/// One sealed batch.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Batch {
    pub sequence: u64,
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub sealed: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    by_agent: HashMap<Hash, VecDeque<Batch>>,
    /// Agents by when they were last heard from, oldest first.
    order: VecDeque<Hash>,
}

/// The sealed logs a gateway keeps.
#[derive(Debug, Default)]
pub struct LogStore {
    inner: Mutex<Inner>,
}

/// The JSON of one line inside a batch.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Line {
    pub level: String,
    pub message: String,
}

impl LogStore {
    /// Seals `lines` to the target's log key and keeps the batch.
    pub fn record(&self, target: Option<LogTarget>, lines: &[LogLine]) {
        let Some(target) = target else { return };
        if lines.is_empty() {
            return;
        }
        let lines: Vec<Line> =
            lines.iter().map(|l| Line { level: l.level.clone(), message: l.message.clone() }).collect();
        let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(&lines).expect("in-memory encoding"));
        let key = KeyRef { kind: KeyKind::Account, id: Hash(target.owner.0), epoch: 0 };
        let Ok((sealed, _)) = Envelope::seal(&target.key, key, target.agent, Purpose::Log, &plaintext) else {
            tracing::warn!(agent = %target.agent, "the owner's log key is not usable; logs dropped");
            return;
        };
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let sequence = inner.next;
        inner.next += 1;
        inner.order.retain(|a| a != &target.agent);
        inner.order.push_back(target.agent);
        while inner.order.len() > LOG_AGENTS_MAX
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.by_agent.remove(&oldest);
        }
        let batches = inner.by_agent.entry(target.agent).or_default();
        batches.push_back(Batch { sequence, sealed });
        while batches.len() > LOG_BATCHES_PER_AGENT_MAX {
            batches.pop_front();
        }
    }

    /// Batches of `agent` after sequence `after` (all with `None`), oldest first.
    pub fn after(&self, agent: &Hash, after: Option<u64>) -> Vec<Batch> {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(batches) = inner.by_agent.get(agent) else { return Vec::new() };
        batches
            .iter()
            .filter(|b| after.is_none_or(|a| b.sequence > a))
            .take(LOG_BATCHES_PER_ANSWER_MAX)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_open_only_with_the_owners_key_and_are_bounded() {
        let owner_key = phalanx_keys::account_log_key(&[3; 32]);
        let target = LogTarget { agent: Hash([1; 32]), owner: PublicKey([2; 32]), key: owner_key.public() };
        let store = LogStore::default();
        let line = LogLine { level: "log".into(), message: "hello".into() };
        store.record(Some(target), &[]);
        assert!(store.after(&target.agent, None).is_empty(), "a call without output keeps nothing");
        for _ in 0..LOG_BATCHES_PER_AGENT_MAX + 5 {
            store.record(Some(target), std::slice::from_ref(&line));
        }
        store.record(None, std::slice::from_ref(&line));
        let kept = store.after(&target.agent, None);
        assert_eq!(kept.len(), LOG_BATCHES_PER_ANSWER_MAX);
        assert_eq!(kept[0].sequence, 5, "the oldest batches went first");
        assert!(store.after(&target.agent, Some(u64::MAX - 1)).is_empty());
        let opened = Envelope::open(&kept[0].sealed, &owner_key).unwrap();
        let lines: Vec<Line> = serde_json::from_slice(&opened.plaintext).unwrap();
        assert_eq!((lines[0].level.as_str(), lines[0].message.as_str()), ("log", "hello"));
        assert!(Envelope::open(&kept[0].sealed, &phalanx_keys::account_log_key(&[4; 32])).is_err());
        assert!(!kept[0].sealed.windows(5).any(|w| w == b"hello"), "sealed, not plain");
    }
}
