//! The gateway under hostile input on a real `phalanx dev`: signed calls to
//! an allowlisted agent (unsigned, unlisted, tampered, expired and replayed
//! calls refused with their reasons; the agent sees only a verified caller),
//! oversized bodies and header floods, slow-loris connections, malformed
//! envelopes and envelopes sealed to the wrong key. Through all of it the
//! worker keeps serving everyone else.

mod common;

use common::{DevNode, deploy, dev, free_port, run, until};
use phalanx_gateway::signed_call::{SignedCallMessage, sign};
use phalanx_keys::call::{ENVELOPE_CONTENT_TYPE, SealedRequest};
use phalanx_primitives::{Hash, sha256};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn the_gateway_refuses_hostile_calls_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_port = common::free_ports(2);
    let port = gateway_port.to_string();
    let node = DevNode::start_with(dir.path(), free_port(), free_port(), &["--workers", "2", "--gateway-port", &port]);
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let source = dir.path().join("who.js");
    std::fs::write(
        &source,
        "export default { async fetch(req) { return new Response(`caller ${req.headers.get('phalanx-caller')} ${await req.text()}`); } };",
    )
    .unwrap();
    let id_text = deploy(&node, &source, "bob");
    let id: Hash = id_text.parse().unwrap();
    let http = reqwest::blocking::Client::new();
    let url = format!("{gateway}/agents/{id}/");
    let healthy = || http.post(&url).body("ok").send().is_ok_and(|r| r.status() == 200);
    until("the agent answering", healthy);
    // A forged caller header on a public agent never reaches it.
    let forged = http.post(&url).header("phalanx-caller", dev("dave").public().to_string()).body("x").send().unwrap();
    assert_eq!(forged.status(), 401, "a caller header without a signature is refused");

    let access = run(&node, &["agent", "access", &id_text, "allowlist", "dave", "--from", "bob"]);
    assert!(access.status.success(), "{}", String::from_utf8_lossy(&access.stderr));
    let status = |response: reqwest::blocking::Response| {
        let code = response.status().as_u16();
        (code, response.text().unwrap_or_default())
    };
    until("the allowlist taking effect", || status(http.post(&url).body("x").send().unwrap()).0 == 401);
    let (code, text) = status(http.post(&url).body("x").send().unwrap());
    assert!(code == 401 && text.contains("signed calls only"), "{code} {text}");

    let chain_id =
        node.cli_json::<serde_json::Value>(&["chain", "info"])["chain_id"].as_str().unwrap().parse().unwrap();
    let attestation: serde_json::Value = http.get(format!("{gateway}/attestation")).send().unwrap().json().unwrap();
    let worker = attestation["identity"].as_str().unwrap().parse().unwrap();
    let signed = |who: &str, body: &[u8], nonce: u8, expires_ms: u64| {
        let message = SignedCallMessage {
            chain_id,
            worker,
            agent: id,
            method: "POST",
            path_and_query: "/",
            body_hash: sha256(body),
            nonce: [nonce; 16],
            expires_ms,
        };
        sign(&dev(who), &message)
    };
    let send = |headers: &[(String, String)], body: &'static str| {
        let mut request = http.post(&url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        status(request.send().unwrap())
    };
    let dave = signed("dave", b"hi", 1, now_ms() + 60_000);
    let (code, text) = send(&dave, "hi");
    assert_eq!(
        (code, text),
        (200, format!("caller {} hi", dev("dave").public())),
        "the agent sees the verified caller"
    );
    assert_eq!(send(&dave, "hi").0, 409, "a replayed signed call is refused");
    let (code, text) = send(&signed("charlie", b"hi", 2, now_ms() + 60_000), "hi");
    assert!(code == 403 && text.contains("may not call"), "{code} {text}");
    assert_eq!(send(&signed("dave", b"hi", 3, now_ms() + 60_000), "tampered").0, 401, "the body is signed");
    let (code, text) = send(&signed("dave", b"hi", 4, now_ms() - 1), "hi");
    assert!(code == 401 && text.contains("expired"), "{code} {text}");
    let (code, _) = send(&signed("dave", b"hi", 5, now_ms() + 3_600_000), "hi");
    assert_eq!(code, 401, "an expiry an hour ahead is refused");
    // Signed and encrypted, through the CLI: the signature travels sealed
    // (once a gatekeeper has published the agent's key).
    let sealed_call = || {
        let args =
            ["agent", "call", &id_text, "/", "--data", "sealed", "--encrypt", "--from", "dave", "--gateway", &gateway];
        run(&node, &args)
    };
    until("the agent's key being published", || sealed_call().status.success());
    let output = sealed_call();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("caller {} sealed", dev("dave").public())));
    let nonces = std::cell::Cell::new(100u8);
    let keep_serving = || {
        nonces.set(nonces.get() + 1);
        let headers = signed("dave", b"again", nonces.get(), now_ms() + 60_000);
        send(&headers, "again").0 == 200
    };

    // Oversized body (the limit is 2 MiB) and a flood of headers.
    let big = http.post(&url).body(vec![b'x'; 3 * 1024 * 1024]).send().unwrap();
    assert_eq!(big.status(), 413);
    let mut flood = http.post(&url).body("x");
    for i in 0..200 {
        flood = flood.header(format!("x-flood-{i}"), "1");
    }
    let flooded = flood.send().map(|r| r.status().as_u16()).unwrap_or(431);
    assert!(flooded == 431 || flooded == 400, "a header flood is refused: {flooded}");

    // Malformed envelopes and an envelope sealed to a key that is not the agent's.
    let envelope = |body: Vec<u8>| {
        status(http.post(&url).header("content-type", ENVELOPE_CONTENT_TYPE).body(body).send().unwrap())
    };
    for garbage in [vec![], vec![1u8; 10], vec![0xff; 4096]] {
        let (code, text) = envelope(garbage);
        assert!(code == 400 && text.contains("envelope"), "{code} {text}");
    }
    let info: serde_json::Value = node.cli_json(&["agent", "info", &id_text]);
    let epoch = info["keys"][0]["epoch"].as_u64().unwrap();
    let stranger = phalanx_keys::SecretKey::from_bytes([7; 32]).public();
    let request = SealedRequest { method: "POST".into(), path: "/".into(), headers: vec![], body: b"x".to_vec() };
    let (wrong_key, _) = request.seal(id, epoch, &stranger).unwrap();
    let (code, text) = envelope(wrong_key);
    assert!(code == 400 && text.contains("does not open"), "{code} {text}");

    // Slow loris: 64 connections trickling a request line never finished.
    let slow: Vec<std::net::TcpStream> = (0..64)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", gateway_port)).unwrap();
            stream.write_all(format!("POST /agents/{id}/ HTTP/1.1\r\nHost: x\r\nX-Slow: ").as_bytes()).unwrap();
            stream
        })
        .collect();
    for mut stream in slow.iter() {
        let _ = stream.write_all(b"a");
    }
    assert!(keep_serving(), "the worker serves others while slow connections hang");
    drop(slow);
    assert!(keep_serving(), "and after all of the above");
}
