//! Agent-to-agent calls: `env.AGENTS.fetch(agentId, request)` runs another
//! agent in the same worker, without a network hop.
//!
//! The callee must be an agent of a cluster this worker serves, not paused,
//! and public (allowlists name accounts, which an agent is not; paid calls
//! need deposits). It runs with its own code, secrets and limits, and sees
//! its caller in the `phalanx-caller-agent` header. The chain of agents that
//! led to a call is the sandbox's per-call context (set by the gateway, out
//! of the agent's reach): a callee already in it is a cycle and refused, and
//! calls nest at most [`AGENT_CALL_DEPTH_MAX`] deep. Bodies cross as strings
//! of char codes 0-255 inside the binding's JSON, so they are bounded by the
//! sandbox's 1 MiB binding limit.

use crate::server::{Gateway, lease_agent, secrets_env, servable};
use axum::http::StatusCode;
use phalanx_primitives::Hash;
use phalanx_sandbox::{Binding, BindingFuture, HttpRequest};
use std::sync::{Arc, Weak};

/// Most agents in one chain of calls (the first, called over HTTP, included).
pub const AGENT_CALL_DEPTH_MAX: usize = 4;
/// The header a callee reads its calling agent from.
pub const CALLER_AGENT_HEADER: &str = "phalanx-caller-agent";

/// `env.AGENTS` of one agent's instances.
#[derive(Debug)]
pub(crate) struct AgentsBinding {
    pub(crate) gateway: Weak<Gateway>,
}

/// What the agent's side sends (see `agentsFetch` in the sandbox's http.js).
#[derive(serde::Deserialize)]
struct InnerRequest {
    method: String,
    path: String,
    /// Names and values in turn (`[name, value, name, value, …]`), as the
    /// sandbox flattens a `Headers`.
    headers: Vec<String>,
    body: String,
}

/// Pairs a flat `[name, value, …]` header list.
fn paired(flat: Vec<String>) -> Result<Vec<(String, String)>, String> {
    if !flat.len().is_multiple_of(2) {
        return Err("env.AGENTS.fetch: headers must come as name and value pairs".into());
    }
    let mut flat = flat.into_iter();
    let mut pairs = Vec::with_capacity(flat.len() / 2);
    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// The chain of agent ids in a call context (`0x…,0x…`).
pub(crate) fn chain_of(context: &str) -> Vec<Hash> {
    context.split(',').filter_map(|id| id.parse().ok()).collect()
}

/// The context for a call of `agent` after `chain`.
pub(crate) fn context_of(chain: &[Hash], agent: Hash) -> String {
    chain.iter().chain(std::iter::once(&agent)).map(|id| id.to_string()).collect::<Vec<_>>().join(",")
}

fn latin1(text: &str) -> Result<Vec<u8>, String> {
    text.chars().map(|c| u8::try_from(u32::from(c)).map_err(|_| "a body character above U+00FF".to_string())).collect()
}

impl Binding for AgentsBinding {
    fn methods(&self) -> Vec<String> {
        vec!["fetch".into()]
    }

    fn call(&self, method: &str, arguments_json: String) -> BindingFuture {
        self.call_in("", method, arguments_json)
    }

    fn call_in(&self, context: &str, _method: &str, arguments_json: String) -> BindingFuture {
        let gateway = self.gateway.clone();
        let chain = chain_of(context);
        Box::pin(async move {
            let gateway = gateway.upgrade().ok_or("the gateway is shutting down")?;
            let (target, request): (String, InnerRequest) = serde_json::from_str(&arguments_json)
                .map_err(|e| format!("env.AGENTS.fetch(agentId, request): {e}"))?;
            let target: Hash = target.parse().map_err(|_| format!("{target:?} is not an agent id"))?;
            call_agent(&gateway, &chain, target, request).await
        })
    }
}

async fn call_agent(
    gateway: &Arc<Gateway>,
    chain: &[Hash],
    target: Hash,
    request: InnerRequest,
) -> Result<String, String> {
    let caller = *chain.last().ok_or("an agent call needs a calling agent")?;
    if chain.contains(&target) {
        let path: Vec<String> = chain.iter().chain([&target]).map(|id| id.to_string()).collect();
        return Err(format!("agent call cycle: {}", path.join(" -> ")));
    }
    if chain.len() >= AGENT_CALL_DEPTH_MAX {
        return Err(format!("agent calls nest at most {AGENT_CALL_DEPTH_MAX} deep"));
    }
    let state = gateway.view.borrow().clone();
    let (agent, code) = servable(gateway, &state, target).map_err(|(status, message)| match status {
        StatusCode::MISDIRECTED_REQUEST => format!("agent {target} runs on another cluster"),
        _ => message,
    })?;
    if !matches!(agent.access, phalanx_state::Access::Public) {
        return Err(format!("agent {target} takes signed or paid calls only; agents cannot call it"));
    }
    let env = secrets_env(gateway, agent)?;
    let mut headers: Vec<(String, String)> =
        paired(request.headers)?.into_iter().filter(|(name, _)| !crate::server::is_reserved_header(name)).collect();
    headers.push((CALLER_AGENT_HEADER.into(), caller.to_string()));
    let body = latin1(&request.body)?;
    let target_path = format!("/{}", request.path.trim_start_matches('/'));
    if target_path.parse::<axum::http::uri::PathAndQuery>().is_err() {
        return Err(format!("env.AGENTS.fetch: {:?} is not a valid path and query", request.path));
    }
    let inner = HttpRequest {
        url: format!("http://agent{target_path}"),
        method: request.method,
        headers,
        body: if body.is_empty() { None } else { Some(body) },
    };
    // A failure of the callee is the callee owner's to read: the calling
    // agent (of another owner, perhaps) gets its kind and id only.
    let failed = |failure: phalanx_sandbox::SandboxError| {
        let error_id = crate::server::ErrorId::default();
        crate::server::record_failure(gateway, agent, &failure, error_id.get());
        format!("agent {target}: {}", crate::server::public_message(&failure, error_id.get()))
    };
    let mut lease = lease_agent(gateway, &code, target, chain).await.map_err(failed)?;
    let fetched = lease.fetch(inner, env).await.map_err(failed)?;
    gateway.logs.record(crate::logs::LogTarget::of(agent), &fetched.logs);
    let response = fetched.response;
    let body: String = response.body.iter().map(|&b| char::from(b)).collect();
    serde_json::to_string(&serde_json::json!({ "status": response.status, "headers": response.headers, "body": body }))
        .map_err(|e| e.to_string())
}
