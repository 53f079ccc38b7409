//! The JSON-RPC server: HTTP and WebSocket on one port, with bounded request
//! and response sizes. Connections go through `phalanx-listener` (caps per
//! listener, per client and per process; head, body and idle timeouts);
//! WebSockets, which outlive their HTTP request, are counted apart
//! ([`RpcConfig::websockets_max`], [`RpcConfig::websockets_per_client_max`]),
//! so idle WebSockets can never shut HTTP callers out. Reads come from the
//! finalized view; submissions go to the mempool.

use crate::chain::{Chain, SubmitError};
use crate::mempool::AdmitError;
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::server::{
    Methods, PendingSubscriptionSink, PingConfig, ServerBuilder, ServerConfig, ServerHandle, SubscriptionMessage,
};
use jsonrpsee::types::ErrorObjectOwned;
use phalanx_primitives::{Hash, PublicKey};
use phalanx_rpc::{
    AccountInfo, AgentInfo, BlockInfo, ChainInfo, HeadInfo, KeysStatus, PROOF_KEYS_MAX, PROOF_VALUE_BYTES_MAX,
    PhalanxServer, RAW_BLOCKS_BYTES_MAX, RAW_BLOCKS_MAX, RawBlock, StateProofs, TRANSITIONS_MAX, TxInfo, TxStatus,
    ValidatorTransition, WorkerInfo, codes,
};
use phalanx_state::{AttestationPolicy, Genesis};
use std::net::SocketAddr;
use std::sync::Arc;

/// Limits of the RPC server.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    pub listen: SocketAddr,
    /// Largest request body, in bytes (a transaction is at most about 1 MiB
    /// with agent code, 2 MiB as hex).
    pub request_bytes_max: u32,
    /// Largest response body, in bytes (a full block with its transactions).
    pub response_bytes_max: u32,
    /// HTTP connections: caps per listener and per client, timeouts.
    pub limits: phalanx_listener::ListenerLimits,
    /// Most WebSocket connections open at once.
    pub websockets_max: usize,
    /// Most WebSocket connections open at once from one client address.
    pub websockets_per_client_max: usize,
    /// Most subscriptions per WebSocket connection.
    pub subscriptions_per_connection_max: u32,
    /// A non-validator node's upstream: submitted transactions are checked
    /// here (decoding, signature, the finalized state's rules) and then sent on.
    pub forward: Option<String>,
}

impl RpcConfig {
    /// The default limits, listening on 127.0.0.1:`port`.
    pub fn local(port: u16) -> Self {
        Self::at(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// The default limits, listening on `listen`.
    pub fn at(listen: SocketAddr) -> Self {
        RpcConfig {
            listen,
            request_bytes_max: 5 * 512 * 1024,
            response_bytes_max: 32 * 1024 * 1024,
            limits: phalanx_listener::ListenerLimits::rpc(),
            websockets_max: 256,
            websockets_per_client_max: 16,
            subscriptions_per_connection_max: 16,
            forward: None,
        }
    }
}

fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    error(codes::INTERNAL, format!("internal error: {e}"))
}

/// Head info of the finalized view.
pub fn head_info(finalized: &crate::chain::Finalized) -> HeadInfo {
    HeadInfo {
        height: finalized.header.height,
        hash: finalized.hash,
        timestamp_ms: finalized.header.timestamp_ms,
        state_root: finalized.header.state_root,
        tx_count: finalized.header.tx_count,
    }
}

struct Api {
    chain: Arc<Chain>,
    forward: Option<(String, jsonrpsee::http_client::HttpClient)>,
}

#[jsonrpsee::core::async_trait]
impl PhalanxServer for Api {
    async fn chain_head(&self) -> RpcResult<HeadInfo> {
        Ok(head_info(&self.chain.finalized()))
    }

    async fn chain_info(&self) -> RpcResult<ChainInfo> {
        let finalized = self.chain.finalized();
        let state = &finalized.state;
        Ok(ChainInfo {
            chain_name: self.chain.genesis().chain_name.clone(),
            chain_id: state.chain_id(),
            genesis_hash: self.chain.genesis_hash(),
            validators: state.validators().iter().map(|v| format!("0x{}", hex::encode(v.0))).collect(),
            params: state.params().clone(),
            total_issuance: state.total_issuance(),
            epoch_blocks: state.consensus_params().epoch_blocks,
            epoch: state.epoch_of(state.height() + 1),
            pending_validators: state
                .pending_validators()
                .map(|set| set.iter().map(|v| format!("0x{}", hex::encode(v.0))).collect()),
        })
    }

    async fn chain_block(&self, height: u64) -> RpcResult<Option<BlockInfo>> {
        let store = self.chain.store();
        let Some(block) = store.block(height).map_err(internal)? else {
            return Ok(None);
        };
        let certificate = store.certificate(height).map_err(internal)?.unwrap_or_default();
        let events = store.events(height).map_err(internal)?.unwrap_or_default();
        Ok(Some(BlockInfo {
            hash: block.hash(),
            txs: block.txs.iter().map(|tx| TxInfo { hash: tx.hash(), tx: phalanx_rpc::tx_json(&tx.tx) }).collect(),
            events: phalanx_rpc::events_json(&events),
            certificate: format!("0x{}", hex::encode(&certificate)),
            encoded: format!("0x{}", hex::encode(block.encode())),
            header: block.header,
        }))
    }

    async fn chain_genesis(&self) -> RpcResult<Genesis> {
        Ok(self.chain.genesis().clone())
    }

    async fn chain_raw_blocks(&self, from: u64, count: u64) -> RpcResult<Vec<RawBlock>> {
        let store = self.chain.store().clone();
        let count = count.min(RAW_BLOCKS_MAX);
        let raw = tokio::task::spawn_blocking(move || store.raw_blocks(from, count, RAW_BLOCKS_BYTES_MAX))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        Ok(raw.into_iter().map(|(block, certificate)| RawBlock { block, certificate }).collect())
    }

    async fn registry_workers(&self) -> RpcResult<Vec<WorkerInfo>> {
        Ok(self.chain.finalized().state.workers().map(|(_, w)| WorkerInfo::new(w)).collect())
    }

    async fn keys_status(&self) -> RpcResult<KeysStatus> {
        let state = &self.chain.finalized().state;
        let clusters = state.clusters().map(|(_, c)| c);
        let agents: Vec<&phalanx_state::Agent> = state.agents().map(|(_, a)| a).collect();
        Ok(KeysStatus::new(state.gatekeeper_params(), state.gatekeepers(), state.key_epochs(), clusters, &agents))
    }

    async fn agents_list(&self) -> RpcResult<Vec<AgentInfo>> {
        let finalized = self.chain.finalized();
        let state = &finalized.state;
        Ok(state.agents().map(|(_, a)| AgentInfo::new(a, state.code(&a.code_hash).map_or(0, |c| c.len()))).collect())
    }

    async fn agents_get(&self, id: Hash) -> RpcResult<Option<AgentInfo>> {
        let finalized = self.chain.finalized();
        let state = &finalized.state;
        Ok(state.agent(&id).map(|a| AgentInfo::new(a, state.code(&a.code_hash).map_or(0, |c| c.len()))))
    }

    async fn agents_code(&self, hash: Hash) -> RpcResult<Option<String>> {
        Ok(self.chain.finalized().state.code(&hash).map(|code| format!("0x{}", hex::encode(code.as_slice()))))
    }

    async fn staking_pools(&self) -> RpcResult<Vec<phalanx_state::modules::staking::Pool>> {
        Ok(self.chain.finalized().state.pools().cloned().collect())
    }

    async fn staking_pool(&self, id: u64) -> RpcResult<Option<phalanx_rpc::PoolInfo>> {
        Ok(phalanx_rpc::PoolInfo::of(&self.chain.finalized().state, id, phalanx_rpc::POOL_HOLDERS_MAX))
    }

    async fn staking_vault(&self, id: u64) -> RpcResult<Option<phalanx_rpc::VaultInfo>> {
        Ok(phalanx_rpc::VaultInfo::of(&self.chain.finalized().state, id, phalanx_rpc::POOL_HOLDERS_MAX))
    }

    async fn mining_status(&self) -> RpcResult<phalanx_rpc::MiningStatus> {
        let finalized = self.chain.finalized();
        let state = &finalized.state;
        Ok(phalanx_rpc::MiningStatus {
            params: *state.mining_params(),
            totals: *state.mining_totals(),
            height: state.height(),
            miners: state.miners().copied().collect(),
        })
    }

    async fn registry_policy(&self) -> RpcResult<AttestationPolicy> {
        Ok(self.chain.finalized().state.attestation_policy().clone())
    }

    async fn state_account(&self, address: String) -> RpcResult<AccountInfo> {
        let who: PublicKey =
            address.parse().map_err(|e| error(codes::INVALID_PARAMS, format!("invalid address {address:?}: {e}")))?;
        let finalized = self.chain.finalized();
        let account = finalized.state.account(&who);
        let pending_txs = self.chain.pending_count(&who);
        let nonce = account.map_or(0, |a| a.nonce);
        let unbonding = finalized.state.unbonding(&who);
        Ok(AccountInfo {
            address: who,
            exists: account.is_some(),
            nonce,
            free: account.map_or(0, |a| a.free),
            deposit: finalized.state.deposit(&who),
            unbonding: unbonding.map_or(0, |u| u.amount),
            unbonding_release_at_ms: unbonding.map(|u| u.release_at_ms),
            pending_txs,
            next_nonce: nonce + pending_txs,
        })
    }

    async fn state_proof(&self, keys: Vec<String>, height: Option<u64>) -> RpcResult<StateProofs> {
        if keys.is_empty() || keys.len() > PROOF_KEYS_MAX {
            return Err(error(codes::TOO_LARGE, format!("ask for 1 to {PROOF_KEYS_MAX} keys, not {}", keys.len())));
        }
        let keys = keys
            .iter()
            .map(|key| {
                let digits = key.strip_prefix("0x").unwrap_or(key);
                let max = phalanx_statedb::leaf::LEAF_KEY_BYTES_MAX;
                if digits.len() > 2 * max {
                    return Err(error(codes::INVALID_PARAMS, format!("a leaf key is at most {max} bytes")));
                }
                hex::decode(digits).map_err(|e| error(codes::INVALID_PARAMS, format!("key {key:?} is not hex: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let chain = self.chain.clone();
        let proofs = tokio::task::spawn_blocking(move || chain.prove(keys, height)).await.map_err(internal)?;
        let proofs = proofs.map_err(|e| match e {
            crate::proofs::ProveError::NotHead { .. } => error(codes::PROOF_HEIGHT, e.to_string()),
            crate::proofs::ProveError::Busy => error(codes::INTERNAL, e.to_string()),
            crate::proofs::ProveError::Store(e) => internal(e),
        })?;
        let value_bytes: usize = proofs.proofs.iter().map(|p| p.value.as_ref().map_or(0, Vec::len)).sum();
        if proofs.proofs.len() > 1 && value_bytes > PROOF_VALUE_BYTES_MAX {
            return Err(error(
                codes::TOO_LARGE,
                format!("the values come to {value_bytes} bytes, over {PROOF_VALUE_BYTES_MAX}: ask for fewer keys"),
            ));
        }
        Ok(StateProofs {
            header: proofs.header,
            certificate: proofs.certificate,
            leaves: proofs.proofs.into_iter().map(Into::into).collect(),
        })
    }

    async fn chain_validator_transitions(&self, after_epoch: u64) -> RpcResult<Vec<ValidatorTransition>> {
        let store = self.chain.store().clone();
        let read = move || -> Result<Vec<ValidatorTransition>, crate::store::StoreError> {
            Ok(store
                .transitions(after_epoch, TRANSITIONS_MAX)?
                .into_iter()
                .map(|transition| ValidatorTransition {
                    header: transition.header,
                    certificate: transition.certificate,
                    validators: transition.validators.into(),
                    changes: transition.changes.into(),
                })
                .collect())
        };
        tokio::task::spawn_blocking(read).await.map_err(internal)?.map_err(internal)
    }

    async fn state_sync_target(&self) -> RpcResult<phalanx_rpc::SyncStart> {
        let chain = self.chain.clone();
        let (header, certificate, target) = tokio::task::spawn_blocking(move || chain.sync_start())
            .await
            .map_err(internal)?
            .map_err(|e| error(codes::INTERNAL, e.to_string()))?;
        Ok(phalanx_rpc::SyncStart { header, certificate, target: target.encode() })
    }

    async fn state_sync_ops(&self, request: String) -> RpcResult<String> {
        let digits = request.strip_prefix("0x").unwrap_or(&request);
        let max = phalanx_statedb::sync::SYNC_REQUEST_BYTES_MAX;
        if digits.len() > 2 * max {
            return Err(error(codes::INVALID_PARAMS, format!("a sync request is at most {max} bytes")));
        }
        let bytes =
            hex::decode(digits).map_err(|e| error(codes::INVALID_PARAMS, format!("the request is not hex: {e}")))?;
        let store = self.chain.store().clone();
        let answer = tokio::task::spawn_blocking(move || store.state().serve_sync(bytes))
            .await
            .map_err(internal)?
            .map_err(|e| error(codes::INVALID_PARAMS, format!("cannot answer the sync request: {e}")))?;
        Ok(format!("0x{}", hex::encode(answer)))
    }

    async fn tx_submit(&self, tx: String) -> RpcResult<Hash> {
        let hex_text = tx.strip_prefix("0x").unwrap_or(&tx);
        let bytes =
            hex::decode(hex_text).map_err(|e| error(codes::MALFORMED_TX, format!("transaction is not hex: {e}")))?;
        let chain = self.chain.clone();
        // Signature verification is CPU work: keep it off the async workers.
        let result = tokio::task::spawn_blocking(move || chain.submit(&bytes)).await.map_err(internal)?;
        if let (Ok(_) | Err(SubmitError::Admit(AdmitError::AlreadyKnown(_))), Some((url, upstream))) =
            (&result, &self.forward)
        {
            use phalanx_rpc::PhalanxClient as _;
            return upstream.tx_submit(tx).await.map_err(|e| match e {
                jsonrpsee::core::ClientError::Call(object) => object,
                other => error(codes::INTERNAL, format!("cannot forward to {url}: {other}")),
            });
        }
        result.map_err(|e| match &e {
            SubmitError::Malformed(_) => error(codes::MALFORMED_TX, e.to_string()),
            SubmitError::Admit(AdmitError::Full(_) | AdmitError::SenderFull(_) | AdmitError::BytesFull(_)) => {
                error(codes::POOL_FULL, e.to_string())
            }
            SubmitError::Admit(AdmitError::AlreadyKnown(_)) => error(codes::ALREADY_KNOWN, e.to_string()),
            SubmitError::Admit(AdmitError::Invalid(phalanx_state::TxError::StaleNonce { .. })) => {
                error(codes::STALE_NONCE, e.to_string())
            }
            SubmitError::Admit(AdmitError::Invalid(_)) => error(codes::INVALID_TX, e.to_string()),
        })
    }

    async fn tx_status(&self, hash: Hash) -> RpcResult<TxStatus> {
        if let Some((height, index)) = self.chain.store().tx_location(&hash).map_err(internal)? {
            return Ok(TxStatus::Finalized { height, index });
        }
        Ok(if self.chain.is_pending(&hash) { TxStatus::Pending } else { TxStatus::Unknown })
    }

    async fn chain_subscribe_finalized(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut finalized = self.chain.subscribe_finalized();
        let sink = pending.accept().await?;
        loop {
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                next = finalized.recv() => match next {
                    Ok(view) => {
                        let message = SubscriptionMessage::from(serde_json::value::to_raw_value(&head_info(&view))?);
                        if sink.send(message).await.is_err() {
                            return Ok(());
                        }
                    }
                    // A slow subscriber skips heads rather than holding memory.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }
}

/// Starts the RPC server; it runs until the handle is stopped or dropped.
pub async fn serve(chain: Arc<Chain>, config: &RpcConfig) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    // jsonrpsee's own guard counts requests in flight and open WebSockets;
    // ours (below and in the listener) are tighter, so it never binds.
    let in_flight = config.limits.connections_max.saturating_add(config.websockets_max);
    let server_config = ServerConfig::builder()
        .max_request_body_size(config.request_bytes_max)
        .max_response_body_size(config.response_bytes_max)
        .max_connections(u32::try_from(in_flight).unwrap_or(u32::MAX))
        .max_subscriptions_per_connection(config.subscriptions_per_connection_max)
        .enable_ws_ping(PingConfig::new().ping_interval(WS_PING_INTERVAL).inactive_limit(WS_INACTIVE_LIMIT))
        .build();
    let builder = ServerBuilder::default().set_config(server_config).to_service_builder();
    let forward = match &config.forward {
        Some(url) => Some((
            url.clone(),
            jsonrpsee::http_client::HttpClientBuilder::default()
                .request_timeout(std::time::Duration::from_secs(30))
                .build(url)
                .map_err(std::io::Error::other)?,
        )),
        None => None,
    };
    let methods: Methods = Api { chain, forward }.into_rpc().into();
    let (stop, handle) = jsonrpsee::server::stop_channel();
    let websockets = phalanx_listener::Admission::new(
        config.websockets_max,
        config.websockets_per_client_max,
        Some(phalanx_listener::ProcessBudget::global().clone()),
    );
    let stopped = stop.clone();
    let connection = move |client: SocketAddr| {
        let service = builder.clone().build(methods.clone(), stop.clone());
        let websockets = websockets.clone();
        tower::service_fn(move |request: hyper::Request<phalanx_listener::TimedBody<hyper::body::Incoming>>| {
            let mut service = service.clone();
            let websockets = websockets.clone();
            async move {
                if jsonrpsee::server::ws::is_upgrade_request(&request) {
                    match websockets.try_admit(client.ip()) {
                        // The WebSocket keeps its place until its session ends
                        // (or its upgrade fails, which ends the session too).
                        Ok(admitted) => {
                            let closed = service.on_session_closed();
                            tokio::spawn(async move {
                                closed.await;
                                drop(admitted);
                            });
                        }
                        Err(refused) => return Ok(too_many(&refused)),
                    }
                }
                tower::Service::call(&mut service, request).await
            }
        })
    };
    let limits = config.limits.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = phalanx_listener::serve(listener, limits, "rpc", connection) => {}
            _ = stopped.shutdown() => {}
        }
    });
    Ok((address, handle))
}

/// How often the server pings a WebSocket client.
pub const WS_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// A WebSocket that answers no ping and sends nothing for this long is closed.
pub const WS_INACTIVE_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// 429 with the cap a WebSocket met.
fn too_many(refused: &phalanx_listener::Refused) -> jsonrpsee::server::HttpResponse {
    let mut response = jsonrpsee::server::HttpResponse::new(jsonrpsee::server::HttpBody::from(format!(
        "WebSocket refused: {refused}\n"
    )));
    *response.status_mut() = hyper::StatusCode::TOO_MANY_REQUESTS;
    response
}
