//! The node's own Prometheus metrics (finalized height, finality latency,
//! mempool size, sync speed, transactions). `service` serves them at
//! `/metrics` with the consensus library's (p2p, simplex, marshal, runtime).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Metrics of one chain node. Cheap to update (atomics) from any thread.
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
    pub finalized_height: Gauge,
    pub blocks_committed: Counter,
    pub txs_committed: Counter,
    /// Seconds from a block's timestamp (its proposal) to its commit here.
    pub finality_latency: Histogram,
    pub mempool_size: Gauge,
    pub txs_submitted: Counter,
    pub txs_refused: Counter,
    /// Blocks committed per second, over the last window of at least a second.
    pub sync_blocks_per_second: RateGauge,
}

/// A gauge of events per second, measured over windows of at least a
/// second (nodes' and workers' sync speed).
#[derive(Debug)]
pub struct RateGauge {
    pub gauge: Gauge,
    window: Mutex<(Instant, u64)>,
}

/// Shortest window a rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

impl Default for RateGauge {
    fn default() -> Self {
        RateGauge { gauge: Gauge::default(), window: Mutex::new((Instant::now(), 0)) }
    }
}

impl RateGauge {
    /// Counts `events`; once the window is a second long, sets the gauge to its rate and starts another.
    pub fn add(&self, events: u64) {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        window.1 += events;
        let elapsed = window.0.elapsed();
        if elapsed >= RATE_WINDOW {
            self.gauge.set((window.1 as f64 / elapsed.as_secs_f64()).round() as i64);
            *window = (Instant::now(), 0);
        }
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("phalanx");
        let metrics = NodeMetrics {
            finalized_height: Gauge::default(),
            blocks_committed: Counter::default(),
            txs_committed: Counter::default(),
            // 5 ms … ~41 s.
            finality_latency: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            mempool_size: Gauge::default(),
            txs_submitted: Counter::default(),
            txs_refused: Counter::default(),
            sync_blocks_per_second: RateGauge::default(),
            registry: Registry::default(),
        };
        registry.register("finalized_height", "Height of the last finalized block", metrics.finalized_height.clone());
        registry.register(
            "blocks_committed",
            "Finalized blocks committed to the store",
            metrics.blocks_committed.clone(),
        );
        registry.register("txs_committed", "Transactions in committed blocks", metrics.txs_committed.clone());
        registry.register(
            "finality_latency_seconds",
            "From a block's timestamp to its commit on this node",
            metrics.finality_latency.clone(),
        );
        registry.register("mempool_size", "Transactions waiting in the mempool", metrics.mempool_size.clone());
        registry.register("txs_submitted", "Transactions admitted to the mempool", metrics.txs_submitted.clone());
        registry.register("txs_refused", "Transactions the mempool refused", metrics.txs_refused.clone());
        registry.register(
            "sync_blocks_per_second",
            "Blocks committed per second over the last window of at least a second",
            metrics.sync_blocks_per_second.gauge.clone(),
        );
        NodeMetrics { registry, ..metrics }
    }
}

impl NodeMetrics {
    /// Records a committed block of `txs` transactions proposed at `timestamp_ms`.
    pub fn committed(&self, height: u64, txs: usize, timestamp_ms: u64) {
        self.finalized_height.set(i64::try_from(height).unwrap_or(i64::MAX));
        self.blocks_committed.inc();
        self.txs_committed.inc_by(txs as u64);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.finality_latency.observe(now_ms.saturating_sub(timestamp_ms) as f64 / 1000.0);
        self.sync_blocks_per_second.add(1);
    }

    /// The metrics in the Prometheus text format, without the closing `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        out
    }
}
