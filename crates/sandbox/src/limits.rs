//! Per-agent limits. The host caps them; an agent may ask for less.

use std::time::Duration;

/// What one agent instance may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Heap of the agent's JavaScript runtime, in bytes.
    pub memory_bytes_max: usize,
    /// Native stack the interpreter may use, in bytes (bounds recursion).
    pub stack_bytes_max: usize,
    /// Execution time of one call (or of loading the module): time the
    /// engine spends running the agent's JavaScript and the host functions it
    /// calls, not time spent waiting on the network or timers. Checked by the
    /// interrupt handler QuickJS polls while JavaScript runs.
    pub cpu_time_max: Duration,
    /// Time one call may take in all, including waiting on the host and
    /// streaming the response.
    pub wall_time_max: Duration,
    /// Largest request body handed to the agent, in bytes.
    pub request_body_bytes_max: usize,
    /// Largest response body the agent may send (streamed or not), in bytes.
    pub response_body_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes_max: 64 * 1024 * 1024,
            stack_bytes_max: 512 * 1024,
            cpu_time_max: Duration::from_millis(500),
            wall_time_max: Duration::from_secs(30),
            request_body_bytes_max: 2 * 1024 * 1024,
            response_body_bytes_max: 32 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// These limits, each lowered to at most `cap`'s.
    pub fn capped_by(self, cap: Limits) -> Limits {
        Limits {
            memory_bytes_max: self.memory_bytes_max.min(cap.memory_bytes_max),
            stack_bytes_max: self.stack_bytes_max.min(cap.stack_bytes_max),
            cpu_time_max: self.cpu_time_max.min(cap.cpu_time_max),
            wall_time_max: self.wall_time_max.min(cap.wall_time_max),
            request_body_bytes_max: self.request_body_bytes_max.min(cap.request_body_bytes_max),
            response_body_bytes_max: self.response_body_bytes_max.min(cap.response_body_bytes_max),
        }
    }
}
