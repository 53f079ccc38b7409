//! Stake pools and vaults on a real `phalanx dev` through the CLI: create,
//! contribute, info and list, withdraw part and all; a vault delegating into
//! the pool and paying its holder back; refusals are clear.

mod common;

use common::{DevNode, run};

const PHA: u128 = phalanx_primitives::PLANCK_PER_PHA;

#[test]
fn pools_take_contributions_and_pay_withdrawals() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path());
    let created: serde_json::Value =
        node.cli_json(&["pool", "create", "--commission", "12.5", "--cap", "2000", "--from", "bob"]);
    let id = created["id"].as_u64().unwrap().to_string();
    let _: serde_json::Value = node.cli_json(&["pool", "contribute", &id, "1000", "--from", "dave"]);
    let _: serde_json::Value = node.cli_json(&["pool", "contribute", &id, "500.5", "--from", "alice"]);

    let info: phalanx_rpc::PoolInfo = node.cli_json(&["pool", "info", &id]);
    assert_eq!(info.pool.owner, common::dev("bob").public());
    assert_eq!(info.pool.commission, 125_000);
    assert_eq!(info.pool.cap, Some(2_000 * PHA));
    assert_eq!(
        (info.pool.value, info.pool.free, info.pool.shares),
        (1_500_500 * PHA / 1_000, 1_500_500 * PHA / 1_000, 1_500_500 * PHA / 1_000)
    );
    let dave = info.holders.iter().find(|h| h.account == common::dev("dave").public()).unwrap();
    assert_eq!((dave.shares, dave.value), (1_000 * PHA, 1_000 * PHA));
    let list: Vec<phalanx_state::modules::staking::Pool> = node.cli_json(&["pool", "list"]);
    assert_eq!(list.len(), 1);

    // Over the cap, and more than one holds, are refused with the reason.
    let over = run(&node, &["pool", "contribute", &id, "500", "--from", "dave"]);
    assert!(!over.status.success());
    assert!(String::from_utf8_lossy(&over.stderr).contains("cap"), "{}", String::from_utf8_lossy(&over.stderr));
    let greedy = run(&node, &["pool", "withdraw", &id, "1001", "--from", "dave"]);
    assert!(!greedy.status.success());
    assert!(
        String::from_utf8_lossy(&greedy.stderr).contains("worth 1000"),
        "{}",
        String::from_utf8_lossy(&greedy.stderr)
    );

    // Part, then all: all stake is free, so each is paid at once.
    let before = node.cli_json::<serde_json::Value>(&["account", "balance", "dave"]);
    let _: serde_json::Value = node.cli_json(&["pool", "withdraw", &id, "400", "--from", "dave"]);
    let info: phalanx_rpc::PoolInfo = node.cli_json(&["pool", "info", &id]);
    let dave = info.holders.iter().find(|h| h.account == common::dev("dave").public()).unwrap();
    assert_eq!(dave.shares, 600 * PHA);
    assert!(info.pool.withdrawals.is_empty());
    let _: serde_json::Value = node.cli_json(&["pool", "withdraw", &id, "all", "--from", "dave"]);
    let info: phalanx_rpc::PoolInfo = node.cli_json(&["pool", "info", &id]);
    assert!(info.holders.iter().all(|h| h.account != common::dev("dave").public()));
    assert_eq!(info.pool.value, 500_500 * PHA / 1_000);
    let after = node.cli_json::<serde_json::Value>(&["account", "balance", "dave"]);
    assert_ne!(before, after, "dave was paid");

    // A vault: dave puts 300 in, alice (its owner) delegates 200 into the pool.
    let vault: serde_json::Value = node.cli_json(&["vault", "create", "--commission", "5", "--from", "alice"]);
    let vault = vault["id"].as_u64().unwrap().to_string();
    let _: serde_json::Value = node.cli_json(&["vault", "contribute", &vault, "300", "--from", "dave"]);
    let refused = run(&node, &["vault", "delegate", &vault, "--pool", &id, "200", "--from", "dave"]);
    assert!(!refused.status.success(), "only the owner delegates");
    let _: serde_json::Value = node.cli_json(&["vault", "delegate", &vault, "--pool", &id, "200", "--from", "alice"]);
    let info: phalanx_rpc::VaultInfo = node.cli_json(&["vault", "info", &vault]);
    assert_eq!((info.value, info.free), (300 * PHA, 100 * PHA));
    assert_eq!(info.delegated, vec![(id.parse().unwrap(), 200 * PHA, 200 * PHA)]);
    // Dave takes everything: 100 now, the rest once the owner undelegates.
    let _: serde_json::Value = node.cli_json(&["vault", "withdraw", &vault, "all", "--from", "dave"]);
    let info: phalanx_rpc::VaultInfo = node.cli_json(&["vault", "info", &vault]);
    assert_eq!(info.vault.withdrawals.len(), 1);
    let _: serde_json::Value = node.cli_json(&["vault", "undelegate", &vault, "--pool", &id, "all", "--from", "alice"]);
    let info: phalanx_rpc::VaultInfo = node.cli_json(&["vault", "info", &vault]);
    assert!(info.vault.withdrawals.is_empty() && info.holders.is_empty());
    assert_eq!(info.value, 0);

    // Deposits for paid agent calls.
    let _: serde_json::Value = node.cli_json(&["deposit", "add", "2.5", "--from", "dave"]);
    let balance: serde_json::Value = node.cli_json(&["deposit", "balance", "dave"]);
    assert_eq!(balance["deposit"].as_u64(), Some((25 * PHA / 10) as u64));
    let too_much = run(&node, &["deposit", "withdraw", "3", "--from", "dave"]);
    assert!(!too_much.status.success());
    let withdrawn: serde_json::Value = node.cli_json(&["deposit", "withdraw", "2.5", "--from", "dave"]);
    assert!(withdrawn["unbonding_release_at_ms"].as_u64().is_some(), "{withdrawn}");
    let balance: serde_json::Value = node.cli_json(&["deposit", "balance", "dave"]);
    assert_eq!(balance["deposit"].as_u64(), Some(0));
    // Withdrawn deposits unbond (calls admitted before may still be charged) before they are paid back.
    assert_eq!(balance["unbonding"].as_u64(), Some((25 * PHA / 10) as u64), "{balance}");
}
