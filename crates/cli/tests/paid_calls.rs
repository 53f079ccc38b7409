//! Paid agents on a real `phalanx dev`: unsigned calls are refused, a caller
//! without deposit gets 402 "insufficient deposit", a caller with a deposit
//! is served, and the worker's usage reports (calls, CPU milliseconds and
//! egress bytes metered by the sandbox) charge the deposit exactly the
//! calls × price for the worker and the network fee for the treasury.

mod common;

use common::{DevNode, deploy, run, until};

const PHA: u128 = phalanx_primitives::PLANCK_PER_PHA;

#[test]
fn paid_calls_are_charged_to_the_callers_deposit() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_port = common::free_ports(2);
    let node = DevNode::start_with(
        dir.path(),
        common::free_port(),
        common::free_port(),
        &["--workers", "1", "--gateway-port", &gateway_port.to_string()],
    );
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let source = dir.path().join("paid.js");
    // Each call burns some CPU (a loop QuickJS needs milliseconds for) so the meter has something to count.
    std::fs::write(
        &source,
        "export default { fetch(request) { let x = 0; for (let i = 0; i < 300000; i++) x += i % 7; \
         return new Response('paid for by ' + request.headers.get('phalanx-caller') + ' ' + x); } };",
    )
    .unwrap();
    let id = deploy(&node, &source, "dave");
    for args in
        [vec!["agent", "price", &id, "0.01", "--from", "dave"], vec!["agent", "access", &id, "paid", "--from", "dave"]]
    {
        let output = run(&node, &args);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let call = |from: Option<&str>| {
        let mut args = vec!["agent", "call", &id, "--gateway", &gateway];
        if let Some(from) = from {
            args.extend(["--from", from]);
        }
        run(&node, &args)
    };
    until("the worker seeing the agent as paid", || {
        String::from_utf8_lossy(&call(None).stderr).contains("sign the call")
    });
    let poor = call(Some("alice"));
    assert!(!poor.status.success());
    let said = String::from_utf8_lossy(&poor.stderr);
    assert!(said.contains("402") || said.contains("insufficient deposit"), "{said}");

    let _: serde_json::Value = node.cli_json(&["deposit", "add", "1", "--from", "alice"]);
    until("a paid call served", || call(Some("alice")).stdout.starts_with(b"paid for by"));
    for _ in 0..4 {
        let served = call(Some("alice"));
        assert!(served.stdout.starts_with(b"paid for by"), "{}", String::from_utf8_lossy(&served.stderr));
    }
    // 5 calls (plus any served while the deposit's block reached the worker) are charged.
    let fees = phalanx_state::modules::fees::FeeParams::default();
    let price = PHA / 100;
    let deposit = || -> u128 {
        let balance: serde_json::Value = node.cli_json(&["deposit", "balance", "alice"]);
        balance["deposit"].as_u64().unwrap() as u128
    };
    until("the usage charged", || deposit() <= PHA - 5 * (price + fees.call_fee));
    // Let a report of a sixth call (one admitted while the deposit's block arrived) land too.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let charged = PHA - deposit();

    let planck = |v: &serde_json::Value| v.as_u64().map(u128::from).unwrap();
    let alice = common::dev("alice").public().to_string();
    let head: serde_json::Value = node.cli_json(&["chain", "head"]);
    let (mut calls, mut cpu_ms, mut paid) = (0u64, 0u64, 0u128);
    for h in 1..=head["height"].as_u64().unwrap() {
        let block: serde_json::Value = node.cli_json(&["chain", "block", &h.to_string()]);
        for event in block["events"].as_array().into_iter().flatten() {
            if event["event"] != "usage_charged" || event["caller"] != alice.as_str() {
                continue;
            }
            let n = event["calls"].as_u64().unwrap();
            let (cpu, egress) = (event["cpu_ms"].as_u64().unwrap(), event["egress_bytes"].as_u64().unwrap());
            assert_eq!(planck(&event["to_worker"]), price * u128::from(n), "the price per call: {event}");
            assert_eq!(planck(&event["to_treasury"]), fees.network_fee(n, cpu, egress), "the network fee: {event}");
            assert_eq!(planck(&event["unpaid"]), 0, "{event}");
            // The response body alone is "paid for by <48-character address> <number>".
            assert!(egress >= n * 60, "egress counts at least the response bodies: {event}");
            assert!(cpu <= n * 500, "no call used more than its 500 ms CPU limit: {event}");
            (calls, cpu_ms) = (calls + n, cpu_ms + cpu);
            paid += planck(&event["to_worker"]) + planck(&event["to_treasury"]);
        }
    }
    assert!((5..=6).contains(&calls), "{calls} calls charged");
    assert!(cpu_ms >= 1, "the calls' CPU time is metered and charged: {cpu_ms} ms");
    assert_eq!(paid, charged, "the deposit paid exactly what the reports charged");
}
