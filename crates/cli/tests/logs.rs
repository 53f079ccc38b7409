//! Agent logs on a real `phalanx dev`: console output is sealed inside the
//! worker to the owner's log key (set at deployment); `phalanx agent logs`
//! opens it for the owner only; the plaintext is nowhere on disk or in the
//! node's debug log; after a transfer the old owner's key reads nothing new.

mod common;

use common::{DevNode, free_port, phalanx};
use std::time::{Duration, Instant};

const PLANTED: &str = "planted-log-line-3e7a";

fn run(node: &DevNode, args: &[&str]) -> std::process::Output {
    phalanx().args(args).args(["--rpc", &node.url()]).env("RUST_BACKTRACE", "0").output().unwrap()
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(120), "{what} did not happen within 120 s");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn logs_are_sealed_to_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("dev.log");
    let gateway_port = free_port();
    let port = gateway_port.to_string();
    let node = DevNode::start_logged(&data, &["--workers", "2", "--gateway-port", &port], &log);
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let source = dir.path().join("talker.js");
    std::fs::write(
        &source,
        "export default { async fetch(req) { const t = await req.text(); console.log(`heard ${t}`); console.error('oops'); return new Response('ok'); } };",
    )
    .unwrap();
    let mut deployed = None;
    until("deployment", || {
        let output = run(&node, &["agent", "deploy", source.to_str().unwrap(), "--from", "bob", "--json"]);
        deployed = serde_json::from_slice::<serde_json::Value>(&output.stdout).ok();
        output.status.success()
    });
    let id = deployed.unwrap()["id"].as_str().unwrap().to_string();
    let info: serde_json::Value = serde_json::from_slice(&run(&node, &["agent", "info", &id]).stdout).unwrap();
    assert!(info["log_key"].is_string(), "deployment set the owner's log key: {info}");

    let call = || run(&node, &["agent", "call", &id, "/", "--data", PLANTED, "--gateway", &gateway]).status.success();
    until("a call answering", call);
    let logs = |who: &str| run(&node, &["agent", "logs", &id, "--from", who, "--gateway", &gateway, "--json"]);
    let mut lines = Vec::new();
    // Calls until the worker serving them has verified the block with the log key.
    until("the owner reading the logs", || {
        call();
        let output = logs("bob");
        lines = serde_json::from_slice::<Vec<serde_json::Value>>(&output.stdout).unwrap_or_default();
        !lines.is_empty()
    });
    assert_eq!(lines[0]["level"], "log");
    assert_eq!(lines[0]["message"], format!("heard {PLANTED}"));
    assert_eq!(lines[1]["level"], "error");
    // Someone else cannot read them (nor set their own key on bob's agent).
    let refused = logs("charlie");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not the owner"));
    // The sealed batches themselves are public; their plaintext is not.
    let raw = reqwest::blocking::get(format!("{gateway}/logs/{id}")).unwrap().text().unwrap();
    assert!(raw.contains("batches") && !raw.contains(PLANTED));

    // After a transfer, the old owner's key gets nothing new; the new owner sets theirs.
    assert!(run(&node, &["agent", "transfer", &id, "dave", "--from", "bob"]).status.success());
    let info: serde_json::Value = serde_json::from_slice(&run(&node, &["agent", "info", &id]).stdout).unwrap();
    assert!(info["log_key"].is_null(), "a transfer clears the log key");
    let dave = logs("dave");
    assert!(dave.status.success(), "{}", String::from_utf8_lossy(&dave.stderr));
    let said = String::from_utf8_lossy(&dave.stderr);
    assert!(said.contains("log key set") && said.contains("sealed to a previous owner"), "{said}");
    let read: Vec<serde_json::Value> = serde_json::from_slice(&dave.stdout).unwrap();
    assert!(read.is_empty(), "the new owner reads none of the old owner's logs");

    drop(node);
    let mut files = Vec::new();
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() { walk(&path, out) } else { out.push(path) }
        }
    }
    walk(dir.path(), &mut files);
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let planted = format!("heard {PLANTED}");
        assert!(
            !bytes.windows(planted.len()).any(|w| w == planted.as_bytes()),
            "{} holds the log line",
            path.display()
        );
    }
}
