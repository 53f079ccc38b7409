//! What every listener of a phalanx process enforces, so that no client can
//! take a node or a worker down by holding connections open.
//!
//! - [`budget`]: the process's file descriptors. At start the soft limit is
//!   raised to the hard one where allowed; a reserve
//!   ([`FD_RESERVE_MIN`] or a quarter of the limit) is kept for storage,
//!   p2p and outgoing requests, and every listener's connections together
//!   stay within the rest, so accepting a connection can never starve a
//!   storage write of its descriptor.
//! - [`admission`]: caps per listener and per client address; a refused
//!   connection gets a one-line 503 and is closed at once.
//! - [`timed_body`]: a request body must arrive within its deadline.
//! - [`serve`]: HTTP/1.1 on a listener with all of the above, the request
//!   head timeout (which is also the idle timeout of a kept-alive
//!   connection between requests: hyper starts it when the connection goes
//!   idle), and a cap on the head's size.
//!
//! [`ListenerLimits`] documents each default; the README's table lists them
//! per listener.

pub mod admission;
pub mod budget;
pub mod serve;
pub mod timed_body;

pub use admission::{Admission, Admitted, Refused};
pub use budget::{FD_LIMIT_ADVISED, FD_RESERVE_MIN, ProcessBudget};
pub use serve::{ListenerLimits, serve};
pub use timed_body::{BodyTimeout, TimedBody};
