//! The gateway's hardening findings (issue 20, items 1–8), each over real
//! sockets on a real `phalanx dev` with two workers:
//!
//! 1. the `Host` header never selects what runs: the agent's URL has the
//!    gateway's fixed origin and the request's own path, so a receipt's
//!    target is what ran (and `phalanx verify --target` checks it);
//! 3. a signed call runs once: the other worker refuses it (421, signed for
//!    another worker) and so does the same worker after a SIGKILL of the
//!    whole network, mid-stream, and a restart (409); the agent's
//!    chain-ordered state counts every call at most once;
//! 4. no client sets a `phalanx-*` header an agent sees;
//! 5. an envelope for a key epoch far ahead is refused at once and holds
//!    no call slot;
//! 7. an agent's exception text never reaches its caller (client or agent),
//!    only an error id;
//! 8. `env.AGENTS.fetch` carries headers of every shape the Web API allows.

mod common;

use common::{DevNode, deploy, dev, free_port, run, until};
use phalanx_gateway::signed_call::{SignedCallMessage, sign};
use phalanx_primitives::{Hash, PublicKey, sha256};
use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const AGENT: &str = r#"
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/submit":
        await ctx.submit({ id: url.searchParams.get("n") });
        return new Response("queued", { status: 202 });
      case "/seen":
        return Response.json((await env.STATE.get("seen")) ?? []);
      case "/boom":
        throw new Error("boom with planted-secret-77e1");
      case "/call": {
        const other = url.searchParams.get("id");
        const shapes = [
          { "x-shape": "object", "content-type": "text/plain" },
          [["x-shape", "pairs"], ["x-more", "2"]],
          new Headers({ "x-shape": "headers" }),
        ];
        const seen = [];
        for (const headers of shapes) {
          const answer = await env.AGENTS.fetch(other, "/echo?q=1", { method: "POST", headers, body: "hello" });
          seen.push(await answer.json());
        }
        const viaRequest = await env.AGENTS.fetch(other, new Request("http://agent/echo", { headers: { "x-shape": "request" } }));
        seen.push(await viaRequest.json());
        let thrown = null;
        try {
          const failed = await env.AGENTS.fetch(other, "/boom");
          thrown = `${failed.status} ${await failed.text()}`;
        } catch (error) { thrown = String(error); }
        return Response.json({ seen, thrown });
      }
      default:
        return Response.json({
          url: request.url,
          method: request.method,
          headers: [...request.headers].filter(([name]) => name.startsWith("phalanx-") || name.startsWith("x-")),
          body: await request.text(),
        });
    }
  },
  async command(message, env) {
    const seen = (await env.STATE.get("seen")) ?? [];
    seen.push(message.data.id);
    await env.STATE.put("seen", seen);
  },
};
"#;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Sends raw bytes and reads the whole answer (the gateway closes after
/// `connection: close`).
fn raw(port: u16, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

fn receipt_of(answer: &str) -> String {
    answer
        .lines()
        .find_map(|line| line.strip_prefix("phalanx-receipt: "))
        .map(|value| value.trim().to_string())
        .unwrap_or_else(|| panic!("no receipt in {answer}"))
}

#[test]
fn what_is_signed_receipted_or_sealed_is_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_port = common::free_ports(2);
    let (rpc_port, p2p_port) = (free_port(), free_port());
    let port = gateway_port.to_string();
    let extra = ["--workers", "2", "--gateway-port", port.as_str()];
    let node = DevNode::start_with(dir.path(), rpc_port, p2p_port, &extra);
    let gateways = [format!("http://127.0.0.1:{gateway_port}"), format!("http://127.0.0.1:{}", gateway_port + 1)];
    let source = dir.path().join("hardened.js");
    std::fs::write(&source, AGENT).unwrap();
    let id_text = deploy(&node, &source, "bob");
    let other_text = {
        let output =
            run(&node, &["agent", "deploy", source.to_str().unwrap(), "--name", "other", "--from", "bob", "--json"]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()["id"].as_str().unwrap().to_string()
    };
    let id: Hash = id_text.parse().unwrap();
    let http = reqwest::blocking::Client::new();
    for gateway in &gateways {
        until("both agents answering on both workers", || {
            [&id_text, &other_text]
                .iter()
                .all(|agent| http.get(format!("{gateway}/agents/{agent}/")).send().is_ok_and(|r| r.status() == 200))
        });
    }

    // 1. The Host header changes nothing: the agent runs the request's own
    // path, sees the gateway's origin, and the receipt names that target.
    let answer = raw(
        gateway_port,
        &format!("GET /agents/{id}/ HTTP/1.1\r\nHost: gw.example/echo?\r\nconnection: close\r\n\r\n"),
    );
    let seen: serde_json::Value = serde_json::from_str(body_of(&answer)).unwrap_or_else(|_| panic!("{answer}"));
    assert_eq!(seen["url"], format!("http://127.0.0.1:{gateway_port}/"), "{answer}");
    let receipt = receipt_of(&answer);
    let verify = |target: &str| run(&node, &["verify", &receipt, "--target", target]).status.success();
    assert!(verify("GET /"), "the receipt covers GET /");
    assert!(!verify("GET /echo"), "and not the route the Host header named");
    let answer = raw(
        gateway_port,
        &format!(
            "POST /agents/{id}/echo HTTP/1.1\r\nHost: x/submit?\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
        ),
    );
    let seen: serde_json::Value = serde_json::from_str(body_of(&answer)).unwrap_or_else(|_| panic!("{answer}"));
    assert_eq!(seen["url"], format!("http://127.0.0.1:{gateway_port}/echo"), "the echo route ran, not /submit");
    // Percent-encoded bytes stay data: `%3F` never starts a query the receipt does not cover.
    let answer =
        raw(gateway_port, &format!("GET /agents/{id}/a%3Fb%2Fc HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n"));
    let seen: serde_json::Value = serde_json::from_str(body_of(&answer)).unwrap_or_else(|_| panic!("{answer}"));
    assert_eq!(seen["url"], format!("http://127.0.0.1:{gateway_port}/a%3Fb%2Fc"), "{answer}");
    assert!(run(&node, &["verify", &receipt_of(&answer), "--target", "GET /a%3Fb%2Fc"]).status.success());

    // 4. No `phalanx-*` header from outside reaches the agent.
    let forged = http
        .post(format!("{}/agents/{id}/echo", gateways[0]))
        .header("phalanx-caller-agent", other_text.as_str())
        .header("phalanx-anything", "forged")
        .header("x-kept", "yes")
        .body("x")
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap();
    assert_eq!(forged["headers"], serde_json::json!([["x-kept", "yes"]]), "{forged}");

    // 7. An uncaught exception: the caller gets its kind and an id, never its text.
    let boom = http.get(format!("{}/agents/{id}/boom", gateways[0])).send().unwrap();
    assert_eq!(boom.status(), 500);
    let text = boom.text().unwrap();
    assert!(text.contains("error id") && !text.contains("planted-secret"), "{text}");

    // 8 and 7 through env.AGENTS: headers of every shape arrive; a failure
    // of the callee reaches the calling agent without its text.
    let called: serde_json::Value =
        http.get(format!("{}/agents/{id}/call?id={other_text}", gateways[0])).send().unwrap().json().unwrap();
    let shapes: Vec<&str> = called["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|seen| {
            let headers = seen["headers"].as_array().unwrap();
            let caller = headers.iter().find(|h| h[0] == "phalanx-caller-agent").unwrap();
            assert_eq!(caller[1], id_text, "the callee sees its real caller: {seen}");
            headers.iter().find(|h| h[0] == "x-shape").unwrap()[1].as_str().unwrap()
        })
        .collect();
    assert_eq!(shapes, ["object", "pairs", "headers", "request"], "{called}");
    assert_eq!(called["seen"][0]["body"], "hello");
    assert_eq!(called["seen"][0]["url"], "http://agent/echo?q=1");
    let thrown = called["thrown"].as_str().unwrap();
    assert!(thrown.contains("error id") && !thrown.contains("planted-secret"), "{thrown}");

    // 5. An envelope naming a key epoch far ahead is refused at once.
    until("the agent's key published and reaching the worker", || {
        run(&node, &["agent", "call", &id_text, "/", "--encrypt", "--gateway", &gateways[0]]).status.success()
    });
    let stranger = phalanx_keys::SecretKey::from_bytes([7; 32]).public();
    let request =
        phalanx_keys::call::SealedRequest { method: "GET".into(), path: "/".into(), headers: vec![], body: vec![] };
    let (ahead, _) = request.seal(id, 1_000_000, &stranger).unwrap();
    let started = Instant::now();
    let refused = http
        .post(format!("{}/agents/{id}", gateways[0]))
        .header("content-type", phalanx_keys::call::ENVELOPE_CONTENT_TYPE)
        .body(ahead)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(started.elapsed() < Duration::from_millis(1_500), "refused without waiting: {:?}", started.elapsed());
    assert!(refused.text().unwrap().contains("no key of epoch 1000000"));

    // 3. Signed calls, each to /submit (a chain-ordered command recording
    // its number): the other worker refuses each, and so does the same
    // worker after a SIGKILL mid-stream and a restart.
    let chain_id: Hash =
        node.cli_json::<serde_json::Value>(&["chain", "info"])["chain_id"].as_str().unwrap().parse().unwrap();
    let worker_of = |gateway: &str| -> PublicKey {
        let attestation: serde_json::Value = http.get(format!("{gateway}/attestation")).send().unwrap().json().unwrap();
        attestation["identity"].as_str().unwrap().parse().unwrap()
    };
    let worker = worker_of(&gateways[0]);
    let signed = |n: u32| {
        let target = format!("/submit?n={n}");
        let message = SignedCallMessage {
            chain_id,
            worker,
            agent: id,
            method: "GET",
            path_and_query: &target,
            body_hash: sha256(b""),
            nonce: [n as u8; 16],
            expires_ms: now_ms() + 120_000,
        };
        let headers = sign(&dev("dave"), &message);
        (target.clone(), headers)
    };
    let send = |gateway: &str, call: &(String, Vec<(String, String)>)| {
        let mut request = http.get(format!("{gateway}/agents/{id}{}", call.0)).timeout(Duration::from_secs(10));
        for (name, value) in &call.1 {
            request = request.header(name, value);
        }
        request.send().map(|r| r.status().as_u16()).unwrap_or(0)
    };
    let calls: Vec<_> = (1..=160).map(signed).collect();
    assert_eq!(send(&gateways[0], &calls[0]), 202, "a signed call runs on the worker it names");
    assert_eq!(send(&gateways[1], &calls[0]), 421, "and nowhere else in the cluster");
    assert_eq!(send(&gateways[0], &calls[0]), 409, "nor twice there");
    let seen = || -> Vec<String> {
        http.get(format!("{}/agents/{id_text}/seen", gateways[0])).send().unwrap().json().unwrap()
    };
    until("the first call's command ordered by the chain", || seen() == ["1"]);
    // A stream of signed calls, and SIGKILL of the whole network in the middle of it.
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let streamed = std::thread::scope(|scope| {
        let stream = scope.spawn(|| {
            calls[1..]
                .iter()
                .map(|call| {
                    let status = send(&gateways[0], call);
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    status
                })
                .collect::<Vec<_>>()
        });
        // SIGKILL once some of the stream has been answered, the rest still to come.
        while answered.load(std::sync::atomic::Ordering::SeqCst) < 40 {
            std::thread::sleep(Duration::from_millis(2));
        }
        node.kill_9();
        stream.join().unwrap()
    });
    let ran = streamed.iter().filter(|status| **status == 202).count();
    println!("{ran} of {} streamed signed calls answered before the SIGKILL", streamed.len());
    assert!(ran >= 40 && ran < streamed.len(), "the SIGKILL came mid-stream: {ran} of {}", streamed.len());
    let _restarted = DevNode::start_with(dir.path(), rpc_port, p2p_port, &extra);
    until("the worker serving again", || {
        http.get(format!("{}/agents/{id_text}/", gateways[0])).send().is_ok_and(|r| r.status() == 200)
    });
    for (n, call) in calls.iter().enumerate() {
        let status = send(&gateways[0], call);
        let answered_before = n == 0 || streamed[n - 1] == 202;
        if answered_before {
            assert_eq!(status, 409, "call {} ran before the crash and is refused after the restart", n + 1);
        }
        assert_ne!(send(&gateways[1], call), 202, "call {} never runs on the other worker", n + 1);
    }
    // Every number the chain ordered is there once.
    std::thread::sleep(Duration::from_secs(3));
    let seen = seen();
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no signed call ran twice: {seen:?}");
    assert!(seen.iter().any(|n| n == "1"), "{seen:?} ({ran} calls answered before the kill)");
}
