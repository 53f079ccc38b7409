//! The engine under hostile and ordinary agents: modules load (JavaScript and
//! TypeScript), handlers run and are awaited, and every limit ends the call
//! with its own error while other agents keep working.

use phalanx_sandbox::{CompileError, Limits, Sandbox, SandboxError};
use std::time::Duration;

fn tight() -> Limits {
    Limits {
        memory_bytes_max: 16 * 1024 * 1024,
        stack_bytes_max: 256 * 1024,
        cpu_time_max: Duration::from_millis(100),
        wall_time_max: Duration::from_millis(500),
        ..Limits::default()
    }
}

async fn agent(source: &str) -> Sandbox {
    let mut sandbox = Sandbox::new(tight()).await.unwrap();
    sandbox.load("agent.js", source, "fetch").await.unwrap();
    sandbox
}

/// An async handler gets its argument and its awaited result comes back.
#[tokio::test]
async fn runs_javascript_and_typescript_handlers() {
    let mut js =
        agent("export default { async fetch(req) { await null; return { echo: req.name, n: req.n + 1 }; } };").await;
    assert_eq!(js.call_json("fetch", r#"{"name":"ada","n":41}"#).await.unwrap(), r#"{"echo":"ada","n":42}"#);
    // Warm: the same instance serves the next call.
    assert_eq!(js.call_json("fetch", r#"{"name":"bob","n":1}"#).await.unwrap(), r#"{"echo":"bob","n":2}"#);

    let mut ts = Sandbox::new(tight()).await.unwrap();
    let source = r#"
        interface Req { name: string }
        enum Greeting { Hello = "hello" }
        export default { fetch(req: Req): string { return `${Greeting.Hello} ${req.name}`; } };
    "#;
    ts.load("agent.ts", source, "fetch").await.unwrap();
    assert_eq!(ts.call_json("fetch", r#"{"name":"ts"}"#).await.unwrap(), r#""hello ts""#);
}

/// Imports, top-level errors, missing handlers and syntax errors are refused clearly.
#[tokio::test]
async fn bad_modules_are_refused() {
    let mut sandbox = Sandbox::new(tight()).await.unwrap();
    let error = sandbox.load("agent.js", "import fs from 'node:fs'; export default { fetch() {} };", "fetch").await;
    assert!(
        matches!(&error, Err(SandboxError::Compile(CompileError::Module(m))) if m.contains("imports are disabled")),
        "{error:?}"
    );
    let error = sandbox.load("agent.js", "throw new TypeError('boom'); export default {};", "fetch").await;
    assert!(matches!(&error, Err(SandboxError::Load(m)) if m.contains("TypeError: boom")), "{error:?}");
    let error = sandbox.load("agent.js", "export default { other() {} };", "fetch").await;
    assert_eq!(error, Err(SandboxError::NoHandler("fetch".into())));
    let error = sandbox.load("agent.ts", "let x: = ;", "fetch").await;
    assert!(matches!(error, Err(SandboxError::Compile(_))), "{error:?}");
    assert!(matches!(sandbox.call_json("fetch", "{}").await, Err(SandboxError::NotLoaded)));

    let mut dynamic = agent("export default { async fetch() { return await import('./other.js'); } };").await;
    let error = dynamic.call_json("fetch", "{}").await;
    assert!(matches!(&error, Err(SandboxError::Threw(m)) if m.contains("imports are disabled")), "{error:?}");
    let mut throws = agent("export default { fetch() { throw new RangeError('nope'); } };").await;
    assert_eq!(throws.call_json("fetch", "{}").await, Err(SandboxError::Threw("RangeError: nope".into())));
    assert!(!throws.is_poisoned(), "an agent's own exception is not a limit violation");
}

/// An endless loop is interrupted (the agent cannot catch it), the instance
/// is poisoned, and a different agent is unaffected.
#[tokio::test]
async fn cpu_limit_interrupts_endless_loops() {
    let mut looping =
        agent("export default { fetch(r) { if (r.spin) { try { while (true) {} } catch (e) {} } return 'ok'; } };")
            .await;
    let mut bystander = agent("export default { fetch() { return 'still here'; } };").await;
    assert_eq!(looping.call_json("fetch", r#"{"spin":true}"#).await, Err(SandboxError::CpuTime { limit_ms: 100 }));
    assert!(looping.is_poisoned());
    assert_eq!(looping.call_json("fetch", "{}").await, Err(SandboxError::Poisoned));
    assert_eq!(bystander.call_json("fetch", "{}").await.unwrap(), r#""still here""#);

    let mut top_level = Sandbox::new(tight()).await.unwrap();
    let error = top_level.load("agent.js", "for (;;) {} export default { fetch() {} };", "fetch").await;
    assert_eq!(error, Err(SandboxError::CpuTime { limit_ms: 100 }));
}

/// Memory, stack and wall-time limits each end the call with their own error.
#[tokio::test]
async fn memory_stack_and_wall_limits() {
    let mut hog =
        agent("export default { fetch() { const a = []; for (;;) a.push(new Array(100000).fill(1)); } };").await;
    assert_eq!(hog.call_json("fetch", "{}").await, Err(SandboxError::Memory { limit_bytes: 16 * 1024 * 1024 }));
    assert!(hog.is_poisoned());

    let mut deep = agent("export default { fetch() { const f = (n) => f(n + 1) + 1; return f(0); } };").await;
    let error = deep.call_json("fetch", "{}").await;
    assert!(matches!(&error, Err(SandboxError::Threw(m)) if m.contains("stack")), "{error:?}");

    let mut stuck = agent("export default { fetch() { return new Promise(() => {}); } };").await;
    assert_eq!(stuck.call_json("fetch", "{}").await, Err(SandboxError::WallTime { limit_ms: 500 }));
}

/// Agents never share state: globals set by one are invisible to another.
#[tokio::test]
async fn agents_do_not_share_state() {
    let mut writer =
        agent("export default { fetch() { globalThis.secret = 'mine'; return typeof globalThis.secret; } };").await;
    let mut reader = agent("export default { fetch() { return typeof globalThis.secret; } };").await;
    assert_eq!(writer.call_json("fetch", "{}").await.unwrap(), r#""string""#);
    assert_eq!(reader.call_json("fetch", "{}").await.unwrap(), r#""undefined""#);
}
