//! The economics scenario on a real `phalanx dev` with a second worker
//! process: bob's pool with two workers mining, dave contributing, alice's
//! vault delegating; one worker killed (it goes silent: unresponsive, its
//! share leaves the total); dave's withdrawal larger than the free stake
//! waits until the grace period stops the pool's workers and their stake is
//! released. Every reward the chain paid matches `docs/economics.md`: 20% to
//! the treasury, the owner's 10% commission off the pool's part, all minted.

mod common;

use common::{DevNode, Reaped, phalanx, until};
use phalanx_state::modules::computation::MinerState;
use std::process::Stdio;

const PHA: u128 = phalanx_primitives::PLANCK_PER_PHA;

fn planck(value: &serde_json::Value) -> u128 {
    value.as_u64().map(u128::from).unwrap_or_else(|| panic!("not a planck amount below 2^64: {value}"))
}

#[test]
fn pool_vault_mining_silence_and_grace_on_dev() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start_with(
        &dir.path().join("dev"),
        common::free_port(),
        common::free_port(),
        &["--workers", "1", "--gateway-port", &common::free_ports(2).to_string()],
    );
    let second_port = common::free_ports(2);
    let mut second = Reaped(
        phalanx()
            .args(["worker", "--node", &node.url(), "--operator", "bob"])
            .args(["--gateway-port", &second_port.to_string()])
            .arg("--data-dir")
            .arg(dir.path().join("second"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let workers = || -> Vec<serde_json::Value> { node.cli_json(&["worker", "list"]) };
    until("both workers registered and announcing their gateways", || {
        let all = workers();
        all.len() == 2 && all.iter().all(|w| w["gateway_url"].is_string())
    });
    let ids: Vec<String> = workers().iter().map(|w| w["identity"].as_str().unwrap().to_string()).collect();
    let silent = workers()
        .iter()
        .find(|w| w["gateway_url"].as_str().is_some_and(|u| u.ends_with(&format!(":{second_port}"))))
        .map(|w| w["identity"].as_str().unwrap().to_string())
        .expect("the second worker's gateway");
    let alive = ids.iter().find(|id| **id != silent).unwrap().clone();

    let _: serde_json::Value = node.cli_json(&["pool", "create", "--commission", "10", "--from", "bob"]);
    let _: serde_json::Value = node.cli_json(&["pool", "contribute", "0", "2000", "--from", "dave"]);
    let _: serde_json::Value = node.cli_json(&["vault", "create", "--commission", "5", "--from", "alice"]);
    let _: serde_json::Value = node.cli_json(&["vault", "contribute", "0", "1000", "--from", "charlie"]);
    let _: serde_json::Value = node.cli_json(&["vault", "delegate", "0", "--pool", "0", "1000", "--from", "alice"]);
    for id in &ids {
        let _: serde_json::Value =
            node.cli_json(&["mining", "start", id, "--pool", "0", "--stake", "1000", "--from", "bob"]);
    }
    let status = || -> phalanx_rpc::MiningStatus { node.cli_json(&["mining", "status"]) };
    let miner = |id: &str| status().miners.into_iter().find(|m| m.worker.to_string() == id).unwrap();
    until("both workers earning", || ids.iter().all(|id| miner(id).earned > 0));

    // The second worker dies: its challenge goes unanswered.
    second.0.kill().unwrap();
    second.0.wait().unwrap();
    until("the silent worker marked unresponsive", || miner(&silent).state == MinerState::Unresponsive);
    let now = status();
    let alive_share = now.miners.iter().find(|m| m.worker.to_string() == alive).unwrap().share;
    assert_eq!(now.totals.total_share, alive_share, "only the responsive worker's share counts");

    // Dave withdraws everything: more than the free stake, so it queues until
    // the grace period stops the pool's workers and their stake comes back.
    let _: serde_json::Value = node.cli_json(&["pool", "withdraw", "0", "all", "--from", "dave"]);
    let info: phalanx_rpc::PoolInfo = node.cli_json(&["pool", "info", "0"]);
    assert_eq!(info.pool.withdrawals.len(), 1, "the rest waits: {:?}", info.pool);
    until("the grace period stopping both workers and the cooldown releasing them", || {
        status().miners.iter().all(|m| m.state == MinerState::Ready)
    });
    until("dave paid in full", || {
        let info: phalanx_rpc::PoolInfo = node.cli_json(&["pool", "info", "0"]);
        info.pool.withdrawals.is_empty() && !info.holders.iter().any(|h| h.account == common::dev("dave").public())
    });

    // Every reward the chain paid, against the formulas.
    let head: serde_json::Value = node.cli_json(&["chain", "head"]);
    let height = head["height"].as_u64().unwrap();
    let (mut minted, mut rewards, mut stops) = (0u128, 0, 0);
    for h in 1..=height {
        let block: serde_json::Value = node.cli_json(&["chain", "block", &h.to_string()]);
        for event in block["events"].as_array().into_iter().flatten() {
            match event["event"].as_str() {
                Some("mining_reward") => {
                    let (to_pool, to_treasury) = (planck(&event["to_pool"]), planck(&event["to_treasury"]));
                    let reward = to_pool + to_treasury;
                    assert_eq!(to_treasury, reward * 200_000 / 1_000_000, "20% to the treasury: {event}");
                    assert_eq!(planck(&event["commission"]), to_pool * 100_000 / 1_000_000, "10% commission: {event}");
                    minted += reward;
                    rewards += 1;
                }
                Some("pool_workers_stopped") => stops += 1,
                _ => {}
            }
        }
    }
    assert!(rewards >= 2, "rewards were paid: {rewards}");
    assert_eq!(stops, 1, "the grace period stopped the pool's workers once");
    assert_eq!(status().totals.minted, minted, "every planck minted is a reward paid");
    let vault: phalanx_rpc::VaultInfo = node.cli_json(&["vault", "info", "0"]);
    assert!(vault.value > 1_000 * PHA, "the vault's stake earned in the pool: {}", vault.value);
}
