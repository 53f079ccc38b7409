//! A testnet of separate processes (`phalanx testnet init` / `up`), stopped
//! by `testnet down` when the guard drops, and the small RPC probes the
//! multi-process tests share.

use super::{Reaped, phalanx, run_at, until};
use std::path::{Path, PathBuf};

/// Writes a testnet into `dir` with `phalanx testnet init DIR ARGS --base-port BASE`.
pub fn init(dir: &Path, base: u16, args: &[&str]) {
    let init = phalanx()
        .args(["testnet", "init"])
        .arg(dir)
        .args(args)
        .args(["--base-port", &base.to_string()])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
}

/// A running testnet; dropping it runs `testnet down`.
pub struct Testnet {
    pub dir: PathBuf,
    /// What `testnet up` printed.
    pub printed: String,
}

impl Testnet {
    /// `phalanx testnet up DIR`, which must succeed.
    pub fn up(dir: &Path) -> Testnet {
        let up = phalanx().args(["testnet", "up"]).arg(dir).output().unwrap();
        let net = Testnet { dir: dir.to_path_buf(), printed: String::from_utf8_lossy(&up.stdout).into_owned() };
        assert!(up.status.success(), "testnet up: {}\n{}", String::from_utf8_lossy(&up.stderr), net.printed);
        net
    }

    pub fn manifest(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("testnet.json")).unwrap()).unwrap()
    }

    /// A member's entry in `testnet.json`.
    pub fn member(&self, name: &str) -> serde_json::Value {
        let manifest = self.manifest();
        manifest["members"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap().clone()
    }

    pub fn rpc(&self, name: &str) -> String {
        self.member(name)["rpc"].as_str().unwrap().to_string()
    }

    pub fn pid(&self, name: &str) -> i32 {
        std::fs::read_to_string(self.dir.join(name).join("pid")).unwrap().trim().parse().unwrap()
    }

    /// The text a member serves at `/metrics`.
    pub fn metrics(&self, name: &str) -> String {
        let port = self.member(name)["metrics_port"].as_u64().unwrap();
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics")).unwrap().text().unwrap()
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let _ = phalanx().args(["testnet", "down"]).arg(&self.dir).output();
    }
}

/// The value of the first metric line starting with `name`.
pub fn metric(text: &str, name: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

pub fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

pub fn kill_9(pid: i32) {
    let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    until("the killed process to exit", || !alive(pid));
}

/// The finalized head of the node at `rpc` (height and hash), if it answers.
pub fn head(rpc: &str) -> Option<(u64, String)> {
    let output = run_at(rpc, &["chain", "head", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    Some((value["height"].as_u64()?, value["hash"].as_str()?.to_string()))
}

/// The finalized height at `rpc` (0 if it does not answer).
pub fn height(rpc: &str) -> u64 {
    head(rpc).map_or(0, |(h, _)| h)
}

pub fn block_hash(rpc: &str, height: u64) -> String {
    let output = run_at(rpc, &["chain", "block", &height.to_string(), "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()["hash"].as_str().unwrap().to_string()
}

/// 1 PHA from the dev account `from` to `to`, submitted at `rpc`.
pub fn transfer(rpc: &str, from: &str, to: &str) {
    let output = run_at(rpc, &["account", "transfer", "--from", from, "--to", to, "1"]);
    assert!(output.status.success(), "transfer via {rpc}: {}", String::from_utf8_lossy(&output.stderr));
}

pub fn free(rpc: &str, who: &str) -> u128 {
    let output = run_at(rpc, &["account", "balance", who, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice::<phalanx_rpc::AccountInfo>(&output.stdout).unwrap().free
}

/// Starts a non-validator node in `dir` for the chain of `genesis`,
/// following `upstream`, serving RPC on `rpc_port`; its log is `dir/log`.
pub fn start_follower(dir: &Path, genesis: &Path, upstream: &str, rpc_port: u16) -> Reaped {
    start_follower_with(dir, genesis, upstream, rpc_port, "")
}

/// [`start_follower`] with more lines of config (`state_sync = true`).
pub fn start_follower_with(dir: &Path, genesis: &Path, upstream: &str, rpc_port: u16, extra: &str) -> Reaped {
    std::fs::create_dir_all(dir).unwrap();
    let config = format!(
        "data_dir = \"data\"\ngenesis = {:?}\nrpc_listen = \"127.0.0.1:{rpc_port}\"\nfollow = [\"{upstream}\"]\n{extra}\n",
        genesis.display().to_string()
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    Reaped(
        phalanx()
            .args(["node", "--log-json", "--config"])
            .arg(dir.join("config.toml"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}
