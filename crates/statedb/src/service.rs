//! The store on a thread of its own, behind a blocking handle.
//!
//! qmdb is async and needs a commonware runtime; the chain, the follower
//! and the worker's verified chain are synchronous code that executes
//! blocks. [`StateService`] runs a [`StateDb`] on its own thread (its own
//! commonware runtime, one worker thread) and answers requests in order,
//! so the store is never used from two places at once and a proof is always
//! made at the height it names.
//!
//! Blocks that are not final yet are *speculations*: merkleized on top of
//! the committed state or of another speculation, held until committed or
//! discarded. Committing a speculation commits its ancestors too and makes
//! its siblings stale, so they are dropped.

use crate::db::{StateDb, StoreError};
use crate::proof::StateProof;
use crate::sync::{LEAVES_PAGE_MAX, LeavesPage, SyncTarget};
use commonware_runtime::{Runner as _, Supervisor as _};
use phalanx_primitives::Hash;
use std::path::Path;
use std::sync::mpsc;

/// One leaf write: a key and its new value (`None` deletes it).
pub type Write = (Vec<u8>, Option<Vec<u8>>);
/// One committed leaf: its key and value.
pub type LeafEntry = (Vec<u8>, Vec<u8>);

/// Most speculations held at once (unfinalized blocks a node keeps, with room).
pub const SPECULATIONS_MAX: usize = 4096;
/// Most keys proven in one request.
pub const PROOF_KEYS_MAX: usize = 64;

/// A block merkleized on top of the committed state or of another speculation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Speculation {
    pub(crate) id: u64,
    /// The block height it was made for.
    pub height: u64,
    /// The state root after it.
    pub root: Hash,
}

/// What a speculation builds on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parent {
    /// The last committed block.
    Committed,
    /// A block not committed yet.
    Speculation(Speculation),
}

/// Where the committed state is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The last committed block's height (`None`: nothing committed).
    pub height: Option<u64>,
    pub root: Hash,
    /// Operations in the log: the position to go back to this commit.
    pub size: u64,
}

/// Proofs made at one committed height.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proven {
    /// The height of the committed state the proofs are against (`None`: empty store).
    pub height: Option<u64>,
    /// That state's root.
    pub root: Hash,
    pub proofs: Vec<StateProof>,
}

enum Job {
    Speculate { parent: Parent, height: u64, writes: Vec<Write>, answer: mpsc::Sender<Result<Speculation, StoreError>> },
    Commit { speculation: Speculation, answer: mpsc::Sender<Result<Hash, StoreError>> },
    Discard { speculation: Speculation },
    Apply { height: u64, writes: Vec<Write>, answer: mpsc::Sender<Result<Hash, StoreError>> },
    Prove { keys: Vec<Vec<u8>>, answer: mpsc::Sender<Result<Proven, StoreError>> },
    Get { key: Vec<u8>, answer: mpsc::Sender<Result<Option<Vec<u8>>, StoreError>> },
    Status { answer: mpsc::Sender<Result<Status, StoreError>> },
    SyncTarget { answer: mpsc::Sender<Result<SyncTarget, StoreError>> },
    ServeSync { request: Vec<u8>, answer: mpsc::Sender<Result<Vec<u8>, StoreError>> },
    Leaves { after: Option<[u8; 32]>, limit: usize, answer: mpsc::Sender<Result<LeavesPage, StoreError>> },
}

/// A [`StateDb`] on its own thread. Dropping the handle stops the thread
/// after the requests already sent (nothing committed is lost: every
/// commit is durable before it is answered).
#[derive(Debug)]
pub struct StateService {
    jobs: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The directory of a [`StateService::temporary`] store, removed once
    /// the thread has let go of it (fields drop after [`Drop::drop`]).
    _temporary: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Speculate { .. } => "Speculate",
            Job::Commit { .. } => "Commit",
            Job::Discard { .. } => "Discard",
            Job::Apply { .. } => "Apply",
            Job::Prove { .. } => "Prove",
            Job::Get { .. } => "Get",
            Job::Status { .. } => "Status",
            Job::SyncTarget { .. } => "SyncTarget",
            Job::ServeSync { .. } => "ServeSync",
            Job::Leaves { .. } => "Leaves",
        })
    }
}

impl StateService {
    /// Opens the store under `directory` (created if missing) on a new thread.
    pub fn open(directory: &Path) -> Result<StateService, StoreError> {
        Self::open_at(directory, None)
    }

    /// A store in a temporary directory, removed when the service is
    /// dropped (simulations, tests and tools that build a chain apart).
    pub fn temporary() -> Result<StateService, StoreError> {
        let dir = tempfile::Builder::new().prefix("phalanx-state-").tempdir().map_err(StoreError::storage)?;
        let mut service = Self::open(dir.path())?;
        service._temporary = Some(dir);
        Ok(service)
    }

    /// Opens the store at the commit of log size `size` (see
    /// [`Status::size`]), durably dropping later commits; `None` opens at
    /// the last commit.
    pub fn open_at(directory: &Path, size: Option<u64>) -> Result<StateService, StoreError> {
        std::fs::create_dir_all(directory).map_err(StoreError::storage)?;
        let config = commonware_runtime::tokio::Config::new()
            .with_storage_directory(directory)
            .with_worker_threads(1)
            .with_catch_panics(false);
        let (jobs, receiver) = tokio::sync::mpsc::unbounded_channel();
        let (opened_tx, opened_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("statedb".into())
            .spawn(move || {
                commonware_runtime::tokio::Runner::new(config).start(|context| async move {
                    match StateDb::open_at(context.child("statedb"), "state", size).await {
                        Ok(db) => {
                            let _ = opened_tx.send(Ok(()));
                            serve(db, receiver).await;
                        }
                        Err(error) => {
                            let _ = opened_tx.send(Err(error));
                        }
                    }
                })
            })
            .map_err(StoreError::storage)?;
        match opened_rx.recv() {
            Ok(Ok(())) => Ok(StateService { jobs: Some(jobs), thread: Some(thread), _temporary: None }),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(_) => Err(StoreError::Storage("the state store's thread stopped while opening".into())),
        }
    }

    fn ask<T>(&self, job: impl FnOnce(mpsc::Sender<Result<T, StoreError>>) -> Job) -> Result<T, StoreError> {
        let (answer, receiver) = mpsc::channel();
        self.jobs.as_ref().ok_or(StoreError::Closed)?.send(job(answer)).map_err(|_| StoreError::Closed)?;
        receiver.recv().map_err(|_| StoreError::Closed)?
    }

    /// Merkleizes block `height`'s writes on top of `parent`, without committing.
    pub fn speculate(&self, parent: Parent, height: u64, writes: Vec<Write>) -> Result<Speculation, StoreError> {
        self.ask(|answer| Job::Speculate { parent, height, writes, answer })
    }

    /// Commits a speculation (and its uncommitted ancestors) durably; drops
    /// every speculation it makes stale. Returns the committed root.
    pub fn commit(&self, speculation: Speculation) -> Result<Hash, StoreError> {
        self.ask(|answer| Job::Commit { speculation, answer })
    }

    /// Forgets a speculation (a block that will not be finalized).
    pub fn discard(&self, speculation: Speculation) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Discard { speculation });
        }
    }

    /// Applies and commits block `height`'s writes on top of the committed
    /// state (a block that is already final: replay, sync).
    pub fn apply(&self, height: u64, writes: Vec<Write>) -> Result<Hash, StoreError> {
        self.ask(|answer| Job::Apply { height, writes, answer })
    }

    /// Proofs of up to [`PROOF_KEYS_MAX`] leaves against the committed state.
    pub fn prove(&self, keys: Vec<Vec<u8>>) -> Result<Proven, StoreError> {
        if keys.len() > PROOF_KEYS_MAX {
            return Err(StoreError::Storage(format!("at most {PROOF_KEYS_MAX} keys per proof request")));
        }
        self.ask(|answer| Job::Prove { keys, answer })
    }

    /// A leaf's committed value.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_vec();
        self.ask(|answer| Job::Get { key, answer })
    }

    /// Where the committed state is.
    pub fn status(&self) -> Result<Status, StoreError> {
        self.ask(|answer| Job::Status { answer })
    }

    /// What a node joining by state sync needs to start from the committed
    /// state (see [`crate::sync`]).
    pub fn sync_target(&self) -> Result<SyncTarget, StoreError> {
        self.ask(|answer| Job::SyncTarget { answer })
    }

    /// Answers an encoded state sync request from the committed store, as
    /// of the size the request names (see [`crate::sync`]).
    pub fn serve_sync(&self, request: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        self.ask(|answer| Job::ServeSync { request, answer })
    }

    /// Up to `limit` (at most [`LEAVES_PAGE_MAX`]) committed leaves, in the
    /// order of their stored keys, starting after stored key `after`
    /// (`None`: from the first). One page is read at one committed state;
    /// pages read across commits may mix states.
    pub fn leaves_page(&self, after: Option<[u8; 32]>, limit: usize) -> Result<LeavesPage, StoreError> {
        let limit = limit.clamp(1, LEAVES_PAGE_MAX);
        self.ask(|answer| Job::Leaves { after, limit, answer })
    }

    /// Every committed leaf (leaf key, value), in the order of their stored
    /// keys, read at one committed state. Holds the whole state in memory:
    /// for large states walk [`Self::leaves_page`] instead.
    pub fn leaves(&self) -> Result<Vec<LeafEntry>, StoreError> {
        Ok(self.ask(|answer| Job::Leaves { after: None, limit: usize::MAX, answer })?.leaves)
    }
}

impl Drop for StateService {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve<E: crate::db::Runtime>(mut db: StateDb<E>, mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>) {
    let mut held = crate::db::Speculations::default();
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Speculate { parent, height, writes, answer } => {
                let result = if held.len() >= SPECULATIONS_MAX {
                    Err(StoreError::Storage(format!("{SPECULATIONS_MAX} blocks are held uncommitted already")))
                } else {
                    db.speculate(&mut held, parent, height, writes).await
                };
                let _ = answer.send(result);
            }
            Job::Commit { speculation, answer } => {
                let _ = answer.send(db.commit(&mut held, speculation).await);
            }
            Job::Discard { speculation } => held.discard(speculation),
            Job::Apply { height, writes, answer } => {
                held.clear();
                let _ = answer.send(db.apply(height, writes).await);
            }
            Job::Prove { keys, answer } => {
                let proven = async {
                    let (height, root) = (db.height().await?, db.root()?);
                    let mut proofs = Vec::with_capacity(keys.len());
                    for key in keys {
                        proofs.push(db.prove(&key).await?);
                    }
                    Ok(Proven { height, root, proofs })
                };
                let _ = answer.send(proven.await);
            }
            Job::Get { key, answer } => {
                let _ = answer.send(db.get(&key).await);
            }
            Job::Status { answer } => {
                let status = async { Ok(Status { height: db.height().await?, root: db.root()?, size: db.size()? }) };
                let _ = answer.send(status.await);
            }
            Job::SyncTarget { answer } => {
                let _ = answer.send(db.sync_target().await);
            }
            Job::ServeSync { request, answer } => {
                let _ = answer.send(db.serve_sync(&request).await);
            }
            Job::Leaves { after, limit, answer } => {
                let _ = answer.send(db.leaves_page(after, limit).await);
            }
        }
    }
    // Every handle is gone: persist everything, so the next open need not
    // replay the log (a commit is durable already; this only saves time).
    if let Err(error) = db.sync().await {
        tracing::warn!(%error, "the state store could not be synced at shutdown; the next open replays its log");
    }
}
