//! One agent instance: a QuickJS runtime and context holding the agent's
//! module, with its limits enforced.
//!
//! - Memory and stack are QuickJS runtime limits.
//! - CPU time is enforced by the interrupt handler, which QuickJS polls while
//!   JavaScript runs; an interrupt is uncatchable by the agent.
//! - Wall time bounds the whole call, including waits on the host.
//! - `import` of anything is refused: an agent is one bundled module.
//!
//! After any limit is hit the instance is *poisoned* and must be replaced:
//! QuickJS can be left with a pending interrupt, and an out-of-memory error
//! is catchable by the agent, so the only safe state after a violation is a
//! fresh runtime. Other agents never share a runtime with this one.

use crate::fetch::{FetchPolicy, Fetcher};
use crate::limits::Limits;
use crate::typescript::{SourceError, to_javascript};
use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::{AsyncContext, AsyncRuntime, Ctx, Error, FromJs, Function, Module, Object, Promise, TypedArray, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why an agent could not be loaded or called.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SandboxError {
    #[error("cannot create the JavaScript runtime: {0}")]
    Runtime(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("agent module failed to load: {0}")]
    Load(String),
    #[error("agent module has no default export with a {0}() method")]
    NoHandler(String),
    #[error("agent threw: {0}")]
    Threw(String),
    #[error("agent exceeded its CPU time limit of {limit_ms} ms")]
    CpuTime { limit_ms: u128 },
    #[error("agent exceeded its wall time limit of {limit_ms} ms")]
    WallTime { limit_ms: u128 },
    #[error("agent exceeded its memory limit of {limit_bytes} bytes")]
    Memory { limit_bytes: usize },
    #[error("this agent instance hit a limit earlier and must be replaced")]
    Poisoned,
    #[error("no agent module is loaded")]
    NotLoaded,
}

/// An HTTP request handed to an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// Absolute URL.
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// An agent's HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Lowercased names, sorted, as `Headers` iterates them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One line an agent wrote with `console.*` (captured, never printed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: String,
    pub message: String,
}

/// The result of a `fetch` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub response: HttpResponse,
    pub logs: Vec<LogLine>,
}

/// Message of every refused import.
const NO_IMPORTS: &str = "imports are disabled in the agent sandbox: bundle the agent into one module";

/// Refuses every static and dynamic import.
struct DenyImports;

impl Resolver for DenyImports {
    fn resolve<'js>(
        &mut self,
        _: &Ctx<'js>,
        base: &str,
        name: &str,
        _: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        Err(Error::new_resolving_message(base, name, NO_IMPORTS))
    }
}

impl Loader for DenyImports {
    fn load<'js>(
        &mut self,
        _: &Ctx<'js>,
        name: &str,
        _: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js>> {
        Err(Error::new_loading_message(name, NO_IMPORTS))
    }
}

/// The CPU deadline the interrupt handler checks.
#[derive(Debug)]
struct Deadline {
    epoch: Instant,
    /// Nanoseconds since `epoch` after which JavaScript is interrupted; 0 = none.
    at_ns: AtomicU64,
    fired: AtomicBool,
}

impl Deadline {
    fn arm(&self, budget: Duration) {
        self.fired.store(false, Ordering::Relaxed);
        let at = self.epoch.elapsed() + budget;
        self.at_ns.store(at.as_nanos().max(1) as u64, Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.at_ns.store(0, Ordering::Relaxed);
    }

    fn check(&self) -> bool {
        let at = self.at_ns.load(Ordering::Relaxed);
        if at != 0 && self.epoch.elapsed().as_nanos() as u64 > at {
            self.fired.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// Glue evaluated in every context: keeps the agent's default export out of
/// reach of the host's API and calls its methods.
const GLUE_JS: &str = r#"
(() => {
  let agent;
  Object.defineProperty(globalThis, "__phalanxSetAgent", { value: (a) => { agent = a; } });
  Object.defineProperty(globalThis, "__phalanxInvoke", {
    value: async (method, argument) => JSON.stringify(await agent[method](JSON.parse(argument))),
  });
  Object.defineProperty(globalThis, "__phalanxFetchAgent", {
    value: (url, method, headers, body, env) => globalThis.__phalanxFetch(agent, url, method, headers, body, env),
  });
})();
"#;

/// One agent instance.
pub struct Sandbox {
    runtime: AsyncRuntime,
    context: AsyncContext,
    limits: Limits,
    deadline: Arc<Deadline>,
    fetcher: Arc<Fetcher>,
    loaded: bool,
    poisoned: AtomicBool,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("limits", &self.limits).field("loaded", &self.loaded).finish_non_exhaustive()
    }
}

impl Sandbox {
    /// A fresh runtime with `limits`, the default (public internet only)
    /// fetch policy, and nothing loaded.
    pub async fn new(limits: Limits) -> Result<Self, SandboxError> {
        Self::with_policy(limits, FetchPolicy::default()).await
    }

    /// A fresh runtime with `limits` and `policy` for its `fetch`.
    pub async fn with_policy(limits: Limits, policy: FetchPolicy) -> Result<Self, SandboxError> {
        let fetcher = Fetcher::new(policy).map_err(SandboxError::Runtime)?;
        let installed = fetcher.clone();
        let runtime = AsyncRuntime::new().map_err(|e| SandboxError::Runtime(e.to_string()))?;
        runtime.set_memory_limit(limits.memory_bytes_max).await;
        runtime.set_max_stack_size(limits.stack_bytes_max).await;
        let deadline =
            Arc::new(Deadline { epoch: Instant::now(), at_ns: AtomicU64::new(0), fired: AtomicBool::new(false) });
        let check = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || check.check()))).await;
        runtime.set_loader(DenyImports, DenyImports).await;
        let context = AsyncContext::full(&runtime).await.map_err(|e| SandboxError::Runtime(e.to_string()))?;
        context
            .with(|ctx| {
                ctx.eval::<(), _>(GLUE_JS)
                    .and_then(|()| crate::web::install(&ctx, installed))
                    .map_err(|e| SandboxError::Runtime(describe(&ctx, e)))
            })
            .await?;
        Ok(Sandbox { runtime, context, limits, deadline, fetcher, loaded: false, poisoned: AtomicBool::new(false) })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether a limit was hit: the instance must then be replaced.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    /// Bytes of JavaScript heap in use.
    pub async fn memory_used_bytes(&self) -> i64 {
        self.runtime.memory_usage().await.memory_used_size
    }

    /// Loads the agent module (`file_name` says whether it is TypeScript),
    /// runs its top level, and checks that its default export has `handler`.
    pub async fn load(&mut self, file_name: &str, source: &str, handler: &str) -> Result<(), SandboxError> {
        if self.is_poisoned() {
            return Err(SandboxError::Poisoned);
        }
        let javascript = to_javascript(source, file_name)?;
        let (name, handler_name) = (file_name.to_string(), handler.to_string());
        self.deadline.arm(self.limits.cpu_time_max);
        let result = self
            .context
            .async_with(async move |ctx| {
                let loaded: rquickjs::Result<bool> = async {
                    let (module, evaluated) = Module::declare(ctx.clone(), name, javascript)?.eval()?;
                    evaluated.into_future::<()>().await?;
                    let default: Value = module.get("default")?;
                    let Some(agent) = default.into_object() else { return Ok(false) };
                    if !agent.get::<_, Value>(handler_name.as_str())?.is_function() {
                        return Ok(false);
                    }
                    ctx.globals().get::<_, Function>("__phalanxSetAgent")?.call::<_, ()>((agent,))?;
                    Ok(true)
                }
                .await;
                loaded.map_err(|e| describe(&ctx, e))
            })
            .await;
        self.deadline.disarm();
        match self.violation().or_else(|| result.clone().err().map(SandboxError::Load)) {
            Some(error) => Err(error),
            None if result == Ok(true) => {
                self.loaded = true;
                Ok(())
            }
            None => Err(SandboxError::NoHandler(handler.to_string())),
        }
    }

    /// Calls `method` of the agent's default export with one JSON argument
    /// and returns its (awaited) result as JSON.
    pub async fn call_json(&self, method: &str, argument_json: &str) -> Result<String, SandboxError> {
        let (method, argument) = (method.to_string(), argument_json.to_string());
        self.run(
            move |ctx| ctx.globals().get::<_, Function>("__phalanxInvoke")?.call((method, argument)),
            |_, value| String::from_js(&value.ctx().clone(), value),
        )
        .await
    }

    /// Runs the agent's `fetch(request, env, ctx)` on an HTTP request and
    /// returns its response and the console lines it wrote.
    pub async fn fetch(&self, request: HttpRequest, env: Vec<(String, String)>) -> Result<Fetched, SandboxError> {
        self.run(
            move |ctx| {
                let env_object = Object::new(ctx.clone())?;
                for (name, value) in env {
                    env_object.set(name, value)?;
                }
                let headers: Vec<Vec<String>> = request.headers.into_iter().map(|(k, v)| vec![k, v]).collect();
                let body = request.body.map(|bytes| TypedArray::<u8>::new(ctx.clone(), bytes)).transpose()?;
                ctx.globals().get::<_, Function>("__phalanxFetchAgent")?.call((
                    request.url,
                    request.method,
                    headers,
                    body,
                    env_object,
                ))
            },
            |ctx, value| {
                let object = Object::from_value(value)?;
                let headers: Vec<Vec<String>> = object.get("headers")?;
                let logs: Vec<Vec<String>> = ctx.globals().get::<_, Function>("__phalanxDrainLogs")?.call(())?;
                Ok(Fetched {
                    response: HttpResponse {
                        status: object.get("status")?,
                        headers: headers
                            .into_iter()
                            .filter_map(|pair| <[String; 2]>::try_from(pair).ok())
                            .map(|[k, v]| (k, v))
                            .collect(),
                        body: object.get("body")?,
                    },
                    logs: logs
                        .into_iter()
                        .filter_map(|pair| <[String; 2]>::try_from(pair).ok())
                        .map(|[level, message]| LogLine { level, message })
                        .collect(),
                })
            },
        )
        .await
    }

    /// Starts a call (`start` returns the promise of its result), awaits it
    /// within the limits, and converts the result with `finish`.
    async fn run<T, S, F>(&self, start: S, finish: F) -> Result<T, SandboxError>
    where
        T: Send + 'static,
        S: for<'js> FnOnce(&Ctx<'js>) -> rquickjs::Result<Promise<'js>> + Send + 'static,
        F: for<'js> FnOnce(&Ctx<'js>, Value<'js>) -> rquickjs::Result<T> + Send + 'static,
    {
        if self.is_poisoned() {
            return Err(SandboxError::Poisoned);
        }
        if !self.loaded {
            return Err(SandboxError::NotLoaded);
        }
        let wall = self.limits.wall_time_max;
        self.fetcher.reset();
        self.deadline.arm(self.limits.cpu_time_max);
        let result = self
            .context
            .async_with(async move |ctx| {
                // A previous call's interrupted background job may have left
                // an exception pending; it must not leak into this call.
                if ctx.has_exception() {
                    let _ = ctx.catch();
                }
                let called: rquickjs::Result<Option<T>> = async {
                    let promise = start(&ctx)?;
                    match tokio::time::timeout(wall, promise.into_future::<Value>()).await {
                        Ok(value) => finish(&ctx, value?).map(Some),
                        Err(_) => Ok(None),
                    }
                }
                .await;
                called.map_err(|e| describe(&ctx, e))
            })
            .await;
        self.deadline.disarm();
        if let Some(violation) = self.violation() {
            return Err(violation);
        }
        match result {
            Ok(Some(value)) => Ok(value),
            Ok(None) => {
                self.poisoned.store(true, Ordering::Relaxed);
                Err(SandboxError::WallTime { limit_ms: wall.as_millis() })
            }
            Err(message) if message.contains("out of memory") => {
                self.poisoned.store(true, Ordering::Relaxed);
                Err(SandboxError::Memory { limit_bytes: self.limits.memory_bytes_max })
            }
            Err(message) => Err(SandboxError::Threw(message)),
        }
    }

    /// The CPU limit fired during the last run: poison and report it.
    fn violation(&self) -> Option<SandboxError> {
        if self.deadline.fired.load(Ordering::Relaxed) {
            self.poisoned.store(true, Ordering::Relaxed);
            return Some(SandboxError::CpuTime { limit_ms: self.limits.cpu_time_max.as_millis() });
        }
        None
    }
}

/// Turns an engine error into a message, taking the pending JS exception.
fn describe(ctx: &Ctx<'_>, error: Error) -> String {
    match error {
        Error::Exception => {
            let value: Value = ctx.catch();
            match value.as_exception() {
                Some(exception) => {
                    let name: String = exception.get("name").unwrap_or_else(|_| "Error".into());
                    format!("{name}: {}", exception.message().unwrap_or_default())
                }
                None => format!("non-error value thrown: {value:?}"),
            }
        }
        other => other.to_string(),
    }
}
