//! Hostile agents against one sandbox host (a [`Pool`]): every kind of
//! misbehaviour ends its call with its own clear error within its limit, and
//! the next call on the same host succeeds, for that agent and for others.

use phalanx_sandbox::{
    AgentCode, CompileError, FetchPolicy, HttpRequest, Limits, Pool, PoolConfig, ResponsePart, SandboxError,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn limits() -> Limits {
    Limits {
        memory_bytes_max: 16 * 1024 * 1024,
        stack_bytes_max: 256 * 1024,
        cpu_time_max: Duration::from_millis(100),
        wall_time_max: Duration::from_millis(500),
        request_body_bytes_max: 64 * 1024,
        response_body_bytes_max: 1024 * 1024,
    }
}

fn request(path: &str) -> HttpRequest {
    HttpRequest { url: format!("https://agent.example{path}"), method: "GET".into(), headers: vec![], body: None }
}

/// One call through the pool: its result, body and console lines, and how long it took.
async fn call(
    pool: &Arc<Pool>,
    agent: &str,
    code: &AgentCode,
    request: HttpRequest,
) -> (Result<(), SandboxError>, Vec<u8>, Vec<String>, Duration) {
    let started = Instant::now();
    let mut lease = pool.lease(agent, code, limits(), &FetchPolicy::default()).await.unwrap();
    let (sender, mut receiver) = mpsc::channel(4);
    let collect = async {
        let mut body = Vec::new();
        while let Some(part) = receiver.recv().await {
            match part {
                ResponsePart::Complete(_, whole) => body = whole,
                ResponsePart::Body(chunk) => body.extend_from_slice(&chunk),
                ResponsePart::Head(_) => {}
            }
        }
        body
    };
    let ((result, logs), body) = tokio::join!(lease.serve(request, &[], sender), collect);
    let logs = logs.into_iter().map(|l| format!("{}: {}", l.level, l.message)).collect();
    (result, body, logs, started.elapsed())
}

/// Whether an error is the one a case expects.
type Expect = Box<dyn Fn(&SandboxError) -> bool>;

/// Each agent misbehaves on `/bad` and answers "fine" otherwise.
fn hostile(bad: &str) -> AgentCode {
    let source = format!(
        "export default {{ async fetch(request) {{ if (new URL(request.url).pathname === '/bad') {{ {bad} }} return new Response('fine'); }} }};"
    );
    AgentCode::compile("agent.js", &source).unwrap()
}

#[tokio::test]
async fn each_violation_has_its_own_error_and_the_host_keeps_serving() {
    let pool = Pool::new(PoolConfig::default());
    let bystander = hostile("return new Response('never');");
    let slack = Duration::from_millis(400);
    let cases: Vec<(&str, &str, Expect, Duration)> = vec![
        ("loop", "for (;;) {}", Box::new(|e| *e == SandboxError::CpuTime { limit_ms: 100 }), limits().cpu_time_max),
        (
            "caught loop",
            "try { while (true) {} } catch (e) { return new Response('escaped'); }",
            Box::new(|e| *e == SandboxError::CpuTime { limit_ms: 100 }),
            limits().cpu_time_max,
        ),
        (
            "memory bomb",
            "const a = []; for (;;) a.push(new Array(1e5).fill(1));",
            Box::new(|e| *e == SandboxError::Memory { limit_bytes: 16 * 1024 * 1024 }),
            limits().cpu_time_max,
        ),
        (
            "deep recursion",
            "const f = (n) => f(n + 1) + 1; return new Response(String(f(0)));",
            Box::new(|e| matches!(e, SandboxError::Threw(m) if m.contains("RangeError") && m.contains("stack"))),
            limits().cpu_time_max,
        ),
        (
            "giant response",
            "return new Response('x'.repeat(2 * 1024 * 1024));",
            Box::new(|e| *e == SandboxError::ResponseTooLarge { limit_bytes: 1024 * 1024 }),
            limits().cpu_time_max,
        ),
        (
            "giant streamed response",
            "const chunk = new Uint8Array(64 * 1024); return new Response(new ReadableStream({ pull(c) { c.enqueue(chunk); } }));",
            Box::new(|e| *e == SandboxError::ResponseTooLarge { limit_bytes: 1024 * 1024 }),
            limits().cpu_time_max,
        ),
        (
            "thrown number",
            "throw 42;",
            Box::new(|e| *e == SandboxError::Threw("non-error value thrown: 42".into())),
            limits().cpu_time_max,
        ),
        (
            "thrown object",
            "throw { code: 7 };",
            Box::new(|e| *e == SandboxError::Threw(r#"non-error value thrown: {"code":7}"#.into())),
            limits().cpu_time_max,
        ),
        (
            "never settles",
            "await new Promise(() => {});",
            Box::new(|e| *e == SandboxError::WallTime { limit_ms: 500 }),
            limits().wall_time_max,
        ),
        (
            "not a response",
            "return { status: 200 };",
            Box::new(|e| matches!(e, SandboxError::Threw(m) if m.contains("must return a Response"))),
            limits().cpu_time_max,
        ),
    ];
    for (name, bad, expected, within) in cases {
        let code = hostile(bad);
        let (result, _, _, took) = call(&pool, name, &code, request("/bad")).await;
        let error = result.expect_err(name);
        assert!(expected(&error), "{name}: unexpected error {error:?}");
        assert!(took < within + slack, "{name}: took {took:?}, limit {within:?}");
        // The same host serves the same agent again, and another agent too.
        let (again, body, _, _) = call(&pool, name, &code, request("/ok")).await;
        assert_eq!((again, body), (Ok(()), b"fine".to_vec()), "{name}: next call");
        let (other, body, _, _) = call(&pool, "bystander", &bystander, request("/ok")).await;
        assert_eq!((other, body), (Ok(()), b"fine".to_vec()), "{name}: other agent");
    }
}

/// Huge console output is cut at the limit with a notice; the call succeeds.
#[tokio::test]
async fn console_flood_is_truncated_with_a_notice() {
    let pool = Pool::new(PoolConfig::default());
    let code = hostile(
        "for (let i = 0; i < 20000; i++) console.log('line', i, 'x'.repeat(100)); return new Response('done');",
    );
    let (result, body, logs, _) = call(&pool, "chatty", &code, request("/bad")).await;
    assert_eq!((result, body), (Ok(()), b"done".to_vec()));
    assert!(logs.len() <= 1001, "{} lines kept", logs.len());
    assert!(logs.iter().map(String::len).sum::<usize>() < 300 * 1024);
    let notice = logs.last().unwrap();
    assert!(notice.contains("console output over the limit") && notice.contains("more lines dropped"), "{notice}");
    // The next call starts with a clean console.
    let (_, _, logs, _) = call(&pool, "chatty", &code, request("/ok")).await;
    assert!(logs.is_empty(), "{logs:?}");
}

/// Broken code never reaches a host; oversized requests are refused before the agent runs.
#[tokio::test]
async fn syntax_errors_and_oversized_requests() {
    let error = AgentCode::compile("agent.js", "export default { fetch( { };").unwrap_err();
    assert!(matches!(&error, CompileError::Module(m) if m.contains("SyntaxError")), "{error:?}");
    let error = AgentCode::compile("agent.ts", "let x: = 1;").unwrap_err();
    assert!(matches!(error, CompileError::Source(_)), "{error:?}");
    let error = AgentCode::compile("agent.js", &"x".repeat(5 * 1024 * 1024)).unwrap_err();
    assert!(matches!(error, CompileError::TooLarge { .. }), "{error:?}");

    let pool = Pool::new(PoolConfig::default());
    let code = hostile("return new Response('never');");
    let mut big = request("/ok");
    big.method = "POST".into();
    big.body = Some(vec![0; 65 * 1024]);
    let (result, _, _, _) = call(&pool, "agent", &code, big).await;
    assert_eq!(result, Err(SandboxError::RequestTooLarge { limit_bytes: 64 * 1024 }));
    let (result, body, _, _) = call(&pool, "agent", &code, request("/ok")).await;
    assert_eq!((result, body), (Ok(()), b"fine".to_vec()));
}

/// Instances are reused (module state persists on one instance), never
/// shared between agents, and replaced when the agent's code changes.
#[tokio::test]
async fn pool_reuses_per_agent_and_drops_old_code() {
    let pool = Pool::new(PoolConfig::default());
    let counter = AgentCode::compile(
        "agent.js",
        "let n = 0; export default { fetch() { n += 1; return new Response(String(n)); } };",
    )
    .unwrap();
    let (_, first, _, _) = call(&pool, "a", &counter, request("/")).await;
    let (_, second, _, _) = call(&pool, "a", &counter, request("/")).await;
    let (_, other, _, _) = call(&pool, "b", &counter, request("/")).await;
    assert_eq!((first, second, other), (b"1".to_vec(), b"2".to_vec(), b"1".to_vec()));
    assert_eq!(pool.idle(), 2);
    let upgraded =
        AgentCode::compile("agent.js", "export default { fetch() { return new Response('v2'); } };").unwrap();
    let (_, body, _, _) = call(&pool, "a", &upgraded, request("/")).await;
    assert_eq!(body, b"v2");
    assert_eq!(pool.idle(), 2, "the old instance of a was dropped, not kept beside the new one");
}
