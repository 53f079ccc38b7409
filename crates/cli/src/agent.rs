//! `phalanx agent dev FILE`: serve one agent on localhost, like
//! `wrangler dev`, reloading it when the file changes. The agent runs in the
//! same sandbox workers use, with dev-mode fetch (private addresses allowed).

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use phalanx_sandbox::{FetchPolicy, HttpRequest, Limits, Sandbox, SandboxError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

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
}

struct Served {
    file: PathBuf,
    env: Vec<(String, String)>,
    sandbox: Mutex<Arc<Sandbox>>,
}

async fn load(file: &Path) -> anyhow::Result<Sandbox> {
    let source = tokio::fs::read_to_string(file).await.with_context(|| format!("cannot read {}", file.display()))?;
    let policy = FetchPolicy { allow_private_addresses: true, ..FetchPolicy::default() };
    let mut sandbox = Sandbox::with_policy(Limits::default(), policy).await?;
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("agent.js");
    sandbox.load(name, &source, "fetch").await?;
    Ok(sandbox)
}

fn modified(file: &Path) -> Option<SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

pub(crate) async fn run(command: AgentCommand) -> anyhow::Result<()> {
    let AgentCommand::Dev { file, port, env } = command;
    let env = env
        .iter()
        .map(|pair| pair.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect::<Option<Vec<_>>>()
        .context("--env takes NAME=VALUE")?;
    let sandbox = load(&file).await?;
    let served = Arc::new(Served { file: file.clone(), env, sandbox: Mutex::new(Arc::new(sandbox)) });
    tokio::spawn(watch(served.clone()));
    let app = axum::Router::new().fallback(handle).layer(DefaultBodyLimit::max(DEV_BODY_BYTES_MAX)).with_state(served);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    println!("serving {} on http://{} (reloads on change; Ctrl-C to stop)", file.display(), listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
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
        match load(&served.file).await {
            Ok(sandbox) => {
                *served.sandbox.lock().await = Arc::new(sandbox);
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
    let sandbox = served.sandbox.lock().await.clone();
    let result = sandbox.fetch(request, served.env.clone()).await;
    if sandbox.is_poisoned()
        && let Ok(fresh) = load(&served.file).await
    {
        *served.sandbox.lock().await = Arc::new(fresh);
    }
    match result {
        Ok(fetched) => {
            for line in &fetched.logs {
                println!("[{}] {}", line.level, line.message);
            }
            let mut response = Response::builder().status(fetched.response.status);
            for (name, value) in &fetched.response.headers {
                response = response.header(name, value);
            }
            response.body(fetched.response.body.into()).unwrap_or_else(|e| {
                (StatusCode::INTERNAL_SERVER_ERROR, format!("invalid response from the agent: {e}")).into_response()
            })
        }
        Err(error) => {
            let status = match error {
                SandboxError::WallTime { .. } => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            eprintln!("agent error: {error}");
            (status, format!("agent error: {error}\n")).into_response()
        }
    }
}
