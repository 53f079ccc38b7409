//! Agents on a real `phalanx dev` through the CLI: the dev workers form a
//! cluster and receive its key; an agent is deployed, listed, upgraded by
//! its owner (not by others), paused and transferred.

mod common;

use common::{DevNode, free_port, phalanx};
use std::time::{Duration, Instant};

fn cli(node: &DevNode, args: &[&str]) -> std::process::Output {
    phalanx().args(args).args(["--rpc", &node.url()]).env("RUST_BACKTRACE", "0").output().unwrap()
}

#[test]
fn deploy_upgrade_and_manage_agents_on_dev() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_port = common::free_ports(2);
    let port = gateway_port.to_string();
    let node = DevNode::start_with(dir.path(), free_port(), free_port(), &["--workers", "2", "--gateway-port", &port]);

    // Both dev workers end up in the "dev" cluster holding its key.
    let started = Instant::now();
    let cluster = loop {
        let status: serde_json::Value = node.cli_json(&["keys", "status"]);
        if let Some(cluster) = status["clusters"].as_array().and_then(|c| c.first()).cloned() {
            let received = cluster["keys"][0]["received"].as_array().map_or(0, |r| r.len());
            if cluster["workers"].as_array().unwrap().len() == 2 && received == 2 {
                break cluster;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(90), "dev cluster not formed: {status}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(cluster["name"], "dev");

    let source = dir.path().join("hello.ts");
    std::fs::write(&source, "export default { fetch(): Response { return new Response('v1'); } };").unwrap();
    let deployed: serde_json::Value =
        node.cli_json(&["agent", "deploy", source.to_str().unwrap(), "--from", "bob", "--name", "hello"]);
    let id = deployed["id"].as_str().unwrap().to_string();
    assert_eq!(deployed["cluster"], cluster["id"]);

    // Called through the first worker's gateway (on the port given to phalanx dev).
    let call = |path: &str| {
        let output = phalanx()
            .args(["agent", "call", &id, path, "--gateway", &format!("http://127.0.0.1:{gateway_port}")])
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let text = if output.status.success() { output.stdout } else { output.stderr };
        String::from_utf8_lossy(&text).trim().to_string()
    };
    let wait_for = |path: &str, expected: &str| {
        let started = Instant::now();
        loop {
            let got = call(path);
            if got.contains(expected) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "expected {expected:?}, got {got:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for("/", "v1");

    // Encrypted: sealed to the agent's key from the chain, answered sealed.
    let encrypted = |expected: &str| {
        let started = Instant::now();
        loop {
            let output = phalanx()
                .args([
                    "agent",
                    "call",
                    &id,
                    "/",
                    "--encrypt",
                    "--gateway",
                    &format!("http://127.0.0.1:{gateway_port}"),
                ])
                .args(["--rpc", &node.url()])
                .env("RUST_BACKTRACE", "0")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(if output.status.success() { &output.stdout } else { &output.stderr })
                .to_string();
            if output.status.success() && text.contains(expected) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "encrypted call: {text}");
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    encrypted("v1");
    // A tampered envelope is refused with a clear error.
    let garbage = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{gateway_port}/agents/{id}"))
        .header("content-type", "application/phalanx-envelope")
        .body(vec![1u8; 300])
        .send()
        .unwrap();
    assert_eq!(garbage.status(), 400);
    assert!(garbage.text().unwrap().contains("envelope"));

    // Secrets: sealed here to the agent's key, opened only inside the cluster's workers as env.NAME.
    let greeter_source = dir.path().join("greeter.js");
    std::fs::write(
        &greeter_source,
        "export default { fetch(req, env) { return new Response(`greeting: ${env.GREETING}`); } };",
    )
    .unwrap();
    let greeter: serde_json::Value =
        node.cli_json(&["agent", "deploy", greeter_source.to_str().unwrap(), "--from", "bob", "--name", "greeter"]);
    let greeter = greeter["id"].as_str().unwrap().to_string();
    let planted = "planted-secret-7f3a9c";
    let started = Instant::now();
    loop {
        let set = cli(&node, &["agent", "secrets", "set", &greeter, &format!("GREETING={planted}"), "--from", "bob"]);
        if set.status.success() {
            break;
        }
        // The agent's key is published a block or two after deployment.
        assert!(started.elapsed() < Duration::from_secs(30), "{}", String::from_utf8_lossy(&set.stderr));
        std::thread::sleep(Duration::from_millis(300));
    }
    let call_greeter = || {
        let output = phalanx()
            .args(["agent", "call", &greeter, "/", "--gateway", &format!("http://127.0.0.1:{gateway_port}")])
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let started = Instant::now();
    while call_greeter() != format!("greeting: {planted}") {
        assert!(started.elapsed() < Duration::from_secs(30), "secret never reached env: {}", call_greeter());
        std::thread::sleep(Duration::from_millis(200));
    }
    let info: serde_json::Value = node.cli_json(&["agent", "info", &greeter]);
    assert_eq!(info["secrets"][0]["name"], "GREETING");
    assert!(!info.to_string().contains(planted), "the chain holds the secret sealed only");
    // Nothing under the data directory (chain, consensus journal, workers' sealed files) holds it in plaintext.
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() { files(&path, out) } else { out.push(path) }
        }
    }
    let mut all = Vec::new();
    files(dir.path(), &mut all);
    assert!(all.len() > 5, "the data directory has files");
    for path in all {
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(!bytes.windows(planted.len()).any(|w| w == planted.as_bytes()), "{} holds the secret", path.display());
    }

    let list: Vec<serde_json::Value> = node.cli_json(&["agent", "list"]);
    assert_eq!(list.len(), 2);
    let hello = list.iter().find(|a| a["id"] == id.as_str()).expect("the deployed agent is listed");
    assert_eq!((&hello["name"], &hello["version"]), (&"hello".into(), &1.into()));

    // Code that does not compile is refused before anything is paid.
    let broken = dir.path().join("broken.ts");
    std::fs::write(&broken, "export default { fetch( {").unwrap();
    let refused = cli(&node, &["agent", "upgrade", &id, broken.to_str().unwrap(), "--from", "bob"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not compile"));

    // Only the owner upgrades; the id stays and the version rises.
    std::fs::write(&source, "export default { fetch(): Response { return new Response('v2'); } };").unwrap();
    let refused = cli(&node, &["agent", "upgrade", &id, source.to_str().unwrap(), "--from", "charlie"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("only the agent's owner"));
    let _: serde_json::Value = node.cli_json(&["agent", "upgrade", &id, source.to_str().unwrap(), "--from", "bob"]);
    wait_for("/", "v2");
    let _: serde_json::Value = node.cli_json(&["agent", "pause", &id, "--from", "bob"]);
    wait_for("/", "503 Service Unavailable: agent");
    let unknown = format!("0x{}", "ab".repeat(32));
    let output = phalanx()
        .args(["agent", "call", &unknown, "--gateway", &format!("http://127.0.0.1:{gateway_port}")])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("404 Not Found: no agent"));
    let _: serde_json::Value = node.cli_json(&["agent", "transfer", &id, "dave", "--from", "bob"]);
    let info: serde_json::Value = node.cli_json(&["agent", "info", &id]);
    assert_eq!(info["version"], 2);
    assert_eq!(info["paused"], true);
    assert_eq!(
        info["owner"].as_str().unwrap(),
        phalanx_primitives::mnemonic::dev_keypair("dave").unwrap().public().to_string()
    );
    let refused = cli(&node, &["agent", "resume", &id, "--from", "bob"]);
    assert!(!refused.status.success(), "the previous owner lost control");
}
