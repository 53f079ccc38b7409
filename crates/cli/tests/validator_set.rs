//! Validator set changes through governance, on a testnet of separate
//! processes: 4 genesis validators, 1 spare validator node (a key not in the
//! genesis set), a gatekeeper and a worker, with epochs of 20 blocks.
//!
//! Before it is named the spare follows the chain over RPC (no validator
//! connects to an unknown key). `phalanx chain set-validators` (alice is
//! governance) names validators 1–3 and the spare. The spare is now tracked
//! by the others at the address the transaction announced, starts consensus
//! from its verified head and votes from the first block of the next epoch. Then
//! validators 0 (removed) and 3 are killed: the three left are a quorum of
//! the new set only with the spare's votes, and finality goes on. The
//! worker verifies blocks across the change (certificates of each epoch
//! against that epoch's set), and a fresh non-validator node syncs the
//! whole chain, change included.

mod common;

use common::testnet::{Testnet, free, height, kill_9, metric, start_follower, start_follower_with, transfer};
use common::{free_port, free_ports, run_at, until};
use phalanx_primitives::PublicKey;

const EPOCH: u64 = 20;

fn chain_info(rpc: &str) -> serde_json::Value {
    let output = run_at(rpc, &["chain", "info", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn keys(value: &serde_json::Value) -> Vec<PublicKey> {
    let mut keys: Vec<PublicKey> =
        value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().parse().unwrap()).collect();
    keys.sort();
    keys
}

#[test]
fn governance_replaces_a_validator_on_a_running_testnet() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("net");
    let base = free_ports(400);
    let layout = ["--validators", "4", "--spare-validators", "1", "--gatekeepers", "1", "--workers", "1"];
    common::testnet::init(&dir, base, &[&layout[..], &["--epoch-blocks", &EPOCH.to_string()]].concat());
    let net = Testnet::up(&dir);
    let (rpc1, rpc2, rpc4) = (net.rpc("validator-1"), net.rpc("validator-2"), net.rpc("validator-4"));
    let key = |name: &str| -> PublicKey { net.member(name)["validator_key"].as_str().unwrap().parse().unwrap() };
    let entry = |name: &str| format!("{}={}", key(name), net.member(name)["p2p"].as_str().unwrap());

    // The spare is not a validator: no validator connects to it over p2p,
    // so it follows the chain over the others' RPC (its `follow` list),
    // verifying every certificate, until it is named.
    let info = chain_info(&rpc1);
    assert!(!keys(&info["validators"]).contains(&key("validator-4")));
    until("the unnamed spare following over RPC", || height(&rpc4) >= 3);

    // A light client reads a balance before the change: it trusts the genesis set.
    let light = root.path().join("light");
    let verified_balance = |rpc: &str| -> serde_json::Value {
        let output = run_at(rpc, &["account", "balance", "alice", "--json", "--light-cache", light.to_str().unwrap()]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    assert_eq!(verified_balance(&rpc1)["verified"], true);
    let cached = || -> serde_json::Value {
        let file = std::fs::read_dir(&light).unwrap().next().unwrap().unwrap().path();
        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
    };
    assert_eq!(cached()["epoch"], 0);

    let names = ["validator-1", "validator-2", "validator-3", "validator-4"];
    let mut args = vec!["chain".to_string(), "set-validators".into(), "--from".into(), "alice".into()];
    args.extend(names.iter().map(|n| entry(n)));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_at(&rpc1, &args);
    assert!(output.status.success(), "set-validators: {}", String::from_utf8_lossy(&output.stderr));
    let mut new_set: Vec<PublicKey> = names.iter().map(|n| key(n)).collect();
    new_set.sort();

    // Bad proposals are refused with a reason, and change nothing.
    let refused = run_at(&rpc1, &["chain", "set-validators", "--from", "bob", &entry("validator-4")]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("governance"), "{refused:?}");
    let refused = run_at(&rpc1, &["chain", "set-validators", "--from", "alice", "0x1234=127.0.0.1:1"]);
    assert!(!refused.status.success());

    // The new set takes over at the next epoch; the spare catches up.
    until("the new set certifying blocks", || {
        let info = chain_info(&rpc1);
        info["epoch"].as_u64().unwrap() >= 1 && keys(&info["validators"]) == new_set
    });
    let boundary = (chain_info(&rpc1)["epoch"].as_u64().unwrap()) * EPOCH - 1;
    until("the spare caught up", || height(&rpc4) > boundary);

    // Kill the removed validator and one kept one: 3 of the new 4 remain,
    // a quorum only with the spare.
    kill_9(net.pid("validator-0"));
    kill_9(net.pid("validator-3"));
    let at_kill = height(&rpc1);
    until("finality going on without validators 0 and 3", || height(&rpc1) >= at_kill + 10);
    let before = free(&rpc2, "charlie");
    transfer(&rpc4, "bob", "charlie");
    until("a transfer through the new validator final", || free(&rpc2, "charlie") == before + 1_000_000_000_000);
    assert!(height(&rpc4) >= at_kill + 10, "the new validator finalizes too");

    // The light client that last saw the old set follows the change
    // (certified by the old set, proven against its block's state root) and
    // verifies a balance certified by the new set.
    let after = verified_balance(&rpc2);
    assert_eq!(after["verified"], true);
    assert!(after["height"].as_u64().unwrap() > boundary, "{after}");
    assert!(cached()["epoch"].as_u64().unwrap() >= 1);
    assert_eq!(keys(&cached()["validators"]), new_set);

    // The worker verified every block across the change.
    until("the worker past the change", || {
        metric(&net.metrics("worker-0"), "phalanx_worker_verified_height") >= (at_kill + 5) as f64
    });

    // A fresh non-validator node syncs the whole chain, change included.
    let port = free_port();
    let follower = format!("http://127.0.0.1:{port}");
    let _follower = start_follower(&root.path().join("follower"), &dir.join("genesis.json"), &rpc1, port);
    let target = height(&rpc1);
    until("the follower across the change", || height(&follower) >= target);
    assert_eq!(keys(&chain_info(&follower)["validators"]), new_set);
    // It proved the change as it synced: a light client starting from
    // genesis follows it through the follower alone.
    std::fs::remove_dir_all(&light).unwrap();
    assert_eq!(verified_balance(&follower)["verified"], true);
    assert_eq!(keys(&cached()["validators"]), new_set);

    // A fresh node joining by state sync follows the change from its
    // genesis, joins at the head and keeps up.
    let port = free_port();
    let joined = format!("http://127.0.0.1:{port}");
    let joiner = root.path().join("joiner");
    let _joiner = start_follower_with(&joiner, &dir.join("genesis.json"), &rpc1, port, "state_sync = true");
    let target = height(&rpc1);
    until("the node joined by state sync", || height(&joined) >= target);
    let log = std::fs::read_to_string(joiner.join("log")).unwrap_or_default();
    assert!(log.contains("joined by state sync"), "{log}");
    until("the joined node keeping up", || height(&joined) >= target + 5);
    assert_eq!(keys(&chain_info(&joined)["validators"]), new_set);
    // It kept the change it verified: a light client from genesis follows it there.
    std::fs::remove_dir_all(&light).unwrap();
    assert_eq!(verified_balance(&joined)["verified"], true);
    drop(net);
}
