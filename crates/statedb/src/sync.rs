//! State sync: a new node fetches the store from an untrusted node and ends
//! with a store whose root is one it trusts.
//!
//! # Trust model
//!
//! The client trusts one thing: a state root, taken from a certified block
//! header ([`sync`]'s `trusted_root`). Everything else comes from a server
//! that may lie, and is checked before it is used:
//!
//! 1. The [`SyncTarget`] the server offers names the root, its height, the
//!    root of the operation log alone (the *ops root*, which qmdb's sync
//!    engine verifies against) and a witness that the root commits to that
//!    ops root. [`SyncTarget::verify`] checks the root is the trusted one
//!    and the witness binds the ops root to it, before anything is fetched.
//! 2. Every response is decoded with bounds ([`SYNC_RESPONSE_BYTES_MAX`],
//!    at most the operations asked for, each at most a leaf's size) and its
//!    operations are checked against the ops root with the range proof it
//!    carries, at the log size the request named. A response that does not
//!    verify is asked for again, at most [`SYNC_ATTEMPTS_MAX`] times; then
//!    the sync fails, saying what did not verify ([`SyncError::Rejected`]).
//! 3. Once the log is complete, qmdb rebuilds the activity bitmap and the
//!    grafted tree from the operations; the store's root must then equal the
//!    trusted root and its height the target's. Only then is it opened as a
//!    [`StateService`].
//!
//! On any failure, everything the sync wrote under its directory is removed.
//!
//! The server ([`StateDb::sync_target`], [`StateDb::serve_sync`]) answers
//! from the committed store with *historical* proofs, as of the log size a
//! request names, so a client keeps syncing to its target while the server
//! commits new blocks. The server must keep the operations from the
//! target's `start` (the store never prunes today).
//!
//! Why the responses are verified in the [`Source`] and not through qmdb's
//! `Feedback`: the engine checks each response itself, but a response that
//! fails without feedback ends the sync with a bare "invalid response", and
//! feedback needs a task per request to fetch the next candidate. Checking
//! in the source (with qmdb's own verifiers, the same checks the engine
//! repeats) lets a failed response be fetched again in place, bounded, and
//! the final error say what was wrong.

use crate::db::{self, Db, Runtime, StateDb, StoreError};
use crate::leaf;
use crate::service::{LeafEntry, StateService};
use commonware_codec::{Copying, Decode, DecodeExt as _, Encode, MaxEncodeSize};
use commonware_cryptography::{Sha256, sha256::Digest};
use commonware_runtime::{Runner as _, Supervisor as _};
use commonware_storage::merkle::{Location, mmr};
use commonware_storage::qmdb::current::proof::OpsRootWitness;
use commonware_storage::qmdb::sync::{self as qsync, Request, Response, Source};
use commonware_utils::range::NonEmptyRange;
use commonware_utils::{NZU64, NZUsize};
use futures::StreamExt as _;
use phalanx_primitives::Hash;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

/// Most operations one response carries. A server answers a request for
/// more with fewer (the client asks again for the rest); 4096 small leaves
/// make a response of a few hundred KiB.
pub const SYNC_OPS_MAX: u64 = 4096;
/// Largest encoded response, in bytes. A server halves the operations it
/// sends until the response fits; one operation always fits (a leaf is at
/// most [`leaf::STORED_BYTES_MAX`], a little over 4 MiB). As hex over
/// JSON-RPC that is 16 MiB, within a node's 32 MiB response limit.
pub const SYNC_RESPONSE_BYTES_MAX: usize = 8 << 20;
/// Largest encoded request, in bytes.
pub const SYNC_REQUEST_BYTES_MAX: usize = <Request<mmr::Family> as MaxEncodeSize>::MAX_ENCODE_SIZE;
/// Largest encoded [`SyncTarget`], in bytes.
pub const SYNC_TARGET_BYTES_MAX: usize = 512;
/// Times a request is sent before a sync gives up on its answers.
pub const SYNC_ATTEMPTS_MAX: u32 = 3;
/// Most leaves in one [`LeavesPage`].
pub const LEAVES_PAGE_MAX: usize = 4096;

/// An operation of the store's log.
pub type Operation = commonware_storage::qmdb::any::operation::Operation<mmr::Family, db::StoredUpdate>;
/// A sync request, as qmdb's engine makes it.
pub type SyncRequest = Request<mmr::Family>;
/// A sync response: operations (or the boundary operation and pinned nodes)
/// with their proof against the ops root.
pub type SyncResponse = Response<mmr::Family, Operation, Digest>;
type Witness = OpsRootWitness<mmr::Family, Digest>;

/// Where a node can sync to: the server's committed state.
#[derive(Clone, Debug, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct SyncTarget {
    /// The height of the last committed block.
    pub height: u64,
    /// Its state root (the canonical root, as in block headers).
    pub root: Hash,
    /// The root of the operation log alone, which the sync verifies against.
    pub ops_root: Hash,
    /// The first operation to fetch (the server's sync boundary).
    pub start: u64,
    /// Operations in the log (the first not fetched).
    pub end: u64,
    /// The encoded witness that `root` commits to `ops_root`.
    pub witness: Vec<u8>,
}

impl SyncTarget {
    /// The target's bytes (borsh).
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("in-memory encoding")
    }

    /// A target from untrusted bytes, at most [`SYNC_TARGET_BYTES_MAX`].
    /// Decoding checks nothing else: see [`Self::verify`].
    pub fn decode(bytes: &[u8]) -> Result<SyncTarget, SyncError> {
        if bytes.len() > SYNC_TARGET_BYTES_MAX {
            return Err(SyncError::BadTarget(format!("{} bytes; at most {SYNC_TARGET_BYTES_MAX}", bytes.len())));
        }
        borsh::from_slice(bytes).map_err(|e| SyncError::BadTarget(e.to_string()))
    }

    /// Checks the target against the trusted root: the same root, a
    /// non-empty range of operations, and a witness that binds the ops root
    /// to the root.
    pub fn verify(&self, trusted_root: &Hash) -> Result<(), SyncError> {
        if self.root != *trusted_root {
            return Err(SyncError::UntrustedRoot { claimed: self.root, trusted: *trusted_root });
        }
        if self.start >= self.end || !Location::<mmr::Family>::new(self.end).is_valid() {
            return Err(SyncError::BadTarget(format!("operations {}..{} is not a valid range", self.start, self.end)));
        }
        if self.witness.len() > SYNC_TARGET_BYTES_MAX {
            return Err(SyncError::BadTarget("the witness is too long".into()));
        }
        let witness = Witness::decode(Copying(&self.witness[..]))
            .map_err(|e| SyncError::BadTarget(format!("the ops root witness is malformed: {e}")))?;
        if !witness.verify::<Sha256>(&Digest(self.ops_root.0), &Digest(self.root.0)) {
            return Err(SyncError::OpsRootNotWitnessed { ops_root: self.ops_root, root: self.root });
        }
        Ok(())
    }
}

/// A page of committed leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeavesPage {
    /// The leaves (leaf key, value), in the order of their stored keys.
    pub leaves: Vec<LeafEntry>,
    /// The stored key to continue after, `None` when the state has no more.
    pub next: Option<[u8; 32]>,
}

/// Why a response was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the server did not answer: {0}")]
    Fetch(String),
    #[error("the response is {len} bytes; at most {SYNC_RESPONSE_BYTES_MAX}")]
    TooLarge { len: usize },
    #[error("the response is malformed: {0}")]
    Malformed(String),
    #[error("the response does not answer the request: {0}")]
    Mismatch(String),
    #[error("the operations do not verify against the target's ops root")]
    NotProven,
}

/// A request whose answers all failed (the sync engine's source error).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{request}: {attempts} answers refused, the last because {reason}")]
pub struct Refused {
    pub request: String,
    pub attempts: u32,
    pub reason: Rejection,
}

/// Why a state sync failed. Nothing it wrote is left on disk.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the target's root {claimed} is not the trusted root {trusted}")]
    UntrustedRoot { claimed: Hash, trusted: Hash },
    #[error("the target's ops root {ops_root} is not committed by root {root} (its witness does not verify)")]
    OpsRootNotWitnessed { ops_root: Hash, root: Hash },
    #[error("the target is malformed: {0}")]
    BadTarget(String),
    #[error("the directory {0} is not empty; a sync starts from nothing")]
    NotEmpty(String),
    #[error("the server's answers did not verify: {0}")]
    Rejected(Refused),
    #[error("the sync engine failed: {0}")]
    Engine(String),
    #[error("the synced store's root {actual} is not the trusted root {expected}")]
    RootMismatch { expected: Hash, actual: Hash },
    #[error("the synced store is at height {actual:?}, the target at {expected}")]
    HeightMismatch { expected: u64, actual: Option<u64> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Decodes a response to a request for at most `max_ops` operations, with
/// every bound: its size, the operations and proof digests it may carry,
/// each operation's size.
pub fn decode_response(bytes: &[u8], max_ops: u64) -> Result<SyncResponse, Rejection> {
    if bytes.len() > SYNC_RESPONSE_BYTES_MAX {
        return Err(Rejection::TooLarge { len: bytes.len() });
    }
    let max_ops = max_ops.min(SYNC_OPS_MAX) as usize;
    SyncResponse::decode_cfg(Copying(bytes), &(max_ops, db::operation_cfg()))
        .map_err(|e| Rejection::Malformed(e.to_string()))
}

/// Decodes a request (bounded).
pub fn decode_request(bytes: &[u8]) -> Result<SyncRequest, StoreError> {
    if bytes.len() > SYNC_REQUEST_BYTES_MAX {
        return Err(StoreError::BadRequest(format!("{} bytes; at most {SYNC_REQUEST_BYTES_MAX}", bytes.len())));
    }
    SyncRequest::decode(Copying(bytes)).map_err(|e| StoreError::BadRequest(e.to_string()))
}

/// Checks a response against the request it answers and the ops root:
/// the checks qmdb's engine makes, here so a failure can be retried and named.
fn verify_response(request: &SyncRequest, ops_root: &Digest, response: &SyncResponse) -> Result<(), Rejection> {
    if response.proof().leaves != request.size() {
        return Err(Rejection::Mismatch(format!(
            "the proof is for {} operations, the request for {}",
            response.proof().leaves,
            request.size()
        )));
    }
    let proven = match (request, response) {
        (Request::Operations { start, max_ops, .. }, Response::Operations { proof, operations }) => {
            if operations.is_empty() || operations.len() as u64 > max_ops.get() {
                return Err(Rejection::Mismatch(format!("{} operations, asked for 1 to {max_ops}", operations.len())));
            }
            commonware_storage::qmdb::verify_proof::<Sha256, _, _>(proof, *start, operations, ops_root)
        }
        (Request::Boundary { start, .. }, Response::Boundary { proof, op, pinned_nodes }) => {
            commonware_storage::qmdb::verify_proof_and_pinned_nodes::<Sha256, _, _>(
                proof,
                *start,
                std::slice::from_ref(op),
                pinned_nodes,
                ops_root,
            )
        }
        _ => return Err(Rejection::Mismatch("a response of the other kind".into())),
    };
    if proven { Ok(()) } else { Err(Rejection::NotProven) }
}

/// The sync engine's source: a fetch function to some server, its answers
/// decoded and verified, each request tried at most [`SYNC_ATTEMPTS_MAX`] times.
struct FetchSource<F> {
    fetch: Arc<F>,
    ops_root: Digest,
}

impl<F> FetchSource<F>
where
    F: Fn(Vec<u8>) -> Result<Vec<u8>, String> + Send + Sync + 'static,
{
    fn once(&self, request: &SyncRequest) -> Result<SyncResponse, Rejection> {
        let bytes = (self.fetch)(request.encode().to_vec()).map_err(Rejection::Fetch)?;
        let response = decode_response(&bytes, request.max_ops().get())?;
        verify_response(request, &self.ops_root, &response)?;
        Ok(response)
    }
}

impl<F> Source for FetchSource<F>
where
    F: Fn(Vec<u8>) -> Result<Vec<u8>, String> + Send + Sync + 'static,
{
    type Family = mmr::Family;
    type Digest = Digest;
    type Op = Operation;
    type Error = Refused;

    async fn serve(&self, request: SyncRequest) -> qsync::source::Result<Self> {
        let mut reason = Rejection::Fetch("not asked".into());
        for attempt in 1..=SYNC_ATTEMPTS_MAX {
            match self.once(&request) {
                Ok(response) => return Ok((response, None)),
                Err(rejection) => {
                    tracing::warn!(%request, attempt, %rejection, "state sync: refused an answer");
                    reason = rejection;
                }
            }
        }
        Err(Refused { request: request.to_string(), attempts: SYNC_ATTEMPTS_MAX, reason })
    }
}

impl<E: Runtime> StateDb<E> {
    /// The committed state as a sync target.
    pub async fn sync_target(&self) -> Result<SyncTarget, StoreError> {
        let height =
            self.height().await?.ok_or_else(|| StoreError::BadRequest("no block is committed to sync to".into()))?;
        let db = self.db()?;
        let witness = db.ops_root_witness().await.map_err(StoreError::storage)?;
        Ok(SyncTarget {
            height,
            root: Hash(db.root().0),
            ops_root: Hash(db.ops_root().0),
            start: db.sync_boundary().as_u64(),
            end: db.bounds().end.as_u64(),
            witness: witness.encode().to_vec(),
        })
    }

    /// Answers an encoded sync request from the committed store, with proofs
    /// against the ops root the store had at the request's size. At most
    /// [`SYNC_OPS_MAX`] operations and [`SYNC_RESPONSE_BYTES_MAX`] bytes.
    pub async fn serve_sync(&self, request: &[u8]) -> Result<Vec<u8>, StoreError> {
        let request = decode_request(request)?;
        let db = self.db()?;
        if request.size() > db.bounds().end {
            return Err(StoreError::BadRequest(format!(
                "{request} is past the committed log ({} operations)",
                db.bounds().end
            )));
        }
        let mut max_ops = request.max_ops().min(NZU64!(SYNC_OPS_MAX));
        loop {
            let bounded = match request {
                Request::Operations { size, start, .. } => Request::Operations { size, start, max_ops },
                boundary @ Request::Boundary { .. } => boundary,
            };
            let (response, _) = Source::serve(db, bounded).await.map_err(StoreError::storage)?;
            let encoded = response.encode();
            if encoded.len() <= SYNC_RESPONSE_BYTES_MAX {
                return Ok(encoded.to_vec());
            }
            max_ops = match std::num::NonZeroU64::new(max_ops.get() / 2) {
                Some(half) if matches!(request, Request::Operations { .. }) => half,
                _ => {
                    return Err(StoreError::Storage(format!(
                        "one operation's response is {} bytes; at most {SYNC_RESPONSE_BYTES_MAX}",
                        encoded.len()
                    )));
                }
            };
        }
    }

    /// Up to `limit` (at least one) committed leaves after stored key
    /// `after`, in stored-key order.
    pub async fn leaves_page(&self, after: Option<[u8; 32]>, limit: usize) -> Result<LeavesPage, StoreError> {
        let limit = limit.max(1);
        let db = self.db()?;
        let start = after.map_or(Bound::Unbounded, |after| Bound::Excluded(Digest(after)));
        let mut stream = std::pin::pin!(db.stream_range((start, Bound::Unbounded)));
        let mut leaves = Vec::new();
        let mut last = None;
        while let Some(item) = stream.next().await {
            if leaves.len() >= limit {
                return Ok(LeavesPage { leaves, next: last });
            }
            let (stored_key, stored) = item.map_err(StoreError::storage)?;
            let name = || hex::encode(stored_key.0);
            let leaf = leaf::decode(&stored).map_err(|e| StoreError::Corrupt { key: name(), reason: e.to_string() })?;
            if leaf::store_key(&leaf.key) != stored_key {
                return Err(StoreError::Corrupt { key: name(), reason: "stored under another key's hash".into() });
            }
            last = Some(stored_key.0);
            leaves.push((leaf.key, leaf.value));
        }
        Ok(LeavesPage { leaves, next: None })
    }
}

/// Syncs a new store under `directory` (absent or empty) to `target`, from
/// the server `fetch` reaches (it sends an encoded [`SyncRequest`] and
/// returns the encoded [`SyncResponse`]), and opens it. `trusted_root` is
/// the root the node trusts for `target.height` (from a certified header).
/// On failure nothing is left under `directory`.
pub fn sync<F>(directory: &Path, target: &SyncTarget, trusted_root: Hash, fetch: F) -> Result<StateService, SyncError>
where
    F: Fn(Vec<u8>) -> Result<Vec<u8>, String> + Send + Sync + 'static,
{
    target.verify(&trusted_root)?;
    let created = !directory.exists();
    if !created {
        let mut entries = std::fs::read_dir(directory).map_err(StoreError::storage)?;
        if entries.next().is_some() {
            return Err(SyncError::NotEmpty(directory.display().to_string()));
        }
    }
    let synced = run(directory, target, trusted_root, fetch).and_then(|()| {
        let service = StateService::open(directory)?;
        let status = service.status()?;
        if status.root != trusted_root {
            return Err(SyncError::RootMismatch { expected: trusted_root, actual: status.root });
        }
        if status.height != Some(target.height) {
            return Err(SyncError::HeightMismatch { expected: target.height, actual: status.height });
        }
        Ok(service)
    });
    synced.inspect_err(|_| remove_written(directory, created))
}

/// Removes what a failed sync wrote: the directory if it made it, else
/// its contents (it was empty).
fn remove_written(directory: &Path, created: bool) {
    let removed = if created {
        std::fs::remove_dir_all(directory)
    } else {
        std::fs::read_dir(directory).and_then(|entries| {
            for entry in entries {
                let path = entry?.path();
                if path.is_dir() { std::fs::remove_dir_all(&path)? } else { std::fs::remove_file(&path)? }
            }
            Ok(())
        })
    };
    if let Err(error) = removed {
        tracing::warn!(%error, directory = %directory.display(), "could not remove a failed state sync's files");
    }
}

/// Runs qmdb's sync engine into a fresh store under `directory`, on a
/// thread of its own (its own commonware runtime, as [`StateService`]),
/// checks its root and height, and persists it.
fn run<F>(directory: &Path, target: &SyncTarget, trusted_root: Hash, fetch: F) -> Result<(), SyncError>
where
    F: Fn(Vec<u8>) -> Result<Vec<u8>, String> + Send + Sync + 'static,
{
    std::fs::create_dir_all(directory).map_err(StoreError::storage)?;
    let range = NonEmptyRange::new(Location::new(target.start)..Location::new(target.end))
        .map_err(|_| SyncError::BadTarget("an empty range of operations".into()))?;
    let engine_target = qsync::Target::new(Digest(target.ops_root.0), range);
    let height = target.height;
    let config = commonware_runtime::tokio::Config::new()
        .with_storage_directory(directory)
        .with_worker_threads(1)
        .with_catch_panics(false);
    let source = FetchSource { fetch: Arc::new(fetch), ops_root: Digest(target.ops_root.0) };
    let thread = std::thread::Builder::new()
        .name("statedb-sync".into())
        .spawn(move || {
            commonware_runtime::tokio::Runner::new(config).start(|context| async move {
                let db: Db<_> = qsync::sync(qsync::engine::Config {
                    context: context.child("statedb"),
                    source,
                    target: engine_target,
                    max_outstanding_requests: NZUsize!(4),
                    fetch_batch_size: NZU64!(SYNC_OPS_MAX),
                    apply_batch_size: NZU64!(SYNC_OPS_MAX),
                    db_config: db::config("state"),
                    update_rx: None,
                    finish_rx: None,
                    reached_target_tx: None,
                })
                .await
                .map_err(|error| match error {
                    qsync::Error::Source(refused) => SyncError::Rejected(refused),
                    qsync::Error::Engine(error) => SyncError::Engine(error.to_string()),
                    qsync::Error::Database(error) => SyncError::Store(StoreError::storage(error)),
                })?;
                let mut state = StateDb::from_db(db);
                let root = state.root()?;
                if root != trusted_root {
                    return Err(SyncError::RootMismatch { expected: trusted_root, actual: root });
                }
                let synced_height = state.height().await?;
                if synced_height != Some(height) {
                    return Err(SyncError::HeightMismatch { expected: height, actual: synced_height });
                }
                state.sync().await?;
                Ok(())
            })
        })
        .map_err(StoreError::storage)?;
    thread.join().map_err(|_| SyncError::Engine("the sync thread panicked".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_operation_always_fits_a_response() {
        let op_bytes_max = leaf::STORED_BYTES_MAX + 2 * 32 + 16;
        assert!(qsync::max_response_size::<mmr::Family, Digest>(1, op_bytes_max) <= SYNC_RESPONSE_BYTES_MAX);
    }
}
