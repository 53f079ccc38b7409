//! Paid agents on a real `phalanx dev`: unsigned calls are refused, a caller
//! without deposit gets 402 "insufficient deposit", a caller with a deposit
//! is served, and the worker's usage reports charge the deposit exactly the
//! calls × (price + network fee per call), paying the worker's operator.

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
    std::fs::write(&source, "export default { fetch(request) { return new Response('paid for by ' + request.headers.get('phalanx-caller')); } };").unwrap();
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
    let fees: phalanx_state::modules::fees::FeeParams = phalanx_state::modules::fees::FeeParams::default();
    let per_call = PHA / 100 + fees.call_fee;
    let deposit = || -> u128 {
        let balance: serde_json::Value = node.cli_json(&["deposit", "balance", "alice"]);
        balance["deposit"].as_u64().unwrap() as u128
    };
    until("the usage charged", || deposit() <= PHA - 5 * per_call);
    let charged = PHA - deposit();
    assert_eq!(charged % per_call, 0, "charged whole calls: {charged}");
    assert!(charged / per_call >= 5 && charged / per_call <= 6, "{} calls charged", charged / per_call);
}
