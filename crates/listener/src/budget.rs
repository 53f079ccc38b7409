//! The process's file descriptors, shared by all its listeners.
//!
//! One process runs a validator's storage and p2p, its RPC, two workers'
//! gateways and metrics endpoints. If clients could open connections until
//! `accept` fails with "too many open files", the next storage write would
//! fail too (a consensus journal that cannot be written is fatal). So the
//! connections of all listeners together are bounded by the descriptors
//! left after a reserve for everything else.

use std::sync::{Arc, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Fewest descriptors kept for everything but listeners. Each part has its
/// own bound where it is made: p2p at most 2,176 sockets
/// (`phalanx_node::P2P_SOCKETS_MAX`), agents' `fetch` at most 640
/// (`phalanx_sandbox::outgoing::OUTGOING_SOCKETS_MAX`), storage (redb and
/// commonware's journals and archives, a few hundred files) and the
/// runtime's own (epoll, eventfds, standard streams) in the rest. A test of
/// the binary checks that the parts fit.
pub const FD_RESERVE_MIN: u64 = 4096;
/// Fewest descriptors a process should be allowed: the reserve and a
/// thousand connections. Below it the process starts with a warning.
pub const FD_LIMIT_ADVISED: u64 = FD_RESERVE_MIN + 1024;
/// Most connections all listeners of a process hold at once, whatever the
/// descriptor limit (memory: each holds buffers and a task).
pub const PROCESS_CONNECTIONS_MAX: u64 = 65_536;

/// The connections every listener of this process draws from.
#[derive(Clone, Debug)]
pub struct ProcessBudget {
    permits: Arc<Semaphore>,
    size: usize,
}

impl ProcessBudget {
    /// The process-wide budget, sized once from the descriptor limit
    /// (raised first, see [`raise_fd_limit`]).
    pub fn global() -> &'static ProcessBudget {
        static BUDGET: OnceLock<ProcessBudget> = OnceLock::new();
        BUDGET.get_or_init(|| {
            let limit = raise_fd_limit();
            let size = connections_for(limit);
            if limit < FD_LIMIT_ADVISED {
                tracing::warn!(
                    fd_limit = limit,
                    advised = FD_LIMIT_ADVISED,
                    connections = size,
                    "the open-files limit is low: listeners get only {size} connections and storage may run short; raise it (ulimit -n)"
                );
            }
            tracing::debug!(fd_limit = limit, connections = size, "connection budget of this process");
            ProcessBudget::with_size(size)
        })
    }

    /// A budget of `size` connections (tests; [`ProcessBudget::global`] otherwise).
    pub fn with_size(size: usize) -> ProcessBudget {
        ProcessBudget { permits: Arc::new(Semaphore::new(size)), size }
    }

    /// One connection's share, or `None` when the process holds all it may.
    pub fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Connections the budget allows in all.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Connections open now.
    pub fn in_use(&self) -> usize {
        self.size - self.permits.available_permits()
    }
}

/// Connections the listeners may hold under a descriptor limit of `limit`:
/// what is left after the reserve (the larger of [`FD_RESERVE_MIN`] and a
/// quarter of the limit), at least 64, at most [`PROCESS_CONNECTIONS_MAX`].
pub fn connections_for(limit: u64) -> usize {
    let reserve = FD_RESERVE_MIN.max(limit / 4);
    limit.saturating_sub(reserve).clamp(64, PROCESS_CONNECTIONS_MAX) as usize
}

/// Raises the soft limit on open files to the hard limit (where the hard
/// limit allows it) and returns the soft limit in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if let Some(hard) = limit.maximum
        && hard > current
        && setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }).is_ok()
    {
        return hard;
    }
    if limit.maximum.is_none() && limit.current.is_some() {
        // Unlimited hard limit: take a generous but finite soft limit.
        let wanted = 1 << 20;
        if setrlimit(Resource::Nofile, Rlimit { current: Some(wanted), maximum: None }).is_ok() {
            return wanted;
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_kept_under_any_limit() {
        assert_eq!(connections_for(12_000), 7_904, "4,096 kept of 12,000");
        assert_eq!(connections_for(65_536), 49_152, "a quarter kept of 65,536");
        assert_eq!(connections_for(100), 64, "a floor, however small the limit");
        assert_eq!(connections_for(1 << 30), PROCESS_CONNECTIONS_MAX as usize);
        let budget = ProcessBudget::with_size(2);
        let (a, b) = (budget.try_take(), budget.try_take());
        assert!(a.is_some() && b.is_some() && budget.try_take().is_none());
        assert_eq!(budget.in_use(), 2);
        drop(a);
        assert!(budget.try_take().is_some(), "a closed connection gives its share back");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let before = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let now = raise_fd_limit();
        assert!(now >= before.current.unwrap_or(0));
        if let Some(hard) = before.maximum {
            assert_eq!(now, hard);
        }
    }
}
