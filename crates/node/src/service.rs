//! One node process: the store, the chain, the JSON-RPC server, the
//! authenticated p2p network and the validator, from a [`NodeConfig`].
//! `phalanx node --config FILE` and `phalanx dev` both run this.
//!
//! The config file (TOML, [`NodeFile`]) names the genesis file, the
//! validator key file, the p2p and RPC listen addresses and the bootstrap
//! list: the other validators' consensus keys and p2p addresses. The p2p
//! network is commonware's authenticated `lookup` network: every connection
//! is a mutually authenticated, encrypted stream between keys of the
//! validator set, so a peer that is not a validator is never spoken to.
//!
//! Layout of the data directory: `chain.redb` (blocks, certificates,
//! events, state) and `consensus/` (the simplex journal and marshal's
//! archives). Stopping and starting again resumes from the last finalized block.

use crate::chain::{Chain, ChainConfig};
use crate::consensus::application::Pacing;
use crate::consensus::validator::{
    self, CHANNEL_BACKFILL, CHANNEL_BLOCKS, CHANNEL_CERTIFICATES, CHANNEL_RESOLVER, CHANNEL_VOTES, Channels, Timing,
    ValidatorConfig,
};
use crate::consensus::{ValidatorKey, ValidatorSecret, account_key, validator_key, validator_secret};
use crate::rpc::{self, RpcConfig};
use crate::store::{Store, StoreError};
use commonware_cryptography::{ChaCha20Poly1305, Signer};
use commonware_p2p::{Address, AddressableManager, authenticated::lookup};
use commonware_runtime::{Quota, Runner, Spawner, Supervisor, tokio as cw_tokio};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{NZU32, NZUsize, ordered::Map};
use phalanx_primitives::PublicKey;
use phalanx_state::Genesis;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Largest config, genesis or key file read, in bytes.
pub const CONFIG_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// The config file of `phalanx node --config FILE`. Relative paths are
/// relative to the file's folder.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// Where the chain and the consensus journal are kept.
    pub data_dir: PathBuf,
    /// The genesis file (JSON), identical on every node of the network.
    pub genesis: PathBuf,
    /// A file holding this validator's 32-byte ed25519 seed as hex. Absent:
    /// a non-validator node, which follows the nodes in `follow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The p2p listen address (authenticated, encrypted); validators only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p_listen: Option<SocketAddr>,
    /// RPC URLs of nodes to sync verified blocks from. Non-validator nodes
    /// follow them (and forward submitted transactions to the first);
    /// validators catch up from them before taking part in consensus (see
    /// [`crate::follower::catch_up`]), and sync from peers over p2p without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow: Vec<String>,
    /// A non-validator node with an empty data directory joins from the
    /// first `follow` node's finalized state (verified against its
    /// certificate, see [`crate::state_sync`]) instead of replaying every
    /// block from genesis. It then stores no block below the one it joined at.
    #[serde(default)]
    pub state_sync: bool,
    /// The JSON-RPC listen address.
    pub rpc_listen: SocketAddr,
    /// Where to serve Prometheus metrics at `/metrics` (none if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// The other validators: their consensus key and p2p address.
    #[serde(default)]
    pub bootstrap: Vec<Peer>,
    /// Shortest time between blocks, in ms (default 50).
    #[serde(default = "default_min_block_ms")]
    pub min_block_interval_ms: u64,
    /// Longest time without a block when idle, in ms (default 500).
    #[serde(default = "default_empty_block_ms")]
    pub empty_block_interval_ms: u64,
}

fn default_min_block_ms() -> u64 {
    50
}

fn default_empty_block_ms() -> u64 {
    500
}

/// A validator to connect to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The validator's consensus key (its account form, SS58 or 0x hex).
    pub public_key: PublicKey,
    pub address: SocketAddr,
}

/// A node ready to run.
#[derive(Debug)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub genesis: Genesis,
    pub rpc: RpcConfig,
    pub metrics: Option<SocketAddr>,
    pub role: Role,
}

/// What a node does besides storing the chain and serving RPC.
#[derive(Debug)]
pub enum Role {
    /// Takes part in consensus.
    Validator(ValidatorRole),
    /// Syncs verified blocks from these nodes' RPC ([`crate::follower`]);
    /// with `state_sync`, a fresh node first joins from their state.
    Follower { upstreams: Vec<String>, state_sync: bool },
}

/// A validator's keys and network.
#[derive(Debug)]
pub struct ValidatorRole {
    pub secret: ValidatorSecret,
    pub p2p_listen: SocketAddr,
    /// The address book: p2p addresses of validators (this one's included)
    /// from the bootstrap list. Addresses governance announced with a
    /// validator set (in the chain state) are used for keys not in it.
    pub peers: Vec<(ValidatorKey, SocketAddr)>,
    pub pacing: Pacing,
    pub timing: Timing,
    /// RPC URLs to catch up from before consensus starts (may be empty).
    pub upstreams: Vec<String>,
}

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is larger than {CONFIG_BYTES_MAX} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path} is not a valid node config: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path} is not a valid genesis file: {message}")]
    Genesis { path: PathBuf, message: String },
    #[error("{path} does not hold a 32-byte validator seed as hex")]
    Key { path: PathBuf },
    #[error("{path}: a validator needs p2p_listen; a node without key_file needs `follow` (nodes to sync from)")]
    Role { path: PathBuf },
    #[error("bootstrap peer {0} is not a valid ed25519 key")]
    UnknownPeer(PublicKey),
    #[error("no p2p address is known for validator {0}: add it to `bootstrap`")]
    MissingPeer(PublicKey),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Join(#[from] crate::state_sync::JoinError),
    #[error("cannot start the RPC server on {address}: {source} (is another node using it?)")]
    Rpc { address: SocketAddr, source: std::io::Error },
    #[error("cannot serve metrics on {address}: {source}")]
    Metrics { address: SocketAddr, source: std::io::Error },
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, NodeError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| NodeError::Read { path: path.into(), source })?;
    let mut bytes = Vec::new();
    file.take(CONFIG_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| NodeError::Read { path: path.into(), source })?;
    if bytes.len() as u64 > CONFIG_BYTES_MAX {
        return Err(NodeError::TooLarge { path: path.into() });
    }
    Ok(bytes)
}

/// Joins by state sync from the first upstream that serves a state that
/// verifies (see [`crate::state_sync`]).
fn join(genesis: &Genesis, upstreams: &[String], path: &Path) -> Result<Store, NodeError> {
    let mut last = None;
    for upstream in upstreams {
        match crate::state_sync::join(genesis, upstream, path) {
            Ok(store) => return Ok(store),
            Err(error) => {
                tracing::warn!(%error, "state sync failed; trying the next upstream");
                last = Some(error);
            }
        }
    }
    Err(last.map_or(NodeError::Role { path: path.into() }, NodeError::Join))
}

/// Reads a genesis file.
pub fn read_genesis(path: &Path) -> Result<Genesis, NodeError> {
    let bytes = read_bounded(path)?;
    let genesis: Genesis =
        serde_json::from_slice(&bytes).map_err(|e| NodeError::Genesis { path: path.into(), message: e.to_string() })?;
    genesis.build().map_err(|e| NodeError::Genesis { path: path.into(), message: e.to_string() })?;
    Ok(genesis)
}

/// Reads a validator key file: the 32-byte seed as hex (the only place the seed is read).
pub fn read_key(path: &Path) -> Result<ValidatorSecret, NodeError> {
    let bytes = zeroize::Zeroizing::new(read_bounded(path)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| NodeError::Key { path: path.into() })?;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim().trim_start_matches("0x"), seed.as_mut_slice())
        .map_err(|_| NodeError::Key { path: path.into() })?;
    Ok(validator_secret(&seed))
}

impl NodeConfig {
    /// Reads and checks a config file and everything it names.
    pub fn from_file(path: &Path) -> Result<NodeConfig, NodeError> {
        let bytes = read_bounded(path)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| NodeError::Config { path: path.into(), message: "not UTF-8".into() })?;
        let file: NodeFile =
            toml::from_str(&text).map_err(|e| NodeError::Config { path: path.into(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let genesis = read_genesis(&base.join(&file.genesis))?;
        let role = match (&file.key_file, file.p2p_listen) {
            (Some(key_file), Some(p2p_listen)) => {
                Role::Validator(validator_role(&genesis, &read_key(&base.join(key_file))?, p2p_listen, &file)?)
            }
            (None, _) if !file.follow.is_empty() => {
                Role::Follower { upstreams: file.follow.clone(), state_sync: file.state_sync }
            }
            _ => return Err(NodeError::Role { path: path.into() }),
        };
        let mut rpc = RpcConfig::at(file.rpc_listen);
        if let Role::Follower { upstreams, .. } = &role {
            rpc.forward = upstreams.first().cloned();
        }
        Ok(NodeConfig { data_dir: base.join(&file.data_dir), genesis, rpc, metrics: file.metrics_listen, role })
    }
}

fn validator_role(
    genesis: &Genesis,
    secret: &ValidatorSecret,
    p2p_listen: SocketAddr,
    file: &NodeFile,
) -> Result<ValidatorRole, NodeError> {
    let me = account_key(&secret.public_key());
    if !genesis.validators.contains(&me) {
        // It may be in a set governance scheduled: it follows as an
        // observer until an epoch of its set begins (see `consensus::validator`).
        tracing::info!(key = %me, "this key is not a genesis validator: observing until a validator set names it");
    }
    let mut peers = vec![(secret.public_key(), p2p_listen)];
    for peer in &file.bootstrap {
        let key = validator_key(&peer.public_key).map_err(|_| NodeError::UnknownPeer(peer.public_key))?;
        if peer.public_key != me {
            peers.push((key, peer.address));
        }
    }
    for validator in &genesis.validators {
        if !peers.iter().any(|(key, _)| account_key(key) == *validator) {
            return Err(NodeError::MissingPeer(*validator));
        }
    }
    Ok(ValidatorRole {
        secret: secret.clone(),
        p2p_listen,
        peers,
        pacing: Pacing {
            min_block_interval: Duration::from_millis(file.min_block_interval_ms),
            empty_block_interval: Duration::from_millis(file.empty_block_interval_ms.max(1)),
        },
        timing: Timing::default(),
        upstreams: file.follow.clone(),
    })
}

/// Where a running node can be reached.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub rpc: SocketAddr,
    /// Validators: the p2p listener and the consensus key.
    pub p2p: Option<SocketAddr>,
    pub validator: Option<PublicKey>,
    pub metrics: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub height: u64,
}

/// Runs the node until `shutdown` resolves (or consensus stops). `ready`
/// is called once the RPC server is listening.
pub fn run(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(&Endpoints) + Send + 'static,
) -> Result<(), NodeError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| NodeError::DataDir { path: config.data_dir.clone(), source })?;
    let path = config.data_dir.join("chain.redb");
    let store = match &config.role {
        Role::Follower { upstreams, state_sync: true } if !path.exists() => {
            Arc::new(join(&config.genesis, upstreams, &path)?)
        }
        _ => Arc::new(Store::open(&path)?),
    };
    let chain = Arc::new(Chain::open(config.genesis.clone(), store, ChainConfig::default())?);
    let runtime_config = cw_tokio::Config::new()
        .with_storage_directory(config.data_dir.join("consensus"))
        .with_worker_threads(2)
        .with_catch_panics(false);
    cw_tokio::Runner::new(runtime_config).start(|context| async move {
        let (rpc_address, rpc_handle) = rpc::serve(chain.clone(), &config.rpc)
            .await
            .map_err(|source| NodeError::Rpc { address: config.rpc.listen, source })?;

        let metrics = match config.metrics {
            Some(address) => Some(serve_metrics(context.child("metrics"), chain.clone(), address).await?),
            None => None,
        };

        let endpoints = |p2p, validator| Endpoints {
            rpc: rpc_address,
            p2p,
            validator,
            metrics,
            data_dir: config.data_dir.clone(),
            height: chain.finalized().header.height,
        };
        match config.role {
            Role::Validator(mut role) => {
                let (p2p, me) = (role.p2p_listen, account_key(&role.secret.public_key()));
                ready(&endpoints(Some(p2p), Some(me)));
                let mut shutdown = std::pin::pin!(shutdown);
                let upstreams = std::mem::take(&mut role.upstreams);
                let caught_up = upstreams.is_empty() || {
                    // Peers accept p2p connections only from the current and
                    // scheduled validators: until a set names this key, it
                    // can only follow over RPC.
                    let unnamed = move |chain: &Chain| {
                        let state = &chain.finalized().state;
                        !state.validators().contains(&me)
                            && !state.pending_validators().unwrap_or_default().contains(&me)
                    };
                    let started = std::time::Instant::now();
                    let from = chain.finalized().header.height;
                    tracing::info!(upstreams = upstreams.len(), height = from, "catching up over RPC before consensus");
                    tokio::select! {
                        _ = &mut shutdown => false,
                        blocks = crate::follower::catch_up(chain.clone(), upstreams, unnamed) => {
                            tracing::info!(
                                blocks,
                                height = chain.finalized().header.height,
                                seconds = started.elapsed().as_secs_f64(),
                                "caught up over RPC; starting consensus"
                            );
                            true
                        }
                    }
                };
                if caught_up {
                    let engine = start_validator(&context, chain.clone(), role).await;
                    tokio::select! {
                        _ = shutdown => tracing::info!("stopping"),
                        _ = engine => tracing::error!("consensus engine stopped"),
                    }
                } else {
                    tracing::info!("stopping");
                }
            }
            Role::Follower { upstreams, .. } => {
                let following = context.child("follower").spawn({
                    let chain = chain.clone();
                    move |_| crate::follower::run(chain, upstreams)
                });
                ready(&endpoints(None, None));
                tokio::select! {
                    _ = shutdown => tracing::info!("stopping"),
                    _ = following => tracing::error!("the follower stopped"),
                }
            }
        }
        let _ = rpc_handle.stop();
        let _ = context.stop(0, Some(Duration::from_secs(2))).await;
        Ok(())
    })
}

/// Starts the p2p network and the validator; returns the consensus engine's handle.
async fn start_validator(
    context: &cw_tokio::Context,
    chain: Arc<Chain>,
    role: ValidatorRole,
) -> commonware_runtime::Handle<()> {
    let secret = role.secret;
    let handshake = Cups::<_, ChaCha20Poly1305>::new(
        Sake {
            signer: secret.clone(),
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let private = role.peers.iter().any(|(_, address)| !is_public(address));
    let max_peers = peers_max(&chain.finalized().state, role.peers.len());
    let mut p2p_config = if private { lookup::Config::local } else { lookup::Config::recommended }(
        handshake,
        crate::consensus::NAMESPACE,
        role.p2p_listen,
        // Peers of one tracked set (the current and the scheduled
        // validators). The network sizes each channel's inbound queue by
        // this times the per-peer quota, so it is not simply the largest
        // possible set: room for the set to grow fourfold from here.
        NZUsize!(max_peers),
        validator::P2P_MESSAGE_BYTES_MAX,
        NZUsize!(1024),
    );
    // Handshakes hold sockets before a peer is known: bound them so p2p
    // stays inside its share of the descriptor reserve (P2P_SOCKETS_MAX).
    p2p_config.max_concurrent_handshakes = NZU32!(P2P_HANDSHAKES_MAX);
    p2p_config.tracked_peer_sets = NZUsize!(P2P_TRACKED_SETS);
    let (mut network, oracle) = lookup::Network::new(context.child("network"), p2p_config);
    let book: Arc<Vec<(ValidatorKey, SocketAddr)>> = Arc::new(role.peers.clone());
    let me = secret.public_key();
    let track = {
        let oracle = oracle.clone();
        move |id: u64, state: &phalanx_state::State| {
            let mut peers = peer_set(&book, &me, state);
            if peers.len() > max_peers {
                tracing::error!(
                    id,
                    peers = peers.len(),
                    max_peers,
                    "the validator set outgrew this node's p2p bound: tracking part of it; restart the node"
                );
                peers.truncate(max_peers);
            }
            tracing::info!(id, peers = peers.len(), "tracking validators");
            let _ = oracle.clone().track(id, Map::from_iter_dedup(peers));
        }
    };
    track(chain.finalized().header.height, &chain.finalized().state);
    let quota = Quota::per_second(NZU32!(PEER_MESSAGES_PER_SECOND));
    let channels = Channels {
        votes: network.register(CHANNEL_VOTES, quota),
        certificates: network.register(CHANNEL_CERTIFICATES, quota),
        resolver: network.register(CHANNEL_RESOLVER, quota),
        blocks: network.register(CHANNEL_BLOCKS, quota),
        backfill: network.register(CHANNEL_BACKFILL, quota),
    };
    network.start();
    let validator_config = ValidatorConfig {
        secret,
        partition_prefix: "validator".into(),
        timing: role.timing,
        pacing: role.pacing,
        mailbox_size: 1024,
    };
    let on_validators: validator::OnValidators = Arc::new(track);
    validator::start(
        context.child("validator"),
        validator_config,
        chain,
        oracle.clone(),
        oracle,
        channels,
        Some(on_validators),
    )
    .await
    .engine
}

/// Messages a peer may send per second on one channel: far above what
/// consensus sends (a few votes per view), enough for a peer to serve 1,000
/// backfilled blocks a second, and a bound on a misbehaving validator. The
/// network reserves an inbound queue of this many messages per allowed peer.
const PEER_MESSAGES_PER_SECOND: u32 = 1_000;

/// Handshakes in progress at once (commonware's defaults are 512 and 1,024).
/// Only validators of the tracked sets complete one, and each address may
/// start one per five seconds, so this bounds sockets, not the set.
pub const P2P_HANDSHAKES_MAX: u32 = 128;

/// Peer sets the network tracks at once (commonware's default).
const P2P_TRACKED_SETS: usize = 4;

/// Sockets p2p may hold at most: the handshakes in progress, and up to two
/// connections (a dial and an accept racing) per peer of the tracked sets,
/// each at most twice [`phalanx_state::genesis::VALIDATORS_MAX`].
pub const P2P_SOCKETS_MAX: usize =
    P2P_HANDSHAKES_MAX as usize + 2 * P2P_TRACKED_SETS * 2 * phalanx_state::genesis::VALIDATORS_MAX;

/// Peers one tracked set may hold: four times the larger of the current
/// and scheduled sets and the address book, at least 16, at most twice
/// [`VALIDATORS_MAX`]. A larger set is tracked only in part (with an error
/// in the log) until the node restarts and sizes itself anew.
///
/// [`VALIDATORS_MAX`]: phalanx_state::genesis::VALIDATORS_MAX
fn peers_max(state: &phalanx_state::State, book: usize) -> usize {
    let known = state.validators().len() + state.pending_validators().map_or(0, <[_]>::len);
    (4 * known.max(book)).clamp(16, 2 * phalanx_state::genesis::VALIDATORS_MAX)
}

/// The peers to connect to with `state`: its current and scheduled
/// validators and this node, each at its address from the bootstrap list,
/// else from the chain (validators with neither are left out, with a warning).
fn peer_set(
    book: &[(ValidatorKey, SocketAddr)],
    me: &ValidatorKey,
    state: &phalanx_state::State,
) -> Vec<(ValidatorKey, Address)> {
    let keys = state.validators().iter().chain(state.pending_validators().unwrap_or_default());
    let mut peers: Vec<(ValidatorKey, Address)> = Vec::new();
    for account in keys {
        let Ok(key) = validator_key(account) else { continue };
        if peers.iter().any(|(k, _)| *k == key) {
            continue;
        }
        let address = book
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, a)| *a)
            .or_else(|| state.validator_address(account).and_then(|a| a.parse::<SocketAddr>().ok()));
        match address {
            Some(address) => peers.push((key, Address::from(address))),
            None => tracing::warn!(validator = %account, "no p2p address known for this validator"),
        }
    }
    if !peers.iter().any(|(key, _)| key == me)
        && let Some((_, address)) = book.iter().find(|(key, _)| key == me)
    {
        peers.push((me.clone(), Address::from(*address)));
    }
    peers
}

/// Serves `/metrics`: the node's own metrics, then the consensus
/// library's (p2p, simplex, marshal, runtime), in the Prometheus text format.
async fn serve_metrics(
    context: cw_tokio::Context,
    chain: Arc<Chain>,
    address: SocketAddr,
) -> Result<SocketAddr, NodeError> {
    use commonware_runtime::Metrics as _;
    let listener =
        tokio::net::TcpListener::bind(address).await.map_err(|source| NodeError::Metrics { address, source })?;
    let bound = listener.local_addr().map_err(|source| NodeError::Metrics { address, source })?;
    let context = Arc::new(context);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (chain, context) = (chain.clone(), context.clone());
            async move {
                let body = chain.metrics().encode() + &context.encode();
                ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
            }
        }),
    );
    let limits = phalanx_listener::ListenerLimits::metrics();
    tokio::spawn(phalanx_listener::serve(listener, limits, "metrics", move |_| app.clone()));
    Ok(bound)
}

/// Whether `address` is reachable from the public internet (peers on
/// loopback or private ranges switch the p2p network to its local settings).
fn is_public(address: &SocketAddr) -> bool {
    match address.ip() {
        std::net::IpAddr::V4(ip) => !(ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()),
        std::net::IpAddr::V6(ip) => !(ip.is_loopback() || ip.is_unspecified() || (ip.segments()[0] & 0xfe00) == 0xfc00),
    }
}
