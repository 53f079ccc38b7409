//! Agent logs on a real `phalanx dev`: console output is sealed inside the
//! worker to the owner's log key (set at deployment); `phalanx agent logs`
//! opens it for the owner only; the plaintext is nowhere on disk or in the
//! node's debug log; after a transfer the old owner's key reads nothing new.

mod common;

use common::{DevNode, deploy, files_under, run, until};

const PLANTED: &str = "planted-log-line-3e7a";

#[test]
fn logs_are_sealed_to_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("dev.log");
    let gateway_port = common::free_ports(2);
    let port = gateway_port.to_string();
    let node = DevNode::start_logged(&data, &["--workers", "2", "--gateway-port", &port], &log);
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let source = dir.path().join("talker.js");
    std::fs::write(
        &source,
        "export default { async fetch(req) { const t = await req.text(); console.log(`heard ${t}`); console.error('oops'); return new Response('ok'); } };",
    )
    .unwrap();
    let id = deploy(&node, &source, "bob");
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
    for path in files_under(dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        let planted = format!("heard {PLANTED}");
        assert!(
            !bytes.windows(planted.len()).any(|w| w == planted.as_bytes()),
            "{} holds the log line",
            path.display()
        );
    }
}
