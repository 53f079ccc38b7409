//! Command mode: `command(message, env, ctx)` runs the same way on every
//! worker, so it sees the block's time, a seeded `Math.random`, no network,
//! timers or crypto randomness, and a step budget instead of a clock.

use phalanx_sandbox::{Limits, Sandbox, SandboxError};

const AGENT: &str = r#"
export default {
  async fetch() { return new Response("ok"); },
  async command(message, env, ctx) {
    console.log("data", JSON.stringify(message.data), "seq", message.seq);
    console.log("now", Date.now(), new Date().toISOString());
    console.log("random", [Math.random(), Math.random(), Math.random()].join(","));
    const refused = [];
    for (const [name, f] of [
      ["fetch", () => fetch("https://example.com/")],
      ["timer", () => setTimeout(() => {}, 1)],
      ["random bytes", () => crypto.getRandomValues(new Uint8Array(4))],
      ["uuid", () => crypto.randomUUID()],
      ["submit", () => ctx.submit({ again: true })],
    ]) {
      try { await f(); refused.push(name + ": allowed"); } catch (e) { refused.push(name + ": " + e.message); }
    }
    console.log(refused.join("\n"));
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("abc")));
    console.log("digest", digest[0]);
    console.log("secret", env.GREETING);
    if (message.data.spin) for (;;) {}
    if (message.data.fail) throw new Error("told to fail");
  },
};
"#;

const FUEL: u64 = 10_000;
const TIME_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

async fn run(seed: [u32; 4], data: &str) -> (Result<(), SandboxError>, Vec<String>) {
    let limits = Limits { cpu_time_max: std::time::Duration::from_secs(20), ..Limits::default() };
    let mut sandbox = Sandbox::for_commands(limits, seed, TIME_MS, FUEL).await.unwrap();
    sandbox.load("agent.js", AGENT, "command").await.unwrap();
    let message = format!(r#"{{"seq":7,"data":{data}}}"#);
    let (result, logs) = sandbox.command(&message, &[("GREETING".into(), "hello".into())]).await;
    (result, logs.into_iter().map(|l| l.message).collect())
}

#[tokio::test]
async fn commands_see_the_block_time_a_seeded_random_and_nothing_else() {
    let (result, logs) = run([1, 2, 3, 4], r#"{"n":1}"#).await;
    result.unwrap();
    let text = logs.join("\n");
    assert!(text.contains(r#"data {"n":1} seq 7"#), "{text}");
    assert!(text.contains(&format!("now {TIME_MS} 2026-01-01T00:00:00.000Z")), "{text}");
    for refused in ["fetch", "a timer", "crypto.getRandomValues", "crypto.randomUUID"] {
        assert!(
            text.contains(&format!("{refused} is not available in command(): it runs identically on every worker")),
            "{refused}: {text}"
        );
    }
    assert!(text.contains("submit: ctx.submit is not available in command()"), "{text}");
    assert!(!text.contains("allowed"), "{text}");
    assert!(text.contains("digest 186"), "SHA-256(abc) starts with 0xba: {text}");
    assert!(text.contains("secret hello"), "{text}");

    // Same seed, same sequence (in a fresh instance); another seed, another.
    let random = |logs: &[String]| logs.iter().find(|l| l.starts_with("random")).cloned().unwrap();
    let (_, again) = run([1, 2, 3, 4], r#"{"n":1}"#).await;
    assert_eq!(random(&logs), random(&again));
    let (_, other) = run([1, 2, 3, 5], r#"{"n":1}"#).await;
    assert_ne!(random(&logs), random(&other));
    let values: Vec<f64> = random(&logs)["random ".len()..].split(',').map(|v| v.parse().unwrap()).collect();
    assert!(values.iter().all(|v| (0.0..1.0).contains(v)), "{values:?}");
}

#[tokio::test]
async fn a_runaway_command_ends_at_the_same_step_budget_every_time() {
    let (first, logs) = run([9, 9, 9, 9], r#"{"spin":true}"#).await;
    assert_eq!(first, Err(SandboxError::Fuel { limit: FUEL }));
    let _ = logs;
    let started = std::time::Instant::now();
    let (second, _) = run([9, 9, 9, 9], r#"{"spin":true}"#).await;
    eprintln!("{FUEL} steps took {:?}", started.elapsed());
    assert_eq!(second, Err(SandboxError::Fuel { limit: FUEL }));
    let (thrown, _) = run([9, 9, 9, 9], r#"{"fail":true}"#).await;
    assert!(matches!(&thrown, Err(SandboxError::Threw(m)) if m.contains("told to fail")), "{thrown:?}");
}

#[tokio::test]
async fn an_agent_without_command_is_refused_at_load() {
    let mut sandbox = Sandbox::for_commands(Limits::default(), [0; 4], TIME_MS, 1000).await.unwrap();
    let loaded = sandbox.load("agent.js", "export default { fetch() { return new Response('x') } }", "command").await;
    assert_eq!(loaded, Err(SandboxError::NoHandler("command".into())));
}
