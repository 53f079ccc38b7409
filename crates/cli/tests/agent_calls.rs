//! Agent-to-agent calls on a real `phalanx dev`: `env.AGENTS.fetch` runs
//! another agent in the same worker with its own secrets, tells it which
//! agent called, carries bytes exactly, and refuses cycles, chains deeper
//! than the limit, paused agents and agents that take signed calls only.

mod common;

use common::{DevNode, free_port, run, until};

/// Forwards to the first id of `?chain=`, passing the rest on; the last in
/// the chain answers with who called it, its secret and whether the bytes
/// it got are 0..=255.
const FORWARDER: &str = r#"
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const chain = (url.searchParams.get("chain") ?? "").split(",").filter((id) => id);
    if (chain.length === 0) {
      const bytes = new Uint8Array(await request.arrayBuffer());
      const exact = bytes.length === 256 && bytes.every((b, i) => b === i);
      return Response.json({ caller: request.headers.get("phalanx-caller-agent"), secret: env.S ?? null, exact });
    }
    const body = request.method === "POST" ? await request.arrayBuffer() : Uint8Array.from({ length: 256 }, (_, i) => i);
    try {
      const answer = await env.AGENTS.fetch(chain[0], `/?chain=${chain.slice(1).join(",")}`, { method: "POST", body });
      return new Response(answer.body, { status: answer.status, headers: answer.headers });
    } catch (error) {
      return new Response(String(error), { status: 508 });
    }
  },
};
"#;

#[test]
fn agents_call_each_other_within_limits() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_port = common::free_ports(2);
    let port = gateway_port.to_string();
    let node = DevNode::start_with(dir.path(), free_port(), free_port(), &["--workers", "2", "--gateway-port", &port]);
    let source = dir.path().join("forwarder.js");
    std::fs::write(&source, FORWARDER).unwrap();
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        let mut deployed = None;
        until("deployment", || {
            let output =
                run(&node, &["agent", "deploy", source.to_str().unwrap(), "--name", name, "--from", "dave", "--json"]);
            deployed = serde_json::from_slice::<serde_json::Value>(&output.stdout).ok();
            output.status.success()
        });
        ids.push(deployed.unwrap()["id"].as_str().unwrap().to_string());
    }
    until("b's secret being set", || {
        run(&node, &["agent", "secrets", "set", &ids[1], "S=only-b", "--from", "dave"]).status.success()
    });
    let http = reqwest::blocking::Client::new();
    let call = |first: &str, chain: &[&String]| {
        let chain: Vec<&str> = chain.iter().map(|s| s.as_str()).collect();
        let url = format!("http://127.0.0.1:{gateway_port}/agents/{first}/?chain={}", chain.join(","));
        let response = http.get(url).send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };

    // a calls b: b sees a as its caller, uses its own secret, and gets the bytes exactly.
    let mut answer = (0, String::new());
    until("a reaching b with b's secret", || {
        answer = call(&ids[0], &[&ids[1]]);
        answer.1.contains("only-b")
    });
    let (status, text) = answer;
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} {text}"));
    assert_eq!(status, 200);
    assert_eq!(value["caller"], ids[0].as_str());
    assert_eq!(value["exact"], true, "the body crossed byte for byte");
    // a -> b -> c -> d is 4 deep: allowed; one more is refused.
    let (status, text) = call(&ids[0], &[&ids[1], &ids[2], &ids[3]]);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&ids[2]), "d was called by c: {text}");
    let (status, text) = call(&ids[0], &[&ids[1], &ids[2], &ids[3], &ids[4]]);
    assert!(status == 508 && text.contains("at most 4 deep"), "{status} {text}");
    // A cycle is refused wherever it closes.
    let (status, text) = call(&ids[0], &[&ids[1], &ids[0]]);
    assert!(status == 508 && text.contains("agent call cycle"), "{status} {text}");
    // The callee's own governance applies: paused, then signed calls only.
    let paused = run(&node, &["agent", "pause", &ids[4], "--from", "dave"]);
    assert!(paused.status.success());
    until("e paused", || call(&ids[0], &[&ids[4]]).1.contains("paused"));
    let allowlist = run(&node, &["agent", "access", &ids[3], "allowlist", "dave", "--from", "dave"]);
    assert!(allowlist.status.success());
    until("d taking signed calls only", || call(&ids[0], &[&ids[3]]).1.contains("signed or paid calls only"));
    let (status, _) = call(&ids[0], &[&ids[1]]);
    assert_eq!(status, 200, "the others keep answering");
    // The owner removes b's secret: b runs without it.
    assert!(run(&node, &["agent", "secrets", "remove", &ids[1], "S", "--from", "dave"]).status.success());
    until("b's secret gone", || call(&ids[0], &[&ids[1]]).1.contains(r#""secret":null"#));
}
