//! The agent sandbox: runs one agent's JavaScript (or TypeScript, with its
//! types stripped) on QuickJS with hard limits on memory, stack, CPU and wall
//! time, and no ambient authority: no file system, no sockets, no imports.
//!
//! This is the engine layer. Work in progress (issue 3): the Web API surface
//! (Request, Response, Headers, URL, fetch through the host, timers, crypto,
//! streams) and the runtime pool come next; until then `Sandbox::call`
//! invokes an exported handler with plain values.

pub mod engine;
pub mod limits;
pub mod typescript;

pub use engine::{Sandbox, SandboxError};
pub use limits::Limits;
