//! The dev network: one process running a single validator (the same code as
//! a multi-validator network), its JSON-RPC server and the prefunded dev
//! accounts, on the tokio runtime with data in one directory.
//!
//! Layout of the data directory: `chain.redb` (blocks, certificates, events,
//! state leaves), `chain.state/` (the authenticated state store, whose root
//! the headers carry) and `consensus/` (the simplex journal and marshal's
//! archives).
//! Stopping and starting again resumes from the last finalized block.

use crate::consensus::application::Pacing;
use crate::consensus::validator::Timing;
use crate::consensus::{account_key, validator_secret};
use crate::rpc::RpcConfig;
use crate::service::{self, Endpoints, NodeConfig, NodeError, Role, ValidatorRole};
use commonware_cryptography::Signer;
use phalanx_primitives::sha256;
use phalanx_state::Genesis;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Settings of `phalanx dev`.
#[derive(Clone, Debug)]
pub struct DevConfig {
    pub data_dir: PathBuf,
    pub rpc_port: u16,
    /// Port of the validator's (authenticated, encrypted) p2p listener.
    pub p2p_port: u16,
    /// Serve Prometheus metrics on 127.0.0.1:PORT (none by default).
    pub metrics_port: Option<u16>,
    pub pacing: Pacing,
}

impl DevConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        DevConfig {
            data_dir,
            rpc_port: 9944,
            p2p_port: 30333,
            metrics_port: None,
            pacing: Pacing {
                min_block_interval: Duration::from_millis(50),
                empty_block_interval: Duration::from_millis(500),
            },
        }
    }
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

/// A finalization of `block` by the dev validator, as consensus would sign
/// it (in `block`'s epoch, view = height), for tools and tests that build a
/// dev chain without running consensus. `parent_state` is the state the
/// block was built on (it names the set that certifies it).
pub fn dev_certificate(parent_state: &phalanx_state::State, block: &phalanx_state::Block) -> Vec<u8> {
    let height = block.header.height;
    let secret = validator_secret(&dev_validator_seed());
    let epoch = parent_state.epoch_of(height);
    crate::consensus::certificate::sign(parent_state.validators(), &[secret], block.hash(), epoch, height)
}

/// Runs the dev network until the process is interrupted (Ctrl-C). `ready`
/// is called once the RPC server is listening.
pub fn run(config: DevConfig, ready: impl FnOnce(&Endpoints) + Send + 'static) -> Result<(), NodeError> {
    let secret = validator_secret(&dev_validator_seed());
    let p2p = SocketAddr::from((Ipv4Addr::LOCALHOST, config.p2p_port));
    let node = NodeConfig {
        data_dir: config.data_dir,
        genesis: dev_genesis(),
        rpc: RpcConfig::local(config.rpc_port),
        metrics: config.metrics_port.map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        role: Role::Validator(ValidatorRole {
            // The peer set is this validator alone; nothing is ever dialed.
            peers: vec![(secret.public_key(), p2p)],
            secret,
            p2p_listen: p2p,
            pacing: config.pacing,
            timing: Timing::default(),
            upstreams: Vec::new(),
        }),
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    service::run(node, shutdown, ready)
}

/// A dev chain built block by block outside consensus (tools and tests):
/// each block gets its state root from a state store of its own, in a
/// temporary directory removed on drop, and a dev certificate.
#[derive(Debug)]
pub struct DevBlocks {
    store: phalanx_statedb::StateService,
    /// The state after the last block.
    pub state: phalanx_state::State,
    /// The last block.
    pub parent: phalanx_state::Block,
}

impl DevBlocks {
    /// Starts at `genesis`.
    pub fn new(genesis: &Genesis) -> Result<DevBlocks, phalanx_statedb::StoreError> {
        let store = phalanx_statedb::StateService::temporary()?;
        let (state, parent) = genesis.build().map_err(|e| phalanx_statedb::StoreError::Storage(e.to_string()))?;
        let root = store.apply(0, state.store_writes())?;
        debug_assert_eq!(root, parent.header.state_root);
        Ok(DevBlocks { store, state, parent })
    }

    /// Builds the next block of `candidates` at `timestamp_ms` (see
    /// [`phalanx_state::builder::build_block`]), gives it its state root,
    /// moves on to it and returns it with its dev certificate.
    pub fn next(
        &mut self,
        timestamp_ms: u64,
        candidates: impl IntoIterator<Item = phalanx_state::builder::Candidate>,
    ) -> Result<(phalanx_state::builder::Built, Vec<u8>), phalanx_statedb::StoreError> {
        let parent_state = self.state.clone();
        let built = self.build(timestamp_ms, candidates)?;
        let certificate = dev_certificate(&parent_state, &built.block);
        Ok((built, certificate))
    }

    /// [`DevBlocks::next`] without a certificate (a chain whose validators
    /// are not the dev validator signs its blocks itself).
    pub fn build(
        &mut self,
        timestamp_ms: u64,
        candidates: impl IntoIterator<Item = phalanx_state::builder::Candidate>,
    ) -> Result<phalanx_state::builder::Built, phalanx_statedb::StoreError> {
        let built = phalanx_state::builder::build_block(&self.state, self.parent.hash(), timestamp_ms, candidates);
        let root = self.store.apply(built.block.header.height, built.state.store_writes())?;
        let built = built.with_state_root(root);
        (self.state, self.parent) = (built.state.clone(), built.block.clone());
        Ok(built)
    }
}
