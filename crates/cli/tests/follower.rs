//! A non-validator node (`phalanx node --config` without a key file) on a
//! real testnet: it syncs every block from a validator's RPC, verified
//! (parent links, the finalization certificate against the validator set,
//! the state machine's roots), serves the same chain, and forwards the
//! transactions submitted to it. An upstream that tampers with blocks is
//! refused: the follower stays where it was and takes nothing from it. One
//! that serves a block at a time, most without their certificate, is
//! followed all the same: blocks wait for a certified descendant.

mod common;

use common::testnet::{Testnet, block_hash, height, start_follower};
use common::{free_port, free_ports, run_at, until};
use std::io::{Read, Write};

/// What a relaying upstream does to the blocks it serves.
#[derive(Clone, Copy)]
enum Serve {
    /// Flips one byte inside every block.
    Tampered,
    /// One block per answer, its certificate dropped unless its height is a
    /// multiple of 3 (as for blocks finalized through a descendant).
    Stingy,
}

/// A JSON-RPC "upstream" that relays to `target`, changing what `chain_rawBlocks` answers.
fn relaying_upstream(target: String, serve: Serve) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = vec![0u8; 1 << 20];
            let mut request = Vec::new();
            let body_start = loop {
                let read = stream.read(&mut buffer).unwrap_or(0);
                if read == 0 {
                    break None;
                }
                request.extend_from_slice(&buffer[..read]);
                if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(body_start) = body_start else { continue };
            let head = String::from_utf8_lossy(&request[..body_start]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                .unwrap_or(0);
            while request.len() < body_start + length {
                let read = stream.read(&mut buffer).unwrap_or(0);
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..read]);
            }
            let body = request[body_start..].to_vec();
            let asked: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let from = asked["params"][0].as_u64().unwrap_or(0);
            let Ok(answer) = client.post(&target).header("content-type", "application/json").body(body).send() else {
                continue;
            };
            let mut value: serde_json::Value = answer.json().unwrap_or_default();
            if let Some(blocks) = value["result"].as_array_mut() {
                match serve {
                    Serve::Tampered => {
                        for block in blocks {
                            if let Some(hex) = block["block"].as_str() {
                                let mut bytes = hex::decode(hex.trim_start_matches("0x")).unwrap();
                                let last = bytes.len() - 1;
                                bytes[last] ^= 1;
                                block["block"] = format!("0x{}", hex::encode(bytes)).into();
                            }
                        }
                    }
                    Serve::Stingy => {
                        blocks.truncate(1);
                        if let Some(block) = blocks.first_mut()
                            && !from.is_multiple_of(3)
                        {
                            block["certificate"] = "0x".into();
                        }
                    }
                }
            }
            let text = value.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    port
}

#[test]
fn a_non_validator_node_follows_verified_and_refuses_tampered_blocks() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("net");
    let base = free_ports(400);
    common::testnet::init(&dir, base, &["--validators", "1", "--gatekeepers", "0", "--workers", "0"]);
    let _net = Testnet::up(&dir);
    let genesis = dir.join("genesis.json");
    let validator = format!("http://127.0.0.1:{}", base + 100);
    let output = run_at(&validator, &["account", "transfer", "--from", "alice", "--to", "bob", "3"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    until("a few blocks", || height(&validator) >= 8);

    // Behind a tampering upstream the follower takes nothing.
    let bad = relaying_upstream(validator.clone(), Serve::Tampered);
    let bad_port = free_port();
    let bad_rpc = format!("http://127.0.0.1:{bad_port}");
    let mut tricked =
        start_follower(&root.path().join("tricked"), &genesis, &format!("http://127.0.0.1:{bad}"), bad_port);
    until("the tricked follower's RPC", || run_at(&bad_rpc, &["chain", "head"]).status.success());
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(height(&bad_rpc), 0, "no tampered block was taken");
    let log = std::fs::read_to_string(root.path().join("tricked/log")).unwrap();
    assert!(log.contains("upstream served an invalid batch"), "the tampering was detected: {log}");
    let _ = tricked.0.kill();

    // Behind the real validator it catches up and serves the same chain.
    let port = free_port();
    let rpc = format!("http://127.0.0.1:{port}");
    let _follower = start_follower(&root.path().join("follower"), &genesis, &validator, port);
    let target = height(&validator);
    until("the follower catching up", || height(&rpc) >= target);
    for h in [1, target / 2, target] {
        assert_eq!(block_hash(&rpc, h), block_hash(&validator, h), "the same block {h}");
    }
    let balance = |url: &str| {
        let output = run_at(url, &["account", "balance", "bob", "--json"]);
        serde_json::from_slice::<phalanx_rpc::AccountInfo>(&output.stdout).unwrap().free
    };
    assert_eq!(balance(&rpc), balance(&validator));

    // An upstream that serves one block at a time, most without a
    // certificate: blocks are held until a certified descendant vouches for them.
    let stingy = relaying_upstream(validator.clone(), Serve::Stingy);
    let slow_port = free_port();
    let slow_rpc = format!("http://127.0.0.1:{slow_port}");
    let _slow = start_follower(&root.path().join("slow"), &genesis, &format!("http://127.0.0.1:{stingy}"), slow_port);
    until("the follower behind the stingy upstream catching up", || height(&slow_rpc) >= target);
    assert_eq!(block_hash(&slow_rpc, target - 1), block_hash(&validator, target - 1));

    // A transfer submitted to the follower is forwarded, finalized, and synced back.
    let before = balance(&validator);
    let output = run_at(&rpc, &["account", "transfer", "--from", "alice", "--to", "bob", "1"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    until("the forwarded transfer final", || balance(&validator) == before + 1_000_000_000_000);
    until("and synced to the follower", || balance(&rpc) == before + 1_000_000_000_000);
}
