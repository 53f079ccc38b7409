//! `phalanx agent deploy|upgrade|list|info|pause|resume|transfer`: agents on chain.

use crate::ClientArgs;
use crate::client::{connect, rpc_error, submit_call};
use crate::output::emit;
use anyhow::Context;
use phalanx_primitives::Hash;
use phalanx_rpc::PhalanxClient;
use phalanx_state::leaves::Leaf;
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

impl Signer {
    /// The signing key.
    pub(crate) fn keypair(&self) -> anyhow::Result<phalanx_primitives::Keypair> {
        crate::account::signer(self.from.clone(), self.from_file.clone())
    }
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SecretsCommand {
    /// Set (or replace) secrets: NAME=VALUE…
    Set {
        id: Hash,
        #[arg(value_name = "NAME=VALUE", required = true)]
        pairs: Vec<String>,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove secrets by name.
    Remove {
        id: Hash,
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        client: ClientArgs,
    },
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
        /// Gateway URLs to try in turn (default: the gateways the workers of
        /// the agent's cluster announce on chain); the next is tried when one
        /// cannot be reached or does not serve the agent.
        #[arg(long = "gateway", env = "PHALANX_GATEWAY", value_delimiter = ',')]
        gateways: Vec<String>,
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
    /// Send a command to the agent's `command(message, env, ctx)`: the chain
    /// orders it and every worker of the agent's cluster applies it once, in
    /// order. Prints its number once a worker has applied it.
    Send {
        id: Hash,
        /// The command, as JSON (the agent gets it as `message.data`).
        #[arg(long)]
        data: String,
        /// Seal the command to the agent's key: only its cluster's workers read it.
        #[arg(long)]
        encrypt: bool,
        /// Return once the chain has ordered it, without waiting for a worker.
        #[arg(long)]
        no_wait: bool,
        /// Gateways to ask for the outcome (default: the agent's cluster's).
        #[arg(long = "gateway", env = "PHALANX_GATEWAY", value_delimiter = ',')]
        gateways: Vec<String>,
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set the price per call (PHA) that callers of a paid agent pay from their deposit.
    Price {
        id: Hash,
        /// PHA per call, e.g. 0.01.
        price: String,
        #[command(flatten)]
        signer: Signer,
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
    /// The agent's secrets: `set ID NAME=VALUE…` (sealed here to the agent's
    /// key from the chain: only workers of its cluster open them, as
    /// `env.NAME`) or `remove ID NAME…`.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// The agent's console output, sealed by workers to the owner's log key
    /// and opened here (sets the key on chain first if it is not yours yet).
    Logs {
        id: Hash,
        /// Gateway URLs to read from (default: every gateway of the agent's cluster).
        #[arg(long = "gateway", env = "PHALANX_GATEWAY", value_delimiter = ',')]
        gateways: Vec<String>,
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

/// The agent `id` as the chain records it, read through the light client
/// (verified unless `--trust-node`).
pub(crate) async fn verified_agent(
    client: &jsonrpsee::http_client::HttpClient,
    args: &ClientArgs,
    id: Hash,
) -> anyhow::Result<(phalanx_state::Agent, crate::light::Read)> {
    let read = crate::light::read(args, client, &[Leaf::Agent(id)]).await?;
    let agent = read.value(Leaf::Agent(id))?.with_context(|| format!("no agent {id} ({})", read.note()))?;
    Ok((agent, read))
}

/// The agent's newest published public key and its epoch: what encrypted
/// calls and secrets are sealed to, so it is read verified (unless
/// `--trust-node`, which the caller is told on stderr).
pub(crate) async fn agent_key(
    client: &jsonrpsee::http_client::HttpClient,
    args: &ClientArgs,
    id: Hash,
) -> anyhow::Result<(u64, [u8; 32])> {
    let (agent, read) = verified_agent(client, args, id).await?;
    let key = agent
        .newest_key()
        .context("the agent has no published key yet (a gatekeeper publishes it a block or two after deployment)")?;
    if !read.verified {
        eprintln!("the agent key was {}", read.note());
    }
    Ok((key.epoch, key.public))
}

/// `agent logs`: fetches the sealed batches from the gateways (each worker
/// keeps the logs of the calls it served) and opens them with the owner's
/// log key (derived from the owner's secret phrase).
async fn logs(
    id: Hash,
    gateways: Vec<String>,
    after: Option<u64>,
    signer: Signer,
    args: &ClientArgs,
) -> anyhow::Result<()> {
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
    let gateways = if gateways.is_empty() { crate::agent_call::discover(args, id).await? } else { gateways };
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let mine = Hash(key.public().0);
    let (mut out, mut others) = (Vec::new(), 0);
    for gateway in &gateways {
        let mut url = format!("{}/logs/{id}", gateway.trim_end_matches('/'));
        if let Some(after) = after {
            url.push_str(&format!("?after={after}"));
        }
        let answer = match http.get(&url).send().await {
            Ok(response) if response.status().is_success() => response.bytes().await?,
            Ok(response) => {
                eprintln!("{gateway}: {}", response.status());
                continue;
            }
            Err(error) => {
                eprintln!("cannot reach the gateway at {gateway}: {error}");
                continue;
            }
        };
        let answer: serde_json::Value = serde_json::from_slice(&answer).context("the logs are not JSON")?;
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
            let lines: Vec<phalanx_gateway::logs::Line> = serde_json::from_slice(&opened.plaintext)?;
            for line in lines {
                out.push(serde_json::json!({
                    "gateway": gateway, "batch": sequence, "level": line.level, "message": line.message
                }));
            }
        }
    }
    if others > 0 {
        eprintln!("{others} earlier batches are sealed to a previous owner's key");
    }
    emit(args.json, &out, || {
        out.iter()
            .map(|l| {
                let (level, message) = (l["level"].as_str().unwrap_or("?"), l["message"].as_str().unwrap_or(""));
                format!("[{} #{}] {level}: {message}", l["gateway"].as_str().unwrap_or("?"), l["batch"])
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// An address from a dev account name or an SS58 address.
pub(crate) fn account_of(text: &str) -> anyhow::Result<phalanx_primitives::PublicKey> {
    match phalanx_primitives::mnemonic::dev_keypair(text) {
        Some(key) => Ok(key.public()),
        None => text.parse().with_context(|| format!("{text:?} is neither a dev account name nor an address")),
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

/// Longest `agent send` waits for a worker to apply the command.
const APPLIED_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn send(
    id: Hash,
    data: &str,
    encrypt: bool,
    no_wait: bool,
    gateways: Vec<String>,
    signer: Signer,
    args: &ClientArgs,
) -> anyhow::Result<()> {
    use phalanx_state::modules::agents::{COMMAND_BYTES_MAX, CommandPayload};
    serde_json::from_str::<serde::de::IgnoredAny>(data).context("--data must be JSON")?;
    let client = connect(&args.rpc)?;
    let payload = if encrypt {
        let (epoch, public) = agent_key(&client, args, id).await?;
        let key = phalanx_keys::KeyRef { kind: phalanx_keys::envelope::KeyKind::Agent, id, epoch };
        let (sealed, _) = phalanx_keys::Envelope::seal(&public, key, id, phalanx_keys::Purpose::Call, data.as_bytes())?;
        CommandPayload::Sealed(sealed)
    } else {
        CommandPayload::Plain(data.as_bytes().to_vec())
    };
    anyhow::ensure!(
        payload.bytes().len() <= COMMAND_BYTES_MAX,
        "the command is {} bytes; at most {COMMAND_BYTES_MAX} (sealed: the JSON plus 132)",
        payload.bytes().len()
    );
    let key = crate::account::signer(signer.from, signer.from_file)?;
    let (hash, status) = submit_call(&client, &args.rpc, &key, Call::SendToAgent { agent: id, payload }, true).await?;
    let phalanx_rpc::TxStatus::Finalized { height, index } = status else {
        anyhow::bail!("command {hash} not finalized within a minute ({status:?})");
    };
    let block = client.chain_block(height).await.map_err(rpc_error(&args.rpc))?.context("finalized block missing")?;
    let seq = block
        .events
        .iter()
        .find(|e| e["tx_index"] == index && e["event"] == "agent_command")
        .and_then(|e| e["seq"].as_u64())
        .context("the block has no agent_command event for this transaction")?;
    if no_wait {
        let value = serde_json::json!({ "id": id, "hash": hash, "height": height, "seq": seq });
        return emit(args.json, &value, || format!("command {seq} for agent {id} ordered at block {height}"));
    }
    let gateways = if gateways.is_empty() { crate::agent_call::discover(args, id).await? } else { gateways };
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
    let started = std::time::Instant::now();
    loop {
        for gateway in &gateways {
            let url = format!("{}/state/{id}", gateway.trim_end_matches('/'));
            let Ok(response) = http.get(&url).send().await else { continue };
            let Ok(body) = response.bytes().await else { continue };
            let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&body) else { continue };
            let applied = answer["applied"].as_u64().unwrap_or(0);
            let complete = answer["complete"].as_bool().unwrap_or(false);
            if applied < seq || !complete {
                continue;
            }
            let outcome = answer["outcomes"]
                .as_array()
                .and_then(|o| o.iter().find(|o| o["seq"] == seq))
                .and_then(|o| o["result"].as_str())
                .unwrap_or("applied (outcome no longer kept)")
                .to_string();
            let value = serde_json::json!({
                "id": id, "hash": hash, "height": height, "seq": seq, "result": outcome, "gateway": gateway,
            });
            emit(args.json, &value, || format!("command {seq} for agent {id}: {outcome} (block {height}, {gateway})"))?;
            anyhow::ensure!(
                outcome.starts_with("applied"),
                "the agent did not apply command {seq}: {outcome} (its owner sees why in `phalanx agent logs`)"
            );
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < APPLIED_WAIT,
            "command {seq} was ordered at block {height}, but no gateway of the agent reported applying it within {}s",
            APPLIED_WAIT.as_secs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
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
        AgentChainCommand::Secrets { command: SecretsCommand::Set { id, pairs, signer, client: args } } => {
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
        AgentChainCommand::Secrets { command: SecretsCommand::Remove { id, names, signer, client: args } } => {
            for name in names {
                change(id, AgentChange::RemoveSecret { name }, signer.clone(), &args).await?;
            }
            Ok(())
        }
        AgentChainCommand::Send { id, data, encrypt, no_wait, gateways, signer, client } => {
            send(id, &data, encrypt, no_wait, gateways, signer, &client).await
        }
        AgentChainCommand::Price { id, price, signer, client } => {
            let price =
                phalanx_primitives::parse_pha(&price).with_context(|| format!("{price:?} is not an amount of PHA"))?;
            change(id, AgentChange::Price { price }, signer, &client).await
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
            gateways,
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
            let call = crate::agent_call::CallArgs {
                id,
                path: path.unwrap_or_default(),
                method,
                data,
                gateways,
                encrypt,
                caller,
                saved: crate::agent_call::Saved { receipt, output },
            };
            crate::agent_call::run(call, &args).await
        }
        AgentChainCommand::Logs { id, gateways, after, signer, client: args } => {
            logs(id, gateways, after, signer, &args).await
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
            let (agent, read) = verified_agent(&client, &args, id).await?;
            // The code's size, from its own proven leaf.
            let code = crate::light::read(&args, &client, &[Leaf::Code(agent.code_hash)]).await?;
            let code_bytes = code.value::<Vec<u8>>(Leaf::Code(agent.code_hash))?.map_or(0, |code| code.len());
            emit(true, &read.marked(&phalanx_rpc::AgentInfo::new(&agent, code_bytes)), String::new)?;
            eprintln!("{}", read.note());
            Ok(())
        }
    }
}
