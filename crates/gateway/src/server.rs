//! The gateway: the worker's HTTP server for agent calls.
//!
//! `ANY /agents/{id}/{path…}` runs the agent's `fetch` with the request
//! (its URL rewritten to `/{path…}`), using the code the *verified* chain
//! records for the agent, in the sandbox pool. `GET /attestation` returns
//! the worker's identity and its registration as the verified chain holds
//! it; `GET /state/{id}` where this worker is in an agent's commands.
//! Only agents of clusters this worker belongs to are served.
//!
//! Limits, each with a clear status: request bodies ([`GatewayConfig::body_bytes_max`], 413),
//! calls in flight ([`GatewayConfig::concurrency_max`], 429), the agent's
//! wall time (504), a paused agent (503), an agent of another cluster (421).
//! Every response an agent produced carries a signed receipt
//! ([`crate::receipt`]). Agents with an allowlist take signed calls only
//! ([`crate::signed_call`]: 401 unsigned or badly signed, 403 not listed,
//! 409 replayed); paid agents take signed calls from callers whose deposit
//! covers the price and network fee (402 otherwise, [`crate::usage`]).

use crate::receipt::{RECEIPT_HEADER, RECEIPT_VERSION, Receipt, ReceiptSigner};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use phalanx_primitives::{Hash, PublicKey, sha256};
use phalanx_sandbox::{
    CodeCache, FetchPolicy, HttpRequest, Lease, Limits, LogLine, Pool, PoolConfig, ResponsePart, SandboxError,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, watch};

/// Gateway limits.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
    /// Most calls in flight; more get 429.
    pub concurrency_max: usize,
    /// What agents' `fetch` may reach (public addresses only by default).
    pub fetch: FetchPolicy,
    /// Connections, timeouts and head size of the listener.
    pub limits: phalanx_listener::ListenerLimits,
    /// The origin (scheme, host and port) of every `request.url` an agent
    /// sees, fixed by the operator: never taken from a client's `Host`
    /// header, so what a receipt or a signature covers (method, path and
    /// query) is the whole of what selects the code path.
    pub origin: String,
}

impl GatewayConfig {
    pub fn local(port: u16) -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            body_bytes_max: 2 * 1024 * 1024,
            concurrency_max: 256,
            fetch: FetchPolicy::default(),
            limits: phalanx_listener::ListenerLimits::gateway(),
            origin: format!("http://127.0.0.1:{port}"),
        }
    }
}

/// What the gateway serves from: the latest verified state.
pub type StateView = watch::Receiver<Arc<phalanx_state::State>>;

/// The cluster keys this worker holds, by (cluster, epoch), as the runtime last published them.
pub type Keyring = std::collections::BTreeMap<(Hash, u64), phalanx_keys::ClusterKey>;

/// Makes the receipt header for a response, given its status and body hash
/// (`None` when the body streams).
pub type ReceiptFn = Box<dyn FnOnce(u16, Option<Hash>) -> String + Send>;

pub(crate) struct Gateway {
    pub(crate) identity: PublicKey,
    signer: Arc<ReceiptSigner>,
    pub(crate) view: StateView,
    keys: watch::Receiver<Arc<Keyring>>,
    pool: Arc<Pool>,
    cache: CodeCache,
    policy: FetchPolicy,
    origin: String,
    slots: Semaphore,
    /// Calls waiting for an instance, per agent ([`AGENT_QUEUE_MAX`]).
    queues: AgentQueues,
    /// Encrypted calls waiting for their key epoch ([`KEY_WAITERS_MAX`]).
    key_waiters: Semaphore,
    pub(crate) logs: Arc<crate::logs::LogStore>,
    key_cache: crate::key_cache::KeyCache,
    shared: Shared,
}

/// What the gateway shares with the rest of the worker: agent state (the
/// command runner writes it, `env.STATE` reads it), the sealed logs (commands
/// log too) and the queue of commands agents submit (`ctx.submit`; none
/// when nothing sends them).
#[derive(Clone, Debug)]
pub struct Shared {
    pub states: Arc<crate::commands::AgentStates>,
    pub logs: Arc<crate::logs::LogStore>,
    pub submit: Option<mpsc::Sender<(Hash, Vec<u8>)>>,
    /// Paid calls served, waiting to be reported.
    pub usage: Arc<crate::usage::UsageMeter>,
    pub metrics: Arc<crate::metrics::GatewayMetrics>,
    /// Signed calls' nonces seen (kept in a file under the data dir).
    pub replays: Arc<crate::signed_call::ReplayGuard>,
}

/// Commands agents submitted (`ctx.submit`): agent and JSON payload.
pub type Submitted = mpsc::Receiver<(Hash, Vec<u8>)>;

/// The file under a worker's data dir that keeps signed calls' nonces
/// until they expire ([`crate::signed_call::ReplayGuard::open`]).
pub const REPLAY_FILE: &str = "signed-calls.seen";

impl Shared {
    /// State kept under `data_dir`, and a submit queue with its receiver.
    /// Fails if the file of seen signed calls cannot be opened: serving
    /// signed calls without it could run one twice.
    pub fn new(data_dir: &std::path::Path) -> std::io::Result<(Self, Submitted)> {
        let (submit, submitted) = mpsc::channel(crate::commands::SUBMIT_QUEUE_MAX);
        let replays = crate::signed_call::ReplayGuard::open(&data_dir.join(REPLAY_FILE), now_ms())?;
        let shared = Shared {
            states: Arc::new(crate::commands::AgentStates::new(data_dir)),
            logs: Arc::default(),
            submit: Some(submit),
            usage: Arc::default(),
            metrics: Arc::default(),
            replays: Arc::new(replays),
        };
        Ok((shared, submitted))
    }

    /// Nothing shared: empty state, no submissions (benchmarks).
    pub fn detached() -> Self {
        Shared {
            states: Arc::new(crate::commands::AgentStates::new(std::path::Path::new("/nonexistent"))),
            logs: Arc::default(),
            submit: None,
            usage: Arc::default(),
            metrics: Arc::default(),
            replays: Arc::default(),
        }
    }
}

/// Milliseconds since the Unix epoch, by the host's clock (what signed
/// calls' expiries are checked against).
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Starts the gateway; it serves until the task is dropped.
pub async fn serve(
    config: &GatewayConfig,
    signer: ReceiptSigner,
    view: StateView,
    keys: watch::Receiver<Arc<Keyring>>,
    shared: Shared,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    let gateway = Arc::new(Gateway {
        identity: signer.worker(),
        signer: Arc::new(signer),
        view,
        keys,
        pool: Pool::new(PoolConfig::default()),
        cache: CodeCache::default(),
        policy: config.fetch.clone(),
        origin: config.origin.trim_end_matches('/').to_string(),
        slots: Semaphore::new(config.concurrency_max),
        queues: AgentQueues::default(),
        key_waiters: Semaphore::new(KEY_WAITERS_MAX),
        logs: shared.logs.clone(),
        key_cache: crate::key_cache::KeyCache::default(),
        shared,
    });
    let app = axum::Router::new()
        .route("/attestation", axum::routing::get(attestation))
        .route("/logs/{id}", axum::routing::get(logs))
        .route("/state/{id}", axum::routing::get(agent_state))
        .route("/agents/{id}", axum::routing::any(call))
        .route("/agents/{id}/", axum::routing::any(call))
        .route("/agents/{id}/{*path}", axum::routing::any(call))
        .layer(DefaultBodyLimit::max(config.body_bytes_max))
        .with_state(gateway);
    let task = tokio::spawn(phalanx_listener::serve(listener, config.limits.clone(), "gateway", move |_| app.clone()));
    Ok((address, task))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, format!("{}\n", message.into())).into_response()
}

async fn attestation(State(gateway): State<Arc<Gateway>>) -> Response {
    let state = gateway.view.borrow().clone();
    let worker = state.worker(&gateway.identity).map(|w| serde_json::to_value(w).unwrap_or_default());
    axum::Json(serde_json::json!({
        "identity": gateway.identity,
        "chain_id": state.chain_id(),
        "verified_height": state.height(),
        "registration": worker,
    }))
    .into_response()
}

/// `GET /state/{id}`: where this worker is in the agent's commands: the last
/// one applied, whether it holds the whole state, its size, and the latest
/// outcomes. Never the state itself.
async fn agent_state(State(gateway): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<Hash>() else {
        return error(StatusCode::BAD_REQUEST, format!("{id:?} is not an agent id (0x and 64 hex digits)"));
    };
    let view = gateway.view.borrow().clone();
    let Some(agent) = view.agent(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no agent {id} at verified height {}", view.height()));
    };
    let state = gateway.shared.states.get(&id).unwrap_or_default();
    axum::Json(serde_json::json!({
        "agent": id,
        "verified_height": view.height(),
        "ordered": agent.commands,
        "applied": state.applied,
        "complete": state.complete(),
        "keys": state.entries.len(),
        "bytes": state.bytes,
        "outcomes": state.outcomes,
    }))
    .into_response()
}

/// `GET /logs/{id}?after=N`: the agent's sealed log batches (only its
/// owner's log key opens them).
async fn logs(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Ok(id) = id.parse::<Hash>() else {
        return error(StatusCode::BAD_REQUEST, format!("{id:?} is not an agent id (0x and 64 hex digits)"));
    };
    let after = match query.get("after").map(|a| a.parse::<u64>()) {
        None => None,
        Some(Ok(after)) => Some(after),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "after is a batch sequence number"),
    };
    axum::Json(serde_json::json!({ "agent": id, "batches": gateway.logs.after(&id, after) })).into_response()
}

/// Every `/agents/{id}…` route: the target comes from the URI itself.
async fn call(
    gateway: State<Arc<Gateway>>,
    Path(params): Path<std::collections::HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = params.get("id").cloned().unwrap_or_default();
    run(gateway, id, method, uri, headers, body).await
}

/// The target (path and query) the agent sees for a call to `uri`: the
/// request's own path after `/agents/{id}`, as the client sent it (not
/// percent-decoded, so `%2F` or `%3F` stay data and never split the path
/// or start a query), and its query. What receipts and signatures cover.
fn target_of(uri: &Uri) -> String {
    let path = uri.path();
    // Routing matched `/agents/{id}` or `/agents/{id}/…`: the rest is the agent's.
    let rest = path.strip_prefix("/agents/").and_then(|p| p.find('/').map(|slash| &p[slash..])).unwrap_or("/");
    match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_string(),
    }
}

/// Marks a response the agent was run for (its outcome is counted where it
/// is known); every other response to a call was a refusal.
#[derive(Clone, Copy, Debug)]
struct Invoked;

fn invoked(mut response: Response) -> Response {
    response.extensions_mut().insert(Invoked);
    response
}

async fn run(
    gateway: State<Arc<Gateway>>,
    id: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let metrics = gateway.shared.metrics.clone();
    let response = serve_call(gateway, id, method, target_of(&uri), headers, body).await;
    if response.extensions().get::<Invoked>().is_none() {
        metrics.call("refused");
    }
    response
}

async fn serve_call(
    State(gateway): State<Arc<Gateway>>,
    id: String,
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(id) = id.parse::<Hash>() else {
        return error(StatusCode::BAD_REQUEST, format!("{id:?} is not an agent id (0x and 64 hex digits)"));
    };
    let encrypted = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(phalanx_keys::call::ENVELOPE_CONTENT_TYPE));
    let state = if encrypted {
        match wait_for_key(&gateway, id, &body).await {
            Ok(state) => state,
            Err((status, message)) => return error(status, message),
        }
    } else {
        gateway.view.borrow().clone()
    };
    let (agent, code) = match servable(&gateway, &state, id) {
        Ok(found) => found,
        Err((status, message)) => return error(status, message),
    };
    let base = Receipt {
        version: RECEIPT_VERSION,
        chain_id: Hash::ZERO,
        worker: gateway.identity,
        agent: id,
        code_hash: agent.code_hash,
        agent_version: agent.version,
        key_epoch: None,
        height: state.height(),
        target_hash: crate::receipt::target_hash(method.as_str(), &target),
        request_hash: sha256(&body),
        status: 0,
        response_hash: None,
    };
    let env = match secrets_env(&gateway, agent) {
        Ok(env) => env,
        Err(message) => return error(StatusCode::SERVICE_UNAVAILABLE, message),
    };
    if encrypted {
        return encrypted_call(&gateway, agent, &code, &body, env, base).await;
    }
    let headers: Vec<(String, String)> =
        headers.iter().filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string()))).collect();
    let (headers, ticket) = match admit(&gateway, &state, agent, method.as_str(), &target, &body, headers).await {
        Ok(admitted) => admitted,
        Err((status, message)) => return error(status, message),
    };
    let request = HttpRequest {
        url: format!("{}{target}", gateway.origin),
        method: method.to_string(),
        headers,
        body: if body.is_empty() && matches!(method, Method::GET | Method::HEAD) { None } else { Some(body.to_vec()) },
    };
    let (lease, _slot) = match lease_and_slot(&gateway, &code, id).await {
        Ok(Ok(leased)) => leased,
        Ok(Err(failure)) => return invoked(failed(&gateway, agent, &failure, &ErrorId::default())),
        Err((status, message)) => return error(status, message),
    };
    let agent_id = id;
    let signer = gateway.signer.clone();
    let receipt: ReceiptFn =
        Box::new(move |status, response_hash| signer.sign(Receipt { status, response_hash, ..base }).to_header());
    let target = crate::logs::LogTarget::of(agent);
    let kept = gateway.clone();
    let error_id = Arc::new(ErrorId::default());
    let failure_id = error_id.clone();
    let response = respond(lease, request, env, Some(receipt), Some(error_id), move |mut logs, result, used| {
        if let Some(ticket) = ticket {
            ticket.finish(used);
        }
        match result {
            Ok(()) => kept.shared.metrics.call("ok"),
            Err(failure) => kept.shared.metrics.sandbox_error(failure),
        }
        // Agent console output is the owner's, sealed to their log key: never in the worker's log.
        if let Err(failure) = result {
            tracing::debug!(agent = %agent_id, kind = failure.kind(), error_id = failure_id.get(), "agent call failed");
            logs.push(failure_line(failure, failure_id.get()));
        }
        kept.logs.record(target, &logs);
    })
    .await;
    invoked(response)
}

/// An encrypted call: the body is an envelope sealed to the agent's key; the
/// answer is a sealed [`phalanx_keys::call::SealedResponse`]. Errors before
/// the envelope opens are plain (the client cannot be identified); errors of
/// the agent itself travel sealed.
async fn encrypted_call(
    gateway: &Arc<Gateway>,
    agent: &phalanx_state::Agent,
    code: &phalanx_sandbox::AgentCode,
    body: &[u8],
    env: Vec<(String, String)>,
    base: Receipt,
) -> Response {
    use phalanx_keys::call::{ENVELOPE_CONTENT_TYPE, SealedRequest, SealedResponse};
    let id = agent.id;
    let header = match phalanx_keys::Header::peek(body) {
        Ok(header) => header,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not an envelope: {e}")),
    };
    if header.key.kind != phalanx_keys::envelope::KeyKind::Agent || header.key.id != id || header.agent != id {
        return error(StatusCode::BAD_REQUEST, format!("the envelope is not sealed to agent {id}"));
    }
    let keys = gateway.keys.borrow().clone();
    let key = match agent_key(gateway, &keys, agent, header.key.epoch) {
        Ok(key) => key,
        Err((status, message)) => return error(status, message),
    };
    let opened = match phalanx_keys::Envelope::open(body, key.secret()) {
        Ok(opened) => opened,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("the envelope does not open: {e}")),
    };
    let Ok(sealed) = SealedRequest::decode(&opened.plaintext) else {
        return error(StatusCode::BAD_REQUEST, "the sealed request is malformed");
    };
    let target = format!("/{}", sealed.path.trim_start_matches('/'));
    if target.parse::<axum::http::uri::PathAndQuery>().is_err() {
        return error(StatusCode::BAD_REQUEST, "the sealed request's path is not a valid path and query");
    }
    let state = gateway.view.borrow().clone();
    let (headers, ticket) =
        match admit(gateway, &state, agent, &sealed.method, &target, &sealed.body, sealed.headers.clone()).await {
            Ok(admitted) => admitted,
            Err((status, message)) => return error(status, message),
        };
    let request = HttpRequest {
        url: format!("{}{target}", gateway.origin),
        method: sealed.method.clone(),
        headers,
        body: if sealed.body.is_empty() { None } else { Some(sealed.body.clone()) },
    };
    let error_id = ErrorId::default();
    let answer = match lease_and_slot(gateway, code, id).await {
        Err((status, message)) => return error(status, message),
        Ok(Ok((mut lease, _slot))) => match lease.fetch(request, env).await.inspect(|_| {
            if let Some(ticket) = ticket {
                ticket.finish(lease.last_usage());
            }
        }) {
            Ok(fetched) => {
                gateway.shared.metrics.call("ok");
                gateway.logs.record(crate::logs::LogTarget::of(agent), &fetched.logs);
                SealedResponse {
                    status: fetched.response.status,
                    headers: fetched.response.headers,
                    body: fetched.response.body,
                }
            }
            Err(failure) => {
                gateway.shared.metrics.sandbox_error(&failure);
                record_failure(gateway, agent, &failure, error_id.get());
                SealedResponse {
                    status: status_of(&failure).as_u16(),
                    headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                    body: format!("{}\n", public_message(&failure, error_id.get())).into_bytes(),
                }
            }
        },
        Ok(Err(failure)) => return invoked(failed(gateway, agent, &failure, &error_id)),
    };
    let plaintext = zeroize::Zeroizing::new(borsh::to_vec(&answer).expect("in-memory encoding"));
    let sealed = opened.response.seal(0, &plaintext);
    let receipt = gateway.signer.sign(Receipt {
        key_epoch: Some(header.key.epoch),
        status: StatusCode::OK.as_u16(),
        response_hash: Some(sha256(&sealed)),
        ..base
    });
    invoked(
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", ENVELOPE_CONTENT_TYPE)
            .header(RECEIPT_HEADER, receipt.to_header())
            .body(axum::body::Body::from(sealed))
            .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    )
}

/// The agent `id` and its compiled code, if this worker serves it now: it
/// exists in the verified state, belongs to one of this worker's clusters
/// and is not paused. Shared by calls from outside and `env.AGENTS`.
pub(crate) fn servable<'a>(
    gateway: &Gateway,
    state: &'a phalanx_state::State,
    id: Hash,
) -> Result<(&'a phalanx_state::Agent, Arc<phalanx_sandbox::AgentCode>), (StatusCode, String)> {
    let agent = state
        .agent(&id)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no agent {id} at verified height {}", state.height())))?;
    if !state.cluster(&agent.cluster).is_some_and(|c| c.workers.contains(&gateway.identity)) {
        return Err((StatusCode::MISDIRECTED_REQUEST, format!("this worker does not serve cluster {}", agent.cluster)));
    }
    if agent.paused {
        return Err((StatusCode::SERVICE_UNAVAILABLE, format!("agent {id} is paused by its owner")));
    }
    let source = state.code(&agent.code_hash).ok_or_else(|| {
        (StatusCode::INTERNAL_SERVER_ERROR, "the agent's code is missing from the verified state".to_string())
    })?;
    let code = gateway
        .cache
        .get_or_compile_hashed(agent.code_hash.0, agent.language.file_name(), &String::from_utf8_lossy(source))
        .map_err(|compile| (StatusCode::BAD_GATEWAY, format!("the agent's code does not compile: {compile}")))?;
    Ok((agent, code))
}

/// A call's headers as the agent sees them, and the ticket of a paid call.
type Admitted = (Vec<(String, String)>, Option<crate::usage::Ticket>);

/// Applies the agent's access policy to a call and returns the headers the
/// agent sees: signed-call headers are checked (signature, expiry, replay)
/// and replaced by the verified [`CALLER_HEADER`]; an unverified caller
/// header never reaches the agent. A paid call is admitted against the
/// caller's deposit; its ticket records what the call used when it ends.
async fn admit(
    gateway: &Gateway,
    state: &phalanx_state::State,
    agent: &phalanx_state::Agent,
    method: &str,
    target: &str,
    body: &[u8],
    headers: Vec<(String, String)>,
) -> Result<Admitted, (StatusCode, String)> {
    use crate::signed_call::{CALLER_HEADER, Presented, SignedCallError};
    let refuse = |e: SignedCallError| {
        let status = match e {
            SignedCallError::Replayed => StatusCode::CONFLICT,
            SignedCallError::Busy | SignedCallError::Unrecorded => StatusCode::SERVICE_UNAVAILABLE,
            // Not run here: a client may sign the call again for this worker.
            SignedCallError::OtherWorker(_) => StatusCode::MISDIRECTED_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        };
        (status, e.to_string())
    };
    let paid = matches!(agent.access, phalanx_state::Access::Paid);
    let find = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let presented = Presented::from_headers(find).map_err(refuse)?;
    let caller = match presented {
        Some(presented) => {
            let now_ms = now_ms();
            if presented.worker != gateway.identity {
                return Err(refuse(SignedCallError::OtherWorker(gateway.identity)));
            }
            presented.verify(state.chain_id(), agent.id, method, target, body, now_ms).map_err(refuse)?;
            if let phalanx_state::Access::Allowlist { accounts } = &agent.access
                && !accounts.contains(&presented.caller)
            {
                return Err((StatusCode::FORBIDDEN, format!("{} may not call this agent", presented.caller)));
            }
            let replays = gateway.shared.replays.clone();
            let admitted = presented.clone();
            // The guard writes through to disk: off the async threads.
            tokio::task::spawn_blocking(move || replays.admit(&admitted, now_ms))
                .await
                .unwrap_or(Err(SignedCallError::Unrecorded))
                .map_err(refuse)?;
            Some(presented.caller)
        }
        None if matches!(agent.access, phalanx_state::Access::Allowlist { .. }) => {
            return Err(refuse(SignedCallError::Missing));
        }
        None if paid => {
            return Err((
                StatusCode::UNAUTHORIZED,
                "this agent takes paid calls: sign the call (phalanx agent call --from ACCOUNT) so your deposit pays"
                    .into(),
            ));
        }
        None => None,
    };
    let ticket = match caller {
        Some(caller) if paid => {
            let admitted =
                gateway.shared.usage.admit(agent.id, caller, state.deposit(&caller), agent.price, *state.fee_params());
            Some(admitted.map_err(|e| {
                let status = match e {
                    crate::usage::PaidError::Busy => StatusCode::SERVICE_UNAVAILABLE,
                    crate::usage::PaidError::Insufficient { .. } => StatusCode::PAYMENT_REQUIRED,
                };
                (status, e.to_string())
            })?)
        }
        _ => None,
    };
    // Every `phalanx-*` header the agent sees is the gateway's: the signed-call
    // headers were checked above, and anything else under the prefix (such as
    // `phalanx-caller-agent`, which only `env.AGENTS` sets) is a client's forgery.
    let mut headers: Vec<(String, String)> = headers.into_iter().filter(|(n, _)| !is_reserved_header(n)).collect();
    if let Some(caller) = caller {
        headers.push((CALLER_HEADER.into(), caller.to_string()));
    }
    Ok((headers, ticket))
}

/// Longest an encrypted call waits for this worker to verify the block that
/// published the key epoch it is sealed to (a client reads keys from a node,
/// which may be a block or two ahead of this worker), in milliseconds.
pub const KEY_WAIT_MS: u64 = 3_000;

/// The agent's key of `epoch`: the chain records which cluster key epoch it
/// derives from, and this worker must hold that cluster key.
fn agent_key(
    gateway: &Gateway,
    keys: &Arc<Keyring>,
    agent: &phalanx_state::Agent,
    epoch: u64,
) -> Result<phalanx_keys::AgentKey, (StatusCode, String)> {
    gateway.key_cache.agent_key(keys, agent.id, epoch, || derive_agent_key(keys, agent, epoch))
}

pub(crate) fn derive_agent_key(
    keys: &Keyring,
    agent: &phalanx_state::Agent,
    epoch: u64,
) -> Result<phalanx_keys::AgentKey, (StatusCode, String)> {
    let Some(kept) = agent.key(epoch) else {
        let kept: Vec<u64> = agent.keys.iter().map(|k| k.epoch).collect();
        return Err((
            StatusCode::BAD_REQUEST,
            format!("agent {} has no key of epoch {epoch} (kept epochs: {kept:?}); seal to a kept key", agent.id),
        ));
    };
    let cluster_key = keys.get(&(agent.cluster, kept.cluster_epoch)).ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("this worker holds no cluster key of epoch {} for the agent yet", kept.cluster_epoch),
        )
    })?;
    Ok(cluster_key.agent_key_at(&agent.id, epoch))
}

/// Most encrypted calls waiting for their key epoch at once (see
/// [`wait_for_key`]); more are refused with 503 at once.
pub const KEY_WAITERS_MAX: usize = 64;
/// Calls to one agent waiting for one of its instances (beyond the pool's
/// instances per agent); more get 429 at once, so one slow agent's queue
/// never holds the gateway's call slots or starves other agents.
pub const AGENT_QUEUE_MAX: usize = 64;

/// The verified state to serve an encrypted call from. An envelope sealed
/// to the agent's next key epoch (a client reads keys from a node, which
/// may be a block or two ahead of this worker), or whose cluster key has
/// not reached this worker yet, waits up to [`KEY_WAIT_MS`] for it, so a
/// rotation never fails a call sealed to the newest key. The wait holds no
/// call slot, and at most [`KEY_WAITERS_MAX`] calls wait at once; an epoch
/// further ahead than the next is refused at once: no block this worker
/// could verify in time would publish it.
async fn wait_for_key(
    gateway: &Gateway,
    id: Hash,
    body: &[u8],
) -> Result<Arc<phalanx_state::State>, (StatusCode, String)> {
    // Anything but an envelope sealed to this agent's key is refused by the
    // call itself, with its reason, without waiting.
    let Ok(header) = phalanx_keys::Header::peek(body) else { return Ok(gateway.view.borrow().clone()) };
    if header.key.kind != phalanx_keys::envelope::KeyKind::Agent || header.key.id != id || header.agent != id {
        return Ok(gateway.view.borrow().clone());
    }
    let epoch = header.key.epoch;
    let ready = |state: &phalanx_state::State| {
        let Some(agent) = state.agent(&id) else { return true };
        match agent.key(epoch) {
            Some(kept) => gateway.keys.borrow().contains_key(&(agent.cluster, kept.cluster_epoch)),
            // An epoch older than the newest is retired: waiting cannot help.
            None => agent.newest_key().is_some_and(|newest| newest.epoch >= epoch),
        }
    };
    let state = gateway.view.borrow().clone();
    if ready(&state) {
        return Ok(state);
    }
    // The next epoch the chain could publish for the agent: after its newest
    // key, or (no key yet) its cluster's newest key epoch, which its first
    // key derives from.
    if let Some(agent) = state.agent(&id) {
        let known = match agent.newest_key() {
            Some(newest) => newest.epoch,
            None => state.cluster(&agent.cluster).and_then(|c| c.newest_key()).map_or(0, |k| k.epoch),
        };
        if epoch > known.saturating_add(1) {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "agent {id} has no key of epoch {epoch}: at verified height {} the newest it could have is {}; \
                     seal to a published key",
                    state.height(),
                    known.saturating_add(1)
                ),
            ));
        }
    }
    let Ok(_waiting) = gateway.key_waiters.try_acquire() else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{KEY_WAITERS_MAX} calls already wait for a key epoch this worker has not verified; retry shortly"),
        ));
    };
    let mut view = gateway.view.clone();
    let mut keys = gateway.keys.clone();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(KEY_WAIT_MS);
    loop {
        let state = view.borrow_and_update().clone();
        keys.borrow_and_update();
        if ready(&state) {
            return Ok(state);
        }
        tokio::select! {
            changed = view.changed() => if changed.is_err() { return Ok(state) },
            changed = keys.changed() => if changed.is_err() { return Ok(state) },
            _ = tokio::time::sleep_until(deadline) => return Ok(state),
        }
    }
}

/// Calls waiting for an instance, by agent.
#[derive(Debug, Default)]
struct AgentQueues(std::sync::Mutex<std::collections::HashMap<Hash, usize>>);

/// A place in an agent's queue, given back when dropped.
struct Queued<'a> {
    queues: &'a AgentQueues,
    agent: Hash,
}

impl AgentQueues {
    fn enter(&self, agent: Hash) -> Option<Queued<'_>> {
        let mut queues = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = queues.entry(agent).or_default();
        if *waiting >= AGENT_QUEUE_MAX {
            return None;
        }
        *waiting += 1;
        Some(Queued { queues: self, agent })
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let mut queues = self.queues.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waiting) = queues.get_mut(&self.agent) {
            *waiting -= 1;
            if *waiting == 0 {
                queues.remove(&self.agent);
            }
        }
    }
}

/// An instance of `agent` and one of the gateway's call slots: the call
/// waits in the agent's own queue (bounded by [`AGENT_QUEUE_MAX`]) for an
/// instance, and takes a slot only once it has one, so calls queued behind
/// a slow agent hold no slot. The outer error is a refusal (429).
async fn lease_and_slot<'a>(
    gateway: &'a Arc<Gateway>,
    code: &phalanx_sandbox::AgentCode,
    agent: Hash,
) -> Result<Result<(Lease, tokio::sync::SemaphorePermit<'a>), SandboxError>, (StatusCode, String)> {
    let queued = gateway.queues.enter(agent).ok_or_else(|| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            format!("agent {agent} has {AGENT_QUEUE_MAX} calls waiting for an instance already; retry shortly"),
        )
    })?;
    let lease = match lease_agent(gateway, code, agent, &[]).await {
        Ok(lease) => lease,
        Err(failure) => return Ok(Err(failure)),
    };
    drop(queued);
    let slot = gateway.slots.try_acquire().map_err(|_| {
        (StatusCode::TOO_MANY_REQUESTS, "the gateway is at its limit of calls in flight; retry shortly".to_string())
    })?;
    Ok(Ok((lease, slot)))
}

/// Whether a request header is the gateway's to set (`phalanx-*`): no
/// client's value under that prefix ever reaches an agent.
pub fn is_reserved_header(name: &str) -> bool {
    // Bytes, not a `str` slice: an agent's header name may be any text, and
    // byte 8 need not be a character boundary.
    name.as_bytes().get(..RESERVED_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX.as_bytes()))
}

/// The prefix of the headers only the gateway sets.
pub const RESERVED_PREFIX: &str = "phalanx-";

/// The id of one call's failure: the caller gets it, the owner's sealed log
/// line carries it with the details. Drawn only when first asked for, so a
/// call that succeeds costs nothing.
#[derive(Debug, Default)]
pub struct ErrorId(std::sync::OnceLock<String>);

impl ErrorId {
    pub fn get(&self) -> &str {
        self.0.get_or_init(|| {
            let mut bytes = [0u8; 8];
            // Without randomness the id is still unique enough to find the line by time.
            let _ = getrandom::fill(&mut bytes);
            hex::encode(bytes)
        })
    }
}

/// A failed call, told: counted, its details sealed into the owner's logs,
/// and the caller's answer.
fn failed(gateway: &Gateway, agent: &phalanx_state::Agent, failure: &SandboxError, error_id: &ErrorId) -> Response {
    gateway.shared.metrics.sandbox_error(failure);
    record_failure(gateway, agent, failure, error_id.get());
    public_failure(failure, error_id.get())
}

/// What a caller (a client or another agent) is told of a failed call: the
/// kind of failure and its id, never text the agent produced (an exception
/// message may carry its secrets, as on Cloudflare Workers).
pub fn public_message(failure: &SandboxError, error_id: &str) -> String {
    match failure {
        SandboxError::Threw(_)
        | SandboxError::Load(_)
        | SandboxError::Compile(_)
        | SandboxError::Runtime(_)
        | SandboxError::NoHandler(_) => format!(
            "the agent failed ({}); error id {error_id}: its owner finds the details in the agent's sealed logs",
            failure.kind()
        ),
        other => format!("agent error: {other} (error id {error_id})"),
    }
}

/// [`public_message`] as an HTTP response.
pub fn public_failure(failure: &SandboxError, error_id: &str) -> Response {
    error(status_of(failure), public_message(failure, error_id))
}

/// The owner's log line of a failed call, with all the details.
pub fn failure_line(failure: &SandboxError, error_id: &str) -> LogLine {
    LogLine { level: "error".into(), message: format!("call failed (error id {error_id}): {failure}") }
}

/// Seals a failed call's details into the agent owner's logs.
pub(crate) fn record_failure(gateway: &Gateway, agent: &phalanx_state::Agent, failure: &SandboxError, error_id: &str) {
    gateway.logs.record(crate::logs::LogTarget::of(agent), &[failure_line(failure, error_id)]);
}

/// The agent's secrets as `env` values, opened inside the worker with the
/// cluster key of each secret's epoch. Values never leave this function
/// except into the sandbox; errors name the secret, never its value.
pub(crate) fn secrets_env(gateway: &Gateway, agent: &phalanx_state::Agent) -> Result<Vec<(String, String)>, String> {
    let keys = gateway.keys.borrow().clone();
    open_secrets(&gateway.key_cache, &keys, agent)
}

/// [`secrets_env`] with a given key cache and keyring (commands use their own).
pub(crate) fn open_secrets(
    key_cache: &crate::key_cache::KeyCache,
    keys: &Arc<Keyring>,
    agent: &phalanx_state::Agent,
) -> Result<Vec<(String, String)>, String> {
    if agent.secrets.is_empty() {
        return Ok(Vec::new());
    }
    let sealed: Vec<&[u8]> = agent.secrets.iter().map(|s| s.sealed.as_slice()).collect();
    let digest = phalanx_primitives::sha256_parts(&sealed);
    let opened = key_cache.secrets(keys, agent.id, digest, || {
        let mut env = crate::key_cache::Opened::default();
        for secret in &agent.secrets {
            let refused =
                |why: String| format!("secret {} of agent {} does not open here: {why}", secret.name, agent.id);
            let header = phalanx_keys::Header::peek(&secret.sealed).map_err(|e| refused(e.to_string()))?;
            if header.key.kind != phalanx_keys::envelope::KeyKind::Agent || header.key.id != agent.id {
                return Err(refused("it is sealed to another key".into()));
            }
            let key = key_cache
                .agent_key(keys, agent.id, header.key.epoch, || derive_agent_key(keys, agent, header.key.epoch))
                .map_err(|(_, why)| refused(why))?;
            let opened =
                phalanx_keys::Envelope::open(&secret.sealed, key.secret()).map_err(|e| refused(e.to_string()))?;
            let value =
                String::from_utf8(opened.plaintext.to_vec()).map_err(|_| refused("it is not UTF-8 text".into()))?;
            env.0.push((secret.name.clone(), value));
        }
        Ok(env)
    })?;
    Ok(opened.0.clone())
}

/// An instance of `agent` (with `env.AGENTS`), its call context set to the
/// chain of agents that led here (empty for a call from outside).
pub(crate) async fn lease_agent(
    gateway: &Arc<Gateway>,
    code: &phalanx_sandbox::AgentCode,
    agent: Hash,
    chain: &[Hash],
) -> Result<Lease, SandboxError> {
    let agents: Arc<dyn phalanx_sandbox::Binding> =
        Arc::new(crate::agent_calls::AgentsBinding { gateway: Arc::downgrade(gateway) });
    let state: Arc<dyn phalanx_sandbox::Binding> =
        Arc::new(crate::commands::StateReader { states: gateway.shared.states.clone(), agent });
    let mut bindings = vec![("AGENTS".to_string(), agents), ("STATE".to_string(), state)];
    if let Some(queue) = &gateway.shared.submit {
        let submit: Arc<dyn phalanx_sandbox::Binding> =
            Arc::new(crate::commands::Submitter { agent, queue: queue.clone() });
        bindings.push(("__COMMANDS".to_string(), submit));
    }
    let lease =
        gateway.pool.lease_with(&agent.to_string(), code, Limits::default(), &gateway.policy, &bindings).await?;
    lease.set_call_context(&crate::agent_calls::context_of(chain, agent));
    Ok(lease)
}

/// Maps a sandbox error to an HTTP status.
pub fn status_of(error: &SandboxError) -> StatusCode {
    match error {
        SandboxError::WallTime { .. } => StatusCode::GATEWAY_TIMEOUT,
        SandboxError::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A sandbox error as an HTTP response.
pub fn sandbox_failure(failure: &SandboxError) -> Response {
    error(status_of(failure), format!("agent error: {failure}"))
}

/// Runs one call on a leased instance and turns its response parts into an
/// HTTP response, streaming the body when the agent streams it. `done` gets
/// the console lines, the result and what the call used once the call (including `waitUntil`
/// work) has finished. With an `error_id`, a failure before the response
/// starts is told to the caller as [`public_message`]; without one (the
/// developer's own `phalanx agent dev`), in full.
pub async fn respond(
    mut lease: Lease,
    request: HttpRequest,
    env: Vec<(String, String)>,
    receipt: Option<ReceiptFn>,
    error_id: Option<Arc<ErrorId>>,
    done: impl FnOnce(Vec<LogLine>, &Result<(), SandboxError>, phalanx_sandbox::CallUsage) + Send + 'static,
) -> Response {
    let (sender, mut parts) = mpsc::channel(16);
    let mut call = Box::pin(async move {
        let (result, logs) = lease.serve(request, &env, sender).await;
        done(logs, &result, lease.last_usage());
        result
    });
    // Most calls finish on their first poll (no wait on the host): then the
    // response is already in the channel. A call still running when its
    // response starts (a stream, or `waitUntil` work) goes on in a task.
    let first = tokio::select! {
        biased;
        result = &mut call => match parts.recv().await {
            Some(part) => Some(part),
            None => {
                let failure = result.err().unwrap_or(SandboxError::NoResponse);
                return match &error_id {
                    Some(id) => public_failure(&failure, id.get()),
                    None => sandbox_failure(&failure),
                };
            }
        },
        part = parts.recv() => {
            tokio::spawn(call);
            part
        }
    };
    let (head, body, body_hash) = match first {
        Some(ResponsePart::Complete(head, body)) => {
            let hash = receipt.is_some().then(|| sha256(&body));
            (head, axum::body::Body::from(body), hash)
        }
        Some(ResponsePart::Head(head)) => {
            let chunks = futures::stream::unfold(parts, |mut parts| async move {
                match parts.recv().await? {
                    ResponsePart::Body(chunk) => Some((Ok::<_, std::convert::Infallible>(Bytes::from(chunk)), parts)),
                    _ => None,
                }
            });
            (head, axum::body::Body::from_stream(chunks), None)
        }
        _ => return sandbox_failure(&SandboxError::NoResponse),
    };
    let mut response = Response::builder().status(head.status);
    for (name, value) in &head.headers {
        // The receipt header is the worker's alone: an agent cannot set it.
        if !name.eq_ignore_ascii_case(RECEIPT_HEADER) {
            response = response.header(name, value);
        }
    }
    if let Some(receipt) = receipt {
        response = response.header(RECEIPT_HEADER, receipt(head.status, body_hash));
    }
    response
        .body(body)
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("invalid response from the agent: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_headers_are_matched_on_bytes() {
        assert!(is_reserved_header("phalanx-caller"));
        assert!(is_reserved_header("PHALANX-Caller-Agent"));
        assert!(!is_reserved_header("phalanx"));
        assert!(!is_reserved_header("x-phalanx-caller"));
        // A multi-byte character across the prefix's end must not panic.
        assert!(!is_reserved_header("phalanxé-caller"));
        assert!(!is_reserved_header("phalanéx-x"));
    }
}
