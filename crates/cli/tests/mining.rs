//! Mining on a real `phalanx dev`: bob's pool takes contributions, bob
//! starts his worker mining with the pool's stake; the worker answers its
//! challenges by itself (signed messages from inside the TEE), so rewards
//! flow: the pool's value rises, the treasury gets its 20%; stopping the
//! worker returns the stake after the cooldown.

mod common;

use common::{DevNode, run, until};

#[test]
fn a_dev_worker_mines_for_its_operators_pool() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start_with(
        dir.path(),
        common::free_port(),
        common::free_port(),
        &["--workers", "1", "--gateway-port", &common::free_ports(2).to_string()],
    );
    let workers = || -> Vec<serde_json::Value> { node.cli_json(&["worker", "list"]) };
    until("the dev worker registered", || workers().len() == 1);
    let worker = workers()[0]["identity"].as_str().unwrap().to_string();
    let _: serde_json::Value = node.cli_json(&["pool", "create", "--commission", "10", "--from", "bob"]);
    let _: serde_json::Value = node.cli_json(&["pool", "contribute", "0", "1000", "--from", "dave"]);

    // Someone else's worker cannot be bound; bob's can.
    let stranger = run(&node, &["mining", "start", &worker, "--pool", "0", "--from", "dave"]);
    assert!(!stranger.status.success());
    let started: serde_json::Value =
        node.cli_json(&["mining", "start", &worker, "--pool", "0", "--stake", "500", "--from", "bob"]);
    assert_eq!(started["pool"], 0);
    let status = || -> phalanx_rpc::MiningStatus { node.cli_json(&["mining", "status"]) };
    let miner = status().miners[0];
    assert_eq!(miner.state, phalanx_state::modules::computation::MinerState::Mining);
    assert_eq!(miner.stake, 500 * phalanx_primitives::PLANCK_PER_PHA);

    // The worker answers challenges on its own: rewards reach the pool and the treasury.
    until("a reward paid", || status().totals.minted > 0);
    let after = status();
    let pool: phalanx_rpc::PoolInfo = node.cli_json(&["pool", "info", "0"]);
    assert!(pool.pool.value > 1_000 * phalanx_primitives::PLANCK_PER_PHA, "rewards raised the pool's value");
    assert_eq!(pool.pool.value - pool.pool.free, 500 * phalanx_primitives::PLANCK_PER_PHA, "the stake stays locked");
    assert!(after.miners[0].earned > 0);
    assert!(after.miners[0].v >= 500 * phalanx_primitives::PLANCK_PER_PHA, "V rose while answering");

    // Stop: the stake comes back after the cooldown.
    let _: serde_json::Value = node.cli_json(&["mining", "stop", &worker, "--from", "bob"]);
    until("the stake released", || status().miners[0].state == phalanx_state::modules::computation::MinerState::Ready);
    let pool: phalanx_rpc::PoolInfo = node.cli_json(&["pool", "info", "0"]);
    assert_eq!(pool.pool.value, pool.pool.free, "all stake free again");
}
