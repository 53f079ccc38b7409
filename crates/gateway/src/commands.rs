//! Agent state and commands: `env.STATE` and `command(message, env, ctx)`.
//!
//! The chain orders commands for an agent (`phalanx agent send`, or
//! `ctx.submit` from the agent's `fetch`) and numbers them. Every worker of
//! the agent's cluster applies each one, in that order, exactly once: it
//! runs the agent's `command()` in a fresh deterministic sandbox (the
//! block's time, `Math.random` seeded from the block and the number, no
//! network, timers or crypto randomness, a step budget instead of a clock)
//! over the agent's key-value state. A command that throws or hits a limit
//! changes nothing; either way its number is used. So the same commands
//! give the same state on every worker.
//!
//! State lives in memory and in one file per agent, sealed to the agent's
//! newest key this worker holds (an envelope of purpose `State`), written
//! after every batch of blocks and before the checkpoint, and re-sealed
//! when the agent gets a newer key. The file records the last command
//! applied, so a restarted worker replaying blocks skips what it applied.
//! A worker that missed commands (it joined the cluster later, lost its
//! files, or could not open a sealed command) marks the agent's state
//! incomplete and neither serves nor changes it; the other workers of the
//! cluster do.
//!
//! `env.STATE` in `fetch` reads (`get`, `list`); only `command` writes
//! (`put`, `delete`). Values are JSON.

use crate::server::{Keyring, open_secrets};
use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_keys::envelope::{KeyKind, KeyRef, Purpose};
use phalanx_keys::{Envelope, Header};
use phalanx_primitives::{Hash, decode_bounded};
use phalanx_sandbox::{Binding, BindingFuture, CodeCache, Limits, Sandbox, SandboxError};
use phalanx_state::modules::agents::{CommandPayload, CommandSender};
use phalanx_state::{Agent, State};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// A command for an agent of one of the watched worker's clusters, from a
/// verified block.
#[derive(Clone, Debug)]
pub struct OrderedCommand {
    pub height: u64,
    /// The block's timestamp: the only clock a command sees.
    pub timestamp_ms: u64,
    /// The block's hash (seeds the command's `Math.random`).
    pub block: Hash,
    /// The command's number for its agent (1, 2, …).
    pub seq: u64,
    pub from: CommandSender,
    pub payload: CommandPayload,
    /// The agent as the block left it: its code, secrets and keys.
    pub agent: std::sync::Arc<Agent>,
}

/// Most keys in one agent's state.
pub const STATE_KEYS_MAX: usize = 10_000;
/// Longest state key, in bytes.
pub const STATE_KEY_BYTES_MAX: usize = 512;
/// Largest state value (its JSON), in bytes.
pub const STATE_VALUE_BYTES_MAX: usize = 64 * 1024;
/// Largest state of one agent (keys and values), in bytes.
pub const STATE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most keys one `env.STATE.list` returns.
pub const STATE_LIST_MAX: usize = 1_000;
/// Steps (QuickJS interrupt checks, made every fixed number of operations)
/// one command may take, loading the agent's module included.
pub const COMMAND_FUEL_MAX: u64 = 40_000;
/// Outcomes of the latest commands kept per agent (`GET /state/{id}`).
pub const OUTCOMES_KEPT: usize = 64;
/// Largest state file read back, in bytes.
pub const STATE_FILE_BYTES_MAX: u64 = 2 * STATE_BYTES_MAX as u64;
/// Commands `ctx.submit` may queue in one worker before it has sent them.
pub const SUBMIT_QUEUE_MAX: usize = 1_024;

/// Folder of the sealed state files, in the worker's data directory.
pub const STATE_DIR: &str = "agent-state";

/// How one command ended, as anyone may see it: no agent data, only the
/// kind of failure (the owner's logs have the details).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Outcome {
    pub seq: u64,
    pub height: u64,
    /// `applied`, or why not: `threw`, `limit`, `no-handler`, `bad-payload`, `skipped`.
    pub result: String,
}

/// One agent's state on this worker.
#[derive(Clone, Debug, Default)]
pub struct AgentState {
    /// Number of the last command applied (or skipped).
    pub applied: u64,
    pub entries: imbl::OrdMap<String, String>,
    /// Bytes of keys and values.
    pub bytes: usize,
    pub outcomes: VecDeque<Outcome>,
    /// Commands up to this number never reached this worker's state (0:
    /// none missed): the state is incomplete and this worker keeps out.
    pub missed_through: u64,
    /// The agent key epoch the file is sealed under (0: no file yet).
    sealed_epoch: u64,
    dirty: bool,
}

impl AgentState {
    pub fn complete(&self) -> bool {
        self.missed_through == 0
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct Stored {
    applied: u64,
    entries: Vec<(String, String)>,
    outcomes: Vec<Outcome>,
    missed_through: u64,
}

/// Why agent state could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("agent state file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("agent state of {agent}: {why}")]
    Seal { agent: Hash, why: String },
}

/// Every agent's state on this worker.
#[derive(Debug)]
pub struct AgentStates {
    dir: PathBuf,
    agents: RwLock<HashMap<Hash, Arc<AgentState>>>,
}

impl AgentStates {
    /// The states under `data_dir`, none loaded yet ([`Self::load`]).
    pub fn new(data_dir: &std::path::Path) -> Self {
        AgentStates { dir: data_dir.join(STATE_DIR), agents: RwLock::new(HashMap::new()) }
    }

    /// The state of `agent`, if this worker holds any.
    pub fn get(&self, agent: &Hash) -> Option<Arc<AgentState>> {
        self.agents.read().unwrap_or_else(|p| p.into_inner()).get(agent).cloned()
    }

    fn put(&self, agent: Hash, state: AgentState) {
        self.agents.write().unwrap_or_else(|p| p.into_inner()).insert(agent, Arc::new(state));
    }

    fn path(&self, agent: &Hash) -> PathBuf {
        self.dir.join(format!("{}.state", hex::encode(agent.0)))
    }

    /// Reads every state file, opening each with the agent key its header
    /// names. A file this worker can no longer open (its key retired while
    /// the worker was away) leaves the agent's state incomplete.
    pub fn load(&self, keys: &Keyring, chain: &State) -> Result<usize, StateError> {
        let io = |path: &std::path::Path, source| StateError::Io { path: path.display().to_string(), source };
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(&self.dir, e)),
        };
        let mut loaded = 0;
        for entry in entries {
            let path = entry.map_err(|e| io(&self.dir, e))?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".state"))
                .and_then(|h| h.parse::<Hash>().ok().or_else(|| format!("0x{h}").parse().ok()))
            else {
                continue;
            };
            let Some(agent) = chain.agent(&id) else { continue };
            let state = match read_state(&path, keys, agent) {
                Ok(state) => state,
                Err(why) => {
                    tracing::error!(agent = %id, %why, "agent state does not open; this worker keeps out of it");
                    AgentState { applied: agent.commands, missed_through: agent.commands.max(1), ..Default::default() }
                }
            };
            self.put(id, state);
            loaded += 1;
        }
        Ok(loaded)
    }

    /// Seals and writes every state changed since the last call, and
    /// re-seals states whose agent has a newer key this worker holds.
    pub fn persist(&self, keys: &Keyring, chain: &State) -> Result<usize, StateError> {
        let due: Vec<(Hash, Arc<AgentState>, u64)> = {
            let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
            agents
                .iter()
                .filter_map(|(id, state)| {
                    let agent = chain.agent(id)?;
                    let epoch = newest_held(keys, agent).map_or(0, |(epoch, _)| epoch);
                    (state.dirty || epoch > state.sealed_epoch).then(|| (*id, state.clone(), epoch))
                })
                .collect()
        };
        if due.is_empty() {
            return Ok(0);
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|source| StateError::Io { path: self.dir.display().to_string(), source })?;
        for (id, state, _) in &due {
            let agent = chain.agent(id).expect("filtered");
            let Some((epoch, public)) = newest_held(keys, agent) else {
                return Err(StateError::Seal { agent: *id, why: "this worker holds none of the agent's keys".into() });
            };
            let stored = Stored {
                applied: state.applied,
                entries: state.entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                outcomes: state.outcomes.iter().cloned().collect(),
                missed_through: state.missed_through,
            };
            let plaintext = zeroize::Zeroizing::new(borsh::to_vec(&stored).expect("in-memory encoding"));
            let key = KeyRef { kind: KeyKind::Agent, id: *id, epoch };
            let (sealed, _) = Envelope::seal(&public, key, *id, Purpose::State, &plaintext)
                .map_err(|e| StateError::Seal { agent: *id, why: e.to_string() })?;
            let path = self.path(id);
            crate::fs::write_atomic(&path, &sealed).map_err(|e| StateError::Seal { agent: *id, why: e.to_string() })?;
            let mut written = (**state).clone();
            written.dirty = false;
            written.sealed_epoch = epoch;
            // Only if no command changed it meanwhile (the runner is the only writer).
            let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
            if agents.get(id).is_some_and(|now| Arc::ptr_eq(now, state)) {
                agents.insert(*id, Arc::new(written));
            }
        }
        Ok(due.len())
    }
}

/// The newest key epoch of `agent` whose cluster key this worker holds, with its public key.
fn newest_held(keys: &Keyring, agent: &Agent) -> Option<(u64, [u8; 32])> {
    agent.keys.iter().rev().find(|k| keys.contains_key(&(agent.cluster, k.cluster_epoch))).map(|k| (k.epoch, k.public))
}

fn read_state(path: &std::path::Path, keys: &Keyring, agent: &Agent) -> Result<AgentState, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > STATE_FILE_BYTES_MAX {
        return Err(format!("the file is {size} bytes, more than {STATE_FILE_BYTES_MAX}"));
    }
    let sealed = std::fs::read(path).map_err(|e| e.to_string())?;
    let header = Header::peek(&sealed).map_err(|e| e.to_string())?;
    if header.key.kind != KeyKind::Agent || header.key.id != agent.id || header.purpose != Purpose::State {
        return Err("the file is sealed for something else".into());
    }
    let key = crate::server::derive_agent_key(keys, agent, header.key.epoch).map_err(|(_, why)| why)?;
    let opened = Envelope::open(&sealed, key.secret()).map_err(|e| e.to_string())?;
    let stored: Stored = decode_bounded(&opened.plaintext, STATE_FILE_BYTES_MAX as usize).map_err(|e| e.to_string())?;
    let entries: imbl::OrdMap<String, String> = stored.entries.into_iter().collect();
    let bytes = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
    Ok(AgentState {
        applied: stored.applied,
        entries,
        bytes,
        outcomes: stored.outcomes.into(),
        missed_through: stored.missed_through,
        sealed_epoch: header.key.epoch,
        dirty: false,
    })
}

/// Runs commands from verified blocks.
#[derive(Debug)]
pub struct Runner {
    states: Arc<AgentStates>,
    logs: Arc<crate::logs::LogStore>,
    cache: CodeCache,
    key_cache: crate::key_cache::KeyCache,
}

impl Runner {
    pub fn new(states: Arc<AgentStates>, logs: Arc<crate::logs::LogStore>) -> Self {
        Runner {
            states,
            logs,
            cache: CodeCache::new(16 * 1024 * 1024),
            key_cache: crate::key_cache::KeyCache::default(),
        }
    }

    /// Applies `commands` (in order) with the code of `chain` (code is kept
    /// by hash, so the snapshot's code is there) and the keys in `keys`.
    pub async fn apply(&self, commands: Vec<OrderedCommand>, keys: &Arc<Keyring>, chain: &State) {
        for command in commands {
            self.apply_one(command, keys, chain).await;
        }
    }

    async fn apply_one(&self, command: OrderedCommand, keys: &Arc<Keyring>, chain: &State) {
        let id = command.agent.id;
        let mut state = self.states.get(&id).map(|s| (*s).clone()).unwrap_or_default();
        if command.seq <= state.applied {
            return; // Applied before a restart: replayed blocks repeat it.
        }
        if command.seq > state.applied + 1 {
            tracing::warn!(agent = %id, seq = command.seq, applied = state.applied, "commands were missed; this worker keeps out of the agent's state");
            state.missed_through = state.missed_through.max(command.seq - 1);
        }
        let result = if state.complete() {
            match self.run(&command, keys, chain, &state).await {
                Ok(Some(next)) => {
                    state.entries = next.entries;
                    state.bytes = next.bytes;
                    "applied".to_string()
                }
                Ok(None) => "failed".to_string(),
                Err(Failure::Result(result)) => result,
                Err(Failure::Missing(why)) => {
                    tracing::warn!(agent = %id, seq = command.seq, %why, "cannot apply a command; this worker keeps out of the agent's state");
                    state.missed_through = command.seq;
                    "skipped".to_string()
                }
            }
        } else {
            "skipped".to_string()
        };
        state.applied = command.seq;
        state.outcomes.push_back(Outcome { seq: command.seq, height: command.height, result });
        while state.outcomes.len() > OUTCOMES_KEPT {
            state.outcomes.pop_front();
        }
        state.dirty = true;
        self.states.put(id, state);
    }

    /// Runs one command: `Ok(Some(state))` applied, `Ok(None)` the agent
    /// failed (already classified in the logs), `Err` not run.
    async fn run(
        &self,
        command: &OrderedCommand,
        keys: &Arc<Keyring>,
        chain: &State,
        state: &AgentState,
    ) -> Result<Option<Overlay>, Failure> {
        let agent = &command.agent;
        let log = |lines: Vec<phalanx_sandbox::LogLine>| self.logs.record(crate::logs::LogTarget::of(agent), &lines);
        let bytes = match &command.payload {
            CommandPayload::Plain(bytes) => zeroize::Zeroizing::new(bytes.clone()),
            CommandPayload::Sealed(envelope) => {
                let header = Header::peek(envelope).map_err(|e| Failure::Result(format!("bad-payload: {e}")))?;
                let key = self
                    .key_cache
                    .agent_key(keys, agent.id, header.key.epoch, || {
                        crate::server::derive_agent_key(keys, agent, header.key.epoch)
                    })
                    .map_err(|(_, why)| Failure::Missing(why))?;
                // Every worker holding the key gets the same verdict.
                match Envelope::open(envelope, key.secret()) {
                    Ok(opened) => opened.plaintext,
                    Err(_) => return Err(Failure::Result("bad-payload".into())),
                }
            }
        };
        let Ok(data) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Err(Failure::Result("bad-payload".into()));
        };
        let from = match command.from {
            CommandSender::Account(account) => account.to_string(),
            CommandSender::Agent(_) => "agent".to_string(),
        };
        let message = serde_json::json!({
            "seq": command.seq,
            "from": from,
            "height": command.height,
            "timestamp": command.timestamp_ms,
            "data": data,
        })
        .to_string();
        let env = open_secrets(&self.key_cache, keys, agent).map_err(Failure::Missing)?;
        let source =
            chain.code(&agent.code_hash).ok_or_else(|| Failure::Missing("the agent's code is missing".into()))?;
        let code = match self.cache.get_or_compile_hashed(
            agent.code_hash.0,
            agent.language.file_name(),
            &String::from_utf8_lossy(source),
        ) {
            Ok(code) => code,
            Err(_) => return Err(Failure::Result("no-handler".into())),
        };
        let seed = seed(&command.block, &agent.id, command.seq);
        let limits = Limits { cpu_time_max: std::time::Duration::from_secs(10), ..Limits::default() };
        let mut sandbox = Sandbox::for_commands(limits, seed, command.timestamp_ms, COMMAND_FUEL_MAX)
            .await
            .map_err(|e| Failure::Missing(e.to_string()))?;
        let overlay = Arc::new(Mutex::new(Overlay { entries: state.entries.clone(), bytes: state.bytes }));
        let binding: Arc<dyn Binding> = Arc::new(StateWriter(overlay.clone()));
        sandbox.bind("STATE", binding).await.map_err(|e| Failure::Missing(e.to_string()))?;
        if let Err(error) = sandbox.load_code(&code, "command").await {
            log(vec![failure_line(&error)]);
            return Err(Failure::Result(classify(&error).into()));
        }
        let (result, mut lines) = sandbox.command(&message, &env).await;
        drop(env);
        match result {
            Ok(()) => {
                log(lines);
                let applied = overlay.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Ok(Some(applied))
            }
            Err(error) => {
                lines.push(failure_line(&error));
                log(lines);
                Err(Failure::Result(classify(&error).into()))
            }
        }
    }
}

enum Failure {
    /// The command ran (or could not, the same way everywhere): its outcome.
    Result(String),
    /// This worker lacks something the others have (a key, the code).
    Missing(String),
}

fn failure_line(error: &SandboxError) -> phalanx_sandbox::LogLine {
    phalanx_sandbox::LogLine { level: "error".into(), message: format!("command failed: {error}") }
}

fn classify(error: &SandboxError) -> &'static str {
    match error {
        SandboxError::Threw(_) => "threw",
        SandboxError::NoHandler(_) | SandboxError::Load(_) | SandboxError::Compile(_) => "no-handler",
        _ => "limit",
    }
}

/// `Math.random`'s seed for a command: SHA-256 of the block, the agent and the number.
fn seed(block: &Hash, agent: &Hash, seq: u64) -> [u32; 4] {
    let digest =
        phalanx_primitives::sha256_parts(&[b"phalanx/command-seed/v1", &block.0, &agent.0, &seq.to_le_bytes()]);
    std::array::from_fn(|i| u32::from_le_bytes(digest.0[4 * i..4 * i + 4].try_into().expect("4 bytes")))
}

/// A command's view of the state: its writes, applied only if it succeeds.
#[derive(Clone, Debug)]
struct Overlay {
    entries: imbl::OrdMap<String, String>,
    bytes: usize,
}

/// The arguments of a binding call: a JSON array.
fn arguments(json: &str) -> Result<Vec<serde_json::Value>, String> {
    serde_json::from_str(json).map_err(|e| format!("bad arguments: {e}"))
}

fn key_argument(arguments: &[serde_json::Value]) -> Result<String, String> {
    let key = arguments.first().and_then(|k| k.as_str()).ok_or("env.STATE: the key must be a string")?;
    if key.is_empty() || key.len() > STATE_KEY_BYTES_MAX {
        return Err(format!("env.STATE: a key is 1 to {STATE_KEY_BYTES_MAX} bytes"));
    }
    Ok(key.to_string())
}

/// `list(prefix?, limit?)`: keys in order.
fn list(entries: &imbl::OrdMap<String, String>, arguments: &[serde_json::Value]) -> Result<String, String> {
    let prefix = arguments.first().and_then(|p| p.as_str()).unwrap_or("");
    let limit = arguments.get(1).and_then(|l| l.as_u64()).map_or(STATE_LIST_MAX, |l| (l as usize).min(STATE_LIST_MAX));
    let keys: Vec<&String> = entries
        .range(prefix.to_string()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .take(limit)
        .map(|(k, _)| k)
        .collect();
    Ok(serde_json::to_string(&keys).expect("strings"))
}

fn ready(result: Result<String, String>) -> BindingFuture {
    Box::pin(async move { result })
}

/// `env.STATE` inside `command()`: reads and writes.
#[derive(Debug)]
struct StateWriter(Arc<Mutex<Overlay>>);

impl Binding for StateWriter {
    fn methods(&self) -> Vec<String> {
        ["get", "list", "put", "delete"].map(String::from).to_vec()
    }

    fn call(&self, method: &str, arguments_json: String) -> BindingFuture {
        let result = (|| {
            let arguments = arguments(&arguments_json)?;
            let mut overlay = self.0.lock().unwrap_or_else(|p| p.into_inner());
            match method {
                "get" => {
                    let key = key_argument(&arguments)?;
                    Ok(overlay.entries.get(&key).cloned().unwrap_or_else(|| "null".into()))
                }
                "list" => list(&overlay.entries, &arguments),
                "put" => {
                    let key = key_argument(&arguments)?;
                    let value = arguments
                        .get(1)
                        .filter(|v| !v.is_null())
                        .ok_or("env.STATE.put: the value must be JSON other than null or undefined (use delete)")?;
                    let value = value.to_string();
                    if value.len() > STATE_VALUE_BYTES_MAX {
                        return Err(format!("env.STATE.put: a value's JSON is at most {STATE_VALUE_BYTES_MAX} bytes"));
                    }
                    let old = overlay.entries.get(&key).map_or(0, |v| key.len() + v.len());
                    let bytes = overlay.bytes - old + key.len() + value.len();
                    if bytes > STATE_BYTES_MAX {
                        return Err(format!("env.STATE: an agent's state is at most {STATE_BYTES_MAX} bytes"));
                    }
                    if old == 0 && overlay.entries.len() >= STATE_KEYS_MAX {
                        return Err(format!("env.STATE: an agent's state holds at most {STATE_KEYS_MAX} keys"));
                    }
                    overlay.entries.insert(key, value);
                    overlay.bytes = bytes;
                    Ok("null".into())
                }
                "delete" => {
                    let key = key_argument(&arguments)?;
                    if let Some(old) = overlay.entries.remove(&key) {
                        overlay.bytes -= key.len() + old.len();
                    }
                    Ok("null".into())
                }
                _ => Err(format!("env.STATE has no method {method}")),
            }
        })();
        ready(result)
    }
}

/// `env.STATE` inside `fetch()`: reads the state as the last applied command left it.
#[derive(Debug)]
pub(crate) struct StateReader {
    pub(crate) states: Arc<AgentStates>,
    pub(crate) agent: Hash,
}

impl Binding for StateReader {
    fn methods(&self) -> Vec<String> {
        ["get", "list", "put", "delete"].map(String::from).to_vec()
    }

    fn call(&self, method: &str, arguments_json: String) -> BindingFuture {
        let result = (|| {
            let arguments = arguments(&arguments_json)?;
            let state = self.states.get(&self.agent).unwrap_or_default();
            if !state.complete() {
                return Err(format!(
                    "env.STATE: this worker missed commands up to {} of this agent and does not serve its state; another worker of the cluster does",
                    state.missed_through
                ));
            }
            match method {
                "get" => {
                    let key = key_argument(&arguments)?;
                    Ok(state.entries.get(&key).cloned().unwrap_or_else(|| "null".into()))
                }
                "list" => list(&state.entries, &arguments),
                _ => Err(format!(
                    "env.STATE.{method} is not available in fetch(): state changes in command(), ordered by the chain (ctx.submit or phalanx agent send)"
                )),
            }
        })();
        ready(result)
    }
}

/// `ctx.submit(data)` in `fetch()`: queues a command for the chain, sealed
/// to the agent's newest key so only its cluster reads it. The worker
/// sends it as a signed message; it is applied once the chain orders it.
#[derive(Debug)]
pub(crate) struct Submitter {
    pub(crate) agent: Hash,
    pub(crate) queue: tokio::sync::mpsc::Sender<(Hash, Vec<u8>)>,
}

impl Binding for Submitter {
    fn methods(&self) -> Vec<String> {
        vec!["submit".into()]
    }

    fn call(&self, _method: &str, arguments_json: String) -> BindingFuture {
        let result = (|| {
            let arguments = arguments(&arguments_json)?;
            let json = arguments.first().and_then(|j| j.as_str()).ok_or("ctx.submit: bad arguments")?;
            if json.len()
                > phalanx_state::modules::agents::COMMAND_BYTES_MAX - phalanx_keys::envelope::HEADER_BYTES - 16
            {
                return Err(format!(
                    "ctx.submit: a command's JSON is at most {} bytes",
                    phalanx_state::modules::agents::COMMAND_BYTES_MAX - phalanx_keys::envelope::HEADER_BYTES - 16
                ));
            }
            self.queue.try_send((self.agent, json.as_bytes().to_vec())).map_err(|_| {
                format!(
                    "ctx.submit: this worker already holds {SUBMIT_QUEUE_MAX} commands waiting for the chain; try again"
                )
            })?;
            Ok(r#"{"queued":true}"#.to_string())
        })();
        ready(result)
    }
}

/// Seals a submitted command to the agent's newest published key: the
/// worker message that carries it.
pub fn sealed_command(chain: &State, agent: &Hash, json: &[u8]) -> Option<phalanx_state::WorkerPayload> {
    let found = chain.agent(agent)?;
    let newest = found.newest_key()?;
    let key = KeyRef { kind: KeyKind::Agent, id: *agent, epoch: newest.epoch };
    let (sealed, _) = Envelope::seal(&newest.public, key, *agent, Purpose::Call, json).ok()?;
    Some(phalanx_state::WorkerPayload::AgentCommand { agent: *agent, payload: CommandPayload::Sealed(sealed) })
}
