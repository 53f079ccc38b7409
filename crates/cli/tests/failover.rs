//! Failover on a real network of processes: `phalanx dev` with one worker,
//! plus a second `phalanx worker` process that governance adds to the dev
//! cluster. Clients find the cluster's gateways on chain (each worker
//! announces its URL); calls spread over both; the second worker is killed
//! with SIGKILL in the middle of a stream of calls and commands: every call
//! still succeeds on the other worker, every command is applied once and in
//! order, and the killed worker, restarted, holds the same state.

mod common;

use common::{DevNode, Reaped, free_port, phalanx, until};
use phalanx_gateway::receipt::SignedReceipt;
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn calls_fail_over_when_a_worker_dies() {
    let dir = tempfile::tempdir().unwrap();
    let (dev_port, other_port) = (free_port(), free_port());
    let node = DevNode::start_with(
        &dir.path().join("dev"),
        free_port(),
        free_port(),
        &["--workers", "1", "--gateway-port", &dev_port.to_string()],
    );
    let run =
        |args: &[&str]| phalanx().args(args).args(["--rpc", &node.url()]).env("RUST_BACKTRACE", "0").output().unwrap();
    let start_other = || {
        Reaped(
            phalanx()
                .args(["worker", "--node", &node.url(), "--operator", "charlie"])
                .args(["--gateway-port", &other_port.to_string()])
                .arg("--data-dir")
                .arg(dir.path().join("other"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut other = start_other();
    let workers = || -> Vec<serde_json::Value> { node.cli_json(&["worker", "list"]) };
    until("both workers registered and the dev cluster formed", || {
        let status: serde_json::Value = node.cli_json(&["keys", "status"]);
        workers().len() == 2 && status["clusters"][0]["workers"].as_array().is_some_and(|w| w.len() == 1)
    });
    let status: serde_json::Value = node.cli_json(&["keys", "status"]);
    let members: Vec<String> =
        status["clusters"][0]["workers"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect();
    let newcomer = workers()
        .iter()
        .map(|w| w["identity"].as_str().unwrap().to_string())
        .find(|id| !members.contains(id))
        .expect("the second worker is not in the dev cluster yet");
    let added = run(&["cluster", "add", "dev", &newcomer, "--from", "alice"]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    until("both workers holding the cluster key and announcing gateways", || {
        let status: serde_json::Value = node.cli_json(&["keys", "status"]);
        let received = status["clusters"][0]["keys"]
            .as_array()
            .and_then(|k| k.last())
            .map_or(0, |k| k["received"].as_array().map_or(0, |r| r.len()));
        received == 2 && workers().iter().all(|w| w["gateway_url"].is_string())
    });

    let source = dir.path().join("served.js");
    std::fs::write(
        &source,
        "export default {
           async fetch(request, env) { return new Response('served ' + JSON.stringify((await env.STATE.get('ns')) ?? [])); },
           async command(message, env) {
             const ns = (await env.STATE.get('ns')) ?? [];
             ns.push(message.data.n);
             await env.STATE.put('ns', ns);
           },
         };",
    )
    .unwrap();
    let deployed = run(&["agent", "deploy", source.to_str().unwrap(), "--from", "bob", "--json"]);
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));
    let id = serde_json::from_slice::<serde_json::Value>(&deployed.stdout).unwrap()["id"].as_str().unwrap().to_string();
    for port in [dev_port, other_port] {
        let gateway = format!("http://127.0.0.1:{port}");
        until("the agent answering on both gateways", || {
            run(&["agent", "call", &id, "--gateway", &gateway]).stdout.starts_with(b"served")
        });
    }

    // A stream of calls with gateways found on chain; the second worker dies half-way.
    let receipt = dir.path().join("receipt");
    let mut served_by = (BTreeSet::new(), BTreeSet::new());
    let (mut calls, mut failures) = (0, Vec::new());
    let mut sent: Vec<u64> = Vec::new();
    let started = Instant::now();
    let mut killed = false;
    while started.elapsed() < Duration::from_secs(8) {
        if !killed && started.elapsed() > Duration::from_secs(4) {
            other.0.kill().unwrap();
            other.0.wait().unwrap();
            killed = true;
        }
        if calls % 2 == 0 {
            let n = sent.len().to_string();
            let data = format!(r#"{{"n":{n}}}"#);
            let output = run(&["agent", "send", &id, "--data", &data, "--from", "dave", "--no-wait", "--json"]);
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            let ordered: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            sent.push(ordered["seq"].as_u64().unwrap());
        }
        let output = run(&["agent", "call", &id, "--receipt", receipt.to_str().unwrap()]);
        calls += 1;
        if !output.status.success() || !output.stdout.starts_with(b"served") {
            failures.push(String::from_utf8_lossy(&output.stderr).to_string());
            continue;
        }
        let signed = SignedReceipt::from_header(&std::fs::read_to_string(&receipt).unwrap()).unwrap();
        let worker = signed.receipt.worker.to_string();
        if killed {
            served_by.1.insert(worker)
        } else {
            served_by.0.insert(worker)
        };
    }
    assert!(failures.is_empty(), "{} of {calls} calls failed: {failures:?}", failures.len());
    assert_eq!(served_by.0.len(), 2, "before the kill both workers served calls: {served_by:?}");
    assert_eq!(served_by.1.len(), 1, "after it, only the survivor");
    assert!(!served_by.1.contains(&newcomer), "the killed worker served nothing after its death");

    // Commands: numbered 1, 2, … by the chain; the survivor applied each
    // once, in order; the killed worker, restarted, catches up to the same.
    assert!(sent.len() >= 3, "commands were sent during the stream: {sent:?}");
    assert_eq!(sent, (1..=sent.len() as u64).collect::<Vec<_>>());
    let expected = format!("served {}", serde_json::to_string(&(0..sent.len()).collect::<Vec<_>>()).unwrap());
    let body = |port: u16| {
        let gateway = format!("http://127.0.0.1:{port}");
        String::from_utf8_lossy(&run(&["agent", "call", &id, "--gateway", &gateway]).stdout).trim_end().to_string()
    };
    until("the survivor applying every command", || body(dev_port) == expected);
    let _restarted = start_other();
    until("the restarted worker holding the same state", || body(other_port) == expected);
    let status: serde_json::Value =
        reqwest::blocking::get(format!("http://127.0.0.1:{other_port}/state/{id}")).unwrap().json().unwrap();
    assert_eq!(status["applied"], sent.len() as u64, "{status}");
    assert_eq!(status["complete"], true, "{status}");
}
