//! The CLI verifies what it reads: a `phalanx dev` node behind a lying
//! proxy (a real HTTP server that forwards JSON-RPC to the node and
//! tampers with `state_proof` answers in one way each), and the CLI's
//! `account balance`, `agent info` and `verify` refusing every tampered
//! answer with an error naming what did not verify.

mod common;

use common::{DevNode, phalanx};
use serde_json::Value;
use std::sync::Arc;

/// How the proxy lies.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// Forwards untouched.
    None,
    /// Changes a byte of the first leaf's value.
    Value,
    /// Claims the first leaf is absent.
    Absent,
    /// Swaps the first two leaves (each proof names another key).
    OtherKey,
    /// Serves the proofs of an earlier head under the current header.
    OtherHeight,
    /// Flips a byte of the certificate.
    ForgedCertificate,
    /// Serves the previous block's certificate.
    StaleCertificate,
    /// Changes the header's state root.
    Header,
}

async fn forward(http: &reqwest::Client, node: &str, request: &Value) -> Value {
    http.post(node).json(request).send().await.unwrap().json().await.unwrap()
}

async fn rpc(http: &reqwest::Client, node: &str, method: &str, params: Value) -> Value {
    let request = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    forward(http, node, &request).await["result"].clone()
}

fn flip_hex(text: &str) -> String {
    let mut digits: Vec<char> = text.chars().collect();
    let last = digits.len() - 1;
    digits[last] = if digits[last] == '0' { '1' } else { '0' };
    digits.into_iter().collect()
}

/// The node's answer to `request` as bytes, tampered if it is a `state_proof`
/// (other answers pass untouched: they carry 128-bit amounts a JSON value
/// would round).
async fn tamper(http: &reqwest::Client, node: &str, request: &Value, lie: Lie) -> Vec<u8> {
    if request["method"] != "state_proof" {
        return http.post(node).json(request).send().await.unwrap().bytes().await.unwrap().to_vec();
    }
    let mut answer = forward(http, node, request).await;
    let result = &mut answer["result"];
    match lie {
        Lie::None => {}
        Lie::Value => {
            let value = result["leaves"][0]["value"].as_str().unwrap().to_string();
            result["leaves"][0]["value"] = flip_hex(&value).into();
        }
        Lie::Absent => result["leaves"][0]["value"] = Value::Null,
        Lie::OtherKey => result["leaves"].as_array_mut().unwrap().swap(0, 1),
        Lie::OtherHeight => {
            let height = result["header"]["height"].as_u64().unwrap();
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                let newer = forward(http, node, request).await;
                if newer["result"]["header"]["height"].as_u64().unwrap() > height {
                    let old_leaves = result["leaves"].clone();
                    answer = newer;
                    answer["result"]["leaves"] = old_leaves;
                    break;
                }
            }
        }
        Lie::ForgedCertificate => {
            let certificate = result["certificate"].as_str().unwrap().to_string();
            result["certificate"] = flip_hex(&certificate).into();
        }
        Lie::StaleCertificate => {
            let height = result["header"]["height"].as_u64().unwrap();
            let previous = rpc(http, node, "chain_block", serde_json::json!([height - 1])).await;
            result["certificate"] = previous["certificate"].clone();
        }
        Lie::Header => {
            let height = result["header"]["height"].as_u64().unwrap();
            let previous = rpc(http, node, "chain_block", serde_json::json!([height - 1])).await;
            result["header"]["state_root"] = previous["header"]["state_root"].clone();
        }
    }
    serde_json::to_vec(&answer).unwrap()
}

/// A lying proxy in front of `node`; returns its URL.
fn proxy(node: String, lie: Lie) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let http = Arc::new(reqwest::Client::new());
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |axum::Json(request): axum::Json<Value>| {
            let (http, node) = (http.clone(), node.clone());
            async move {
                let body = tamper(&http, &node, &request, lie).await;
                ([(axum::http::header::CONTENT_TYPE, "application/json")], body)
            }
        }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, runtime)
}

fn cli(url: &str, cache: &std::path::Path, args: &[&str]) -> std::process::Output {
    phalanx()
        .args(args)
        .args(["--rpc", url, "--light-cache", cache.to_str().unwrap()])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn the_cli_verifies_reads_and_refuses_a_lying_node() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_port = common::free_ports(1);
    let port = gateway_port.to_string();
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let extra = ["--workers", "1", "--gateway-port", &port];
    let node = DevNode::start_with(&dir.path().join("data"), common::free_port(), common::free_port(), &extra);
    let cache = dir.path().join("light");
    common::until("a few blocks", || common::testnet::height(&node.url()) >= 3);

    // Untampered, straight and through the proxy: verified, and says so.
    let output = cli(&node.url(), &cache, &["account", "balance", "alice", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let balance: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(balance["verified"], true);
    assert!(balance["height"].as_u64().unwrap() >= 3);
    let account: phalanx_rpc::AccountInfo = serde_json::from_slice(&output.stdout).unwrap();
    assert!(account.exists && account.free > 0, "{balance}");
    assert!(std::fs::read_dir(&cache).unwrap().count() == 1, "the trusted set is cached per chain");
    let (honest, _runtime) = proxy(node.url(), Lie::None);
    let human = cli(&honest, &cache, &["account", "balance", "alice"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.status.success() && text.contains("verified at height "),
        "{text} {}",
        String::from_utf8_lossy(&human.stderr)
    );
    // An absent account is proven absent.
    let nobody = "5C4hrfjw9DjXZTzV3MwzrrAr9P1MJhSrvWGWqi1eSuyUpnhM";
    let output = cli(&honest, &cache, &["account", "balance", nobody, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let absent: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((absent["exists"].clone(), absent["verified"].clone()), (false.into(), true.into()));

    // Each lie is refused, naming what did not verify.
    let cases = [
        (Lie::Value, "the proof of account"),
        (Lie::Absent, "the proof of account"),
        (Lie::OtherKey, "the proof is for another key"),
        (Lie::OtherHeight, "does not match the state root"),
        (Lie::ForgedCertificate, "the certificate of block"),
        (Lie::StaleCertificate, "certificate finalizes block"),
        (Lie::Header, "certificate finalizes block"),
    ];
    for (lie, expected) in cases {
        let (url, runtime) = proxy(node.url(), lie);
        let output = cli(&url, &cache, &["account", "balance", "alice"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{lie:?} was accepted: {}", String::from_utf8_lossy(&output.stdout));
        assert!(stderr.contains("could not be verified"), "{lie:?}: {stderr}");
        assert!(stderr.contains(expected), "{lie:?} should name {expected:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{lie:?}: nothing is printed before verification");
        // --trust-node takes the lie, and says it did not check.
        if matches!(lie, Lie::Value | Lie::ForgedCertificate) {
            let output = cli(&url, &cache, &["account", "balance", "alice", "--trust-node", "--json"]);
            let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
            assert_eq!(value["verified"], false, "{lie:?}: {}", String::from_utf8_lossy(&output.stderr));
            let human = cli(&url, &cache, &["account", "balance", "alice", "--trust-node"]);
            assert!(String::from_utf8_lossy(&human.stdout).contains("NOT verified (--trust-node)"));
        }
        drop(runtime);
    }

    // Pinned to another chain: refused before anything is read.
    let other = format!("0x{}", "11".repeat(32));
    let output = cli(&node.url(), &cache, &["account", "balance", "alice", "--chain-id", &other]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("not the trusted chain"), "{stderr}");

    // Agent info: a deployed agent's record, verified; the same tampered, refused.
    let source = dir.path().join("agent.js");
    std::fs::write(&source, "export default { fetch() { return new Response('hi'); } };").unwrap();
    let id = common::deploy(&node, &source, "bob");
    let output = cli(&node.url(), &cache, &["agent", "info", &id]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let info: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((info["id"].as_str(), info["verified"].clone()), (Some(id.as_str()), true.into()));
    assert_eq!(info["code_bytes"].as_u64(), Some(std::fs::metadata(&source).unwrap().len()));
    let (lying, _runtime) = proxy(node.url(), Lie::Value);
    let output = cli(&lying, &cache, &["agent", "info", &id]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains(&format!("the proof of agent {id}")), "{stderr}");

    // An encrypted call seals to the agent key read verified; its receipt
    // verifies against proven state.
    let receipt = dir.path().join("receipt");
    let call = |url: &str| {
        let args = ["agent", "call", &id, "/", "--encrypt", "--gateway", &gateway];
        cli(url, &cache, &[&args[..], &["--receipt", receipt.to_str().unwrap()]].concat())
    };
    common::until("an encrypted call (once the agent key is published)", || call(&node.url()).status.success());
    let verify = cli(&node.url(), &cache, &["verify", receipt.to_str().unwrap(), "--json"]);
    let value: Value = serde_json::from_slice(&verify.stdout).unwrap_or_default();
    assert_eq!((value["valid"].clone(), value["verified"].clone()), (true.into(), true.into()), "{value}");
    // Through the lying node: the key is refused before anything is sealed, and so is the receipt check.
    let output = call(&lying);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains(&format!("the proof of agent {id}")), "{stderr}");
    let output = cli(&lying, &cache, &["verify", receipt.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("the proof of worker"), "{stderr}");
}
