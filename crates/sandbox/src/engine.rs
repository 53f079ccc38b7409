//! One agent instance: a QuickJS runtime and context holding the agent's
//! module, with its limits enforced.
//!
//! - Memory and stack are QuickJS runtime limits.
//! - CPU time is the time spent inside polls of the call (JavaScript and
//!   host glue, not waits on the network or timers), enforced by the
//!   interrupt handler, which QuickJS polls while JavaScript runs; an
//!   interrupt is uncatchable by the agent.
//! - Wall time bounds the whole call, including waits on the host and
//!   streaming the response.
//! - `import` of anything is refused: an agent is one bundled module.
//!
//! After any limit is hit the instance is *poisoned* and must be replaced:
//! QuickJS can be left with a pending interrupt, and an out-of-memory error
//! is catchable by the agent, so the only safe state after a violation is a
//! fresh runtime. Other agents never share a runtime with this one.

use crate::bindings::{Binding, Bound};
use crate::call::{Call, ResponseHead, ResponsePart, Undeliverable};
use crate::code::{AgentCode, CompileError};
use crate::fetch::{FetchPolicy, Fetcher};
use crate::limits::Limits;
use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::module::WriteOptions;
use rquickjs::{AsyncContext, AsyncRuntime, Ctx, Error, FromJs, Function, Module, Object, Promise, TypedArray, Value};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Why an agent could not be loaded or called.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SandboxError {
    #[error("cannot create the JavaScript runtime: {0}")]
    Runtime(String),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("agent module failed to load: {0}")]
    Load(String),
    #[error("agent module has no default export with a {0}() method")]
    NoHandler(String),
    #[error("agent threw: {0}")]
    Threw(String),
    #[error("agent exceeded its CPU time limit of {limit_ms} ms")]
    CpuTime { limit_ms: u128 },
    #[error("command exceeded its budget of {limit} steps")]
    Fuel { limit: u64 },
    #[error("agent exceeded its wall time limit of {limit_ms} ms")]
    WallTime { limit_ms: u128 },
    #[error("agent exceeded its memory limit of {limit_bytes} bytes")]
    Memory { limit_bytes: usize },
    #[error("request body is larger than this agent accepts ({limit_bytes} bytes)")]
    RequestTooLarge { limit_bytes: usize },
    #[error("agent's response body is larger than its limit of {limit_bytes} bytes")]
    ResponseTooLarge { limit_bytes: usize },
    #[error("agent finished without returning a response")]
    NoResponse,
    #[error("the client stopped receiving the response")]
    ClientGone,
    #[error("this agent instance hit a limit earlier and must be replaced")]
    Poisoned,
    #[error("no agent module is loaded")]
    NotLoaded,
}

impl SandboxError {
    /// A short name for the kind of failure, for metrics and outcome codes.
    pub fn kind(&self) -> &'static str {
        match self {
            SandboxError::Runtime(_) => "runtime",
            SandboxError::Compile(_) => "compile",
            SandboxError::Load(_) => "load",
            SandboxError::NoHandler(_) => "no_handler",
            SandboxError::Threw(_) => "threw",
            SandboxError::CpuTime { .. } => "cpu_time",
            SandboxError::Fuel { .. } => "fuel",
            SandboxError::WallTime { .. } => "wall_time",
            SandboxError::Memory { .. } => "memory",
            SandboxError::RequestTooLarge { .. } => "request_too_large",
            SandboxError::ResponseTooLarge { .. } => "response_too_large",
            SandboxError::NoResponse => "no_response",
            SandboxError::ClientGone => "client_gone",
            SandboxError::Poisoned => "poisoned",
            SandboxError::NotLoaded => "not_loaded",
        }
    }
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

/// An agent's whole HTTP response.
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

/// The result of a buffered [`Sandbox::fetch`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub response: HttpResponse,
    pub logs: Vec<LogLine>,
}

/// What one call used, for metering paid calls: CPU time spent inside the
/// call's polls, and bytes sent out (the response body handed to the caller
/// plus the requests of the agent's `fetch` calls).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallUsage {
    pub cpu: Duration,
    pub egress_bytes: u64,
}

/// Message of every refused import.
const NO_IMPORTS: &str = "imports are disabled in the agent sandbox: bundle the agent into one module";

/// Refuses every static and dynamic import.
pub(crate) struct DenyImports;

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

/// The CPU budget of the running call: time spent inside polls of the call
/// is added up; the interrupt handler compares it with the budget.
#[derive(Debug)]
struct Deadline {
    epoch: Instant,
    /// Budget in nanoseconds; 0 = disarmed.
    budget_ns: AtomicU64,
    /// Time used in finished polls.
    used_ns: AtomicU64,
    /// When the current poll started (nanoseconds since `epoch`); 0 = not polling.
    entered_ns: AtomicU64,
    fired: AtomicBool,
    /// Steps allowed per call (interrupt checks, which QuickJS makes every
    /// fixed number of operations, so the count is the same on every
    /// machine); 0 = unmetered. Used by commands, which must end the same
    /// way on every worker.
    fuel_max: u64,
    fuel: AtomicU64,
    out_of_fuel: AtomicBool,
}

impl Deadline {
    fn new(fuel_max: u64) -> Self {
        Deadline {
            epoch: Instant::now(),
            budget_ns: AtomicU64::new(0),
            used_ns: AtomicU64::new(0),
            entered_ns: AtomicU64::new(0),
            fired: AtomicBool::new(false),
            fuel_max,
            fuel: AtomicU64::new(0),
            out_of_fuel: AtomicBool::new(false),
        }
    }

    fn now_ns(&self) -> u64 {
        (self.epoch.elapsed().as_nanos() as u64).max(1)
    }

    fn arm(&self, budget: Duration) {
        self.fired.store(false, Ordering::Relaxed);
        self.out_of_fuel.store(false, Ordering::Relaxed);
        self.fuel.store(0, Ordering::Relaxed);
        self.used_ns.store(0, Ordering::Relaxed);
        self.budget_ns.store((budget.as_nanos() as u64).max(1), Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.budget_ns.store(0, Ordering::Relaxed);
    }

    fn enter(&self) {
        self.entered_ns.store(self.now_ns(), Ordering::Relaxed);
    }

    fn leave(&self) {
        let entered = self.entered_ns.swap(0, Ordering::Relaxed);
        if entered != 0 {
            self.used_ns.fetch_add(self.now_ns().saturating_sub(entered), Ordering::Relaxed);
        }
    }

    /// Whether the running call has spent its CPU budget, for host code
    /// that runs long between interrupt checks (RSA key generation). Unlike
    /// [`Self::check`] it uses no fuel, so it never changes how a command ends.
    fn spent(&self) -> bool {
        let budget = self.budget_ns.load(Ordering::Relaxed);
        if budget == 0 {
            return false;
        }
        let entered = self.entered_ns.load(Ordering::Relaxed);
        let running = if entered == 0 { 0 } else { self.now_ns().saturating_sub(entered) };
        if self.used_ns.load(Ordering::Relaxed) + running > budget {
            self.fired.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// The interrupt handler: the step budget (commands), then the CPU budget.
    fn check(&self) -> bool {
        if self.budget_ns.load(Ordering::Relaxed) == 0 {
            return false;
        }
        if self.fuel_max != 0 && self.fuel.fetch_add(1, Ordering::Relaxed) >= self.fuel_max {
            self.out_of_fuel.store(true, Ordering::Relaxed);
            return true;
        }
        self.spent()
    }

    /// [`Self::meter`], but gives up (`None`) after a poll in which a
    /// limit fired.
    async fn meter_until_fired<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            self.enter();
            let poll = future.as_mut().poll(cx);
            self.leave();
            match poll {
                std::task::Poll::Pending
                    if self.fired.load(Ordering::Relaxed) || self.out_of_fuel.load(Ordering::Relaxed) =>
                {
                    std::task::Poll::Ready(None)
                }
                poll => poll.map(Some),
            }
        })
        .await
    }

    /// Runs `future` with each of its polls metered.
    async fn meter<T>(&self, future: impl Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            self.enter();
            let poll = future.as_mut().poll(cx);
            self.leave();
            poll
        })
        .await
    }
}

/// Hidden global holding the promise of a call that waits on the host.
const PENDING: &str = "__phalanxPending";

/// How the synchronous attempt at a call ended: settled (with its result
/// and console lines), or waiting on the host (with the rest of the work).
enum Quick<T, F> {
    Settled(Result<Option<T>, String>, Vec<LogLine>),
    Pending(F),
}

/// The prelude's bytecode, compiled by the first sandbox of the process.
static PRELUDE_BYTECODE: OnceLock<Vec<u8>> = OnceLock::new();

/// A prelude module compiled once per process, in a throwaway runtime,
/// without debug information and source text: every instance holds its own
/// copy, so smaller is better, and the prelude's frames matter little in an
/// agent's stack trace.
pub(crate) fn prelude_bytecode(
    slot: &'static OnceLock<Vec<u8>>,
    name: &str,
    source: &str,
) -> Result<&'static [u8], String> {
    if let Some(bytecode) = slot.get() {
        return Ok(bytecode);
    }
    let runtime = rquickjs::Runtime::new().map_err(|e| e.to_string())?;
    let context = rquickjs::Context::full(&runtime).map_err(|e| e.to_string())?;
    let options = WriteOptions { strip_debug: true, strip_source: true, ..WriteOptions::default() };
    let bytecode = context.with(|ctx| {
        Module::declare(ctx.clone(), name, source)
            .and_then(|module| module.write(options))
            .map_err(|e| describe(&ctx, e))
    })?;
    Ok(slot.get_or_init(|| bytecode))
}

/// Loads a module from bytecode this process wrote.
pub(crate) fn load_bytecode<'js>(ctx: &Ctx<'js>, bytecode: &[u8]) -> rquickjs::Result<Module<'js>> {
    // SAFETY: `Module::load` requires valid QuickJS bytecode. The only
    // callers pass the prelude bytecode written by `Module::write` in this
    // process (`PRELUDE_BYTECODE`) or an `AgentCode`'s bytecode, which only
    // `AgentCode::compile` creates, also with `Module::write`, in the same
    // build of QuickJS. Neither is ever read from disk or the network.
    #[allow(unsafe_code)]
    unsafe {
        Module::load(ctx.clone(), bytecode)
    }
}

/// One agent instance.
pub struct Sandbox {
    runtime: AsyncRuntime,
    context: AsyncContext,
    limits: Limits,
    deadline: Arc<Deadline>,
    fetcher: Arc<Fetcher>,
    call: Arc<Call>,
    bound: Arc<Bound>,
    code_hash: Option<[u8; 32]>,
    poisoned: bool,
    usage: CallUsage,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .field("loaded", &self.code_hash.is_some())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
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
        Self::create(limits, policy, 0).await
    }

    /// A fresh runtime for an agent's `command()`: no `fetch`, timers or
    /// crypto randomness; `Date` fixed at `time_ms` (the block's time);
    /// `Math.random` seeded with `seed`; and a budget of `fuel_max` steps
    /// instead of a clock, so a command ends the same way on every worker.
    /// Load the code with handler `"command"` and run [`Self::command`].
    pub async fn for_commands(
        limits: Limits,
        seed: [u32; 4],
        time_ms: u64,
        fuel_max: u64,
    ) -> Result<Self, SandboxError> {
        let policy =
            FetchPolicy { allow_hosts: vec!["fetch.is.disabled.in.commands.invalid".into()], ..Default::default() };
        let sandbox = Self::create(limits, policy, fuel_max.max(1)).await?;
        sandbox
            .context
            .with(|ctx| {
                let set: rquickjs::Result<()> = ctx
                    .globals()
                    .get::<_, Function>("__phalanxDeterministic")
                    .and_then(|f| f.call((seed.to_vec(), time_ms as f64)));
                set.map_err(|e| SandboxError::Runtime(describe(&ctx, e)))
            })
            .await?;
        Ok(sandbox)
    }

    async fn create(limits: Limits, policy: FetchPolicy, fuel_max: u64) -> Result<Self, SandboxError> {
        let fetcher = Fetcher::new(policy).map_err(SandboxError::Runtime)?;
        let call = Arc::new(Call::default());
        let bound = Arc::new(Bound::default());
        let runtime = AsyncRuntime::new().map_err(|e| SandboxError::Runtime(e.to_string()))?;
        runtime.set_memory_limit(limits.memory_bytes_max).await;
        runtime.set_max_stack_size(limits.stack_bytes_max).await;
        let deadline = Arc::new(Deadline::new(fuel_max));
        let check = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || check.check()))).await;
        runtime.set_loader(DenyImports, DenyImports).await;
        let context = AsyncContext::full(&runtime).await.map_err(|e| SandboxError::Runtime(e.to_string()))?;
        let (host_fetcher, host_call, host_bound) = (fetcher.clone(), call.clone(), bound.clone());
        let budget = deadline.clone();
        let spent: crate::web::Spent = Arc::new(move || budget.spent());
        context
            .with(|ctx| {
                let installed: rquickjs::Result<()> = (|| {
                    crate::web::install_host(&ctx, host_fetcher, host_call, host_bound, spent)?;
                    let bytecode = prelude_bytecode(&PRELUDE_BYTECODE, "phalanx:prelude", crate::web::PRELUDE_JS)
                        .map_err(|e| Error::new_loading_message("phalanx:prelude", e))?;
                    let module = load_bytecode(&ctx, bytecode)?;
                    let (_, evaluated) = module.eval()?;
                    evaluated.finish::<()>()
                })();
                installed.map_err(|e| SandboxError::Runtime(describe(&ctx, e)))
            })
            .await?;
        Ok(Sandbox {
            runtime,
            context,
            limits,
            deadline,
            fetcher,
            call,
            bound,
            code_hash: None,
            poisoned: false,
            usage: CallUsage::default(),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether a limit was hit: the instance must then be replaced.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// SHA-256 of the loaded agent's source.
    pub fn code_hash(&self) -> Option<[u8; 32]> {
        self.code_hash
    }

    #[doc(hidden)]
    pub async fn memory_report(&self) -> String {
        self.runtime.run_gc().await;
        format!("{:#?}", self.runtime.memory_usage().await)
    }

    /// Puts a host object on the agent's `env` as `name` (for example
    /// `STATE` or `AGENTS`), with the binding's methods.
    pub async fn bind(&mut self, name: &str, binding: Arc<dyn Binding>) -> Result<(), SandboxError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(SandboxError::Runtime(format!("invalid binding name {name:?}")));
        }
        let methods = binding.methods();
        let index = self.bound.add(binding);
        let name = name.to_string();
        self.context
            .with(move |ctx| {
                ctx.globals()
                    .get::<_, Function>("__phalanxBind")
                    .and_then(|bind| bind.call::<_, ()>((index, name, methods)))
                    .map_err(|e| SandboxError::Runtime(describe(&ctx, e)))
            })
            .await
    }

    /// Sets what bindings see as the context of the next calls on this
    /// instance (kept until set again: a host that uses context sets it
    /// before every call).
    pub fn set_call_context(&self, context: &str) {
        self.bound.set_context(context);
    }

    /// Bytes of JavaScript heap in use.
    pub async fn memory_used_bytes(&self) -> i64 {
        self.runtime.memory_usage().await.memory_used_size
    }

    /// Compiles and loads the agent module (`file_name` says whether it is
    /// TypeScript), runs its top level, and checks that its default export
    /// has `handler`.
    pub async fn load(&mut self, file_name: &str, source: &str, handler: &str) -> Result<(), SandboxError> {
        let code = AgentCode::compile(file_name, source)?;
        self.load_code(&code, handler).await
    }

    /// Loads compiled agent code, runs its top level, and checks that its
    /// default export has `handler`. An instance holds one agent for life.
    pub async fn load_code(&mut self, code: &AgentCode, handler: &str) -> Result<(), SandboxError> {
        if self.poisoned {
            return Err(SandboxError::Poisoned);
        }
        if self.code_hash.is_some() {
            return Err(SandboxError::Load("this instance already holds an agent".into()));
        }
        let bytecode: Arc<[u8]> = code.bytecode().into();
        let handler_name = handler.to_string();
        self.deadline.arm(self.limits.cpu_time_max);
        let loading = self.context.async_with(async move |ctx| {
            let loaded: rquickjs::Result<bool> = async {
                let (module, evaluated) = load_bytecode(&ctx, &bytecode)?.eval()?;
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
        });
        let result = self.deadline.meter(loading).await;
        self.deadline.disarm();
        if let Some(violation) = self.violation() {
            return Err(violation);
        }
        match result {
            Ok(true) => {
                self.code_hash = Some(code.hash());
                Ok(())
            }
            Ok(false) => Err(SandboxError::NoHandler(handler.to_string())),
            Err(message) if message.contains("out of memory") => {
                self.poisoned = true;
                Err(SandboxError::Memory { limit_bytes: self.limits.memory_bytes_max })
            }
            Err(message) => Err(SandboxError::Load(message)),
        }
    }

    /// Calls `method` of the agent's default export with one JSON argument
    /// and returns its (awaited) result as JSON.
    pub async fn call_json(&mut self, method: &str, argument_json: &str) -> Result<String, SandboxError> {
        let (method, argument) = (method.to_string(), argument_json.to_string());
        let (result, _) = self
            .run(
                move |ctx| ctx.globals().get::<_, Function>("__phalanxInvoke")?.call((method, argument)),
                |_, value| String::from_js(&value.ctx().clone(), value),
            )
            .await;
        result
    }

    /// Runs the agent's `command(message, env, ctx)` with `message_json`
    /// (parsed into `message`) and `env`. Returns how it ended and the
    /// console lines it wrote. Use an instance from [`Self::for_commands`].
    pub async fn command(
        &mut self,
        message_json: &str,
        env: &[(String, String)],
    ) -> (Result<(), SandboxError>, Vec<LogLine>) {
        let message = message_json.to_string();
        let env: Vec<(String, String)> = env.to_vec();
        let (result, logs) = self
            .run(
                move |ctx| {
                    let env_object = Object::new(ctx.clone())?;
                    for (name, value) in env {
                        env_object.set(name, value)?;
                    }
                    ctx.globals().get::<_, Function>("__phalanxCommand")?.call((message, env_object))
                },
                |ctx, value| if value.is_null() { Ok(Vec::new()) } else { Ok(log_lines(Vec::from_js(ctx, value)?)) },
            )
            .await;
        match result {
            Ok(written) => (Ok(()), written),
            Err(error) => (Err(error), logs),
        }
    }

    /// Runs the agent's `fetch(request, env, ctx)` and sends its response to
    /// `sink`: one [`ResponsePart::Complete`] when the body is known whole,
    /// or a [`ResponsePart::Head`] and then the body in chunks as the agent
    /// produces them (a streamed body reaches the receiver while the agent
    /// is still writing). The channel's capacity is the backpressure.
    /// Returns how the call ended and the console lines it wrote (also when
    /// it failed). Promises passed to `ctx.waitUntil` are awaited after the
    /// response, within the same limits.
    pub async fn serve(
        &mut self,
        request: HttpRequest,
        env: &[(String, String)],
        sink: mpsc::Sender<ResponsePart>,
    ) -> (Result<(), SandboxError>, Vec<LogLine>) {
        if request.body.as_ref().is_some_and(|b| b.len() > self.limits.request_body_bytes_max) {
            return (Err(SandboxError::RequestTooLarge { limit_bytes: self.limits.request_body_bytes_max }), vec![]);
        }
        let HttpRequest { url, method, headers, body } = request;
        let method = normalized_method(method);
        let headers = crate::web::flatten(normalized(headers));
        let env: Vec<(String, String)> = env.to_vec();
        self.call.start(sink, self.limits.response_body_bytes_max);
        let (result, mut logs) = self
            .run(
                move |ctx| {
                    let env_object = Object::new(ctx.clone())?;
                    for (name, value) in env {
                        env_object.set(name, value)?;
                    }
                    let body = body.map(|bytes| TypedArray::<u8>::new(ctx.clone(), bytes)).transpose()?;
                    ctx.globals().get::<_, Function>("__phalanxServe")?.call((url, method, headers, body, env_object))
                },
                |ctx, value| if value.is_null() { Ok(Vec::new()) } else { Ok(log_lines(Vec::from_js(ctx, value)?)) },
            )
            .await;
        let responded = self.call.responded();
        let flushed = if result.is_ok() { self.call.flush().await } else { Ok(()) };
        let (failure, body_bytes) = self.call.finish();
        let failure = failure.or(flushed.err());
        self.usage = CallUsage {
            cpu: Duration::from_nanos(self.deadline.used_ns.load(Ordering::Relaxed)),
            egress_bytes: (body_bytes as u64).saturating_add(self.fetcher.take_sent()),
        };
        let result = match (failure, result) {
            (Some(Undeliverable::TooLarge), _) => {
                Err(SandboxError::ResponseTooLarge { limit_bytes: self.limits.response_body_bytes_max })
            }
            (Some(Undeliverable::Closed), _) => Err(SandboxError::ClientGone),
            (_, Err(error)) => Err(error),
            (_, Ok(_)) if !responded => Err(SandboxError::NoResponse),
            (_, Ok(returned)) => {
                logs = returned;
                Ok(())
            }
        };
        (result, logs)
    }

    /// What the last [`serve`](Self::serve) (or [`fetch`](Self::fetch)) used.
    pub fn last_usage(&self) -> CallUsage {
        self.usage
    }

    /// [`serve`](Self::serve) with the whole response collected.
    pub async fn fetch(&mut self, request: HttpRequest, env: Vec<(String, String)>) -> Result<Fetched, SandboxError> {
        let (sender, mut receiver) = mpsc::channel(16);
        let collect = async move {
            let mut head: Option<ResponseHead> = None;
            let mut body = Vec::new();
            while let Some(part) = receiver.recv().await {
                match part {
                    ResponsePart::Complete(h, whole) => (head, body) = (Some(h), whole),
                    ResponsePart::Head(h) => head = Some(h),
                    ResponsePart::Body(chunk) => body.extend_from_slice(&chunk),
                }
            }
            (head, body)
        };
        let ((result, logs), (head, body)) = tokio::join!(self.serve(request, &env, sender), collect);
        result?;
        let head = head.ok_or(SandboxError::NoResponse)?;
        Ok(Fetched { response: HttpResponse { status: head.status, headers: head.headers, body }, logs })
    }

    /// Starts a call (`start` returns the promise of its result), awaits it
    /// within the limits, converts the result with `finish`, and collects
    /// the console lines written meanwhile.
    async fn run<T, S, F>(&mut self, start: S, finish: F) -> (Result<T, SandboxError>, Vec<LogLine>)
    where
        T: Send + 'static,
        S: for<'js> FnOnce(&Ctx<'js>) -> rquickjs::Result<Promise<'js>> + Send + 'static,
        F: for<'js> FnOnce(&Ctx<'js>, Value<'js>) -> rquickjs::Result<T> + Send + 'static,
    {
        if self.poisoned {
            return (Err(SandboxError::Poisoned), vec![]);
        }
        if self.code_hash.is_none() {
            return (Err(SandboxError::NotLoaded), vec![]);
        }
        let wall = self.limits.wall_time_max;
        let started = Instant::now();
        self.fetcher.reset();
        self.fetcher.take_sent();
        self.bound.reset();
        self.deadline.arm(self.limits.cpu_time_max);
        // Fast path: most calls settle by running JavaScript alone (no wait
        // on the host), which needs no future machinery. A call that does
        // wait leaves its promise in a hidden global for the async path.
        let quick = self.context.with(move |ctx| {
            // A previous call's interrupted background job may have left an
            // exception pending; it must not leak into this call.
            if ctx.has_exception() {
                let _ = ctx.catch();
            }
            let attempt: rquickjs::Result<Result<T, F>> = (|| {
                let promise = start(&ctx)?;
                match promise.finish::<Value>() {
                    Ok(value) => finish(&ctx, value).map(Ok),
                    Err(Error::WouldBlock) => {
                        ctx.globals().set(PENDING, promise)?;
                        Ok(Err(finish))
                    }
                    Err(error) => Err(error),
                }
            })();
            match attempt {
                Ok(Err(finish)) => Quick::Pending(finish),
                Ok(Ok(value)) => Quick::Settled(Ok(Some(value)), Vec::new()),
                Err(error) => Quick::Settled(Err(describe(&ctx, error)), drain_logs(&ctx)),
            }
        });
        let finish = match self.deadline.meter(quick).await {
            Quick::Pending(finish) => finish,
            Quick::Settled(result, logs) => return self.conclude(result, logs, wall),
        };
        let wall_left = wall.saturating_sub(started.elapsed());
        let calling = self.context.async_with(async move |ctx| {
            let called: rquickjs::Result<Option<T>> = async {
                let promise: Promise = ctx.globals().get(PENDING)?;
                ctx.globals().remove(PENDING)?;
                match tokio::time::timeout(wall_left, promise.into_future::<Value>()).await {
                    Ok(value) => finish(&ctx, value?).map(Some),
                    Err(_) => Ok(None),
                }
            }
            .await;
            match called {
                Ok(value) => (Ok(value), Vec::new()),
                Err(error) => (Err(describe(&ctx, error)), drain_logs(&ctx)),
            }
        });
        // A limit that fired while the call waits ends it at once: the
        // interrupted job's promise never settles, so waiting would only
        // run out the wall clock.
        let (result, logs) = self.deadline.meter_until_fired(calling).await.unwrap_or((Ok(None), Vec::new()));
        self.conclude(result, logs, wall)
    }

    /// Ends a call: disarms the limits and turns the outcome into a result.
    fn conclude<T>(
        &mut self,
        result: Result<Option<T>, String>,
        logs: Vec<LogLine>,
        wall: Duration,
    ) -> (Result<T, SandboxError>, Vec<LogLine>) {
        self.deadline.disarm();
        self.fetcher.reset();
        if let Some(violation) = self.violation() {
            return (Err(violation), logs);
        }
        let result = match result {
            Ok(Some(value)) => Ok(value),
            Ok(None) => {
                self.poisoned = true;
                Err(SandboxError::WallTime { limit_ms: wall.as_millis() })
            }
            Err(message) if message.contains("out of memory") => {
                self.poisoned = true;
                Err(SandboxError::Memory { limit_bytes: self.limits.memory_bytes_max })
            }
            Err(message) => Err(SandboxError::Threw(message)),
        };
        (result, logs)
    }

    /// The CPU limit fired during the last run: poison and report it.
    fn violation(&mut self) -> Option<SandboxError> {
        if self.deadline.out_of_fuel.load(Ordering::Relaxed) {
            self.poisoned = true;
            return Some(SandboxError::Fuel { limit: self.deadline.fuel_max });
        }
        if self.deadline.fired.load(Ordering::Relaxed) {
            self.poisoned = true;
            return Some(SandboxError::CpuTime { limit_ms: self.limits.cpu_time_max.as_millis() });
        }
        None
    }
}

/// Header names lowercased; pairs that are not valid HTTP headers dropped.
fn normalized(headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .filter(|(name, value)| {
            !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                && !value.bytes().any(|b| matches!(b, b'\0' | b'\r' | b'\n'))
        })
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim_matches([' ', '\t']).to_string()))
        .collect()
}

/// Standard methods uppercased, as `new Request` does.
fn normalized_method(method: String) -> String {
    const STANDARD: [&str; 7] = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH"];
    match STANDARD.iter().find(|m| m.eq_ignore_ascii_case(&method)) {
        Some(standard) => standard.to_string(),
        None => method,
    }
}

/// The console lines written since the last drain (calls that fail; a
/// call that succeeds returns its lines with its result).
fn drain_logs(ctx: &Ctx<'_>) -> Vec<LogLine> {
    let drained: rquickjs::Result<Vec<Vec<String>>> =
        ctx.globals().get::<_, Function>("__phalanxDrainLogs").and_then(|f| f.call(()));
    log_lines(drained.unwrap_or_default())
}

fn log_lines(pairs: Vec<Vec<String>>) -> Vec<LogLine> {
    pairs
        .into_iter()
        .filter_map(|pair| <[String; 2]>::try_from(pair).ok())
        .map(|[level, message]| LogLine { level, message })
        .collect()
}

/// Turns an engine error into a message, taking the pending JS exception.
pub(crate) fn describe(ctx: &Ctx<'_>, error: Error) -> String {
    match error {
        Error::Exception => {
            let value: Value = ctx.catch();
            match value.as_exception() {
                Some(exception) => {
                    let name: String = exception.get("name").unwrap_or_else(|_| "Error".into());
                    format!("{name}: {}", exception.message().unwrap_or_default())
                }
                None => format!("non-error value thrown: {}", show(&value)),
            }
        }
        other => other.to_string(),
    }
}

/// A short, bounded rendering of a thrown non-Error value.
fn show(value: &Value<'_>) -> String {
    const SHOWN_CHARS_MAX: usize = 200;
    let text = match value.as_string().and_then(|s| s.to_string().ok()) {
        Some(text) => format!("{text:?}"),
        None => value
            .ctx()
            .json_stringify(value.clone())
            .ok()
            .flatten()
            .and_then(|s| s.to_string().ok())
            .unwrap_or_else(|| format!("{:?}", value.type_of())),
    };
    text.chars().take(SHOWN_CHARS_MAX).collect()
}
