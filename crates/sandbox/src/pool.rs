//! Warm agent instances, reused across calls.
//!
//! An instance is a runtime and context holding one agent's module; making
//! one costs a few milliseconds, a warm call tens of microseconds. The pool
//! keeps idle instances per agent (keyed by the agent's id, never shared
//! between agents even when their code is the same), bounds how many run at
//! once per agent, and drops instances that hit a limit or whose code was
//! replaced. Module-level state persists across calls on one instance, as
//! in Cloudflare Workers; agents must not rely on it.

use crate::bindings::Binding;
use crate::code::AgentCode;
use crate::engine::{Sandbox, SandboxError};
use crate::fetch::FetchPolicy;
use crate::limits::Limits;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many instances the pool keeps and runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most instances of one agent running at once; further calls wait.
    pub instances_per_agent_max: usize,
    /// Most idle instances kept per agent.
    pub idle_per_agent_max: usize,
    /// Most idle instances kept in all.
    pub idle_total_max: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig { instances_per_agent_max: 8, idle_per_agent_max: 4, idle_total_max: 1024 }
    }
}

#[derive(Debug)]
struct Slot {
    code_hash: [u8; 32],
    idle: Vec<Sandbox>,
    running: Arc<Semaphore>,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    idle_total: usize,
}

/// Idle instances by agent.
#[derive(Debug)]
pub struct Pool {
    config: PoolConfig,
    inner: Mutex<Inner>,
}

impl Pool {
    pub fn new(config: PoolConfig) -> Arc<Self> {
        Arc::new(Pool { config, inner: Mutex::new(Inner::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An instance of `agent` running `code`: a warm idle one, or a new one
    /// made with `limits` and `policy`. Waits while the agent already runs
    /// its maximum number of instances. Returned to the pool when dropped.
    pub async fn lease(
        self: &Arc<Self>,
        agent: &str,
        code: &AgentCode,
        limits: Limits,
        policy: &FetchPolicy,
    ) -> Result<Lease, SandboxError> {
        self.lease_with(agent, code, limits, policy, &[]).await
    }

    /// [`lease`](Self::lease), with `bindings` on the `env` of new instances.
    pub async fn lease_with(
        self: &Arc<Self>,
        agent: &str,
        code: &AgentCode,
        limits: Limits,
        policy: &FetchPolicy,
        bindings: &[(String, Arc<dyn Binding>)],
    ) -> Result<Lease, SandboxError> {
        let running = {
            let mut inner = self.lock();
            let stale = inner.slots.get(agent).is_some_and(|slot| slot.code_hash != code.hash());
            if stale && let Some(old) = inner.slots.remove(agent) {
                inner.idle_total -= old.idle.len();
            }
            if let Some(slot) = inner.slots.get(agent) {
                slot.running.clone()
            } else {
                let running = Arc::new(Semaphore::new(self.config.instances_per_agent_max));
                let slot = Slot { code_hash: code.hash(), idle: Vec::new(), running: running.clone() };
                inner.slots.insert(agent.to_string(), slot);
                running
            }
        };
        let permit = running.acquire_owned().await.map_err(|_| SandboxError::Runtime("pool closed".into()))?;
        let warm = {
            let mut inner = self.lock();
            let warm = inner
                .slots
                .get_mut(agent)
                .filter(|slot| slot.code_hash == code.hash())
                .and_then(|slot| slot.idle.pop());
            if warm.is_some() {
                inner.idle_total -= 1;
            }
            warm
        };
        let sandbox = match warm {
            Some(sandbox) => sandbox,
            None => {
                let mut sandbox = Sandbox::with_policy(limits, policy.clone()).await?;
                for (name, binding) in bindings {
                    sandbox.bind(name, binding.clone()).await?;
                }
                sandbox.load_code(code, "fetch").await?;
                sandbox
            }
        };
        Ok(Lease { sandbox: Some(sandbox), pool: self.clone(), agent: agent.to_string(), _permit: permit })
    }

    /// Drops every idle instance of `agent` (it was paused, removed or upgraded).
    pub fn evict(&self, agent: &str) {
        let mut inner = self.lock();
        if let Some(slot) = inner.slots.remove(agent) {
            inner.idle_total -= slot.idle.len();
        }
    }

    /// Idle instances held, in all.
    pub fn idle(&self) -> usize {
        self.lock().idle_total
    }

    fn give_back(&self, agent: &str, sandbox: Sandbox) {
        if sandbox.is_poisoned() {
            return;
        }
        let mut inner = self.lock();
        if inner.idle_total >= self.config.idle_total_max {
            return;
        }
        let Some(slot) = inner.slots.get_mut(agent) else { return };
        if Some(slot.code_hash) != sandbox.code_hash() || slot.idle.len() >= self.config.idle_per_agent_max {
            return;
        }
        slot.idle.push(sandbox);
        inner.idle_total += 1;
    }
}

/// An instance on loan from the [`Pool`].
#[derive(Debug)]
pub struct Lease {
    sandbox: Option<Sandbox>,
    pool: Arc<Pool>,
    agent: String,
    _permit: OwnedSemaphorePermit,
}

impl Deref for Lease {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        self.sandbox.as_ref().expect("a lease holds its sandbox until dropped")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Sandbox {
        self.sandbox.as_mut().expect("a lease holds its sandbox until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(sandbox) = self.sandbox.take() {
            self.pool.give_back(&self.agent, sandbox);
        }
    }
}
