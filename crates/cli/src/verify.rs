//! `phalanx verify RECEIPT`: checks a worker's receipt against the chain.
//!
//! The receipt's signature must be the worker's; the chain must be the one
//! the node serves and have reached the receipt's height; the worker must be
//! registered with attested evidence from no later than that height and be
//! a worker of the agent's cluster; the code hash and version must be the
//! agent's code at that height (from the chain's code history). The
//! registration, the code history and the cluster are read with state
//! proofs at a certified head (the light client), unless `--trust-node`. With
//! `--request`/`--response`, the files' bytes must hash to what the receipt
//! says. Any failed check makes the command fail.

use crate::ClientArgs;
use crate::client::{connect, rpc_error};
use crate::output::emit;
use anyhow::Context;
use phalanx_gateway::receipt::SignedReceipt;
use phalanx_primitives::{Hash, sha256};
use phalanx_rpc::PhalanxClient;
use phalanx_state::leaves::Leaf;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The receipt: the `phalanx-receipt` header's value, or a file holding it.
    receipt: String,
    /// A file with the request body that was sent.
    #[arg(long)]
    request: Option<PathBuf>,
    /// The method and target (path and query) that were sent, as
    /// `"POST /echo?x=1"`: the receipt must name exactly this request line
    /// (for an encrypted call, the outer one: `"POST /"`).
    #[arg(long, value_name = "METHOD TARGET")]
    target: Option<String>,
    /// A file with the response body that was received.
    #[arg(long)]
    response: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

/// One check and its outcome.
#[derive(serde::Serialize)]
struct Check {
    check: &'static str,
    ok: bool,
    detail: String,
}

fn hash_file(path: &PathBuf) -> anyhow::Result<Hash> {
    let metadata = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(metadata.len() <= 64 << 20, "{} is larger than 64 MiB", path.display());
    Ok(sha256(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?))
}

pub(crate) async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let text = match std::fs::metadata(&args.receipt) {
        Ok(meta) if meta.is_file() && meta.len() <= 4096 => std::fs::read_to_string(&args.receipt)?,
        _ => args.receipt.clone(),
    };
    let signed = SignedReceipt::from_header(&text).context("not a valid receipt")?;
    let receipt = &signed.receipt;
    let rpc = &args.client.rpc;
    let client = connect(rpc)?;
    let mut checks =
        vec![Check { check: "signature", ok: true, detail: format!("signed by worker {}", receipt.worker) }];
    let info = client.chain_info().await.map_err(rpc_error(rpc))?;
    checks.push(Check {
        check: "chain",
        ok: info.chain_id == receipt.chain_id,
        detail: format!("receipt for chain {}, node serves {}", receipt.chain_id, info.chain_id),
    });
    // Everything below is read with state proofs at one certified head
    // (unless --trust-node): the worker's registration, the agent's code
    // history and its cluster's members.
    let leaves = [Leaf::Worker(receipt.worker), Leaf::Agent(receipt.agent)];
    let read = crate::light::read(&args.client, &client, &leaves).await?;
    checks.push(Check {
        check: "height",
        ok: receipt.height <= read.height,
        detail: format!("ran at verified height {}, finalized head {}", receipt.height, read.height),
    });
    let worker: Option<phalanx_state::Worker> = read.value(Leaf::Worker(receipt.worker))?;
    checks.push(match worker {
        Some(w) => Check {
            check: "worker",
            ok: w.attested_at <= receipt.height,
            detail: format!(
                "registered, {} TEE, confidence {}, evidence attested at height {}",
                serde_json::to_value(w.tee)?.as_str().unwrap_or("?"),
                w.confidence,
                w.attested_at
            ),
        },
        None => Check { check: "worker", ok: false, detail: "the worker is not registered on this chain".into() },
    });
    let agent: Option<phalanx_state::Agent> = read.value(Leaf::Agent(receipt.agent))?;
    checks.push(match &agent {
        None => Check { check: "code", ok: false, detail: format!("no agent {} on this chain", receipt.agent) },
        Some(agent) => code_check(agent, receipt.height, receipt.code_hash, receipt.agent_version),
    });
    if let Some(agent) = &agent {
        let cluster_read = crate::light::read(&args.client, &client, &[Leaf::Cluster(agent.cluster)]).await?;
        let cluster: Option<phalanx_state::Cluster> = cluster_read.value(Leaf::Cluster(agent.cluster))?;
        let member = cluster.is_some_and(|c| c.workers.contains(&receipt.worker));
        checks.push(Check {
            check: "cluster",
            ok: member,
            detail: format!(
                "the worker {} a worker of the agent's cluster {}",
                if member { "is" } else { "is not" },
                agent.cluster
            ),
        });
    }
    if let Some(path) = &args.request {
        let hash = hash_file(path)?;
        checks.push(Check {
            check: "request",
            ok: hash == receipt.request_hash,
            detail: format!("{} hashes to {hash}, the receipt says {}", path.display(), receipt.request_hash),
        });
    }
    if let Some(line) = &args.target {
        let (method, target) = line
            .trim()
            .split_once(' ')
            .with_context(|| format!("--target {line:?}: give the method and the target, as \"POST /echo\""))?;
        let target = target.trim();
        let target = if target.starts_with('/') { target.to_string() } else { format!("/{target}") };
        let hash = phalanx_gateway::receipt::target_hash(&method.to_ascii_uppercase(), &target);
        checks.push(Check {
            check: "target",
            ok: hash == receipt.target_hash,
            detail: format!(
                "{} {target} {} the request line the receipt covers",
                method.to_ascii_uppercase(),
                if hash == receipt.target_hash { "is" } else { "is not" }
            ),
        });
    }
    if let Some(path) = &args.response {
        let hash = hash_file(path)?;
        checks.push(Check {
            check: "response",
            ok: Some(hash) == receipt.response_hash,
            detail: match receipt.response_hash {
                Some(expected) => format!("{} hashes to {hash}, the receipt says {expected}", path.display()),
                None => "the response was streamed: the receipt has no response hash".into(),
            },
        });
    }
    let valid = checks.iter().all(|c| c.ok);
    let value = serde_json::json!({ "valid": valid, "receipt": receipt, "checks": checks });
    emit(args.client.json, &read.marked(&value), || {
        let mut lines: Vec<String> = checks
            .iter()
            .map(|c| format!("{} {:<9} {}", if c.ok { "ok  " } else { "FAIL" }, c.check, c.detail))
            .collect();
        lines.push(if valid { "receipt valid".into() } else { "receipt NOT valid".into() });
        lines.push(read.note());
        lines.join("\n")
    })?;
    anyhow::ensure!(valid, "the receipt does not check out");
    Ok(())
}

/// The receipt's code must be the version the chain says served at `height`.
fn code_check(agent: &phalanx_state::Agent, height: u64, code_hash: Hash, version: u32) -> Check {
    match agent.code_at(height) {
        Err(reason) => Check { check: "code", ok: false, detail: reason },
        Ok(served) => Check {
            check: "code",
            ok: served.code_hash == code_hash && served.version == version,
            detail: format!(
                "receipt names version {version} ({code_hash}); at height {height} the chain served version {} ({})",
                served.version, served.code_hash
            ),
        },
    }
}
