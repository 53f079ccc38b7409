//! Hostile and careless input over real sockets: garbage bodies, oversized
//! requests, malformed transactions, bad signatures, wrong nonces,
//! overdrafts and unknown accounts. Each gets a clear error, nothing
//! changes, and the node keeps finalizing.

mod common;

use common::{DevNode, dev, hex_tx, transfer, wait_height};
use jsonrpsee::core::ClientError;
use phalanx_primitives::{Keypair, PLANCK_PER_PHA};
use phalanx_rpc::{PhalanxClient, codes};

fn expect_error<T: std::fmt::Debug>(result: Result<T, ClientError>, code: i32, needle: &str) {
    match result {
        Err(ClientError::Call(error)) => {
            assert_eq!(error.code(), code, "{}", error.message());
            assert!(error.message().contains(needle), "{:?} does not mention {needle:?}", error.message());
        }
        other => panic!("expected error {code} ({needle}), got {other:?}"),
    }
}

/// Every kind of bad input is refused with a precise error and changes nothing.
#[test]
fn bad_input_is_refused_and_the_node_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = node.client();
    let http = reqwest::blocking::Client::new();

    runtime.block_on(wait_height(&client, 1));
    let chain_id = runtime.block_on(client.chain_info()).unwrap().chain_id;
    let (alice, bob) = (dev("alice"), dev("bob"));
    let alice_before = runtime.block_on(client.state_account(alice.public().to_string())).unwrap();

    // Garbage and oversized bodies at the HTTP layer.
    let garbage = http.post(node.url()).header("content-type", "application/json").body("{not json").send().unwrap();
    let body: serde_json::Value = garbage.json().unwrap();
    assert_eq!(body["error"]["code"], -32700, "{body}");
    let huge = "x".repeat(3 * 1024 * 1024); // beyond the 2.5 MiB request limit
    // The server answers 413 as soon as the length is over the limit; the
    // client may still be writing and see the connection closed instead.
    match http.post(node.url()).header("content-type", "application/json").body(huge).send() {
        Ok(oversized) => assert_eq!(oversized.status(), 413),
        Err(error) => assert!(error.is_request(), "{error}"),
    }
    // A fresh client: the pooled connection may be the one the server just
    // closed after the oversized body (hyper then reports an incomplete message).
    let http = reqwest::blocking::Client::new();
    let unknown = http
        .post(node.url())
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"no_such_method","params":[]}"#)
        .send()
        .unwrap();
    assert_eq!(unknown.json::<serde_json::Value>().unwrap()["error"]["code"], -32601);

    runtime.block_on(async {
        // Malformed transactions.
        expect_error(client.tx_submit("zz".into()).await, codes::MALFORMED_TX, "not hex");
        expect_error(client.tx_submit("0x00".into()).await, codes::MALFORMED_TX, "malformed");
        let oversized_tx = format!("0x{}", "00".repeat(1_100_000)); // beyond the ~1 MiB of an agent deployment
        expect_error(client.tx_submit(oversized_tx).await, codes::MALFORMED_TX, "more than the limit");
        let mut trailing = hex_tx(&transfer(chain_id, &alice, alice_before.nonce, bob.public(), 1));
        trailing.push_str("00");
        expect_error(client.tx_submit(trailing).await, codes::MALFORMED_TX, "malformed");

        // Well-formed but invalid.
        let mut forged = transfer(chain_id, &alice, alice_before.nonce, bob.public(), 1);
        forged.signature.0[5] ^= 0x40;
        expect_error(client.tx_submit(hex_tx(&forged)).await, codes::INVALID_TX, "bad signature");
        let ahead = transfer(chain_id, &alice, alice_before.nonce + 5, bob.public(), 1);
        expect_error(client.tx_submit(hex_tx(&ahead)).await, codes::INVALID_TX, "ahead of");
        let overdraft = transfer(chain_id, &alice, alice_before.nonce, bob.public(), alice_before.free);
        expect_error(client.tx_submit(hex_tx(&overdraft)).await, codes::INVALID_TX, "insufficient balance");
        let stranger = Keypair::from_seed(&[0x5a; 32]);
        let unknown_account = transfer(chain_id, &stranger, 0, bob.public(), 1);
        expect_error(client.tx_submit(hex_tx(&unknown_account)).await, codes::INVALID_TX, "does not exist");
        let other_chain = transfer(phalanx_primitives::Hash([7; 32]), &alice, alice_before.nonce, bob.public(), 1);
        expect_error(client.tx_submit(hex_tx(&other_chain)).await, codes::INVALID_TX, "is for chain");
        expect_error(client.state_account("not-an-address".into()).await, codes::INVALID_PARAMS, "invalid address");

        // A valid transaction is accepted once; the replay is refused.
        let good = transfer(chain_id, &alice, alice_before.nonce, bob.public(), PLANCK_PER_PHA);
        client.tx_submit(hex_tx(&good)).await.unwrap();
        expect_error(client.tx_submit(hex_tx(&good)).await, codes::ALREADY_KNOWN, "already waiting");

        // Nothing but the good transaction changed alice's account, and the chain moves on.
        let head = client.chain_head().await.unwrap().height;
        wait_height(&client, head + 2).await;
        let alice_after = client.state_account(alice.public().to_string()).await.unwrap();
        assert_eq!(alice_after.nonce, alice_before.nonce + 1);
        assert_eq!(alice_after.free, alice_before.free - PLANCK_PER_PHA - PLANCK_PER_PHA / 100);
        expect_error(client.tx_submit(hex_tx(&good)).await, codes::STALE_NONCE, "already used");
    });
}
