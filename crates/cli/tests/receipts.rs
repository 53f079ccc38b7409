//! Receipts on a real `phalanx dev`: every agent response carries a receipt
//! signed by the worker; `phalanx verify` checks it against the chain (and
//! the request and response bytes), refuses tampered receipts and bodies,
//! still accepts a receipt of the previous code version after an upgrade,
//! and an agent cannot forge the header. A planted secret and a planted
//! encrypted request body appear nowhere in plaintext: not in receipts, not
//! in the debug log, not under the data directory.

mod common;

use common::{DevNode, files_under, run, until};
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "planted-secret-receipts-5d1e";
const BODY: &str = "planted-encrypted-body-8b2f";

fn retry(what: &str, mut attempt: impl FnMut() -> std::process::Output) -> std::process::Output {
    let started = Instant::now();
    loop {
        let output = attempt();
        if output.status.success() {
            return output;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{what}: {}", String::from_utf8_lossy(&output.stderr));
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn verify(node: &DevNode, receipt: &Path, extra: &[&str]) -> (bool, serde_json::Value, String) {
    let output = run(node, &[&["verify", receipt.to_str().unwrap(), "--json"][..], extra].concat());
    let value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    (output.status.success(), value, String::from_utf8_lossy(&output.stderr).to_string())
}

fn failed_checks(value: &serde_json::Value) -> Vec<String> {
    let checks = value["checks"].as_array().cloned().unwrap_or_default();
    checks.iter().filter(|c| c["ok"] == false).map(|c| c["check"].as_str().unwrap_or("?").to_string()).collect()
}

#[test]
fn receipts_verify_against_the_chain_and_nothing_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("dev.log");
    let gateway_port = common::free_ports(2);
    let port = gateway_port.to_string();
    let node = DevNode::start_logged(&data, &["--workers", "2", "--gateway-port", &port], &log);
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let file = |name: &str| dir.path().join(name);

    let source = file("echo.js");
    let v1 = "export default { async fetch(req, env) { return new Response(`v1 ${env.TOKEN === undefined ? 'none' : 'set'} ${await req.text()}`); } };";
    std::fs::write(&source, v1).unwrap();
    let deployed =
        retry("deploy", || run(&node, &["agent", "deploy", source.to_str().unwrap(), "--from", "bob", "--json"]));
    let deployed: serde_json::Value = serde_json::from_slice(&deployed.stdout).unwrap();
    let id = deployed["id"].as_str().unwrap().to_string();
    retry("setting the secret", || {
        run(&node, &["agent", "secrets", "set", &id, &format!("TOKEN={SECRET}"), "--from", "bob"])
    });

    // A plain call, its receipt and its exact response bytes.
    let (r1, o1, req) = (file("r1"), file("o1"), file("req"));
    std::fs::write(&req, "hello").unwrap();
    let call = |receipt: &Path, output: &Path, extra: &[&str]| {
        let base = ["agent", "call", &id, "/", "--data", "hello", "--gateway", &gateway];
        let paths = ["--receipt", receipt.to_str().unwrap(), "--output", output.to_str().unwrap()];
        run(&node, &[&base[..], &paths[..], extra].concat())
    };
    until("a call answering with the secret set", || {
        call(&r1, &o1, &[]).status.success() && std::fs::read_to_string(&o1).unwrap_or_default() == "v1 set hello"
    });
    let (ok, value, stderr) =
        verify(&node, &r1, &["--request", req.to_str().unwrap(), "--response", o1.to_str().unwrap()]);
    assert!(ok, "the receipt verifies: {value} {stderr}");
    assert_eq!(value["receipt"]["agent"], id.as_str());
    assert_eq!(value["receipt"]["agent_version"], 1);
    let names: Vec<&str> = value["checks"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
    assert_eq!(names, ["signature", "chain", "height", "worker", "code", "cluster", "request", "response"]);

    // A changed response body, and a tampered receipt, are refused.
    let tampered_body = file("o1-tampered");
    std::fs::write(&tampered_body, "v1 set hellO").unwrap();
    let (ok, value, _) = verify(&node, &r1, &["--response", tampered_body.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(failed_checks(&value), vec!["response"]);
    let mut forged = std::fs::read_to_string(&r1).unwrap().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    let forged_path = file("r1-forged");
    std::fs::write(&forged_path, &forged).unwrap();
    let (ok, _, stderr) = verify(&node, &forged_path, &[]);
    assert!(!ok && stderr.contains("not a valid receipt"), "{stderr}");

    // Upgrade: the new code tries to set the receipt header itself.
    let v2 = "export default { fetch() { return new Response('v2', { headers: { 'phalanx-receipt': 'forged' } }); } };";
    std::fs::write(&source, v2).unwrap();
    retry("upgrade", || run(&node, &["agent", "upgrade", &id, source.to_str().unwrap(), "--from", "bob"]));
    let (r2, o2) = (file("r2"), file("o2"));
    until("v2 answering", || {
        call(&r2, &o2, &[]).status.success() && std::fs::read_to_string(&o2).unwrap_or_default() == "v2"
    });
    let (ok, value, stderr) = verify(&node, &r2, &["--response", o2.to_str().unwrap()]);
    assert!(ok, "the worker's receipt replaced the agent's header: {value} {stderr}");
    assert_eq!(value["receipt"]["agent_version"], 2);
    let (ok, value, _) = verify(&node, &r1, &[]);
    assert!(ok, "a receipt of version 1 still verifies after the upgrade: {value}");

    // An encrypted call with a planted body: its receipt covers the envelope.
    let (r3, o3) = (file("r3"), file("o3"));
    let encrypted = run(
        &node,
        &["agent", "call", &id, "/", "--data", BODY, "--encrypt", "--gateway", &gateway]
            .iter()
            .copied()
            .chain(["--receipt", r3.to_str().unwrap(), "--output", o3.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert!(encrypted.status.success(), "{}", String::from_utf8_lossy(&encrypted.stderr));
    assert_eq!(std::fs::read_to_string(&o3).unwrap(), "v2");
    let (ok, value, stderr) = verify(&node, &r3, &[]);
    assert!(ok, "{value} {stderr}");
    assert!(value["receipt"]["key_epoch"].is_u64(), "an encrypted call's receipt names the key epoch");

    // Nothing holds the planted secret or body in plaintext: receipts (raw
    // and decoded), the debug log, every file under the data directory.
    drop(node);
    let files = files_under(dir.path());
    assert!(files.iter().any(|f| f.ends_with("dev.log")) && files.len() > 10);
    for path in files.iter().filter(|p| !p.ends_with("echo.js") && !p.ends_with("req")) {
        let bytes = std::fs::read(path).unwrap();
        let decoded = hex::decode(String::from_utf8_lossy(&bytes).trim()).unwrap_or_default();
        for planted in [SECRET, BODY] {
            for haystack in [&bytes, &decoded] {
                assert!(
                    !haystack.windows(planted.len()).any(|w| w == planted.as_bytes()),
                    "{} holds {planted}",
                    path.display()
                );
            }
        }
    }
}
