//! The dev network: one process running a single validator (the same code as
//! a multi-validator network), its JSON-RPC server and the prefunded dev
//! accounts, on the tokio runtime with data in one directory.
//!
//! Layout of the data directory: `chain.redb` (blocks, certificates, events,
//! state) and `consensus/` (the simplex journal and marshal's archives).
//! Stopping and starting again resumes from the last finalized block.

use crate::chain::{Chain, ChainConfig};
use crate::consensus::application::Pacing;
use crate::consensus::validator::{
    self, CHANNEL_BACKFILL, CHANNEL_BLOCKS, CHANNEL_CERTIFICATES, CHANNEL_RESOLVER, CHANNEL_VOTES, Channels, Timing,
    ValidatorConfig,
};
use crate::consensus::{ValidatorKey, account_key, validator_secret};
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
use phalanx_primitives::sha256;
use phalanx_state::Genesis;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Settings of `phalanx dev`.
#[derive(Clone, Debug)]
pub struct DevConfig {
    pub data_dir: PathBuf,
    pub rpc_port: u16,
    /// Port of the validator's (authenticated, encrypted) p2p listener.
    pub p2p_port: u16,
    pub pacing: Pacing,
}

impl DevConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        DevConfig {
            data_dir,
            rpc_port: 9944,
            p2p_port: 30333,
            pacing: Pacing {
                min_block_interval: Duration::from_millis(50),
                empty_block_interval: Duration::from_millis(500),
            },
        }
    }
}

/// Where a running dev network can be reached.
#[derive(Clone, Debug)]
pub struct DevEndpoints {
    pub rpc: SocketAddr,
    pub p2p: SocketAddr,
    pub data_dir: PathBuf,
    pub height: u64,
}

/// Why the dev network could not run.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the RPC server on {address}: {source} (is another `phalanx dev` running? try --rpc-port)")]
    Rpc { address: SocketAddr, source: std::io::Error },
}

/// The dev network's validator seed: fixed, so the genesis (and the chain id) is too.
pub fn dev_validator_seed() -> [u8; 32] {
    sha256(b"phalanx/dev-validator/v1").0
}

/// The dev network's genesis.
pub fn dev_genesis() -> Genesis {
    let validator = validator_secret(&dev_validator_seed()).public_key();
    Genesis::dev(vec![account_key(&validator)])
}

/// Runs the dev network until the process is interrupted (Ctrl-C). `ready`
/// is called once the RPC server is listening.
pub fn run(config: DevConfig, ready: impl FnOnce(&DevEndpoints) + Send + 'static) -> Result<(), DevError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| DevError::DataDir { path: config.data_dir.clone(), source })?;
    let store = Arc::new(Store::open(&config.data_dir.join("chain.redb"))?);
    let chain = Arc::new(Chain::open(dev_genesis(), store, ChainConfig::default())?);
    let runtime_config = cw_tokio::Config::new()
        .with_storage_directory(config.data_dir.join("consensus"))
        .with_worker_threads(2)
        .with_catch_panics(false);
    cw_tokio::Runner::new(runtime_config).start(|context| async move {
        let rpc_config = RpcConfig::local(config.rpc_port);
        let (rpc_address, rpc_handle) = rpc::serve(chain.clone(), &rpc_config)
            .await
            .map_err(|source| DevError::Rpc { address: rpc_config.listen, source })?;

        let secret = validator_secret(&dev_validator_seed());
        let me: ValidatorKey = secret.public_key();
        let p2p = SocketAddr::from((Ipv4Addr::LOCALHOST, config.p2p_port));
        let handshake = Cups::<_, ChaCha20Poly1305>::new(
            Sake {
                signer: secret.clone(),
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        );
        let p2p_config = lookup::Config::local(
            handshake,
            crate::consensus::NAMESPACE,
            p2p,
            NZUsize!(1),
            validator::P2P_MESSAGE_BYTES_MAX,
            NZUsize!(1024),
        );
        let (mut network, mut oracle) = lookup::Network::new(context.child("network"), p2p_config);
        // The peer set is this validator alone; nothing is ever dialed.
        let _ = oracle.track(0, Map::from_iter_dedup([(me.clone(), Address::from(p2p))]));
        let quota = Quota::per_second(NZU32!(100_000));
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
            validators: vec![me],
            partition_prefix: "validator".into(),
            timing: Timing::default(),
            pacing: config.pacing.clone(),
            mailbox_size: 1024,
        };
        let validator = validator::start(
            context.child("validator"),
            validator_config,
            chain.clone(),
            oracle.clone(),
            oracle,
            channels,
        )
        .await;
        ready(&DevEndpoints {
            rpc: rpc_address,
            p2p,
            data_dir: config.data_dir.clone(),
            height: chain.finalized().header.height,
        });
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
            _ = validator.engine => tracing::error!("consensus engine stopped"),
        }
        let _ = rpc_handle.stop();
        let _ = context.stop(0, Some(Duration::from_secs(2))).await;
        Ok(())
    })
}
