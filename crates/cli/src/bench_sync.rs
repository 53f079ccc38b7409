//! `phalanx bench sync`: how fast fresh nodes catch up with a chain of many
//! small blocks.
//!
//! Writes a testnet whose validators propose as fast as consensus goes (1 ms
//! pacing), starts them all, and waits until they have finalized
//! `--blocks` blocks. Then, in the same run, the last validator loses its
//! data directory (killed with SIGKILL, folder removed) and restarts empty,
//! twice: once syncing over p2p only (consensus backfill, its config
//! without `follow`), once as `testnet init` configures it (block sync over
//! its peers' RPC, then consensus); a fresh non-validator node follows the
//! chain over RPC, replaying every block; and another joins by state sync
//! (verified state at the head, then the blocks since). Each is timed to the height the chain had when it
//! started. Every block carries a certificate the node checks and is
//! committed durably, so these are the per-block costs of sync, not of
//! transaction execution (`bench chain` and `bench worker` measure that).

use crate::bench::Network;
use anyhow::Context;
use jsonrpsee::http_client::HttpClientBuilder;
use phalanx_rpc::PhalanxClient;
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) async fn run(blocks: u64, validators: usize, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(blocks > 0, "need at least one block");
    let data_dir = crate::bench::tempfile_dir()?;
    let network = Network::start(&data_dir, validators, Some(1), false).await?;
    let client = HttpClientBuilder::default().request_timeout(Duration::from_secs(10)).build(&network.urls[0])?;
    let started = Instant::now();
    crate::testnet::wait_until(
        &format!("the validators to finalize {blocks} blocks"),
        Duration::from_secs(1_800),
        || async { client.chain_head().await.is_ok_and(|head| head.height >= blocks) },
    )
    .await?;
    let height = client.chain_head().await?.height;
    let production_rate = height as f64 / started.elapsed().as_secs_f64();
    let dir = network.testnet.clone().context("a testnet")?;
    let (p2p_blocks, p2p_s) = fresh_validator(&dir, &client, false).await?;
    let (rpc_blocks, rpc_s) = fresh_validator(&dir, &client, true).await?;
    let height = client.chain_head().await?.height;
    let (follower_blocks, follower_s) = network.follower_catch_up(&data_dir, height, false).await?;
    let height = client.chain_head().await?.height;
    let (joined_blocks, joined_s) = network.follower_catch_up(&data_dir, height, true).await?;
    drop(network);
    let _ = std::fs::remove_dir_all(&data_dir);
    let p2p_rate = p2p_blocks as f64 / p2p_s;
    let rpc_rate = rpc_blocks as f64 / rpc_s;
    let follower_rate = follower_blocks as f64 / follower_s;
    // What replaying 5,000 blocks costs a fresh node, at the rate measured above.
    let replay_5000_s = 5_000.0 / follower_rate;
    let report = serde_json::json!({
        "validators": validators,
        "blocks": height,
        "production_blocks_per_s": production_rate,
        "fresh_validator_p2p_only_blocks": p2p_blocks,
        "fresh_validator_p2p_only_blocks_per_s": p2p_rate,
        "fresh_validator_blocks": rpc_blocks,
        "fresh_validator_blocks_per_s": rpc_rate,
        "fresh_follower_blocks": follower_blocks,
        "fresh_follower_blocks_per_s": follower_rate,
        "validator_to_p2p_only_ratio": rpc_rate / p2p_rate,
        "validator_to_follower_ratio": rpc_rate / follower_rate,
        "state_sync_join_blocks": joined_blocks,
        "state_sync_join_s": joined_s,
        "replay_5000_blocks_s": replay_5000_s,
        "state_sync_to_replay_5000_ratio": joined_s / replay_5000_s,
    });
    crate::output::emit(json, &report, || {
        format!(
            "{validators} validators finalized {height} blocks at {production_rate:.0} blocks/s\n\
             a fresh validator over p2p only (consensus backfill): {p2p_blocks} blocks in {p2p_s:.1} s, {p2p_rate:.0} blocks/s\n\
             a fresh validator (RPC catch-up, then consensus): {rpc_blocks} blocks in {rpc_s:.1} s, {rpc_rate:.0} blocks/s ({:.2}x p2p only)\n\
             a fresh non-validator node: {follower_blocks} blocks in {follower_s:.1} s, {follower_rate:.0} blocks/s \
             (5,000 blocks: {replay_5000_s:.1} s)\n\
             a fresh non-validator node joining by state sync: at block {joined_blocks} in {joined_s:.1} s \
             ({:.2}x the time to replay 5,000 blocks)",
            rpc_rate / p2p_rate,
            joined_s / replay_5000_s
        )
    })
}

/// Kills the testnet's last validator, empties its data directory, starts
/// it again (catching up over its peers' RPC if `follow`, else over p2p
/// only) and times it to the height the chain had then: (blocks, seconds).
async fn fresh_validator(
    dir: &Path,
    client: &jsonrpsee::http_client::HttpClient,
    follow: bool,
) -> anyhow::Result<(u64, f64)> {
    use rustix::process::{Pid, Signal, kill_process};
    let manifest = crate::testnet::manifest(dir)?;
    let member = manifest.members.iter().rfind(|m| m.role == "validator").context("no validators")?;
    let folder = dir.join(&member.name);
    let pid: i32 = std::fs::read_to_string(folder.join("pid"))?.trim().parse()?;
    let _ = kill_process(Pid::from_raw(pid).context("a positive pid")?, Signal::KILL);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let config_path = folder.join("config.toml");
    let mut config: phalanx_node::service::NodeFile = toml::from_str(&std::fs::read_to_string(&config_path)?)?;
    std::fs::remove_dir_all(folder.join(&config.data_dir))?;
    let others: Vec<String> = manifest
        .members
        .iter()
        .filter(|m| m.role == "validator" && m.name != member.name)
        .map(|m| m.rpc.clone())
        .collect();
    config.follow = if follow { others } else { Vec::new() };
    std::fs::write(&config_path, toml::to_string_pretty(&config)?)?;
    let height = client.chain_head().await?.height;
    let fresh = HttpClientBuilder::default().request_timeout(Duration::from_secs(5)).build(&member.rpc)?;
    let started = Instant::now();
    let config = config_path.to_string_lossy().into_owned();
    crate::testnet::spawn(&folder, &["node".into(), "--config".into(), config])?;
    crate::testnet::wait_until("the fresh validator to catch up", Duration::from_secs(900), || async {
        fresh.chain_head().await.is_ok_and(|head| head.height >= height)
    })
    .await?;
    Ok((height, started.elapsed().as_secs_f64()))
}
