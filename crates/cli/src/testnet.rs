//! `phalanx testnet init|up|down`: a multi-node network on loopback, every
//! role its own process.
//!
//! `init DIR` writes `DIR/genesis.json` (the dev accounts, the validators'
//! keys, one funded operator account per worker and gatekeeper, simulated
//! evidence accepted), `DIR/testnet.json` (who is who, ports) and one folder
//! per member: `validator-N/` (`config.toml`, `validator.key`), and
//! `gatekeeper-N/`, `worker-N/` (`operator.phrase`). Key files are written
//! 0600: this is a test network on one machine. `--spare-validators K`
//! adds K validator nodes whose keys are not in the genesis set: they
//! observe until governance names them (`phalanx chain set-validators`).
//!
//! `up DIR` starts every member as a detached child process (`phalanx node
//! --config …`, `phalanx worker …`) with its log in `NAME/log` and its pid
//! in `NAME/pid`, waits for blocks to finalize and for the workers to
//! register, puts the workers in a cluster (governance: alice), and prints
//! every endpoint. `down DIR` stops them (SIGTERM, then SIGKILL after 10 s).

use anyhow::{Context, bail};
use phalanx_primitives::{Keypair, PLANCK_PER_PHA, PublicKey};
use phalanx_rpc::PhalanxClient as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Most members of each role `init` writes.
pub(crate) const MEMBERS_MAX: usize = 32;
/// PHA given to each worker's and gatekeeper's operator account at genesis.
const OPERATOR_PHA: u128 = 1_000_000;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TestnetCommand {
    /// Write the genesis, keys and configs of a testnet into DIR.
    Init {
        dir: PathBuf,
        #[command(flatten)]
        layout: Layout,
    },
    /// Start every member of the testnet in DIR as its own process.
    Up {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Stop every member of the testnet in DIR.
    Down { dir: PathBuf },
}

/// Who is in a testnet, and where.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct Layout {
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Validator nodes not in the genesis set (they observe until governance names them).
    #[arg(long, default_value_t = 0)]
    pub spare_validators: usize,
    #[arg(long, default_value_t = 2)]
    pub gatekeepers: usize,
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// First port: validators' p2p at PORT+i, RPC at PORT+100+i, worker
    /// gateways at PORT+200+i, every member's metrics at PORT+300+n.
    #[arg(long, default_value_t = 40000)]
    pub base_port: u16,
    /// Blocks per consensus epoch (validator set changes take over between epochs).
    #[arg(long)]
    pub epoch_blocks: Option<u64>,
}

/// One member of a testnet, as `testnet.json` lists it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Member {
    pub name: String,
    /// `validator`, `gatekeeper` or `worker`.
    pub role: String,
    /// Validators: their RPC. Workers and gatekeepers: the node they follow.
    pub rpc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_port: Option<u16>,
    /// Prometheus metrics at `/metrics` on this port of 127.0.0.1.
    pub metrics_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<PublicKey>,
    /// Validators: not in the genesis set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spare: bool,
    /// Validators: the consensus key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_key: Option<PublicKey>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Manifest {
    pub chain_id: phalanx_primitives::Hash,
    pub members: Vec<Member>,
}

pub(crate) async fn run(command: TestnetCommand) -> anyhow::Result<()> {
    match command {
        TestnetCommand::Init { dir, layout } => {
            let chain_id = init(&dir, &layout)?;
            let Layout { validators, spare_validators, gatekeepers, workers, .. } = layout;
            println!(
                "testnet written to {} (chain {chain_id}): {validators} validators (+{spare_validators} spare), {gatekeepers} gatekeepers, {workers} workers\nstart it with: phalanx testnet up {}",
                dir.display(),
                dir.display()
            );
            Ok(())
        }
        TestnetCommand::Up { dir, json } => up(&dir, json).await,
        TestnetCommand::Down { dir } => {
            let stopped = down(&dir)?;
            println!("testnet {} stopped ({stopped} processes)", dir.display());
            Ok(())
        }
    }
}

fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

pub(crate) fn init(dir: &Path, layout: &Layout) -> anyhow::Result<phalanx_primitives::Hash> {
    let Layout { validators, spare_validators: spare, gatekeepers, workers, base_port, epoch_blocks } = *layout;
    if !(1..=MEMBERS_MAX).contains(&validators)
        || validators + spare > MEMBERS_MAX
        || gatekeepers > MEMBERS_MAX
        || workers > MEMBERS_MAX
    {
        bail!(
            "a testnet has 1 to {MEMBERS_MAX} validators (spares included) and at most {MEMBERS_MAX} gatekeepers and workers"
        );
    }
    if gatekeepers == 0 && workers > 0 {
        bail!("workers need a gatekeeper to receive keys: use --gatekeepers 1 or more");
    }
    if base_port.checked_add(300 + 3 * MEMBERS_MAX as u16).is_none() {
        bail!("--base-port {base_port} leaves no room for the testnet's ports");
    }
    if dir.join("testnet.json").exists() {
        bail!("{} already holds a testnet (testnet.json); choose another folder", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let mut seeds = Vec::new();
    for _ in 0..validators + spare {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).context("the operating system gave no randomness")?;
        seeds.push(seed);
    }
    let keys: Vec<PublicKey> = seeds.iter().map(|seed| Keypair::from_seed(seed).public()).collect();
    let mut genesis = phalanx_state::Genesis::dev(keys[..validators].to_vec());
    if let Some(epoch_blocks) = epoch_blocks {
        genesis.consensus.epoch_blocks = epoch_blocks;
    }
    genesis.chain_name = "phalanx-testnet".into();
    genesis.timestamp_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).context("clock before 1970")?.as_millis()
            as u64;
    genesis.gatekeeper.gatekeepers_max = gatekeepers.max(1) as u32;

    let mut members = Vec::new();
    let rpc_of = |i: usize| format!("http://127.0.0.1:{}", base_port + 100 + i as u16);
    for (i, seed) in seeds.iter().enumerate() {
        let name = format!("validator-{i}");
        let folder = dir.join(&name);
        std::fs::create_dir_all(&folder)?;
        write_secret(&folder.join("validator.key"), &hex::encode(seed.as_slice()))?;
        // The genesis validators' addresses; spares' come from the chain
        // once governance names them.
        let bootstrap: Vec<phalanx_node::service::Peer> = keys[..validators]
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, key)| phalanx_node::service::Peer {
                public_key: *key,
                address: ([127, 0, 0, 1], base_port + j as u16).into(),
            })
            .collect();
        let config = phalanx_node::service::NodeFile {
            data_dir: "data".into(),
            genesis: "../genesis.json".into(),
            key_file: Some("validator.key".into()),
            p2p_listen: Some(([127, 0, 0, 1], base_port + i as u16).into()),
            // Catch up from the other genesis validators' RPC before consensus.
            follow: (0..validators).filter(|j| *j != i).map(rpc_of).collect(),
            state_sync: false,
            rpc_listen: ([127, 0, 0, 1], base_port + 100 + i as u16).into(),
            metrics_listen: Some(([127, 0, 0, 1], base_port + 300 + i as u16).into()),
            bootstrap,
            min_block_interval_ms: 50,
            empty_block_interval_ms: 500,
        };
        std::fs::write(folder.join("config.toml"), toml::to_string_pretty(&config)?)?;
        members.push(Member {
            name,
            role: "validator".into(),
            rpc: rpc_of(i),
            p2p: Some(format!("127.0.0.1:{}", base_port + i as u16)),
            gateway_port: None,
            metrics_port: base_port + 300 + i as u16,
            operator: None,
            spare: i >= validators,
            validator_key: Some(keys[i]),
        });
    }
    let treasury = genesis.params.treasury;
    let roles = (0..gatekeepers).map(|i| ("gatekeeper", i)).chain((0..workers).map(|i| ("worker", i)));
    for (k, (role, i)) in roles.enumerate() {
        let name = format!("{role}-{i}");
        let folder = dir.join(&name);
        std::fs::create_dir_all(&folder)?;
        let (phrase, operator) = phalanx_primitives::mnemonic::generate();
        write_secret(&folder.join("operator.phrase"), &phrase)?;
        let amount = OPERATOR_PHA * PLANCK_PER_PHA;
        let from_treasury = genesis.balances.iter_mut().find(|(who, _)| *who == treasury).context("no treasury")?;
        from_treasury.1 = from_treasury.1.checked_sub(amount).context("the treasury cannot fund the operators")?;
        genesis.balances.push((operator.public(), amount));
        members.push(Member {
            name,
            role: role.into(),
            rpc: rpc_of(k % validators),
            p2p: None,
            gateway_port: (role == "worker").then_some(base_port + 200 + i as u16),
            metrics_port: base_port + 300 + (validators + spare + k) as u16,
            operator: Some(operator.public()),
            spare: false,
            validator_key: None,
        });
    }
    genesis.build().context("the testnet genesis is invalid")?;
    std::fs::write(dir.join("genesis.json"), serde_json::to_string_pretty(&genesis)?)?;
    let manifest = Manifest { chain_id: genesis.chain_id(), members };
    std::fs::write(dir.join("testnet.json"), serde_json::to_string_pretty(&manifest)?)?;
    Ok(manifest.chain_id)
}

pub(crate) fn manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join("testnet.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} (run `phalanx testnet init` first)", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a testnet manifest", path.display()))
}

/// The pid in `folder/pid`, if that process is alive.
pub(crate) fn running(folder: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(folder.join("pid")).ok()?.trim().parse().ok()?;
    let alive = rustix::process::Pid::from_raw(pid).is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
    alive.then_some(pid)
}

pub(crate) fn spawn(folder: &Path, args: &[String]) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(folder.join("log"))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C in this terminal does not reach it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", folder.display()))?;
    std::fs::write(folder.join("pid"), child.id().to_string())?;
    Ok(child.id())
}

pub(crate) async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

async fn up(dir: &Path, json: bool) -> anyhow::Result<()> {
    let manifest = manifest(dir)?;
    let dir = dir.canonicalize()?;
    if let Some(member) = manifest.members.iter().find(|m| running(&dir.join(&m.name)).is_some()) {
        bail!(
            "{} is already running (pid file in {}); stop the testnet with `phalanx testnet down` first",
            member.name,
            dir.join(&member.name).display()
        );
    }
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    for member in manifest.members.iter().filter(|m| m.role == "validator") {
        let folder = dir.join(&member.name);
        spawn(&folder, &["node".into(), "--log-json".into(), "--config".into(), path(folder.join("config.toml"))])?;
    }
    for member in manifest.members.iter().filter(|m| m.role == "validator" && !m.spare) {
        let client = crate::client::connect(&member.rpc)?;
        let what = format!("{} to finalize a block ({})", member.name, member.rpc);
        wait_until(&what, Duration::from_secs(60), || async {
            client.chain_head().await.is_ok_and(|head| head.height >= 1)
        })
        .await?;
    }
    for member in manifest.members.iter().filter(|m| m.role != "validator") {
        let folder = dir.join(&member.name);
        let mut args = vec![
            "worker".to_string(),
            "--log-json".into(),
            "--node".into(),
            member.rpc.clone(),
            "--data-dir".into(),
            path(folder.join("data")),
            "--operator-file".into(),
            path(folder.join("operator.phrase")),
        ];
        if member.role == "gatekeeper" {
            args.push("--gatekeeper".into());
        }
        if let Some(port) = member.gateway_port {
            args.extend(["--gateway-port".into(), port.to_string()]);
        }
        args.extend(["--metrics-port".into(), member.metrics_port.to_string()]);
        spawn(&folder, &args)?;
    }
    let rpc = manifest.members.first().context("the testnet has no members")?.rpc.clone();
    let client = crate::client::connect(&rpc)?;
    let operators: Vec<PublicKey> = manifest.members.iter().filter_map(|m| m.operator).collect();
    // (operator, identity) of every worker and gatekeeper of this testnet, once all registered.
    let deadline = Instant::now() + Duration::from_secs(120);
    let identities: Vec<(PublicKey, PublicKey)> = loop {
        let registered = client.registry_workers().await.unwrap_or_default();
        let found: Vec<(PublicKey, PublicKey)> = registered
            .iter()
            .filter_map(|w| Some((w.worker["info"]["operator"].as_str()?.parse().ok()?, w.identity)))
            .filter(|(operator, _)| operators.contains(operator))
            .collect();
        if found.len() == operators.len() {
            break found;
        }
        if Instant::now() > deadline {
            bail!(
                "timed out waiting for the workers and gatekeepers to register ({} of {})",
                found.len(),
                operators.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let workers: Vec<PublicKey> = manifest
        .members
        .iter()
        .filter(|m| m.role == "worker")
        .filter_map(|m| identities.iter().find(|(operator, _)| Some(*operator) == m.operator).map(|(_, id)| *id))
        .collect();
    if !workers.is_empty() {
        crate::dev::form_cluster(&rpc, "testnet", &workers).await?;
    }
    if json {
        println!("{}", serde_json::to_string(&manifest)?);
        return Ok(());
    }
    println!("testnet {} is up (chain {})", dir.display(), manifest.chain_id);
    for member in &manifest.members {
        let pid = running(&dir.join(&member.name)).map_or("-".into(), |p| p.to_string());
        let endpoint = match (&member.p2p, member.gateway_port) {
            (Some(p2p), _) => format!("rpc {}  p2p {p2p}", member.rpc),
            (None, Some(port)) => format!("gateway http://127.0.0.1:{port}  via {}", member.rpc),
            (None, None) => format!("via {}", member.rpc),
        };
        println!(
            "  {:<14} pid {pid:<8} {endpoint}  metrics http://127.0.0.1:{}/metrics",
            member.name, member.metrics_port
        );
    }
    println!("logs in {}/NAME/log; stop with: phalanx testnet down {}", dir.display(), dir.display());
    Ok(())
}

/// Stops every running member; returns how many were running.
pub(crate) fn down(dir: &Path) -> anyhow::Result<usize> {
    use rustix::process::{Pid, Signal, kill_process};
    let manifest = manifest(dir)?;
    // Workers first (they checkpoint on SIGTERM), then the validators.
    let mut order: Vec<&Member> = manifest.members.iter().filter(|m| m.role != "validator").collect();
    order.extend(manifest.members.iter().filter(|m| m.role == "validator"));
    let mut stopping = Vec::new();
    for member in order {
        let folder = dir.join(&member.name);
        if let Some(pid) = running(&folder) {
            let _ = kill_process(Pid::from_raw(pid).expect("a positive pid"), Signal::TERM);
            stopping.push((member.name.clone(), folder, pid));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while stopping.iter().any(|(_, folder, _)| running(folder).is_some()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (name, folder, pid) in &stopping {
        if running(folder).is_some() {
            eprintln!("{name} (pid {pid}) did not stop within 10 s; killing it");
            let _ = kill_process(Pid::from_raw(*pid).expect("a positive pid"), Signal::KILL);
        }
        let _ = std::fs::remove_file(folder.join("pid"));
    }
    Ok(stopping.len())
}
