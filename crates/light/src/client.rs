//! The light client over a node's RPC: asks, checks, and keeps what it
//! learned (the trusted validator set) in a cache file per chain.
//!
//! Trust starts from the chain's genesis: pinned by chain id if the caller
//! gives one, else the genesis the node serves on first contact (its hash
//! is the chain id; from then on the cache holds the chain to that id).
//! Before each read the client follows the validator-set changes the node
//! reports after the trusted set's epoch; a node that hides one is caught
//! when the head's certificate does not verify against the old set.

use crate::trust::{LightError, Trusted, Verified};
use jsonrpsee::http_client::HttpClient;
use phalanx_primitives::Hash;
use phalanx_rpc::{PhalanxClient, TRANSITIONS_MAX};
use phalanx_state::leaves::Leaf;
use std::path::{Path, PathBuf};

/// Largest cache file read, in bytes (a validator set of the largest size
/// is a few KiB).
pub const CACHE_BYTES_MAX: u64 = 1 << 20;
/// Most `chain_validatorTransitions` calls one read makes (each returns up
/// to [`TRANSITIONS_MAX`] changes) before it gives up on the node.
pub const TRANSITION_CALLS_MAX: usize = 1_000;

/// Why a verified read failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the node's answer did not verify: {0}")]
    Light(#[from] LightError),
    #[error("RPC: {0}")]
    Rpc(String),
    #[error("the light-client cache {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
}

fn rpc(error: jsonrpsee::core::ClientError) -> ClientError {
    match error {
        jsonrpsee::core::ClientError::Call(call) => ClientError::Rpc(call.message().to_string()),
        other => ClientError::Rpc(other.to_string()),
    }
}

/// A light client of one chain, talking to one node.
#[derive(Debug)]
pub struct LightClient<'a> {
    node: &'a HttpClient,
    cache: Option<PathBuf>,
    trusted: Trusted,
    /// What the cache file holds (so an unchanged trust is not written again).
    saved: Option<Trusted>,
    /// The validator-set changes followed since connecting, oldest first.
    followed: Vec<phalanx_rpc::ValidatorTransition>,
}

impl<'a> LightClient<'a> {
    /// Trust in the chain `node` serves: from the cache under `cache_dir`
    /// if it has the chain, else from the node's genesis. With `pinned`,
    /// the chain must be that one.
    pub async fn connect(
        node: &'a HttpClient,
        cache_dir: Option<&Path>,
        pinned: Option<Hash>,
    ) -> Result<LightClient<'a>, ClientError> {
        let claimed = node.chain_info().await.map_err(rpc)?.chain_id;
        let expected = pinned.unwrap_or(claimed);
        if claimed != expected {
            return Err(LightError::OtherChain { expected, got: claimed }.into());
        }
        let cache = cache_dir.map(|dir| dir.join(format!("{}.json", hex::encode(expected.0))));
        if let Some(path) = &cache
            && let Some(trusted) = load(path)?
        {
            if trusted.chain_id != expected {
                return Err(ClientError::Cache { path: path.clone(), reason: "it holds another chain".into() });
            }
            return Ok(LightClient { node, cache, saved: Some(trusted.clone()), trusted, followed: Vec::new() });
        }
        let genesis = node.chain_genesis().await.map_err(rpc)?;
        let trusted = Trusted::from_genesis(&genesis);
        if trusted.chain_id != expected {
            return Err(LightError::OtherChain { expected, got: trusted.chain_id }.into());
        }
        let mut client = LightClient { node, cache, trusted, saved: None, followed: Vec::new() };
        client.save()?;
        Ok(client)
    }

    /// What the client trusts now.
    pub fn trusted(&self) -> &Trusted {
        &self.trusted
    }

    /// The validator-set changes verified and followed since connecting,
    /// oldest first (a node joining by state sync keeps them to serve).
    pub fn followed(&self) -> &[phalanx_rpc::ValidatorTransition] {
        &self.followed
    }

    /// Follows the validator-set changes the node reports after the
    /// trusted set's epoch.
    pub async fn follow_validators(&mut self) -> Result<(), ClientError> {
        for _ in 0..TRANSITION_CALLS_MAX {
            let transitions = self.node.chain_validator_transitions(self.trusted.epoch).await.map_err(rpc)?;
            let before = self.trusted.epoch;
            for transition in transitions.iter() {
                let epoch = self.trusted.epoch;
                self.trusted.follow(transition)?;
                if self.trusted.epoch != epoch {
                    self.followed.push(transition.clone());
                }
            }
            self.save()?;
            if transitions.len() < TRANSITIONS_MAX || self.trusted.epoch == before {
                return Ok(());
            }
        }
        Err(ClientError::Rpc(format!("the node reported over {} validator-set changes", TRANSITION_CALLS_MAX)))
    }

    /// Reads `leaves` at the node's finalized head, verified: the head's
    /// certificate against the trusted set (after following its changes),
    /// every proof against the head's state root.
    pub async fn read(&mut self, leaves: &[Leaf]) -> Result<Verified, ClientError> {
        self.follow_validators().await?;
        let answer = self.node.state_proof(proof_keys(leaves), None).await.map_err(rpc)?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        let verified = self.trusted.verify_read(&answer, leaves, now_ms)?;
        self.save()?;
        Ok(verified)
    }

    /// A state to join from, checked ([`Trusted::verify_sync_start`]): the
    /// node's finalized head, after following the validator-set changes.
    pub async fn sync_start(&mut self) -> Result<crate::trust::VerifiedStart, ClientError> {
        self.follow_validators().await?;
        let start = self.node.state_sync_target().await.map_err(rpc)?;
        let raw = self.node.chain_raw_blocks(start.header.height, 1).await.map_err(rpc)?;
        let block = raw.first().map_or(&[][..], |raw| &raw.block[..]);
        Ok(self.trusted.verify_sync_start(&start, block)?)
    }

    fn save(&mut self) -> Result<(), ClientError> {
        let Some(path) = &self.cache else { return Ok(()) };
        if self.saved.as_ref() == Some(&self.trusted) {
            return Ok(());
        }
        let failed = |e: std::io::Error| ClientError::Cache { path: path.clone(), reason: e.to_string() };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let text = serde_json::to_vec_pretty(&self.trusted).expect("trust serializes");
        // Written aside (a name of this process's own, as several clients
        // may save at once) and renamed: a crash leaves the old file or the
        // new, never half of one.
        let partial = path.with_extension(format!("{}.partial", std::process::id()));
        std::fs::write(&partial, text).map_err(failed)?;
        std::fs::rename(&partial, path).map_err(failed)?;
        self.saved = Some(self.trusted.clone());
        Ok(())
    }
}

/// `leaves`' keys as `state_proof` takes them (0x hex).
pub fn proof_keys(leaves: &[Leaf]) -> Vec<String> {
    leaves.iter().map(|leaf| format!("0x{}", hex::encode(leaf.key()))).collect()
}

/// What a state sync calls to reach `node` (see `phalanx_statedb::sync`):
/// sends an encoded request with `state_syncOps` and returns the encoded
/// answer. The sync calls it from its own runtime's thread, where blocking
/// on another runtime is not allowed, so each request runs on a thread of
/// its own, on `runtime`.
pub fn sync_fetcher(
    runtime: tokio::runtime::Handle,
    node: HttpClient,
) -> impl Fn(Vec<u8>) -> Result<Vec<u8>, String> + Send + Sync + 'static {
    move |request: Vec<u8>| {
        let (runtime, node) = (runtime.clone(), node.clone());
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let answer =
                    node.state_sync_ops(format!("0x{}", hex::encode(request))).await.map_err(|e| e.to_string())?;
                hex::decode(answer.strip_prefix("0x").unwrap_or(&answer)).map_err(|e| e.to_string())
            })
        })
        .join()
        .map_err(|_| "the request's thread panicked".to_string())?
    }
}

/// The trust cached at `path`, if the file exists.
fn load(path: &Path) -> Result<Option<Trusted>, ClientError> {
    let failed = |reason: String| ClientError::Cache { path: path.to_path_buf(), reason };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e.to_string())),
    };
    if metadata.len() > CACHE_BYTES_MAX {
        return Err(failed(format!("larger than {CACHE_BYTES_MAX} bytes")));
    }
    let text = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    serde_json::from_slice(&text).map(Some).map_err(|e| failed(format!("not a light-client cache ({e}); remove it")))
}
