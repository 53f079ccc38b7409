//! `fetch` from inside an agent, against a real HTTP server on a loopback
//! socket: the request reaches it with method, headers and body; the response
//! comes back; and the policy refuses private addresses (by literal and by
//! name), denied hosts, too many subrequests and oversized responses.

use phalanx_sandbox::{FetchPolicy, HttpRequest, Limits, Sandbox};
use std::io::{Read, Write};
use std::net::TcpListener;

/// Serves HTTP/1.1 on 127.0.0.1 until the test ends: `/big` answers 2 MiB,
/// anything else echoes the method, path, `x-test` header and body length.
fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            let head_end = loop {
                let read = stream.read(&mut buffer).unwrap_or(0);
                if read == 0 {
                    break None;
                }
                request.extend_from_slice(&buffer[..read]);
                if let Some(index) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(index + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&request[..head_end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            while request.len() < head_end + length {
                let read = stream.read(&mut buffer).unwrap_or(0);
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..read]);
            }
            let mut words = head.split_whitespace();
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let header = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-test:").map(|v| v.trim().to_string()))
                .unwrap_or_default();
            let body = if path == "/big" {
                "x".repeat(2 * 1024 * 1024)
            } else {
                format!(r#"{{"method":"{method}","path":"{path}","x_test":"{header}","body_bytes":{length}}}"#)
            };
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-served-by: test\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

const AGENT: &str = r#"export default {
    async fetch(request) {
        const { target, method, body } = await request.json();
        try {
            const response = await fetch(target, { method, headers: { "X-Test": "hello" }, body });
            return Response.json({ status: response.status, served: response.headers.get("x-served-by"), body: await response.text() });
        } catch (error) {
            return Response.json({ error: `${error.name}: ${error.message}` });
        }
    },
};"#;

async fn call(sandbox: &mut Sandbox, target: &str, method: &str, body: Option<&str>) -> serde_json::Value {
    let argument = serde_json::json!({ "target": target, "method": method, "body": body });
    let request = HttpRequest {
        url: "https://agent.example/".into(),
        method: "POST".into(),
        headers: vec![],
        body: Some(argument.to_string().into_bytes()),
    };
    let fetched = sandbox.fetch(request, vec![]).await.unwrap();
    serde_json::from_slice(&fetched.response.body).unwrap()
}

async fn agent(policy: FetchPolicy) -> Sandbox {
    let mut sandbox = Sandbox::with_policy(Limits::default(), policy).await.unwrap();
    sandbox.load("agent.js", AGENT, "fetch").await.unwrap();
    sandbox
}

/// With private addresses allowed (dev mode), a request goes out over a real
/// socket and its response comes back whole.
#[tokio::test]
async fn fetch_reaches_a_real_server_when_allowed() {
    let port = serve();
    let mut sandbox = agent(FetchPolicy { allow_private_addresses: true, ..FetchPolicy::default() }).await;
    let out = call(&mut sandbox, &format!("http://127.0.0.1:{port}/echo?q=1"), "POST", Some("12345")).await;
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["served"], "test");
    let echoed: serde_json::Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        echoed,
        serde_json::json!({ "method": "POST", "path": "/echo?q=1", "x_test": "hello", "body_bytes": 5 })
    );
}

/// What a call used is metered: its egress counts the agent's outgoing
/// request (body included) and the response body it returned; its CPU time
/// grows with the work the call does.
#[tokio::test]
async fn a_calls_usage_counts_its_cpu_and_egress() {
    let port = serve();
    let mut sandbox = agent(FetchPolicy { allow_private_addresses: true, ..FetchPolicy::default() }).await;
    let payload = "y".repeat(10_000);
    let target = format!("http://127.0.0.1:{port}/echo");
    let argument = serde_json::json!({ "target": target, "method": "POST", "body": payload });
    let request = HttpRequest {
        url: "https://agent.example/".into(),
        method: "POST".into(),
        headers: vec![],
        body: Some(argument.to_string().into_bytes()),
    };
    let fetched = sandbox.fetch(request, vec![]).await.unwrap();
    let used = sandbox.last_usage();
    let response = fetched.response.body.len() as u64;
    assert!(used.egress_bytes >= 10_000 + response, "{used:?}, response {response} bytes");
    assert!(used.egress_bytes < 10_000 + response + 1_000, "only the request and response: {used:?}");
    assert!(used.cpu > std::time::Duration::ZERO, "{used:?}");

    // A call with no fetch: egress is the response body alone; a busy loop costs more CPU than an idle call.
    let mut busy = Sandbox::new(Limits::default()).await.unwrap();
    busy.load(
        "busy.js",
        "export default { fetch(request) { const n = Number(new URL(request.url).searchParams.get('n')); \
         let x = 0; for (let i = 0; i < n; i++) x += i % 3; return new Response(String(x)); } };",
        "fetch",
    )
    .await
    .unwrap();
    let mut run = async |n: u32| {
        let request =
            HttpRequest { url: format!("https://a.example/?n={n}"), method: "GET".into(), headers: vec![], body: None };
        let fetched = busy.fetch(request, vec![]).await.unwrap();
        (fetched.response.body.len() as u64, busy.last_usage())
    };
    let (idle_bytes, idle) = run(1).await;
    let (_, working) = run(2_000_000).await;
    assert_eq!(idle.egress_bytes, idle_bytes, "{idle:?}");
    assert!(working.cpu > idle.cpu * 10, "idle {idle:?}, working {working:?}");
}

/// The default policy refuses loopback by address and by name; deny lists,
/// schemes, subrequest counts and response sizes are enforced.
#[tokio::test]
async fn policy_refusals_are_clear() {
    let port = serve();
    let mut public_only = agent(FetchPolicy::default()).await;
    let out = call(&mut public_only, &format!("http://127.0.0.1:{port}/"), "GET", None).await;
    assert!(out["error"].as_str().unwrap().contains("not public"), "{out}");
    let out = call(&mut public_only, &format!("http://localhost:{port}/"), "GET", None).await;
    assert!(out["error"].as_str().unwrap().contains("non-public addresses"), "{out}");
    let out = call(&mut public_only, "file:///etc/passwd", "GET", None).await;
    assert!(out["error"].as_str().unwrap().contains("only http and https"), "{out}");

    let mut denied = agent(FetchPolicy {
        deny_hosts: vec!["127.0.0.1".into()],
        allow_private_addresses: true,
        ..FetchPolicy::default()
    })
    .await;
    let out = call(&mut denied, &format!("http://127.0.0.1:{port}/"), "GET", None).await;
    assert!(out["error"].as_str().unwrap().contains("not allowed by this agent's fetch policy"), "{out}");

    let mut small = agent(FetchPolicy {
        allow_private_addresses: true,
        response_body_bytes_max: 1024 * 1024,
        subrequests_per_call_max: 1,
        ..FetchPolicy::default()
    })
    .await;
    let out = call(&mut small, &format!("http://127.0.0.1:{port}/big"), "GET", None).await;
    assert!(out["error"].as_str().unwrap().contains("larger than 1048576 bytes"), "{out}");
    // The count starts over with each call; within a call it is enforced.
    let out = call(&mut small, &format!("http://127.0.0.1:{port}/ok"), "GET", None).await;
    assert_eq!(out["status"], 200, "{out}");
    let mut twice = Sandbox::with_policy(
        Limits::default(),
        FetchPolicy { allow_private_addresses: true, subrequests_per_call_max: 1, ..FetchPolicy::default() },
    )
    .await
    .unwrap();
    twice
        .load(
            "agent.js",
            &format!(
                "export default {{ async fetch() {{ await fetch('http://127.0.0.1:{port}/a'); try {{ await fetch('http://127.0.0.1:{port}/b'); }} catch (e) {{ return new Response(e.message); }} return new Response('no limit'); }} }};"
            ),
            "fetch",
        )
        .await
        .unwrap();
    let request =
        HttpRequest { url: "https://agent.example/".into(), method: "GET".into(), headers: vec![], body: None };
    let fetched = twice.fetch(request, vec![]).await.unwrap();
    assert!(String::from_utf8(fetched.response.body).unwrap().contains("subrequest limit"));
}

/// IPv6 forms that carry an IPv4 address (NAT64, 6to4, IPv4-compatible,
/// -mapped and -translated) are refused when the IPv4 address inside is
/// not public: on a NAT64 network `64:ff9b::7f00:1` is 127.0.0.1.
#[tokio::test]
async fn ipv6_forms_embedding_private_ipv4_are_refused() {
    let port = serve();
    let mut public_only = agent(FetchPolicy::default()).await;
    for host in [
        "[64:ff9b::7f00:1]",
        "[64:ff9b::a9fe:a9fe]",
        "[64:ff9b:1::a00:1]",
        "[2002:7f00:1::1]",
        "[::127.0.0.1]",
        "[::ffff:0:127.0.0.1]",
        "[::ffff:127.0.0.1]",
    ] {
        let out = call(&mut public_only, &format!("http://{host}:{port}/"), "GET", None).await;
        let error = out["error"].as_str().unwrap_or_default();
        assert!(error.contains("not public"), "{host}: {out}");
    }
}
