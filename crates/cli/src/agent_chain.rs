//! `phalanx agent deploy|upgrade|list|info|pause|resume|transfer`: agents on chain.

use crate::ClientArgs;
use crate::client::{connect, rpc_error, submit_call};
use crate::output::emit;
use anyhow::Context;
use phalanx_primitives::Hash;
use phalanx_rpc::PhalanxClient;
use phalanx_state::{AgentChange, Call, Language};
use std::path::{Path, PathBuf};

/// Who signs: a dev account name or a secret-phrase file.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Signer {
    /// Signing account: a dev account name (alice, bob, charlie, dave).
    #[arg(long, required_unless_present = "from_file", conflicts_with = "from_file")]
    from: Option<String>,
    /// Signing account: a file holding a secret phrase.
    #[arg(long)]
    from_file: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AgentChainCommand {
    /// Deploy an agent (one bundled JS/TS module); prints its id once finalized.
    Deploy {
        file: PathBuf,
        /// Agent name (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Cluster to run in (default: the chain's first cluster).
        #[arg(long)]
        cluster: Option<Hash>,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Replace an agent's code; id, keys and state stay.
    Upgrade {
        id: Hash,
        file: PathBuf,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop serving calls until resumed.
    Pause {
        id: Hash,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        client: ClientArgs,
    },
    Resume {
        id: Hash,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Hand the agent to another owner (a dev account name or an address).
    Transfer {
        id: Hash,
        to: String,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Call an agent through a worker's gateway; prints the response body.
    Call {
        id: Hash,
        /// Path inside the agent (default /).
        path: Option<String>,
        /// HTTP method (default GET, or POST with --data).
        #[arg(long)]
        method: Option<String>,
        /// Request body (JSON or text).
        #[arg(long)]
        data: Option<String>,
        /// The gateway's URL.
        #[arg(long, env = "PHALANX_GATEWAY", default_value = "http://127.0.0.1:8000")]
        gateway: String,
        /// Seal the request to the agent's key (from the chain) and open the
        /// sealed response: the gateway's host sees neither.
        #[arg(long)]
        encrypt: bool,
        /// Sign the call as this account (a dev account name), for agents
        /// whose access is an allowlist; the agent sees the verified address.
        #[arg(long, conflicts_with = "from_file")]
        from: Option<String>,
        /// Sign the call as the account whose secret phrase is in this file.
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// Write the worker's signed receipt to FILE (check it with `phalanx verify FILE`).
        #[arg(long, value_name = "FILE")]
        receipt: Option<PathBuf>,
        /// Write the response body, byte for byte, to FILE instead of printing it.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set who may call the agent: `public`, `allowlist ACCOUNT…` (signed
    /// calls from these accounts only) or `paid`.
    Access {
        id: Hash,
        #[arg(value_parser = ["public", "allowlist", "paid"])]
        policy: String,
        /// Dev account names or addresses, for `allowlist`.
        accounts: Vec<String>,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set secrets (NAME=VALUE…), sealed here to the agent's key from the
    /// chain: only workers of its cluster can open them, as `env.NAME`.
    Secrets {
        id: Hash,
        #[arg(value_name = "NAME=VALUE", required = true)]
        pairs: Vec<String>,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The agent's console output, sealed by workers to the owner's log key
    /// and opened here (sets the key on chain first if it is not yours yet).
    Logs {
        id: Hash,
        /// The gateway's URL.
        #[arg(long, env = "PHALANX_GATEWAY", default_value = "http://127.0.0.1:8000")]
        gateway: String,
        /// Only batches after this sequence number.
        #[arg(long)]
        after: Option<u64>,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Every agent on chain.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// One agent.
    Info {
        id: Hash,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Reads agent source and checks it compiles here before anyone pays to store it.
fn read_code(file: &Path) -> anyhow::Result<(Vec<u8>, Language)> {
    let source = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("agent.js");
    phalanx_sandbox::AgentCode::compile(name, &source)
        .with_context(|| format!("{} does not compile", file.display()))?;
    let typescript = name.ends_with(".ts") || name.ends_with(".mts");
    Ok((source.into_bytes(), if typescript { Language::TypeScript } else { Language::JavaScript }))
}

/// The agent's newest published public key and its epoch.
async fn agent_key(
    client: &jsonrpsee::http_client::HttpClient,
    args: &ClientArgs,
    id: Hash,
) -> anyhow::Result<(u64, [u8; 32])> {
    let agent = client.agents_get(id).await.map_err(rpc_error(&args.rpc))?.context(format!("no agent {id}"))?;
    let key =
        agent.agent["keys"].as_array().and_then(|k| k.last()).cloned().context(
            "the agent has no published key yet (a gatekeeper publishes it a block or two after deployment)",
        )?;
    let epoch = key["epoch"].as_u64().context("key epoch")?;
    let public: [u8; 32] = hex::decode(key["public"].as_str().unwrap_or("").trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("agent key")?;
    Ok((epoch, public))
}

/// `agent logs`: fetches the sealed batches from a gateway and opens them with
/// the owner's log key (derived from the owner's secret phrase).
async fn logs(id: Hash, gateway: &str, after: Option<u64>, signer: Signer, args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(&args.rpc)?;
    let key = crate::account::signer(signer.from.clone(), signer.from_file.clone())?;
    let secret = phalanx_keys::account_log_key(&key.seed());
    let agent = client.agents_get(id).await.map_err(rpc_error(&args.rpc))?.context(format!("no agent {id}"))?;
    let on_chain = agent.agent["log_key"].as_str().map(|k| k.trim_start_matches("0x").to_string());
    if on_chain != Some(hex::encode(secret.public())) {
        anyhow::ensure!(
            agent.agent["owner"].as_str() == Some(key.public().to_string().as_str()),
            "the agent's logs are sealed to its owner's key, and {} is not the owner",
            key.public()
        );
        let call = Call::ManageAgent { agent: id, change: AgentChange::LogKey { public: Some(secret.public()) } };
        submit_call(&client, &args.rpc, &key, call, true).await?;
        eprintln!("log key set: calls from now on keep their console output for you");
    }
    let mut url = format!("{}/logs/{id}", gateway.trim_end_matches('/'));
    if let Some(after) = after {
        url.push_str(&format!("?after={after}"));
    }
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let response = http.get(&url).send().await.with_context(|| format!("cannot reach the gateway at {gateway}"))?;
    anyhow::ensure!(response.status().is_success(), "{}: {}", response.status(), response.text().await?.trim_end());
    let answer: serde_json::Value = serde_json::from_slice(&response.bytes().await.context("reading the logs")?)
        .context("the logs are not JSON")?;
    let mut out = Vec::new();
    let mine = Hash(key.public().0);
    let mut others = 0;
    for batch in answer["batches"].as_array().into_iter().flatten() {
        let sequence = batch["sequence"].as_u64().unwrap_or_default();
        let sealed = hex::decode(batch["sealed"].as_str().unwrap_or("").trim_start_matches("0x"))?;
        // Batches sealed for an earlier owner are theirs.
        if phalanx_keys::Header::peek(&sealed).is_ok_and(|h| h.key.id != mine) {
            others += 1;
            continue;
        }
        let opened = phalanx_keys::Envelope::open(&sealed, &secret)
            .with_context(|| format!("log batch {sequence} does not open with this account's log key"))?;
        let lines: Vec<phalanx_worker::logs::Line> = serde_json::from_slice(&opened.plaintext)?;
        for line in lines {
            out.push(serde_json::json!({ "batch": sequence, "level": line.level, "message": line.message }));
        }
    }
    if others > 0 {
        eprintln!("{others} earlier batches are sealed to a previous owner's key");
    }
    emit(args.json, &out, || {
        out.iter()
            .map(|l| {
                format!(
                    "[{}] {}: {}",
                    l["batch"],
                    l["level"].as_str().unwrap_or("?"),
                    l["message"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// An address from a dev account name or an SS58 address.
fn account_of(text: &str) -> anyhow::Result<phalanx_primitives::PublicKey> {
    match phalanx_primitives::mnemonic::dev_keypair(text) {
        Some(key) => Ok(key.public()),
        None => text.parse().with_context(|| format!("{text:?} is neither a dev account name nor an address")),
    }
}

/// The signed-call headers for a call as `key`, valid for one minute.
async fn signed_headers(
    key: &phalanx_primitives::Keypair,
    args: &ClientArgs,
    agent: Hash,
    method: &str,
    target: &str,
    body: &[u8],
) -> anyhow::Result<Vec<(String, String)>> {
    let client = connect(&args.rpc)?;
    let chain_id = client.chain_info().await.map_err(rpc_error(&args.rpc))?.chain_id;
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness for the call's nonce: {e}"))?;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let message = phalanx_worker::signed_call::SignedCallMessage {
        chain_id,
        agent,
        method,
        path_and_query: target,
        body_hash: phalanx_primitives::sha256(body),
        nonce,
        expires_ms: now_ms + 60_000,
    };
    Ok(phalanx_worker::signed_call::sign(key, &message))
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
        .with_context(|| format!("cannot reach the gateway at {gateway}"))?;
    let status = response.status();
    let header = receipt_header(&response);
    let body = response.bytes().await.context("reading the response")?;
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
struct Saved {
    receipt: Option<PathBuf>,
    output: Option<PathBuf>,
}

fn receipt_header(response: &reqwest::Response) -> Option<String> {
    let value = response.headers().get(phalanx_worker::receipt::RECEIPT_HEADER)?;
    value.to_str().ok().map(str::to_string)
}

impl Saved {
    /// Checks the receipt's signature and that it covers `body`, then writes it.
    fn receipt(&self, header: Option<String>, body: &[u8]) -> anyhow::Result<()> {
        let Some(path) = &self.receipt else { return Ok(()) };
        let header = header.context("the gateway sent no receipt")?;
        let signed = phalanx_worker::receipt::SignedReceipt::from_header(&header).context("the receipt is invalid")?;
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

async fn change(id: Hash, change: AgentChange, signer: Signer, args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(&args.rpc)?;
    let key = crate::account::signer(signer.from, signer.from_file)?;
    let what = format!("{change:?}").split([' ', '{']).next().unwrap_or("change").to_lowercase();
    let (hash, status) = submit_call(&client, &args.rpc, &key, Call::ManageAgent { agent: id, change }, true).await?;
    let value = serde_json::json!({ "id": id, "hash": hash, "status": status });
    emit(args.json, &value, || format!("agent {id}: {what} in transaction {hash} ({status:?})"))
}

pub(crate) async fn run(command: AgentChainCommand) -> anyhow::Result<()> {
    match command {
        AgentChainCommand::Deploy { file, name, cluster, signer, client: args } => {
            let (code, language) = read_code(&file)?;
            let client = connect(&args.rpc)?;
            let cluster = match cluster {
                Some(cluster) => cluster,
                None => {
                    let status = client.keys_status().await.map_err(rpc_error(&args.rpc))?;
                    let first =
                        status.clusters.first().and_then(|c| c["id"].as_str()).context(
                            "the chain has no cluster yet (phalanx dev creates one once its workers register)",
                        )?;
                    first.parse().context("cluster id")?
                }
            };
            let name = name.unwrap_or_else(|| {
                file.file_stem().and_then(|s| s.to_str()).unwrap_or("agent").chars().take(64).collect()
            });
            let key = crate::account::signer(signer.from, signer.from_file)?;
            eprintln!(
                "deploying {} ({} bytes) to cluster {cluster}; waiting for finality…",
                file.display(),
                code.len()
            );
            let call = Call::DeployAgent { name: name.clone(), cluster, language, code };
            let (hash, status) = submit_call(&client, &args.rpc, &key, call, true).await?;
            anyhow::ensure!(
                matches!(status, phalanx_rpc::TxStatus::Finalized { .. }),
                "deployment {hash} not finalized within a minute ({status:?})"
            );
            let id = phalanx_state::agent_id(&hash);
            // The owner's log key, so workers keep the agent's console output sealed to it.
            let public = Some(phalanx_keys::account_log_key(&key.seed()).public());
            let log_key = Call::ManageAgent { agent: id, change: AgentChange::LogKey { public } };
            if let Err(error) = submit_call(&client, &args.rpc, &key, log_key, true).await {
                eprintln!(
                    "the agent is deployed, but its log key was not set ({error:#}); `phalanx agent logs` sets it"
                );
            }
            let value =
                serde_json::json!({ "id": id, "name": name, "cluster": cluster, "hash": hash, "status": status });
            emit(args.json, &value, || format!("agent {name} deployed: {id}"))
        }
        AgentChainCommand::Upgrade { id, file, signer, client } => {
            let (code, language) = read_code(&file)?;
            change(id, AgentChange::Upgrade { code, language }, signer, &client).await
        }
        AgentChainCommand::Secrets { id, pairs, signer, client: args } => {
            let client = connect(&args.rpc)?;
            let (epoch, public) = agent_key(&client, &args, id).await?;
            for pair in pairs {
                let (name, value) = pair.split_once('=').context("secrets are given as NAME=VALUE")?;
                let key = phalanx_keys::KeyRef { kind: phalanx_keys::envelope::KeyKind::Agent, id, epoch };
                let (sealed, _) =
                    phalanx_keys::Envelope::seal(&public, key, id, phalanx_keys::Purpose::Secret, value.as_bytes())?;
                // The value itself is never printed.
                change(id, AgentChange::SetSecret { name: name.to_string(), sealed }, signer.clone(), &args).await?;
            }
            Ok(())
        }
        AgentChainCommand::Pause { id, signer, client } => change(id, AgentChange::Pause, signer, &client).await,
        AgentChainCommand::Resume { id, signer, client } => change(id, AgentChange::Resume, signer, &client).await,
        AgentChainCommand::Transfer { id, to, signer, client } => {
            let to = account_of(&to)?;
            change(id, AgentChange::Transfer { to }, signer, &client).await
        }
        AgentChainCommand::Access { id, policy, accounts, signer, client } => {
            let accounts = accounts.iter().map(|a| account_of(a)).collect::<anyhow::Result<Vec<_>>>()?;
            let access = match policy.as_str() {
                "public" => phalanx_state::Access::Public,
                "paid" => phalanx_state::Access::Paid,
                _ => {
                    anyhow::ensure!(!accounts.is_empty(), "an allowlist names at least one account");
                    phalanx_state::Access::Allowlist { accounts }
                }
            };
            change(id, AgentChange::Access { access }, signer, &client).await
        }
        AgentChainCommand::Call {
            id,
            path,
            method,
            data,
            gateway,
            encrypt,
            from,
            from_file,
            receipt,
            output,
            client: args,
        } => {
            let caller = match (from, from_file) {
                (None, None) => None,
                (from, from_file) => Some(crate::account::signer(from, from_file)?),
            };
            let path = path.unwrap_or_default();
            let url = format!("{}/agents/{id}/{}", gateway.trim_end_matches('/'), path.trim_start_matches('/'));
            let method = method.unwrap_or_else(|| if data.is_some() { "POST" } else { "GET" }.into());
            let method: reqwest::Method = method.to_uppercase().parse().context("--method")?;
            let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?;
            let saved = Saved { receipt, output };
            let target = format!("/{}", path.trim_start_matches('/'));
            let signed = match &caller {
                Some(key) => {
                    let body = data.as_deref().unwrap_or_default().as_bytes();
                    signed_headers(key, &args, id, method.as_str(), &target, body).await?
                }
                None => Vec::new(),
            };
            if encrypt {
                let mut request = sealed_request(&path, &method, data);
                request.headers.extend(signed);
                return encrypted_call(&client, &args, id, &gateway, request, &saved).await;
            }
            let mut request = client.request(method, &url);
            for (name, value) in signed {
                request = request.header(name, value);
            }
            if let Some(data) = data {
                let json = serde_json::from_str::<serde_json::Value>(&data).is_ok();
                request = request
                    .header("content-type", if json { "application/json" } else { "text/plain; charset=utf-8" })
                    .body(data);
            }
            let response = request.send().await.with_context(|| format!("cannot reach the gateway at {gateway}"))?;
            let status = response.status();
            let header = receipt_header(&response);
            let body = response.bytes().await.context("reading the response")?;
            if !status.is_success() {
                anyhow::bail!("{status}: {}", String::from_utf8_lossy(&body).trim_end());
            }
            saved.receipt(header, &body)?;
            saved.body(&body)
        }
        AgentChainCommand::Logs { id, gateway, after, signer, client: args } => {
            logs(id, &gateway, after, signer, &args).await
        }
        AgentChainCommand::List { client: args } => {
            let client = connect(&args.rpc)?;
            let agents = client.agents_list().await.map_err(rpc_error(&args.rpc))?;
            emit(args.json, &agents, || {
                if agents.is_empty() {
                    return "no agents".to_string();
                }
                agents
                    .iter()
                    .map(|a| {
                        format!(
                            "{}  {:<20} v{} {} {} bytes{}",
                            a.id(),
                            a.agent["name"].as_str().unwrap_or("?"),
                            a.agent["version"],
                            a.agent["owner"].as_str().unwrap_or("?"),
                            a.code_bytes,
                            if a.agent["paused"].as_bool() == Some(true) { " (paused)" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        AgentChainCommand::Info { id, client: args } => {
            let client = connect(&args.rpc)?;
            let agent = client.agents_get(id).await.map_err(rpc_error(&args.rpc))?.context(format!("no agent {id}"))?;
            emit(true, &agent, String::new)
        }
    }
}
