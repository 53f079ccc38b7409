//! The worker's Prometheus metrics: verified height and sync speed (the
//! host loop), and the gateway's ([`phalanx_gateway::metrics::GatewayMetrics`]:
//! agent calls by outcome, sandbox errors by kind, commands applied). Served at `/metrics` on the metrics port
//! (`phalanx worker --metrics-port`). Labels are fixed words, never agent
//! ids or text, so a metric cannot leak what an agent does or grow without bound.

use phalanx_node::metrics::RateGauge;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Metrics of one worker.
#[derive(Debug)]
pub struct WorkerMetrics {
    registry: Registry,
    pub verified_height: Gauge,
    pub blocks_verified: Counter,
    pub sync_blocks_per_second: RateGauge,
    /// The gateway's, registered here too.
    pub gateway: std::sync::Arc<phalanx_gateway::metrics::GatewayMetrics>,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("phalanx_worker");
        let metrics = WorkerMetrics {
            registry: Registry::default(),
            verified_height: Gauge::default(),
            blocks_verified: Counter::default(),
            sync_blocks_per_second: RateGauge::default(),
            gateway: Default::default(),
        };
        registry.register(
            "verified_height",
            "Height of the last block this worker verified",
            metrics.verified_height.clone(),
        );
        registry.register("blocks_verified", "Blocks verified and replayed", metrics.blocks_verified.clone());
        registry.register(
            "sync_blocks_per_second",
            "Blocks verified per second over the last window of at least a second",
            metrics.sync_blocks_per_second.gauge.clone(),
        );
        metrics.gateway.register(&mut registry);
        WorkerMetrics { registry, ..metrics }
    }
}

impl WorkerMetrics {
    /// The verified chain moved from `from` to `to`.
    pub fn verified(&self, from: u64, to: u64) {
        self.verified_height.set(i64::try_from(to).unwrap_or(i64::MAX));
        let blocks = to.saturating_sub(from);
        self.blocks_verified.inc_by(blocks);
        self.sync_blocks_per_second.add(blocks);
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics` on `address` until the task is dropped.
pub async fn serve(
    metrics: std::sync::Arc<WorkerMetrics>,
    address: std::net::SocketAddr,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.encode()) }
        }),
    );
    let limits = phalanx_listener::ListenerLimits::metrics();
    let task = tokio::spawn(phalanx_listener::serve(listener, limits, "metrics", move |_| app.clone()));
    Ok((bound, task))
}
