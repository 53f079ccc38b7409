//! `phalanx dev` as a user runs it: the real binary on loopback ports. The
//! chain finalizes, transfers move PHA and pay the treasury, the supply never
//! changes, and a `kill -9` under load loses no finalized transaction.

mod common;

use common::{DevNode, dev, hex_tx, transfer, wait_height};
use phalanx_primitives::{PLANCK_PER_PHA, PublicKey};
use phalanx_rpc::{PhalanxClient, TxStatus};
use phalanx_state::TOTAL_SUPPLY;
use std::collections::BTreeMap;
use std::time::Duration;

/// The `--json` output of `account transfer`.
#[derive(serde::Deserialize)]
struct TransferOutput {
    amount: u128,
    fee: u128,
    status: TxStatus,
}

/// Finalized head rises; a CLI transfer moves funds, pays the fee to the
/// treasury, and leaves the total supply unchanged.
#[test]
fn transfer_through_the_cli_changes_balances_and_pays_the_treasury() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = node.client();
    let first = runtime.block_on(wait_height(&client, 1));
    let later = runtime.block_on(wait_height(&client, first + 2));
    assert!(later > first, "finalized height must rise");

    let info = runtime.block_on(client.chain_info()).unwrap();
    let treasury = info.params.treasury.to_string();
    let balance = |who: &str| node.cli_json::<phalanx_rpc::AccountInfo>(&["account", "balance", who]).free;
    let (alice_before, bob_before, treasury_before) = (balance("alice"), balance("bob"), balance(&treasury));

    let result: TransferOutput = node.cli_json(&["account", "transfer", "--from", "alice", "--to", "bob", "1.5"]);
    assert!(matches!(result.status, TxStatus::Finalized { .. }), "{:?}", result.status);
    let fee = result.fee;
    assert!(fee > 0);
    assert_eq!(result.amount, 1_500_000_000_000);

    assert_eq!(balance("alice"), alice_before - 1_500_000_000_000 - fee);
    assert_eq!(balance("bob"), bob_before + 1_500_000_000_000);
    assert_eq!(balance(&treasury), treasury_before + fee);
    let total: u128 = ["alice", "bob", "charlie", "dave", treasury.as_str()].iter().map(|who| balance(who)).sum();
    assert_eq!(total, TOTAL_SUPPLY, "genesis accounts hold the whole supply");
    let info = runtime.block_on(client.chain_info()).unwrap();
    assert_eq!(info.total_issuance, TOTAL_SUPPLY);

    // The block holding the transfer carries a certificate that checks out
    // against the validator set alone, and the subscription streams heads.
    runtime.block_on(async {
        let TxStatus::Finalized { height, .. } = result.status else { unreachable!() };
        let block = client.chain_block(height).await.unwrap().unwrap();
        let validators: Vec<PublicKey> = info.validators.iter().map(|v| v.parse().expect("validator key")).collect();
        let certificate = hex::decode(block.certificate.trim_start_matches("0x")).unwrap();
        let epoch = height / phalanx_node::dev::dev_genesis().consensus.epoch_blocks;
        let certified = phalanx_node::consensus::certificate::verify(
            &mut rand::rng(),
            &validators,
            block.hash,
            epoch,
            &certificate,
        )
        .unwrap();
        assert_eq!(certified.block, block.hash);
        let mut forged = certificate.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert!(
            phalanx_node::consensus::certificate::verify(&mut rand::rng(), &validators, block.hash, epoch, &forged)
                .is_err()
        );

        let ws = jsonrpsee::ws_client::WsClientBuilder::default()
            .build(format!("ws://127.0.0.1:{}", node.rpc_port))
            .await
            .unwrap();
        let mut heads = ws.chain_subscribe_finalized().await.unwrap();
        let first = heads.next().await.unwrap().unwrap();
        let second = heads.next().await.unwrap().unwrap();
        assert_eq!(second.height, first.height + 1);
    });

    // Human output prints PHA.
    let human = common::phalanx().args(["account", "balance", "bob", "--rpc", &node.url()]).output().unwrap();
    assert!(String::from_utf8_lossy(&human.stdout).contains("10000001.5 PHA"));
}

/// Kill -9 while transactions stream in; on restart every transaction that
/// was finalized before the kill is still there, at the same place, the
/// chain continues from where it was, and balances add up exactly.
#[test]
fn kill_9_under_load_loses_no_finalized_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path());
    let (rpc_port, p2p_port) = (node.rpc_port, node.p2p_port);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = node.client();
    runtime.block_on(wait_height(&client, 1));
    let chain_id = runtime.block_on(client.chain_info()).unwrap().chain_id;
    let charlie = dev("charlie");
    let bob: PublicKey = dev("bob").public();
    let amount = PLANCK_PER_PHA;
    let txs: Vec<_> = (0..3_000).map(|nonce| transfer(chain_id, &charlie, nonce, bob, amount)).collect();
    let charlie_start = runtime.block_on(client.state_account(charlie.public().to_string())).unwrap();

    // Stream transactions in from a background thread; it stops at the first error (the kill).
    let url = node.url();
    let payload: Vec<String> = txs.iter().map(hex_tx).collect();
    let loader = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client = jsonrpsee::http_client::HttpClientBuilder::default().build(url).unwrap();
        let mut sent = 0;
        for tx in payload {
            if runtime.block_on(client.tx_submit(tx)).is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    // Let several blocks with transactions finalize, then record what is final.
    let mut before = BTreeMap::new();
    runtime.block_on(async {
        let start = client.chain_head().await.unwrap().height;
        loop {
            let head = client.chain_head().await.unwrap();
            let block = client.chain_block(head.height).await.unwrap().unwrap();
            if head.height >= start + 3 && block.header.tx_count > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let head = client.chain_head().await.unwrap().height;
        for height in 1..=head {
            let block = client.chain_block(height).await.unwrap().unwrap();
            let hashes: Vec<_> = block.txs.iter().map(|t| t.hash).collect();
            before.insert(height, (block.hash, hashes));
        }
    });
    node.kill_9();
    let sent = loader.join().unwrap();
    let finalized_before: usize = before.values().map(|(_, txs)| txs.len()).sum();
    assert!(finalized_before > 0 && finalized_before < sent, "kill happened mid-load ({finalized_before} of {sent})");

    let node = DevNode::start_on(dir.path(), rpc_port, p2p_port);
    let client = node.client();
    let last_before = *before.keys().last().unwrap();
    runtime.block_on(async {
        let resumed = wait_height(&client, last_before + 2).await;
        assert!(resumed > last_before);
        for (height, (hash, tx_hashes)) in &before {
            let block = client.chain_block(*height).await.unwrap().expect("finalized block survives");
            assert_eq!(&block.hash, hash, "block {height} changed after restart");
            for (index, tx) in tx_hashes.iter().enumerate() {
                let status = client.tx_status(*tx).await.unwrap();
                assert_eq!(status, TxStatus::Finalized { height: *height, index: index as u32 });
            }
        }
        // Balances agree exactly with the finalized transactions.
        let charlie_now = client.state_account(charlie.public().to_string()).await.unwrap();
        let applied = charlie_now.nonce - charlie_start.nonce;
        assert!(applied as usize >= finalized_before);
        let fee = PLANCK_PER_PHA / 100;
        assert_eq!(charlie_now.free, charlie_start.free - applied as u128 * (amount + fee));
        let info = client.chain_info().await.unwrap();
        assert_eq!(info.total_issuance, TOTAL_SUPPLY);
    });
}
