//! Connection caps: per listener, per client address, and the process's
//! share ([`crate::budget`]). One client cannot fill a listener: it meets
//! its own cap first.

use crate::budget::ProcessBudget;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection (or a WebSocket) was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("this listener holds its limit of {0} connections")]
    Listener(usize),
    #[error("this client holds its limit of {0} connections")]
    Client(usize),
    #[error("the process holds all the connections its file descriptors allow")]
    Process,
}

/// Caps on connections of one kind (a listener's, or its WebSockets).
#[derive(Clone, Debug)]
pub struct Admission {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    total: Arc<Semaphore>,
    total_max: usize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    per_client_max: usize,
    process: Option<ProcessBudget>,
}

/// An admitted connection; its places are given back when it is dropped.
#[derive(Debug)]
pub struct Admitted {
    _total: OwnedSemaphorePermit,
    _process: Option<OwnedSemaphorePermit>,
    inner: Arc<Inner>,
    client: IpAddr,
}

impl Admission {
    /// At most `total_max` at once, `per_client_max` of them from one
    /// address, each also drawing on `process` when given.
    pub fn new(total_max: usize, per_client_max: usize, process: Option<ProcessBudget>) -> Admission {
        Admission {
            inner: Arc::new(Inner {
                total: Arc::new(Semaphore::new(total_max)),
                total_max,
                per_client: Mutex::new(HashMap::new()),
                per_client_max,
                process,
            }),
        }
    }

    /// Admits a connection from `client`, or says which cap it met.
    pub fn try_admit(&self, client: IpAddr) -> Result<Admitted, Refused> {
        let inner = &self.inner;
        let mut per_client = inner.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let held = per_client.get(&client).copied().unwrap_or(0);
        if held >= inner.per_client_max {
            return Err(Refused::Client(inner.per_client_max));
        }
        let total = inner.total.clone().try_acquire_owned().map_err(|_| Refused::Listener(inner.total_max))?;
        let process = match &inner.process {
            Some(budget) => Some(budget.try_take().ok_or(Refused::Process)?),
            None => None,
        };
        per_client.insert(client, held + 1);
        Ok(Admitted { _total: total, _process: process, inner: inner.clone(), client })
    }

    /// Connections admitted now.
    pub fn in_use(&self) -> usize {
        self.inner.total_max - self.inner.total.available_permits()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_client = self.inner.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = per_client.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_client_per_listener_and_per_process() {
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let admission = Admission::new(3, 2, None);
        let a1 = admission.try_admit(a).unwrap();
        let _a2 = admission.try_admit(a).unwrap();
        assert_eq!(admission.try_admit(a).unwrap_err(), Refused::Client(2), "a third from one client");
        let _b1 = admission.try_admit(b).unwrap();
        assert_eq!(admission.try_admit(c).unwrap_err(), Refused::Listener(3), "the listener is full");
        drop(a1);
        let c1 = admission.try_admit(c);
        assert!(c1.is_ok(), "a closed connection frees its places");
        assert_eq!(admission.in_use(), 3);

        let process = ProcessBudget::with_size(1);
        let first = Admission::new(10, 10, Some(process.clone()));
        let second = Admission::new(10, 10, Some(process));
        let held = first.try_admit(a).unwrap();
        assert_eq!(second.try_admit(b).unwrap_err(), Refused::Process, "listeners share the process's budget");
        drop(held);
        assert!(second.try_admit(b).is_ok());
    }
}
