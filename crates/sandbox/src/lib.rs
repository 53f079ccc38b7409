//! The agent sandbox: runs one agent's JavaScript (or TypeScript, with its
//! types stripped) on QuickJS with hard limits on memory, stack, CPU and wall
//! time, and no ambient authority: no file system, no sockets, no imports.
//!
//! Work in progress (issue 3). Built: the engine (limits, module loading,
//! `fetch(request, env, ctx)` and plain method calls) and part of the Web
//! API (console capture, TextEncoder/TextDecoder, URL, URLSearchParams,
//! Headers, Request, Response with buffered bodies, timers, crypto,
//! structuredClone, AbortController, fetch through the host under a policy).
//! Still to come:
//! streaming bodies, the bytecode cache and the runtime pool.

pub mod engine;
pub mod fetch;
pub mod limits;
pub mod typescript;
mod web;

pub use engine::{Fetched, HttpRequest, HttpResponse, LogLine, Sandbox, SandboxError};
pub use fetch::FetchPolicy;
pub use limits::Limits;
