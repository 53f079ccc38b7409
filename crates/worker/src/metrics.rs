//! The worker's Prometheus metrics: verified height and sync speed (the
//! host loop), agent calls by outcome and sandbox errors by kind (the
//! gateway), commands applied. Served at `/metrics` on the metrics port
//! (`phalanx worker --metrics-port`). Labels are fixed words, never agent
//! ids or text, so a metric cannot leak what an agent does or grow without bound.

use phalanx_node::metrics::RateGauge;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: &'static str,
}

/// Metrics of one worker.
#[derive(Debug)]
pub struct WorkerMetrics {
    registry: Registry,
    pub verified_height: Gauge,
    pub blocks_verified: Counter,
    pub sync_blocks_per_second: RateGauge,
    /// `ok` (the agent answered, any status), `refused` (the gateway
    /// refused: unknown agent, access, deposit, limits), `failed` (the
    /// sandbox failed the call).
    pub agent_calls: Family<Outcome, Counter>,
    pub sandbox_errors: Family<Kind, Counter>,
    pub commands_applied: Counter,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("phalanx_worker");
        let metrics = WorkerMetrics {
            registry: Registry::default(),
            verified_height: Gauge::default(),
            blocks_verified: Counter::default(),
            sync_blocks_per_second: RateGauge::default(),
            agent_calls: Family::default(),
            sandbox_errors: Family::default(),
            commands_applied: Counter::default(),
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
        registry.register("agent_calls", "Agent calls by outcome", metrics.agent_calls.clone());
        registry.register("sandbox_errors", "Sandbox failures of agent calls by kind", metrics.sandbox_errors.clone());
        registry.register("commands_applied", "Agent commands run", metrics.commands_applied.clone());
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

    pub fn call(&self, outcome: &'static str) {
        self.agent_calls.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn sandbox_error(&self, error: &phalanx_sandbox::SandboxError) {
        self.call("failed");
        self.sandbox_errors.get_or_create(&Kind { kind: error.kind() }).inc();
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
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics server stopped");
        }
    });
    Ok((bound, task))
}
