//! The gateway's Prometheus metrics: agent calls by outcome, sandbox
//! errors by kind, commands applied. The worker registers them beside its
//! own and serves them. Labels are fixed words, never agent ids or text, so
//! a metric cannot leak what an agent does or grow without bound.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: &'static str,
}

/// Metrics of one gateway.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    /// `ok` (the agent answered, any status), `refused` (the gateway
    /// refused: unknown agent, access, deposit, limits), `failed` (the
    /// sandbox failed the call).
    pub agent_calls: Family<Outcome, Counter>,
    pub sandbox_errors: Family<Kind, Counter>,
    pub commands_applied: Counter,
}

impl GatewayMetrics {
    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("agent_calls", "Agent calls by outcome", self.agent_calls.clone());
        registry.register("sandbox_errors", "Sandbox failures of agent calls by kind", self.sandbox_errors.clone());
        registry.register("commands_applied", "Agent commands run", self.commands_applied.clone());
    }

    pub fn call(&self, outcome: &'static str) {
        self.agent_calls.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn sandbox_error(&self, error: &phalanx_sandbox::SandboxError) {
        self.call("failed");
        self.sandbox_errors.get_or_create(&Kind { kind: error.kind() }).inc();
    }
}
