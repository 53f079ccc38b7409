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
