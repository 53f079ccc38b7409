//! Connecting to a node's RPC and turning its errors into readable messages.

use anyhow::Context;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};

/// Largest response the CLI accepts, in bytes.
const RESPONSE_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// An HTTP JSON-RPC client for `url`.
pub(crate) fn connect(url: &str) -> anyhow::Result<HttpClient> {
    HttpClientBuilder::default()
        .max_response_size(RESPONSE_BYTES_MAX)
        .request_timeout(std::time::Duration::from_secs(30))
        .build(url)
        .with_context(|| format!("invalid RPC endpoint {url:?}"))
}

/// Turns a client error into a message naming the endpoint.
pub(crate) fn rpc_error(url: &str) -> impl Fn(jsonrpsee::core::ClientError) -> anyhow::Error + '_ {
    move |e| match e {
        jsonrpsee::core::ClientError::Call(call) => anyhow::anyhow!("{}", call.message()),
        jsonrpsee::core::ClientError::Transport(t) => {
            anyhow::anyhow!("cannot reach the node at {url}: {t} (is `phalanx dev` running? set --rpc)")
        }
        other => anyhow::anyhow!("RPC to {url} failed: {other}"),
    }
}

/// Signs `call` with `key` at the account's next nonce and the minimum fee,
/// submits it, and (unless `wait` is false) waits up to a minute for
/// finality. Returns the transaction hash and its last known status.
pub(crate) async fn submit_call(
    client: &HttpClient,
    url: &str,
    key: &phalanx_primitives::Keypair,
    call: phalanx_state::Call,
    wait: bool,
) -> anyhow::Result<(phalanx_primitives::Hash, phalanx_rpc::TxStatus)> {
    use phalanx_rpc::PhalanxClient;
    let info = client.chain_info().await.map_err(rpc_error(url))?;
    // Another submitter of the same account (a worker's host, say) may take
    // the nonce between reading it and submitting: sign again, a few times.
    let mut attempts = 0;
    let hash = loop {
        let account = client.state_account(key.public().to_string()).await.map_err(rpc_error(url))?;
        let tx = phalanx_state::Transaction {
            chain_id: info.chain_id,
            signer: key.public(),
            nonce: account.next_nonce,
            fee: 0,
            call: call.clone(),
        };
        let signed = tx.sign_paying_minimum(&info.params.fees, key)?;
        match client.tx_submit(format!("0x{}", hex::encode(signed.encode()))).await {
            Ok(hash) => break hash,
            Err(jsonrpsee::core::ClientError::Call(e))
                if e.code() == phalanx_rpc::codes::STALE_NONCE && attempts < 3 =>
            {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(rpc_error(url)(e)),
        }
    };
    let started = std::time::Instant::now();
    loop {
        let status = client.tx_status(hash).await.map_err(rpc_error(url))?;
        let done = matches!(status, phalanx_rpc::TxStatus::Finalized { .. });
        if done || !wait || started.elapsed() > std::time::Duration::from_secs(60) {
            return Ok((hash, status));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// [`submit_call`], waiting for finality, with what the transaction did:
/// its hash, the block height and the events it emitted there.
pub(crate) async fn submit_finalized(
    client: &HttpClient,
    url: &str,
    key: &phalanx_primitives::Keypair,
    call: phalanx_state::Call,
) -> anyhow::Result<(phalanx_primitives::Hash, u64, Vec<serde_json::Value>)> {
    use anyhow::Context;
    use phalanx_rpc::PhalanxClient;
    let (hash, status) = submit_call(client, url, key, call, true).await?;
    let phalanx_rpc::TxStatus::Finalized { height, index } = status else {
        anyhow::bail!("transaction {hash} not finalized within a minute ({status:?})");
    };
    let block = client.chain_block(height).await.map_err(rpc_error(url))?.context("block missing")?;
    let events = block.events.into_iter().filter(|e| e["tx_index"] == index).collect();
    Ok((hash, height, events))
}
