//! The gateway's cache of derived agent keys and opened secrets.
//!
//! Deriving an agent key computes an X25519 public key, and opening a
//! secret is an X25519 agreement: done per call they dominated encrypted
//! calls and calls of agents with secrets. Entries are valid only for the
//! keyring they were derived from: when the runtime publishes a new keyring
//! (a key arrived or was retired), everything is dropped, so a retired
//! key's derivatives never outlive it. Opened secret values are zeroized
//! when dropped. Both maps are bounded; when full they start over.

use crate::server::Keyring;
use phalanx_keys::AgentKey;
use phalanx_primitives::Hash;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zeroize::Zeroize;

/// Most derived agent keys kept.
pub const AGENT_KEYS_CACHED_MAX: usize = 16_384;
/// Most agents whose opened secrets are kept.
pub const SECRET_SETS_CACHED_MAX: usize = 4_096;

/// An agent's opened secrets, as `env` pairs (zeroized when dropped).
#[derive(Default)]
pub struct Opened(pub(crate) Vec<(String, String)>);

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opened({} secrets, values redacted)", self.0.len())
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        for (_, value) in &mut self.0 {
            value.zeroize();
        }
    }
}

#[derive(Default)]
struct Inner {
    keyring: Option<Arc<Keyring>>,
    agent_keys: HashMap<(Hash, u64), AgentKey>,
    /// (agent, SHA-256 of its sealed secrets) → the opened values.
    secrets: HashMap<(Hash, Hash), Arc<Opened>>,
}

impl Inner {
    /// Drops everything derived from another keyring.
    fn follow(&mut self, keyring: &Arc<Keyring>) {
        if !self.keyring.as_ref().is_some_and(|k| Arc::ptr_eq(k, keyring)) {
            self.agent_keys.clear();
            self.secrets.clear();
            self.keyring = Some(keyring.clone());
        }
    }
}

/// Derived agent keys and opened secrets for one gateway.
#[derive(Default)]
pub struct KeyCache {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCache(redacted)")
    }
}

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The agent key of (`agent`, `epoch`) under `keyring`, derived by `derive` on a miss.
    pub(crate) fn agent_key<E>(
        &self,
        keyring: &Arc<Keyring>,
        agent: Hash,
        epoch: u64,
        derive: impl FnOnce() -> Result<AgentKey, E>,
    ) -> Result<AgentKey, E> {
        {
            let mut inner = self.lock();
            inner.follow(keyring);
            if let Some(key) = inner.agent_keys.get(&(agent, epoch)) {
                return Ok(key.clone());
            }
        }
        let key = derive()?;
        let mut inner = self.lock();
        inner.follow(keyring);
        if inner.agent_keys.len() >= AGENT_KEYS_CACHED_MAX {
            inner.agent_keys.clear();
        }
        inner.agent_keys.insert((agent, epoch), key.clone());
        Ok(key)
    }

    /// The opened secrets of `agent` (identified by the hash of its sealed
    /// secrets) under `keyring`, opened by `open` on a miss.
    pub(crate) fn secrets<E>(
        &self,
        keyring: &Arc<Keyring>,
        agent: Hash,
        sealed: Hash,
        open: impl FnOnce() -> Result<Opened, E>,
    ) -> Result<Arc<Opened>, E> {
        {
            let mut inner = self.lock();
            inner.follow(keyring);
            if let Some(opened) = inner.secrets.get(&(agent, sealed)) {
                return Ok(opened.clone());
            }
        }
        let opened = Arc::new(open()?);
        let mut inner = self.lock();
        inner.follow(keyring);
        if inner.secrets.len() >= SECRET_SETS_CACHED_MAX {
            inner.secrets.clear();
        }
        inner.secrets.insert((agent, sealed), opened.clone());
        Ok(opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_follow_the_keyring() {
        let cache = KeyCache::default();
        let (first, second) = (Arc::new(Keyring::new()), Arc::new(Keyring::new()));
        let master = phalanx_keys::MasterKey::from_bytes([1; 32], 1);
        let key = || Ok::<_, ()>(master.cluster_key(&Hash([2; 32])).agent_key(&Hash([3; 32])));
        let derived = std::cell::Cell::new(0);
        let count = || {
            derived.set(derived.get() + 1);
            key()
        };
        cache.agent_key(&first, Hash([3; 32]), 1, count).unwrap();
        cache.agent_key(&first, Hash([3; 32]), 1, count).unwrap();
        assert_eq!(derived.get(), 1, "a hit derives nothing");
        cache.agent_key(&second, Hash([3; 32]), 1, count).unwrap();
        assert_eq!(derived.get(), 2, "a new keyring drops what the old one derived");
        let opened = cache
            .secrets(&second, Hash([3; 32]), Hash([4; 32]), || Ok::<_, ()>(Opened(vec![("K".into(), "v".into())])))
            .unwrap();
        assert_eq!(opened.0[0].1, "v");
        let again = cache.secrets(&second, Hash([3; 32]), Hash([4; 32]), || Err(())).unwrap();
        assert!(Arc::ptr_eq(&opened, &again));
        assert!(cache.secrets(&first, Hash([3; 32]), Hash([4; 32]), || Err(())).is_err(), "dropped with the keyring");
    }
}
