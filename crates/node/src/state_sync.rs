//! Joining by state sync: a fresh non-validator node starts from an
//! upstream node's finalized head instead of replaying the chain from
//! genesis, so joining costs the size of the state, not the length of the
//! history.
//!
//! Nothing the upstream says is trusted. The node starts from its genesis
//! (its own file), follows the validator-set changes the upstream reports,
//! each certified by the set before it and proven against its block's state
//! root (`phalanx_light`), and checks the head's certificate against the set
//! of the head's epoch. The state store is then synced from the upstream's
//! operation log against the certified state root (`phalanx_statedb::sync`:
//! every response proven, the rebuilt root compared), the typed state is
//! loaded from the synced leaves, and the head block (its hash must be the
//! certified one) becomes the stored head. On any failure nothing is kept:
//! the next start tries again from scratch.

use crate::store::{Store, StoreError, Transition, state_dir};
use jsonrpsee::http_client::HttpClientBuilder;
use phalanx_light::{ClientError, LightClient, VerifiedStart};
use phalanx_state::{Genesis, State};
use phalanx_statedb::sync::SyncError;
use std::path::Path;
use std::time::Duration;

/// Largest RPC answer a joining node accepts, in bytes (a sync response is
/// at most 8 MiB, 16 MiB as hex).
const RESPONSE_BYTES_MAX: u32 = 64 << 20;
/// How long one RPC request to the upstream may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a node could not join by state sync.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("state sync from {upstream}: {message}")]
    Upstream { upstream: String, message: String },
    #[error("state sync from {upstream}: the upstream's chain did not verify: {source}")]
    Unverified { upstream: String, source: ClientError },
    #[error("state sync from {upstream}: the state did not verify: {source}")]
    State { upstream: String, source: SyncError },
    #[error("state sync: the synced state does not load: {0}")]
    Load(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Joins the chain of `genesis` at `upstream`'s finalized head: creates the
/// node's databases at `path` (which must not exist) from the verified
/// state and returns them. On error nothing is left at `path` or beside it.
pub fn join(genesis: &Genesis, upstream: &str, path: &Path) -> Result<Store, JoinError> {
    // Never touch a node's existing data (a failed join removes what it wrote).
    let state = state_dir(path);
    if path.exists() || std::fs::read_dir(&state).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(StoreError::Corrupt(format!(
            "{} or {} exists already: a node joins by state sync only with an empty data directory",
            path.display(),
            state.display()
        ))
        .into());
    }
    let joined = join_unchecked(genesis, upstream, path);
    if joined.is_err() {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_dir_all(state_dir(path));
    }
    joined
}

fn join_unchecked(genesis: &Genesis, upstream: &str, path: &Path) -> Result<Store, JoinError> {
    let failed = |message: String| JoinError::Upstream { upstream: upstream.to_string(), message };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let client = HttpClientBuilder::default()
        .max_response_size(RESPONSE_BYTES_MAX)
        .request_timeout(REQUEST_TIMEOUT)
        .build(upstream)
        .map_err(|e| failed(e.to_string()))?;
    let chain_id = genesis.chain_id();
    let (start, followed) = runtime.block_on(async {
        let unverified = |source| JoinError::Unverified { upstream: upstream.to_string(), source };
        let mut light = LightClient::connect(&client, None, Some(chain_id)).await.map_err(unverified)?;
        let start = light.sync_start().await.map_err(unverified)?;
        Ok::<_, JoinError>((start, light.followed().to_vec()))
    })?;
    let VerifiedStart { block, certificate, target } = start;
    let height = block.header.height;
    tracing::info!(height, operations = target.end - target.start, %upstream, "syncing the state");
    let unverified_state = |source| JoinError::State { upstream: upstream.to_string(), source };
    let fetch = phalanx_light::client::sync_fetcher(runtime.handle().clone(), client);
    let state_store = phalanx_statedb::sync::sync(&state_dir(path), &target, block.header.state_root, fetch)
        .map_err(unverified_state)?;
    let (_, leaves) = load_synced(&state_store, chain_id, height).map_err(JoinError::Load)?;
    let store = Store::create_synced(path, state_store, chain_id, &block, &certificate, &leaves)?;
    // The changes it verified on the way, so it serves light clients too.
    let epoch_blocks = genesis.consensus.epoch_blocks.max(1);
    let transitions: Vec<Transition> = followed
        .into_iter()
        .map(|t| Transition {
            epoch: t.header.height / epoch_blocks + 1,
            header: t.header,
            certificate: t.certificate,
            validators: t.validators.into(),
            changes: t.changes.into(),
        })
        .collect();
    store.put_transitions(&transitions)?;
    tracing::info!(height, leaves = leaves.len(), "joined by state sync");
    Ok(store)
}

/// The typed state of a synced store, with its leaves: loaded from every
/// leaf and checked to be of chain `chain_id` at `height` (what a joining
/// node or worker does once the store's root is verified).
pub fn load_synced(
    store: &phalanx_statedb::StateService,
    chain_id: phalanx_primitives::Hash,
    height: u64,
) -> Result<(State, Vec<phalanx_state::StateChange>), String> {
    let leaves = store.leaves().map_err(|e| e.to_string())?;
    let state = State::load(leaves.iter().cloned()).map_err(|e| e.to_string())?;
    if state.height() != height || state.chain_id() != chain_id {
        return Err(format!(
            "the state is of chain {} at height {}, not {chain_id} at {height}",
            state.chain_id(),
            state.height()
        ));
    }
    Ok((state, leaves))
}
