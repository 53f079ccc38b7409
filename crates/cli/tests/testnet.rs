//! A multi-node testnet as separate processes on real sockets: 4
//! validators (`phalanx node`), 2 gatekeepers and 2 workers (`phalanx
//! worker`), written by `phalanx testnet init` and started by `testnet up`.
//! Transfers and agent calls succeed; a validator killed with SIGKILL
//! leaves finality going on the other three, and restarted it catches up;
//! a worker killed leaves its cluster serving through the other worker;
//! `testnet down` stops every process.

mod common;

use common::testnet::{Testnet, alive, free, height, kill_9, metric, transfer};
use common::{Reaped, deploy_at, free_ports, phalanx, run_at, until};
use std::time::Duration;

#[test]
fn four_validators_two_gatekeepers_two_workers_as_processes() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("net");
    let base = free_ports(400);
    common::testnet::init(&dir, base, &["--validators", "4", "--gatekeepers", "2", "--workers", "2"]);
    let key_mode = std::fs::metadata(dir.join("validator-0/validator.key")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o077, 0, "key files are 0600");

    let net = Testnet::up(&dir);
    for name in ["validator-0", "validator-3", "gatekeeper-1", "worker-1"] {
        assert!(net.printed.contains(name), "up prints every member: {}", net.printed);
    }
    let rpc = |name: &str| net.rpc(name);
    let gateway = |name: &str| format!("http://127.0.0.1:{}", net.member(name)["gateway_port"].as_u64().unwrap());
    let (rpc0, rpc3) = (rpc("validator-0"), rpc("validator-3"));
    for name in ["validator-0", "validator-1", "validator-2", "validator-3", "gatekeeper-0", "worker-0"] {
        assert!(alive(net.pid(name)), "{name} runs as its own process");
    }

    // A transfer submitted to one validator is final on all of them.
    let charlie_before = free(&rpc0, "charlie");
    transfer(&rpc("validator-1"), "bob", "charlie");
    until("the transfer final on validator-3", || free(&rpc3, "charlie") == charlie_before + 1_000_000_000_000);

    // An agent deployed through one node answers on both workers' gateways.
    let source = root.path().join("hello.js");
    std::fs::write(&source, "export default { fetch() { return new Response('hello from the testnet'); } };").unwrap();
    let id = deploy_at(&rpc0, &source, "dave");
    let call = |worker: &str| run_at(&rpc0, &["agent", "call", &id, "--gateway", &gateway(worker)]);
    for worker in ["worker-0", "worker-1"] {
        until(&format!("{worker} serving the agent"), || call(worker).stdout.starts_with(b"hello from the testnet"));
    }

    // Every process serves Prometheus metrics: the node's own and the consensus library's, the worker's.
    let metrics = |name: &str| net.metrics(name);
    let node = metrics("validator-0");
    assert!(metric(&node, "phalanx_finalized_height") >= 1.0, "{node}");
    assert!(metric(&node, "phalanx_txs_committed_total") >= 1.0, "{node}");
    assert!(node.contains("phalanx_finality_latency_seconds_bucket"), "{node}");
    assert!(node.contains("phalanx_mempool_size") && node.contains("phalanx_sync_blocks_per_second"), "{node}");
    assert!(node.lines().any(|l| l.starts_with("network_") || l.contains("p2p")), "the p2p layer's metrics: {node}");
    let worker = metrics("worker-0");
    assert!(metric(&worker, "phalanx_worker_verified_height") >= 1.0, "{worker}");
    assert!(metric(&worker, "phalanx_worker_agent_calls_total{outcome=\"ok\"}") >= 1.0, "{worker}");
    assert!(metrics("gatekeeper-0").contains("phalanx_worker_blocks_verified_total"));

    // Structured logs: every line a JSON object with a level and a message.
    for name in ["validator-0", "worker-0"] {
        let log = std::fs::read_to_string(dir.join(name).join("log")).unwrap();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "{name} logged nothing");
        for line in lines.iter().filter(|l| l.starts_with('{')) {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
            assert!(entry["level"].is_string() && entry["timestamp"].is_string(), "{name}: {line}");
        }
        if name == "worker-0" {
            assert!(lines.iter().filter(|l| l.starts_with('{')).count() >= 3, "{name} logs JSON:\n{log}");
        }
    }

    // kill -9 one validator: the other three keep finalizing.
    kill_9(net.pid("validator-3"));
    let at_kill = height(&rpc0);
    transfer(&rpc0, "bob", "charlie");
    until("finality going on with three validators", || height(&rpc0) >= at_kill + 5);
    let dave_before = free(&rpc0, "dave");
    let output = run_at(&rpc0, &["account", "transfer", "--from", "alice", "--to", "dave", "2"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(free(&rpc0, "dave"), dave_before + 2_000_000_000_000, "finalized while validator-3 is down");

    // Restarted, it catches up from the others and serves the same chain.
    let config = dir.join("validator-3/config.toml");
    let _restarted = Reaped(
        phalanx()
            .args(["node", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let target = height(&rpc0);
    until("the restarted validator catching up", || height(&rpc3) >= target);
    assert_eq!(free(&rpc3, "dave"), free(&rpc0, "dave"), "the same state after catching up");

    // kill -9 a worker: the cluster keeps serving through the other.
    kill_9(net.pid("worker-1"));
    for _ in 0..5 {
        let served = call("worker-0");
        assert!(served.stdout.starts_with(b"hello from the testnet"), "{}", String::from_utf8_lossy(&served.stderr));
    }
    assert!(!call("worker-1").status.success(), "the killed worker's gateway is gone");

    // down stops every process of the testnet.
    let pids: Vec<i32> = ["validator-0", "validator-1", "validator-2", "gatekeeper-0", "gatekeeper-1", "worker-0"]
        .iter()
        .map(|name| net.pid(name))
        .collect();
    let down = phalanx().args(["testnet", "down"]).arg(&dir).output().unwrap();
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    std::thread::sleep(Duration::from_millis(200));
    for pid in pids {
        assert!(!alive(pid), "process {pid} stopped");
    }
    drop(net);
}
