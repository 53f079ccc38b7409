//! Host objects on an agent's `env`: the hook through which the host gives
//! an agent capabilities beyond `fetch` (its encrypted state as `env.STATE`,
//! other agents as `env.AGENTS`, filled by the worker).
//!
//! A [`Binding`] names the methods it offers; the agent sees an object with
//! exactly those methods, each returning a Promise. Arguments go to the host
//! as one JSON array and the result comes back as JSON, both bounded. An
//! error from the host becomes a `TypeError` with its message in the agent.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Largest JSON of a binding call's arguments or result, in bytes.
pub const BINDING_JSON_BYTES_MAX: usize = 1024 * 1024;
/// Most binding calls during one agent call.
pub const BINDING_CALLS_PER_CALL_MAX: u32 = 1000;

/// The result of a binding call: JSON, or a message for the agent.
pub type BindingFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// A host object on `env`.
pub trait Binding: Send + Sync + std::fmt::Debug {
    /// The methods agents may call.
    fn methods(&self) -> Vec<String>;
    /// Runs `method` with `arguments_json` (a JSON array).
    fn call(&self, method: &str, arguments_json: String) -> BindingFuture;
    /// [`call`](Self::call) with the context the host set for the current
    /// agent call ([`crate::Sandbox::set_call_context`]): for example the
    /// chain of agents that led to it. Bindings that need no context keep
    /// the default.
    fn call_in(&self, _context: &str, method: &str, arguments_json: String) -> BindingFuture {
        self.call(method, arguments_json)
    }
}

/// The bindings of one instance, by index.
#[derive(Debug, Default)]
pub(crate) struct Bound {
    bindings: Mutex<Vec<Arc<dyn Binding>>>,
    calls: std::sync::atomic::AtomicU32,
    /// Set by the host before each call; read by bindings.
    context: Mutex<Arc<str>>,
}

impl Bound {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn Binding>>> {
        self.bindings.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a binding; returns its index.
    pub(crate) fn add(&self, binding: Arc<dyn Binding>) -> usize {
        let mut bindings = self.lock();
        bindings.push(binding);
        bindings.len() - 1
    }

    /// The context bindings see during the next calls.
    pub(crate) fn set_context(&self, context: &str) {
        *self.context.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::from(context);
    }

    /// A new agent call: the call count starts over.
    pub(crate) fn reset(&self) {
        self.calls.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Calls a method, within the limits.
    pub(crate) fn call(&self, index: usize, method: &str, arguments_json: String) -> BindingFuture {
        let calls = self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let refuse = |message: String| -> BindingFuture { Box::pin(async move { Err(message) }) };
        if calls > BINDING_CALLS_PER_CALL_MAX {
            return refuse(format!("at most {BINDING_CALLS_PER_CALL_MAX} binding calls per request"));
        }
        if arguments_json.len() > BINDING_JSON_BYTES_MAX {
            return refuse(format!("binding arguments are larger than {BINDING_JSON_BYTES_MAX} bytes"));
        }
        let Some(binding) = self.lock().get(index).cloned() else {
            return refuse("no such binding".into());
        };
        if !binding.methods().iter().any(|m| m == method) {
            return refuse(format!("the binding has no method {method}"));
        }
        let context = self.context.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let result = binding.call_in(&context, method, arguments_json);
        Box::pin(async move {
            let json = result.await?;
            if json.len() > BINDING_JSON_BYTES_MAX {
                return Err(format!("binding result is larger than {BINDING_JSON_BYTES_MAX} bytes"));
            }
            Ok(json)
        })
    }
}
