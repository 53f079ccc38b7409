//! Agent state and commands on a real `phalanx dev` with two workers:
//! `agent send` (plain and sealed) and `ctx.submit` are ordered by the chain
//! and applied once by both workers, to the same state; `fetch` reads it and
//! cannot write it; a failing command changes nothing; an upgrade keeps the
//! state and the new code applies the next command; the state survives a
//! SIGKILL of the whole network; a sealed command's plaintext is nowhere on
//! disk or in the log.

mod common;

use common::{DevNode, deploy, files_under, free_port, run, until};

const PLANTED: &str = "planted-command-5c1d";

fn agent(version: u32, factor: u32) -> String {
    format!(
        r#"
export default {{
  async fetch(request, env, ctx) {{
    const url = new URL(request.url);
    if (url.pathname === "/submit") {{
      await ctx.submit({{ add: Number(url.searchParams.get("n")), id: "submitted" }});
      return new Response("queued", {{ status: 202 }});
    }}
    let writeError = null;
    try {{ await env.STATE.put("x", 1); }} catch (e) {{ writeError = e.message; }}
    return Response.json({{
      version: {version},
      total: (await env.STATE.get("total")) ?? 0,
      seen: (await env.STATE.get("seen")) ?? [],
      random: await env.STATE.get("random"),
      keys: await env.STATE.list(),
      writeError,
    }});
  }},
  async command(message, env) {{
    const total = (await env.STATE.get("total")) ?? 0;
    const seen = (await env.STATE.get("seen")) ?? [];
    await env.STATE.put("total", total + {factor} * message.data.add);
    seen.push(message.data.id);
    await env.STATE.put("seen", seen);
    await env.STATE.put("random", Math.random());
    if (message.data.fail) throw new Error("told to fail after writing");
  }},
}};
"#
    )
}

fn send(node: &DevNode, id: &str, data: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["agent", "send", id, "--data", data, "--from", "dave", "--json"];
    args.extend_from_slice(extra);
    run(node, &args)
}

fn read(gateway: &str, id: &str) -> Option<serde_json::Value> {
    reqwest::blocking::get(format!("{gateway}/agents/{id}/")).ok()?.json().ok()
}

#[test]
fn commands_are_applied_once_everywhere_and_state_survives_upgrade_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gateway_port = common::free_ports(2);
    let port = gateway_port.to_string();
    let (rpc_port, p2p_port) = (free_port(), free_port());
    let extra = ["--workers", "2", "--gateway-port", &port];
    let node = DevNode::start_with(&data, rpc_port, p2p_port, &extra);
    let gateways = [format!("http://127.0.0.1:{gateway_port}"), format!("http://127.0.0.1:{}", gateway_port + 1)];
    let v1 = dir.path().join("counter.js");
    std::fs::write(&v1, agent(1, 1)).unwrap();
    let id = deploy(&node, &v1, "dave");
    until("both gateways serving the agent", || gateways.iter().all(|g| read(g, &id).is_some()));

    // Plain, then sealed (with a planted string), then one that throws.
    let first = send(&node, &id, r#"{"add":1,"id":"a"}"#, &[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first["seq"], 1);
    assert_eq!(first["result"], "applied");
    until("the agent's key published", || {
        let info: serde_json::Value =
            serde_json::from_slice(&run(&node, &["agent", "info", &id]).stdout).unwrap_or_default();
        info["keys"].as_array().is_some_and(|k| !k.is_empty())
    });
    let sealed = send(&node, &id, &format!(r#"{{"add":2,"id":"{PLANTED}"}}"#), &["--encrypt"]);
    assert!(sealed.status.success(), "{}", String::from_utf8_lossy(&sealed.stderr));
    let failing = send(&node, &id, r#"{"add":50,"id":"never","fail":true}"#, &[]);
    assert!(!failing.status.success());
    assert!(String::from_utf8_lossy(&failing.stderr).contains("threw"), "{}", String::from_utf8_lossy(&failing.stderr));

    // ctx.submit from a fetch: the worker sends it sealed; the chain orders it.
    let queued = reqwest::blocking::get(format!("{}/agents/{id}/submit?n=10", gateways[0])).unwrap();
    assert_eq!(queued.status(), 202);
    until("the submitted command applied on both workers", || {
        gateways.iter().all(|g| read(g, &id).is_some_and(|s| s["total"] == 13))
    });
    let states: Vec<serde_json::Value> = gateways.iter().map(|g| read(g, &id).unwrap()).collect();
    assert_eq!(states[0], states[1], "both workers hold the same state, random draws included");
    assert_eq!(states[0]["seen"], serde_json::json!(["a", PLANTED, "submitted"]), "the failed command wrote nothing");
    assert_eq!(states[0]["keys"], serde_json::json!(["random", "seen", "total"]));
    assert!(states[0]["random"].as_f64().is_some_and(|r| (0.0..1.0).contains(&r)));
    let refused = states[0]["writeError"].as_str().unwrap();
    assert!(refused.contains("not available in fetch()"), "{refused}");
    for gateway in &gateways {
        let status: serde_json::Value =
            reqwest::blocking::get(format!("{gateway}/state/{id}")).unwrap().json().unwrap();
        assert_eq!(status["applied"], 4, "{status}");
        assert_eq!(status["ordered"], 4, "{status}");
        assert_eq!(status["complete"], true);
        let results: Vec<&str> =
            status["outcomes"].as_array().unwrap().iter().map(|o| o["result"].as_str().unwrap()).collect();
        assert_eq!(results, ["applied", "applied", "threw", "applied"]);
    }

    // Only those the access policy allows may send (owner management is
    // checked in tests/agents.rs).
    let access = run(&node, &["agent", "access", &id, "allowlist", "bob", "--from", "dave"]);
    assert!(access.status.success(), "{}", String::from_utf8_lossy(&access.stderr));
    let stranger = run(&node, &["agent", "send", &id, "--data", "{}", "--from", "alice"]);
    assert!(!stranger.status.success());
    let said = String::from_utf8_lossy(&stranger.stderr);
    assert!(said.contains("access policy"), "{said}");
    let public = run(&node, &["agent", "access", &id, "public", "--from", "dave"]);
    assert!(public.status.success(), "{}", String::from_utf8_lossy(&public.stderr));
    let v2 = dir.path().join("counter-v2.js");
    std::fs::write(&v2, agent(2, 100)).unwrap();

    // The owner upgrades: the new code answers with the old state and applies the next command.
    let upgraded = run(&node, &["agent", "upgrade", &id, v2.to_str().unwrap(), "--from", "dave"]);
    assert!(upgraded.status.success(), "{}", String::from_utf8_lossy(&upgraded.stderr));
    until("version 2 answering with the kept state", || {
        gateways.iter().all(|g| read(g, &id).is_some_and(|s| s["version"] == 2 && s["total"] == 13))
    });
    let after = send(&node, &id, r#"{"add":1,"id":"v2"}"#, &[]);
    assert!(after.status.success(), "{}", String::from_utf8_lossy(&after.stderr));
    until("version 2's command applied on both workers", || {
        gateways.iter().all(|g| read(g, &id).is_some_and(|s| s["total"] == 113))
    });

    // SIGKILL everything: the state comes back from the sealed files, and no
    // command is applied again while the workers replay blocks.
    let before = read(&gateways[0], &id).unwrap();
    node.kill_9();
    let node = DevNode::start_with(&data, rpc_port, p2p_port, &extra);
    until("both gateways serving again", || gateways.iter().all(|g| read(g, &id).is_some()));
    for gateway in &gateways {
        assert_eq!(read(gateway, &id).unwrap(), before, "{gateway} after the restart");
    }
    let again = send(&node, &id, r#"{"add":1,"id":"after-restart"}"#, &[]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    until("the next command applied once on both workers", || {
        gateways.iter().all(|g| read(g, &id).is_some_and(|s| s["total"] == 213))
    });

    // A new agent key: each worker re-seals the state to it, and the old key retires.
    let state_files = || -> Vec<std::path::PathBuf> {
        files_under(&data).into_iter().filter(|p| p.extension().is_some_and(|e| e == "state")).collect()
    };
    let sealed_epochs = || -> Vec<u64> {
        state_files()
            .iter()
            .map(|p| phalanx_keys::Header::peek(&std::fs::read(p).unwrap()).unwrap().key.epoch)
            .collect()
    };
    let first_epoch = sealed_epochs()[0];
    let _: serde_json::Value = node.cli_json(&["keys", "rotate", "--scope", "agent", &id, "--from", "dave"]);
    until("both state files re-sealed to the new key and the old key retired", || {
        let info: serde_json::Value =
            serde_json::from_slice(&run(&node, &["agent", "info", &id]).stdout).unwrap_or_default();
        let kept: Vec<u64> =
            info["keys"].as_array().map_or(vec![], |k| k.iter().filter_map(|k| k["epoch"].as_u64()).collect());
        kept.len() == 1 && kept[0] > first_epoch && sealed_epochs().iter().all(|e| *e == kept[0])
    });
    let rotated = send(&node, &id, r#"{"add":1,"id":"rotated"}"#, &["--encrypt"]);
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    until("a command after the rotation applied on both workers", || {
        gateways.iter().all(|g| read(g, &id).is_some_and(|s| s["total"] == 313))
    });
    drop(node);

    let state_files = state_files();
    assert_eq!(state_files.len(), 2, "one sealed state file per worker: {state_files:?}");
    for path in files_under(dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(PLANTED.len()).any(|w| w == PLANTED.as_bytes()),
            "{} holds the sealed command",
            path.display()
        );
    }
}
