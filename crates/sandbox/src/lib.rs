//! The agent sandbox: runs one agent's JavaScript (or TypeScript, with its
//! types stripped) on QuickJS with hard limits on memory, stack, CPU and wall
//! time, and no ambient authority: no file system, no sockets, no imports.
//!
//! - [`code`]: agent source compiled once to bytecode, cached by hash.
//! - [`engine`]: one agent instance ([`Sandbox`]) and its limits.
//! - [`pool`]: warm instances per agent, reused across calls.
//! - [`fetch`]: the agent's only network access, under a [`FetchPolicy`].
//! - [`bindings`]: host objects on `env` (`env.STATE`, `env.AGENTS`).
//! - `web`: the Web API agents see (Request, Response, streams, URL, ...).

pub mod bindings;
mod call;
pub mod code;
pub mod engine;
pub mod fetch;
pub mod limits;
pub mod outgoing;
pub mod pool;
pub mod typescript;
mod web;

pub use bindings::{Binding, BindingFuture};
pub use call::{ResponseHead, ResponsePart};
pub use code::{AgentCode, CodeCache, CompileError};
pub use engine::{CallUsage, Fetched, HttpRequest, HttpResponse, LogLine, Sandbox, SandboxError};
pub use fetch::FetchPolicy;
pub use limits::Limits;
pub use pool::{Lease, Pool, PoolConfig};
