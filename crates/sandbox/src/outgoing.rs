//! The sockets agents' `fetch` may hold in one process.
//!
//! A worker's process also runs storage and, in `phalanx dev`, a validator
//! whose consensus journal must never fail to open a file. So outgoing
//! requests draw from a fixed share of the process's descriptors, whatever
//! the agents do:
//!
//! - at most [`OUTGOING_REQUESTS_MAX`] requests are out at once. A request
//!   holds its permit from before it connects until its response body is
//!   read to the end, closed or dropped; past the limit `fetch` waits for a
//!   permit up to the request's timeout, then fails with a clear error;
//! - idle keep-alive connections are kept only for the
//!   [`POOLED_HOSTS_MAX`] most recently used origins, at most
//!   [`POOLED_PER_HOST_MAX`] each, for [`POOLED_IDLE`]. An origin pushed out
//!   of that list drops its idle connections with its client.
//!
//! Together: at most [`OUTGOING_SOCKETS_MAX`] sockets.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most requests the agents of one process have out at once.
pub const OUTGOING_REQUESTS_MAX: usize = 256;
/// Origins (scheme, host, port) whose idle connections are kept for reuse.
pub const POOLED_HOSTS_MAX: usize = 32;
/// Idle connections kept per pooled origin.
pub const POOLED_PER_HOST_MAX: usize = 4;
/// How long an idle connection is kept.
pub const POOLED_IDLE: Duration = Duration::from_secs(30);
/// Sockets agents' requests hold at most in one process. A request may
/// open a second connection while it waits for a pooled one (the loser is
/// pooled or closed), hence twice the requests, plus the idle pools.
pub const OUTGOING_SOCKETS_MAX: usize = 2 * OUTGOING_REQUESTS_MAX + POOLED_HOSTS_MAX * POOLED_PER_HOST_MAX;

/// Permits for requests in flight, shared by every sandbox of the process.
fn permits() -> &'static Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS.get_or_init(|| Arc::new(Semaphore::new(OUTGOING_REQUESTS_MAX)))
}

/// A permit for one request, waiting at most `wait` for another to finish.
pub(crate) async fn take(wait: Duration) -> Result<OwnedSemaphorePermit, String> {
    match tokio::time::timeout(wait, permits().clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(format!(
            "this worker's agents have {OUTGOING_REQUESTS_MAX} requests out already; none finished within {} ms",
            wait.as_millis()
        )),
    }
}

/// Requests out now (metrics and tests).
pub fn in_flight() -> usize {
    OUTGOING_REQUESTS_MAX - permits().available_permits()
}

/// Which client serves a request: the address rule and timeout of the
/// agent's policy, and the origin it goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientKey {
    pub allow_private_addresses: bool,
    pub timeout: Duration,
    pub origin: String,
}

/// The client for `key`: the most recently used origins keep theirs (and
/// its idle connections); a new origin pushes out the least recently used.
/// A client holds TLS roots and a connection pool but no agent state:
/// agents never see connections.
pub(crate) fn client(
    key: ClientKey,
    build: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, String> {
    static CLIENTS: Mutex<Vec<(ClientKey, reqwest::Client)>> = Mutex::new(Vec::new());
    let mut clients = CLIENTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(at) = clients.iter().position(|(k, _)| *k == key) {
        let entry = clients.remove(at);
        let client = entry.1.clone();
        clients.push(entry);
        return Ok(client);
    }
    let client = build(reqwest::Client::builder())
        .timeout(key.timeout)
        .pool_max_idle_per_host(POOLED_PER_HOST_MAX)
        .pool_idle_timeout(POOLED_IDLE)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    if clients.len() >= POOLED_HOSTS_MAX {
        clients.remove(0);
    }
    clients.push((key, client.clone()));
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_past_the_limit_wait_then_fail() {
        let mut held = Vec::new();
        for _ in 0..OUTGOING_REQUESTS_MAX {
            held.push(take(Duration::from_millis(10)).await.unwrap());
        }
        assert_eq!(in_flight(), OUTGOING_REQUESTS_MAX);
        let refused = take(Duration::from_millis(20)).await.unwrap_err();
        assert!(refused.contains("256 requests out"), "{refused}");
        held.pop();
        assert!(take(Duration::from_millis(20)).await.is_ok(), "a finished request frees its permit");
    }

    #[test]
    fn only_recent_origins_keep_a_client() {
        let key = |n: usize| ClientKey {
            allow_private_addresses: false,
            timeout: Duration::from_secs(1),
            origin: format!("http://h{n}.test:80"),
        };
        // The user agent marks which build a client came from.
        let get = |n: usize, mark: &str| {
            let mark = mark.to_string();
            format!("{:?}", client(key(n), move |b| b.user_agent(mark)).unwrap())
        };
        for n in 0..POOLED_HOSTS_MAX {
            get(n, "first");
        }
        assert!(get(0, "second").contains("first"), "a recent origin keeps its client");
        // Two new origins push out the least recently used, h1 and h2 (h0 was used again).
        get(POOLED_HOSTS_MAX, "first");
        get(POOLED_HOSTS_MAX + 1, "first");
        assert!(get(0, "second").contains("first"), "h0 kept its client");
        assert!(get(1, "second").contains("second"), "h1 was pushed out and built anew");
    }
}
