//! `phalanx agent call`: plain, encrypted and signed calls through a
//! worker's gateway, with failover between the gateways of the agent's
//! cluster (as the workers announce them on chain).
//!
//! A call moves to the next gateway only when it cannot have run: the
//! gateway could not be reached, does not serve the agent's cluster (421),
//! is at its limit of calls (429), or holds no key for the call yet (503).

use crate::ClientArgs;
use crate::agent_chain::agent_key;
use crate::client::{connect, rpc_error};
use anyhow::Context;
use phalanx_primitives::Hash;
use phalanx_rpc::PhalanxClient;
use std::path::PathBuf;

/// What `agent call` was asked for.
pub(crate) struct CallArgs {
    pub(crate) id: Hash,
    pub(crate) path: String,
    pub(crate) method: Option<String>,
    pub(crate) data: Option<String>,
    pub(crate) gateways: Vec<String>,
    pub(crate) encrypt: bool,
    pub(crate) caller: Option<phalanx_primitives::Keypair>,
    pub(crate) saved: Saved,
}

/// Why an attempt moved on to the next gateway.
#[derive(Debug)]
struct Untried(String);

impl std::fmt::Display for Untried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Untried {}

/// Whether a refusal means the call did not run there, so another gateway may take it.
fn untried(status: reqwest::StatusCode, body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    status == reqwest::StatusCode::MISDIRECTED_REQUEST
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || (status == reqwest::StatusCode::SERVICE_UNAVAILABLE && text.contains("holds no"))
}

fn unreachable(gateway: &str, error: reqwest::Error) -> anyhow::Error {
    if error.is_connect() {
        anyhow::Error::new(Untried(format!("cannot reach the gateway at {gateway}: {error}")))
    } else {
        anyhow::Error::new(error).context(format!("calling the gateway at {gateway}"))
    }
}

/// The gateways the workers of `agent`'s cluster announce, starting at a random one.
pub(crate) async fn discover(args: &ClientArgs, agent: Hash) -> anyhow::Result<Vec<String>> {
    let client = connect(&args.rpc)?;
    let found = client.agents_get(agent).await.map_err(rpc_error(&args.rpc))?.context(format!("no agent {agent}"))?;
    let cluster = found.agent["cluster"].as_str().unwrap_or_default().to_string();
    let status = client.keys_status().await.map_err(rpc_error(&args.rpc))?;
    let members: Vec<String> = status
        .clusters
        .iter()
        .find(|c| c["id"].as_str() == Some(cluster.as_str()))
        .and_then(|c| c["workers"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|w| w.as_str().map(str::to_string))
        .collect();
    let workers = client.registry_workers().await.map_err(rpc_error(&args.rpc))?;
    let mut urls: Vec<String> = workers
        .iter()
        .filter(|w| members.contains(&w.identity.to_string()))
        .filter_map(|w| w.worker["gateway_url"].as_str().map(str::to_string))
        .collect();
    anyhow::ensure!(!urls.is_empty(), "no worker of cluster {cluster} announces a gateway; pass --gateway URL");
    let mut start = [0u8; 1];
    getrandom::fill(&mut start).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let len = urls.len();
    urls.rotate_left(start[0] as usize % len);
    Ok(urls)
}

pub(crate) async fn run(call: CallArgs, args: &ClientArgs) -> anyhow::Result<()> {
    let gateways = if call.gateways.is_empty() { discover(args, call.id).await? } else { call.gateways.clone() };
    let method = call.method.clone().unwrap_or_else(|| if call.data.is_some() { "POST" } else { "GET" }.into());
    let method: reqwest::Method = method.to_uppercase().parse().context("--method")?;
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?;
    let target = format!("/{}", call.path.trim_start_matches('/'));
    let chain_id = match &call.caller {
        Some(_) => Some(connect(&args.rpc)?.chain_info().await.map_err(rpc_error(&args.rpc))?.chain_id),
        None => None,
    };
    let mut skipped = Vec::new();
    for gateway in &gateways {
        // A signed call runs on one worker only: it is signed anew for each
        // gateway tried, naming that gateway's worker.
        let signed = match (&call.caller, chain_id) {
            (Some(key), Some(chain_id)) => {
                let worker = match gateway_worker(&http, gateway).await {
                    Ok(worker) => worker,
                    Err(error) => {
                        eprintln!("{error}; trying the next gateway");
                        skipped.push(error.to_string());
                        continue;
                    }
                };
                let body = call.data.as_deref().unwrap_or_default().as_bytes();
                signed_headers(key, chain_id, worker, call.id, method.as_str(), &target, body)?
            }
            _ => Vec::new(),
        };
        let attempt = if call.encrypt {
            let mut request = sealed_request(&call.path, &method, call.data.clone());
            request.headers.extend(signed.clone());
            encrypted_call(&http, args, call.id, gateway, request, &call.saved).await
        } else {
            plain_call(&http, gateway, &call, &method, &signed).await
        };
        match attempt {
            Err(error) if error.downcast_ref::<Untried>().is_some() => {
                eprintln!("{error}; trying the next gateway");
                skipped.push(error.to_string());
            }
            done => return done,
        }
    }
    anyhow::bail!("no gateway took the call: {}", skipped.join("; "))
}

async fn plain_call(
    http: &reqwest::Client,
    gateway: &str,
    call: &CallArgs,
    method: &reqwest::Method,
    signed: &[(String, String)],
) -> anyhow::Result<()> {
    let url = format!("{}/agents/{}/{}", gateway.trim_end_matches('/'), call.id, call.path.trim_start_matches('/'));
    let mut request = http.request(method.clone(), &url);
    for (name, value) in signed {
        request = request.header(name, value);
    }
    if let Some(data) = &call.data {
        let json = serde_json::from_str::<serde_json::Value>(data).is_ok();
        request = request
            .header("content-type", if json { "application/json" } else { "text/plain; charset=utf-8" })
            .body(data.clone());
    }
    let response = request.send().await.map_err(|e| unreachable(gateway, e))?;
    let status = response.status();
    let header = receipt_header(&response);
    let body = response.bytes().await.context("reading the response")?;
    if untried(status, &body) {
        return Err(Untried(format!("{gateway}: {status}: {}", String::from_utf8_lossy(&body).trim_end())).into());
    }
    if !status.is_success() {
        anyhow::bail!("{status}: {}", String::from_utf8_lossy(&body).trim_end());
    }
    call.saved.receipt(header, &body)?;
    call.saved.body(&body)
}

/// The identity of the worker behind `gateway`, as its `/attestation`
/// names it. Unverified: a gateway that names another worker only gets a
/// call that worker alone may run.
async fn gateway_worker(http: &reqwest::Client, gateway: &str) -> anyhow::Result<phalanx_primitives::PublicKey> {
    let url = format!("{}/attestation", gateway.trim_end_matches('/'));
    let response = http.get(&url).send().await.map_err(|e| unreachable(gateway, e))?;
    let body = response.bytes().await.context("reading the gateway's /attestation")?;
    anyhow::ensure!(body.len() <= 64 * 1024, "{url} answered more than 64 KiB");
    let attestation: serde_json::Value =
        serde_json::from_slice(&body).with_context(|| format!("{url} did not answer JSON"))?;
    attestation["identity"]
        .as_str()
        .and_then(|identity| identity.parse().ok())
        .with_context(|| format!("{url} names no worker identity"))
}

/// The signed-call headers for a call as `key` to `worker`, valid for one minute.
fn signed_headers(
    key: &phalanx_primitives::Keypair,
    chain_id: Hash,
    worker: phalanx_primitives::PublicKey,
    agent: Hash,
    method: &str,
    target: &str,
    body: &[u8],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness for the call's nonce: {e}"))?;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let message = phalanx_gateway::signed_call::SignedCallMessage {
        chain_id,
        worker,
        agent,
        method,
        path_and_query: target,
        body_hash: phalanx_primitives::sha256(body),
        nonce,
        expires_ms: now_ms + 60_000,
    };
    Ok(phalanx_gateway::signed_call::sign(key, &message))
}

/// The sealed form of an `agent call` request.
fn sealed_request(path: &str, method: &reqwest::Method, data: Option<String>) -> phalanx_keys::call::SealedRequest {
    let mut headers = Vec::new();
    if let Some(data) = &data {
        let json = serde_json::from_str::<serde_json::Value>(data).is_ok();
        headers.push((
            "content-type".to_string(),
            if json { "application/json" } else { "text/plain; charset=utf-8" }.into(),
        ));
    }
    phalanx_keys::call::SealedRequest {
        method: method.to_string(),
        path: format!("/{}", path.trim_start_matches('/')),
        headers,
        body: data.unwrap_or_default().into_bytes(),
    }
}

/// An encrypted call: the request sealed to the agent's newest published key.
async fn encrypted_call(
    http: &reqwest::Client,
    args: &ClientArgs,
    id: Hash,
    gateway: &str,
    request: phalanx_keys::call::SealedRequest,
    saved: &Saved,
) -> anyhow::Result<()> {
    use phalanx_keys::call::{ENVELOPE_CONTENT_TYPE, SealedResponse};
    let client = connect(&args.rpc)?;
    let (epoch, public) = agent_key(&client, args, id).await?;
    let (envelope, response_key) = request.seal(id, epoch, &public)?;
    let url = format!("{}/agents/{id}", gateway.trim_end_matches('/'));
    let response = http
        .post(&url)
        .header("content-type", ENVELOPE_CONTENT_TYPE)
        .body(envelope)
        .send()
        .await
        .map_err(|e| unreachable(gateway, e))?;
    let status = response.status();
    let header = receipt_header(&response);
    let body = response.bytes().await.context("reading the response")?;
    if untried(status, &body) {
        return Err(Untried(format!("{gateway}: {status}: {}", String::from_utf8_lossy(&body).trim_end())).into());
    }
    anyhow::ensure!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&body).trim_end());
    let opened = response_key.open(0, &body).context("the sealed response does not open")?;
    let answer = SealedResponse::decode(&opened).context("the sealed response is malformed")?;
    anyhow::ensure!(
        (200..300).contains(&answer.status),
        "{} (sealed): {}",
        answer.status,
        String::from_utf8_lossy(&answer.body).trim_end()
    );
    // The receipt covers the envelope as received (it says nothing about the plaintext).
    saved.receipt(header, &body)?;
    saved.body(&answer.body)
}

/// Where `agent call` saves the receipt and the body.
pub(crate) struct Saved {
    pub(crate) receipt: Option<PathBuf>,
    pub(crate) output: Option<PathBuf>,
}

fn receipt_header(response: &reqwest::Response) -> Option<String> {
    let value = response.headers().get(phalanx_gateway::receipt::RECEIPT_HEADER)?;
    value.to_str().ok().map(str::to_string)
}

impl Saved {
    /// Checks the receipt's signature and that it covers `body`, then writes it.
    fn receipt(&self, header: Option<String>, body: &[u8]) -> anyhow::Result<()> {
        let Some(path) = &self.receipt else { return Ok(()) };
        let header = header.context("the gateway sent no receipt")?;
        let signed = phalanx_gateway::receipt::SignedReceipt::from_header(&header).context("the receipt is invalid")?;
        if let Some(hash) = signed.receipt.response_hash {
            anyhow::ensure!(hash == phalanx_primitives::sha256(body), "the receipt does not cover this response");
        }
        std::fs::write(path, header).with_context(|| format!("writing {}", path.display()))
    }

    /// Prints the body (with a final newline), or writes it byte for byte.
    fn body(&self, body: &[u8]) -> anyhow::Result<()> {
        if let Some(path) = &self.output {
            return std::fs::write(path, body).with_context(|| format!("writing {}", path.display()));
        }
        let text = String::from_utf8_lossy(body);
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
        Ok(())
    }
}
