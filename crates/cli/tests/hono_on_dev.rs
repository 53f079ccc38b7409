//! The Hono fixture (real third-party code from npm, bundled unchanged by
//! `crates/sandbox/tests/npm/build.sh`) deployed on a real `phalanx dev`:
//! its secret reaches `c.env`, it answers plain and encrypted calls, its
//! receipts verify against the chain, and an upgrade to the zod fixture
//! answers as version 2 under the same id, with the secret kept.

mod common;

use common::{DevNode, free_port, phalanx, until};
use std::path::Path;

#[test]
fn the_hono_fixture_runs_on_dev() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = dir.path().join("bundles");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sandbox/tests/npm");
    let built = std::process::Command::new("bash")
        .arg(fixtures.join("build.sh"))
        .env("OUT_DIR", &bundles)
        .output()
        .expect("bash runs build.sh (scripts/test.sh installs Node.js and npm)");
    assert!(built.status.success(), "build.sh failed: {}", String::from_utf8_lossy(&built.stderr));

    let gateway_port = common::free_ports(2);
    let port = gateway_port.to_string();
    let node = DevNode::start_with(
        &dir.path().join("dev"),
        free_port(),
        free_port(),
        &["--workers", "2", "--gateway-port", &port],
    );
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let run =
        |args: &[&str]| phalanx().args(args).args(["--rpc", &node.url()]).env("RUST_BACKTRACE", "0").output().unwrap();
    let hono = bundles.join("hono-app.js");
    let mut deployed = None;
    until("deployment", || {
        let output = run(&["agent", "deploy", hono.to_str().unwrap(), "--from", "bob", "--json"]);
        deployed = serde_json::from_slice::<serde_json::Value>(&output.stdout).ok();
        output.status.success()
    });
    let id = deployed.unwrap()["id"].as_str().unwrap().to_string();
    until("the secret being set", || {
        run(&["agent", "secrets", "set", &id, "GREETING=Howdy", "--from", "bob"]).status.success()
    });
    let call = |path: &str, extra: &[&str]| {
        let output = run(&[&["agent", "call", &id, path, "--gateway", &gateway][..], extra].concat());
        String::from_utf8_lossy(if output.status.success() { &output.stdout } else { &output.stderr })
            .trim()
            .to_string()
    };
    until("Hono answering with the secret", || call("/hello?name=Ada", &[]) == "Howdy, Ada!");
    assert_eq!(call("/", &[]), "Hello from hono-app");
    assert_eq!(call("/users/42", &[]), r#"{"id":"42","kind":"user"}"#);
    assert_eq!(call("/hello", &["--encrypt"]), "Howdy, world!", "encrypted");
    let receipt = dir.path().join("receipt");
    let body = dir.path().join("body");
    let sealed = call("/users/7/posts/99", &["--encrypt", "--receipt", receipt.to_str().unwrap()]);
    assert_eq!(sealed, r#"{"id":"7","postId":"99"}"#);
    let verified = run(&["verify", receipt.to_str().unwrap()]);
    assert!(verified.status.success(), "the encrypted call's receipt: {}", String::from_utf8_lossy(&verified.stdout));
    let plain = run(&[
        "agent",
        "call",
        &id,
        "/hello",
        "--gateway",
        &gateway,
        "--receipt",
        receipt.to_str().unwrap(),
        "--output",
        body.to_str().unwrap(),
    ]);
    assert!(plain.status.success());
    let verified = run(&["verify", receipt.to_str().unwrap(), "--response", body.to_str().unwrap()]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));

    // Upgrade to the zod fixture: same id, version 2, the secret kept.
    let zod = bundles.join("zod-app.js");
    let upgraded = run(&["agent", "upgrade", &id, zod.to_str().unwrap(), "--from", "bob"]);
    assert!(upgraded.status.success(), "{}", String::from_utf8_lossy(&upgraded.stderr));
    until("the zod version answering", || call("/", &[]) != "Hello from hono-app");
    let info: serde_json::Value = serde_json::from_slice(&run(&["agent", "info", &id]).stdout).unwrap();
    assert_eq!(info["version"], 2);
    assert_eq!(info["secrets"][0]["name"], "GREETING");
    assert!(run(&["verify", receipt.to_str().unwrap()]).status.success(), "a version 1 receipt still verifies");
}
