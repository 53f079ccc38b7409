//! Real third-party code, unchanged: Hono and zod (with `@hono/zod-validator`)
//! are installed from npm at test time and bundled by `tests/npm/build.sh`;
//! each bundle runs in the sandbox and must answer every case in
//! `tests/npm/expected.json` exactly as Node's own Request/Response do:
//! status, every header, and body (and a streamed body in more than one
//! chunk).

use phalanx_sandbox::{AgentCode, FetchPolicy, HttpRequest, Limits, Pool, PoolConfig, ResponsePart};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::sync::mpsc;

/// Installs the pinned packages and bundles the agents (needs Node.js and
/// npm, which `scripts/test.sh` installs when missing).
fn build_bundles() -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("npm-agents");
    let status =
        Command::new("bash").arg(fixtures.join("build.sh")).env("OUT_DIR", &out).status().unwrap_or_else(|e| {
            panic!("cannot run tests/npm/build.sh ({e}); scripts/test.sh installs Node.js and npm")
        });
    assert!(status.success(), "tests/npm/build.sh failed: is npm installed and the registry reachable?");
    out
}

#[tokio::test]
async fn hono_and_zod_bundles_answer_like_node() {
    let out = build_bundles();
    let expected: Value =
        serde_json::from_str(include_str!("npm/expected.json")).expect("tests/npm/expected.json is JSON");
    let env: Vec<(String, String)> = expected["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let pool = Pool::new(PoolConfig::default());
    let cases = expected["cases"].as_array().unwrap();
    assert!(cases.len() >= 50, "the fixture has its cases");
    let mut failures = Vec::new();
    for case in cases {
        let app = case["app"].as_str().unwrap();
        let source = std::fs::read_to_string(out.join(format!("{app}.js"))).unwrap();
        assert!(!source.lines().any(|l| l.starts_with("import ")), "{app} is one module");
        let code = AgentCode::compile(&format!("{app}.js"), &source).unwrap();
        let request = &case["request"];
        let http = HttpRequest {
            url: request["url"].as_str().unwrap().to_string(),
            method: request["method"].as_str().unwrap().to_string(),
            headers: request["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| (pair[0].as_str().unwrap().to_string(), pair[1].as_str().unwrap().to_string()))
                .collect(),
            body: request["body"].as_str().map(|b| b.as_bytes().to_vec()),
        };
        let mut lease = pool.lease(app, &code, Limits::default(), &FetchPolicy::default()).await.unwrap();
        let (sender, mut parts) = mpsc::channel(16);
        let collect = async {
            let (mut head, mut chunks) = (None, Vec::new());
            while let Some(part) = parts.recv().await {
                match part {
                    ResponsePart::Complete(h, whole) => (head, chunks) = (Some(h), vec![whole]),
                    ResponsePart::Head(h) => head = Some(h),
                    ResponsePart::Body(chunk) => chunks.push(chunk),
                }
            }
            (head, chunks)
        };
        let ((result, logs), (head, chunks)) = tokio::join!(lease.serve(http, &env, sender), collect);
        let name = format!("{app} {} {} ({})", request["method"], request["url"], case["note"]);
        if let Err(error) = result {
            failures.push(format!("{name}: {error} {logs:?}"));
            continue;
        }
        let head = head.unwrap();
        let want = &case["response"];
        let want_headers: Vec<(String, String)> = want["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| (pair[0].as_str().unwrap().to_string(), pair[1].as_str().unwrap().to_string()))
            .collect();
        let body = String::from_utf8(chunks.concat()).unwrap();
        if head.status != want["status"].as_u64().unwrap() as u16 {
            failures.push(format!("{name}: status {} want {}", head.status, want["status"]));
        }
        if head.headers != want_headers {
            failures.push(format!("{name}: headers {:?} want {want_headers:?}", head.headers));
        }
        if body != want["body"].as_str().unwrap() {
            failures.push(format!("{name}: body {body:?} want {}", want["body"]));
        }
        if want["chunks"].as_array().unwrap().len() > 1 && chunks.len() < 2 {
            failures.push(format!("{name}: streamed body came in {} chunk(s)", chunks.len()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Node:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
