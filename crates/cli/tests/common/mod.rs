//! Shared harness for the CLI integration tests: start the real `phalanx`
//! binary as a child process on free loopback ports, talk to it over real
//! sockets, sign transactions like a client would.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part of the harness

use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use phalanx_primitives::mnemonic::dev_keypair;
use phalanx_primitives::{Balance, Keypair, PublicKey};
use phalanx_rpc::PhalanxClient;
use phalanx_state::{Call, SignedTransaction, Transaction};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bind to 0, read, release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The first of `count` consecutive free ports on 127.0.0.1, for a dev
/// network's gateways (worker i listens on the first plus i). Picked below
/// the kernel's ephemeral range (32768 and up), so the loopback connections
/// other tests make cannot be holding the second one.
pub fn free_ports(count: u16) -> u16 {
    loop {
        let first = 20_000 + rand::random::<u16>() % 12_000;
        let all_free = (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", first + i)).is_ok());
        if all_free {
            return first;
        }
    }
}

pub fn phalanx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_phalanx"))
}

/// A running `phalanx dev` process.
pub struct DevNode {
    pub child: Child,
    pub rpc_port: u16,
    pub p2p_port: u16,
    pub data_dir: PathBuf,
    /// Set once this process printed that it is running (so a test never
    /// mistakes another process on the same port for its own).
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    log: Option<PathBuf>,
}

/// The line `phalanx dev` prints once it serves RPC.
const READY_LINE: &str = "phalanx dev network running";

impl DevNode {
    pub fn start(data_dir: &Path) -> DevNode {
        Self::start_on(data_dir, free_port(), free_port())
    }

    /// Starts a dev network without workers (tests that want them use [`DevNode::start_with`]).
    pub fn start_on(data_dir: &Path, rpc_port: u16, p2p_port: u16) -> DevNode {
        Self::start_with(data_dir, rpc_port, p2p_port, &["--workers", "0"])
    }

    pub fn start_with(data_dir: &Path, rpc_port: u16, p2p_port: u16, extra: &[&str]) -> DevNode {
        Self::spawn(data_dir, rpc_port, p2p_port, extra, None, None)
    }

    /// Like [`DevNode::start_with`], with the open-files limit (soft and hard) set to `open_files`.
    pub fn start_limited(data_dir: &Path, rpc_port: u16, extra: &[&str], open_files: u64) -> DevNode {
        Self::spawn(data_dir, rpc_port, free_port(), extra, None, Some(open_files))
    }

    /// Like [`DevNode::start_with`], with everything it logs (at debug level) in `log`.
    pub fn start_logged(data_dir: &Path, extra: &[&str], log: &Path) -> DevNode {
        Self::spawn(data_dir, free_port(), free_port(), extra, Some(log), None)
    }

    fn spawn(
        data_dir: &Path,
        rpc_port: u16,
        p2p_port: u16,
        extra: &[&str],
        log: Option<&Path>,
        open_files: Option<u64>,
    ) -> DevNode {
        // `prlimit` (util-linux) sets the limit and execs phalanx in the same process.
        let mut command = match open_files {
            None => phalanx(),
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command.arg(format!("--nofile={limit}:{limit}")).arg(env!("CARGO_BIN_EXE_phalanx"));
                command
            }
        };
        command
            .args(["dev", "--data-dir"])
            .arg(data_dir)
            .args(["--rpc-port", &rpc_port.to_string(), "--p2p-port", &p2p_port.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(log) = log {
            let file = std::fs::File::create(log).unwrap();
            command.env("RUST_LOG", "debug").stdout(file.try_clone().unwrap()).stderr(file);
        }
        let mut child = command.spawn().expect("start phalanx dev");
        let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(stdout) = child.stdout.take() {
            let ready = ready.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.starts_with(READY_LINE) {
                        ready.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
        let mut node = DevNode {
            child,
            rpc_port,
            p2p_port,
            data_dir: data_dir.to_path_buf(),
            ready,
            log: log.map(Path::to_path_buf),
        };
        node.wait_ready();
        node
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    pub fn client(&self) -> HttpClient {
        HttpClientBuilder::default().request_timeout(Duration::from_secs(10)).build(self.url()).unwrap()
    }

    /// Waits until this process says it runs and its RPC answers.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("phalanx dev exited ({status}) before it was ready (is port {} taken?)", self.rpc_port);
            }
            let said = match &self.log {
                Some(log) => std::fs::read_to_string(log).unwrap_or_default().contains(READY_LINE),
                None => self.ready.load(std::sync::atomic::Ordering::SeqCst),
            };
            if said && runtime.block_on(self.client().chain_head()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("phalanx dev did not answer on {} within 60 s", self.url());
    }

    /// Runs a CLI command against this node and parses its `--json` output
    /// (typed, so integer planck beyond 2^64 stays exact).
    pub fn cli_json<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> T {
        let output = phalanx().args(args).args(["--rpc", &self.url(), "--json"]).output().unwrap();
        assert!(output.status.success(), "phalanx {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed transfer.
pub fn transfer(
    chain_id: phalanx_primitives::Hash,
    from: &Keypair,
    nonce: u64,
    to: PublicKey,
    amount: Balance,
) -> SignedTransaction {
    Transaction {
        chain_id,
        signer: from.public(),
        nonce,
        fee: phalanx_primitives::PLANCK_PER_PHA / 100,
        call: Call::Transfer { to, amount },
    }
    .sign(from)
}

pub fn dev(name: &str) -> Keypair {
    dev_keypair(name).unwrap()
}

pub fn hex_tx(tx: &SignedTransaction) -> String {
    format!("0x{}", hex::encode(tx.encode()))
}

/// Waits until the finalized height reaches `height`.
pub async fn wait_height(client: &HttpClient, height: u64) -> u64 {
    let started = Instant::now();
    loop {
        let head = client.chain_head().await.unwrap();
        if head.height >= height {
            return head.height;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "height stuck at {}", head.height);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a CLI command against `node` (no `--json` added).
pub fn run(node: &DevNode, args: &[&str]) -> std::process::Output {
    run_at(&node.url(), args)
}

/// Runs a CLI command against the node RPC at `url`.
pub fn run_at(url: &str, args: &[&str]) -> std::process::Output {
    phalanx().args(args).args(["--rpc", url]).env("RUST_BACKTRACE", "0").output().unwrap()
}

/// Polls `done` every 300 ms until it holds; fails the test after 120 s
/// (generous: CI machines are shared and slow).
pub fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(120), "{what} did not happen within 120 s");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Deploys `source` as `from` once the dev cluster exists; returns the agent id.
pub fn deploy(node: &DevNode, source: &Path, from: &str) -> String {
    deploy_at(&node.url(), source, from)
}

/// [`deploy`] through the node RPC at `url`.
pub fn deploy_at(url: &str, source: &Path, from: &str) -> String {
    let mut deployed = None;
    until("deployment", || {
        let output = run_at(url, &["agent", "deploy", source.to_str().unwrap(), "--from", from, "--json"]);
        deployed = serde_json::from_slice::<serde_json::Value>(&output.stdout).ok();
        output.status.success()
    });
    deployed.unwrap()["id"].as_str().unwrap().to_string()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() { pending.push(path) } else { out.push(path) }
        }
    }
    out
}

/// A child process killed and reaped when the test ends, however it ends.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
pub mod testnet;
