//! `phalanx agent dev FILE`: serve one agent on localhost, like
//! `wrangler dev`, reloading it when the file changes. The agent runs in the
//! same sandbox workers use (a pool of warm instances), with dev-mode fetch
//! (private addresses allowed); streamed response bodies are relayed to the
//! client as the agent writes them.

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use phalanx_sandbox::{AgentCode, FetchPolicy, HttpRequest, Limits, Pool, PoolConfig, SandboxError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// Largest request body the dev server accepts, in bytes.
const DEV_BODY_BYTES_MAX: usize = 1024 * 1024;
/// How often the file is checked for changes.
const RELOAD_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AgentCommand {
    /// Serve an agent (JavaScript or TypeScript, one bundled module) on localhost, reloading on change.
    Dev {
        /// The agent's source file (.js, .mjs, .ts, .mts).
        file: PathBuf,
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 8787)]
        port: u16,
        /// A value in the agent's `env` (repeatable): NAME=VALUE.
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
    },
    #[command(flatten)]
    Chain(crate::agent_chain::AgentChainCommand),
}

/// The pool key of the one agent the dev server runs.
const DEV_AGENT: &str = "dev";

pub(crate) struct Served {
    file: PathBuf,
    env: Vec<(String, String)>,
    pool: Arc<Pool>,
    code: RwLock<Arc<AgentCode>>,
    policy: FetchPolicy,
}

/// Reads and compiles the agent, and checks it loads (top level runs, a
/// `fetch` handler exists) by leasing an instance.
async fn load(file: &Path, pool: &Arc<Pool>, policy: &FetchPolicy) -> anyhow::Result<Arc<AgentCode>> {
    let source = tokio::fs::read_to_string(file).await.with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("agent.js");
    let code = Arc::new(AgentCode::compile(name, &source)?);
    pool.lease(DEV_AGENT, &code, Limits::default(), policy).await?;
    Ok(code)
}

fn modified(file: &Path) -> Option<SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

pub(crate) async fn run(command: AgentCommand) -> anyhow::Result<()> {
    let (file, port, env) = match command {
        AgentCommand::Dev { file, port, env } => (file, port, env),
        AgentCommand::Chain(command) => return crate::agent_chain::run(command).await,
    };
    let env = env
        .iter()
        .map(|pair| pair.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect::<Option<Vec<_>>>()
        .context("--env takes NAME=VALUE")?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let served = serve_file(file.clone(), env).await?;
    tokio::spawn(watch(served.clone()));
    println!("serving {} on http://{} (reloads on change; Ctrl-C to stop)", file.display(), listener.local_addr()?);
    axum::serve(listener, router(served)).await?;
    Ok(())
}

/// Compiles `file` and sets up its pool (dev-mode fetch: private addresses allowed).
pub(crate) async fn serve_file(file: PathBuf, env: Vec<(String, String)>) -> anyhow::Result<Arc<Served>> {
    let policy = FetchPolicy { allow_private_addresses: true, ..FetchPolicy::default() };
    let pool = Pool::new(PoolConfig::default());
    let code = load(&file, &pool, &policy).await?;
    Ok(Arc::new(Served { file, env, pool, code: RwLock::new(code), policy }))
}

/// The HTTP app: every method and path goes to the agent.
pub(crate) fn router(served: Arc<Served>) -> axum::Router {
    axum::Router::new().fallback(handle).layer(DefaultBodyLimit::max(DEV_BODY_BYTES_MAX)).with_state(served)
}

/// Reloads the agent when its file changes; a broken edit keeps the old one.
async fn watch(served: Arc<Served>) {
    let mut last = modified(&served.file);
    loop {
        tokio::time::sleep(RELOAD_POLL).await;
        let now = modified(&served.file);
        if now == last {
            continue;
        }
        last = now;
        match load(&served.file, &served.pool, &served.policy).await {
            Ok(code) => {
                *served.code.write().unwrap_or_else(|p| p.into_inner()) = code;
                println!("reloaded {}", served.file.display());
            }
            Err(error) => eprintln!("not reloaded, still serving the previous version: {error:#}"),
        }
    }
}

async fn handle(
    State(served): State<Arc<Served>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_string();
    let request = HttpRequest {
        url: format!("http://{host}{uri}"),
        method: method.to_string(),
        headers: headers.iter().filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string()))).collect(),
        body: if body.is_empty() && matches!(method, Method::GET | Method::HEAD) { None } else { Some(body.to_vec()) },
    };
    let code = served.code.read().unwrap_or_else(|p| p.into_inner()).clone();
    let lease = match served.pool.lease(DEV_AGENT, &code, Limits::default(), &served.policy).await {
        Ok(lease) => lease,
        Err(error) => return failure(&error),
    };
    phalanx_gateway::server::respond(lease, request, served.env.clone(), None, None, |logs, result, _used| {
        for line in &logs {
            println!("[{}] {}", line.level, line.message);
        }
        if let Err(error) = result {
            eprintln!("agent error: {error}");
        }
    })
    .await
}

fn failure(error: &SandboxError) -> Response {
    phalanx_gateway::server::sandbox_failure(error)
}
