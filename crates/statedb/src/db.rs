//! The store: open it, apply a block's writes as one batch, read and prove.
//!
//! qmdb's calls that change the database take it by value and give it back;
//! if one fails the handle is gone. [`StateDb`] then refuses further use
//! ([`StoreError::Closed`]) until it is opened again, which recovers the last
//! committed state from disk.

use crate::leaf::{self, STORED_BYTES_MAX};
use crate::proof::StateProof;
use crate::service::{Parent, Speculation, Write};
use commonware_codec::{Encode, RangeCfg};
use commonware_cryptography::{Sha256, sha256::Digest};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_storage::journal::contiguous::variable::Config as JournalConfig;
use commonware_storage::merkle::full::Config as MerkleConfig;
use commonware_storage::merkle::mmr;
use commonware_storage::qmdb::any::ordered::Update;
use commonware_storage::qmdb::any::value::VariableEncoding;
use commonware_storage::qmdb::current::batch::{MerkleizedBatch, UnmerkleizedBatch};
use commonware_storage::qmdb::current::{self, VariableConfig};
use commonware_storage::qmdb::floor::Proportional;
use commonware_storage::translator::EightCap;
use commonware_utils::{NZU16, NZU64, NZUsize};
use phalanx_primitives::Hash;
use std::collections::HashMap;
use std::sync::Arc;

/// Bytes of one bitmap chunk (the activity bits grafted into the tree).
pub(crate) const CHUNK_BYTES: usize = 32;

/// The qmdb variant phalanx commits its state to.
pub type Db<E> =
    current::ordered::variable::Db<mmr::Family, E, Digest, Vec<u8>, Sha256, EightCap, CHUNK_BYTES, Sequential>;

/// The decoding bounds of a stored operation: the key (fixed) and the leaf.
pub(crate) type OperationCfg = ((), (RangeCfg<usize>, ()));
pub(crate) type Config = VariableConfig<EightCap, OperationCfg, Sequential>;

/// The decoding bounds of one stored operation (an encoded leaf is at most
/// [`STORED_BYTES_MAX`]).
pub(crate) fn operation_cfg() -> OperationCfg {
    ((), (RangeCfg::new(..=STORED_BYTES_MAX), ()))
}

/// What the store writes: a stored key and an encoded leaf.
pub type StoredUpdate = Update<Digest, VariableEncoding<Vec<u8>>>;
/// A block's writes, merkleized.
type Batch = MerkleizedBatch<mmr::Family, Digest, StoredUpdate, CHUNK_BYTES, Sequential>;
/// A block's writes, being gathered.
type Pending = UnmerkleizedBatch<mmr::Family, Sha256, StoredUpdate, CHUNK_BYTES, Sequential>;

/// Speculations held by the store's service, uncommitted.
#[derive(Default)]
pub(crate) struct Speculations {
    batches: HashMap<Speculation, Arc<Batch>>,
    next: u64,
}

impl Speculations {
    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn get(&self, speculation: Speculation) -> Result<&Arc<Batch>, StoreError> {
        self.batches.get(&speculation).ok_or(StoreError::UnknownSpeculation { height: speculation.height })
    }

    pub(crate) fn len(&self) -> usize {
        self.batches.len()
    }

    pub(crate) fn discard(&mut self, speculation: Speculation) {
        self.batches.remove(&speculation);
    }

    pub(crate) fn clear(&mut self) {
        self.batches.clear();
    }
}

/// Adds `writes` to a batch, each leaf bounded and encoded.
fn fill(mut batch: Pending, writes: impl IntoIterator<Item = Write>) -> Result<Pending, StoreError> {
    for (key, value) in writes {
        if key.len() > leaf::LEAF_KEY_BYTES_MAX {
            return Err(StoreError::TooLarge { key: hex::encode(&key), len: key.len(), max: leaf::LEAF_KEY_BYTES_MAX });
        }
        if let Some(value) = &value
            && value.len() > leaf::LEAF_VALUE_BYTES_MAX
        {
            return Err(StoreError::TooLarge {
                key: hex::encode(&key),
                len: value.len(),
                max: leaf::LEAF_VALUE_BYTES_MAX,
            });
        }
        let stored = value.map(|value| leaf::encode(&key, &value));
        batch = batch.write(leaf::store_key(&key), stored);
    }
    Ok(batch)
}

/// What the store needs of its runtime: storage, a clock, metrics and spawning.
pub trait Runtime: commonware_storage::Context + commonware_runtime::Spawner {}
impl<E: commonware_storage::Context + commonware_runtime::Spawner> Runtime for E {}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Storage(String),
    #[error("the state store failed earlier and must be opened again")]
    Closed,
    #[error("state store entry for leaf {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("leaf {key} is {len} bytes; at most {max}")]
    TooLarge { key: String, len: usize, max: usize },
    #[error("no uncommitted block at height {height} is held (committed, discarded or stale)")]
    UnknownSpeculation { height: u64 },
    #[error("the block does not build on the store's committed state: {0}")]
    Stale(String),
    #[error("refused a state sync request: {0}")]
    BadRequest(String),
}

impl StoreError {
    pub(crate) fn storage(error: impl std::fmt::Display) -> StoreError {
        StoreError::Storage(error.to_string())
    }
}

/// Sizes of the store's journals. They cannot change once a store is
/// written, so they are constants, not configuration.
const OPS_PER_SECTION: u64 = 16_384;
const NODES_PER_BLOB: u64 = 65_536;
const PAGE_BYTES: u16 = 4096;
/// Pages of the shared read cache (`PAGE_BYTES` each: 64 MiB).
const CACHE_PAGES: usize = 16_384;

/// The store's configuration. Partition names must not collide with the
/// ones commonware derives from them (a fixed journal `p` also uses
/// `p-metadata` and `p-blobs`; a variable one `p_data` and `p_offsets`).
pub(crate) fn config(name: &str) -> Config {
    let page_cache = CacheRef::new(NZU16!(PAGE_BYTES), NZUsize!(CACHE_PAGES));
    VariableConfig {
        merkle_config: MerkleConfig {
            journal_partition: format!("{name}-mmr"),
            metadata_partition: format!("{name}-mmr-pins"),
            items_per_blob: NZU64!(NODES_PER_BLOB),
            write_buffer: NZUsize!(1 << 20),
            replay_buffer: NZUsize!(1 << 20),
            strategy: Sequential,
            page_cache: page_cache.clone(),
        },
        journal_config: JournalConfig {
            partition: format!("{name}-log"),
            items_per_section: NZU64!(OPS_PER_SECTION),
            compression: None,
            codec_config: operation_cfg(),
            page_cache,
            write_buffer: NZUsize!(1 << 20),
            replay_buffer: NZUsize!(1 << 20),
        },
        grafted_metadata_partition: format!("{name}-graft"),
        translator: EightCap,
        init_cache: Some(NZUsize!(1 << 16)),
        init_buffer: NZUsize!(1 << 21),
        init_concurrency: (),
    }
}

/// The authenticated state: one qmdb database.
pub struct StateDb<E: Runtime> {
    db: Option<Db<E>>,
}

impl<E: Runtime> std::fmt::Debug for StateDb<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb").field("root", &self.db.as_ref().map(|db| db.root())).finish()
    }
}

impl<E: Runtime> StateDb<E> {
    /// Opens (or creates) the store whose partitions are named after `name`,
    /// at its last committed block.
    pub async fn open(context: E, name: &str) -> Result<Self, StoreError> {
        Self::open_at(context, name, None).await
    }

    /// Opens the store at the last commit with at most `size` operations
    /// (see [`Self::size`]), durably dropping any later commit: how a node
    /// that committed a block here but stopped before recording it
    /// elsewhere goes back. `None` opens at the last commit.
    pub async fn open_at(context: E, name: &str, size: Option<u64>) -> Result<Self, StoreError> {
        let max_size = size.map(commonware_storage::merkle::Location::new);
        let db = Db::init(context, config(name), max_size).await.map_err(StoreError::storage)?;
        Ok(StateDb { db: Some(db) })
    }

    /// The number of operations the store's log holds (a position to go
    /// back to with [`Self::open_at`]).
    pub fn size(&self) -> Result<u64, StoreError> {
        Ok(self.db()?.bounds().end.as_u64())
    }

    /// A store around a database built elsewhere (by state sync).
    pub(crate) fn from_db(db: Db<E>) -> Self {
        StateDb { db: Some(db) }
    }

    pub(crate) fn db(&self) -> Result<&Db<E>, StoreError> {
        self.db.as_ref().ok_or(StoreError::Closed)
    }

    /// The state root of the last applied block (of the empty store, before any).
    pub fn root(&self) -> Result<Hash, StoreError> {
        Ok(Hash(self.db()?.root().0))
    }

    /// The height of the last applied block, `None` for an empty store.
    pub async fn height(&self) -> Result<Option<u64>, StoreError> {
        let Some(metadata) = self.db()?.get_metadata().await.map_err(StoreError::storage)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = metadata
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt { key: "metadata".into(), reason: "not a height".into() })?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// Applies block `height`'s writes (a leaf key and its new value, `None`
    /// to delete) as one batch, commits it durably and returns the new root.
    /// A key written twice keeps its last value.
    pub async fn apply(
        &mut self,
        height: u64,
        writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<Hash, StoreError> {
        let batch = self.db()?.new_batch();
        let merkleized = self.merkleize(batch, height, writes).await?;
        self.commit_batch(merkleized).await
    }

    /// Adds block `height`'s writes to `batch` and merkleizes it: the one
    /// batch a block is, with its height as metadata.
    async fn merkleize(
        &self,
        batch: Pending,
        height: u64,
        writes: impl IntoIterator<Item = Write>,
    ) -> Result<Arc<Batch>, StoreError> {
        fill(batch, writes)?
            .merkleize(self.db()?, Some(height.to_be_bytes().to_vec()), &mut Proportional)
            .await
            .map_err(StoreError::storage)
    }

    /// Applies a merkleized batch and commits it. From the apply on, the
    /// handle is given away: an error leaves the store closed.
    async fn commit_batch(&mut self, merkleized: Arc<Batch>) -> Result<Hash, StoreError> {
        let root = Hash(merkleized.root().0);
        // A stale batch (built on a state the store is no longer at) is
        // refused here, keeping the handle; applying it would consume it.
        self.db()?.validate_batch(&merkleized).map_err(|e| StoreError::Stale(e.to_string()))?;
        let db = self.db.take().ok_or(StoreError::Closed)?;
        let db = db.apply_batch(merkleized).await.map_err(StoreError::storage)?;
        let db = db.commit().await.map_err(StoreError::storage)?;
        self.db = Some(db);
        Ok(root)
    }

    /// Merkleizes block `height`'s writes on top of `parent` and holds the
    /// result in `held`, uncommitted.
    pub(crate) async fn speculate(
        &self,
        held: &mut Speculations,
        parent: Parent,
        height: u64,
        writes: Vec<Write>,
    ) -> Result<Speculation, StoreError> {
        let batch = match parent {
            Parent::Committed => {
                // The caller's idea of the committed state may lag behind a
                // commit made meanwhile: building on a later state would
                // give the block a wrong root.
                if let Some(committed) = self.height().await?
                    && committed.checked_add(1) != Some(height)
                {
                    return Err(StoreError::Stale(format!(
                        "the committed state is at height {committed}, not the parent of block {height}"
                    )));
                }
                self.db()?.new_batch()
            }
            Parent::Speculation(parent) => match held.get(parent) {
                Ok(batch) => batch.new_batch::<Sha256>(),
                // A speculation committed since the caller looked is the
                // committed state now (a block verified while its parent
                // finalizes): build on that.
                Err(unknown) => {
                    if self.height().await? != Some(parent.height) || self.root()? != parent.root {
                        return Err(unknown);
                    }
                    self.db()?.new_batch()
                }
            },
        };
        let merkleized = self.merkleize(batch, height, writes).await?;
        let speculation = Speculation { id: held.next_id(), height, root: Hash(merkleized.root().0) };
        held.batches.insert(speculation, merkleized);
        Ok(speculation)
    }

    /// Commits a held speculation, with its uncommitted ancestors, and drops
    /// every held speculation at its height or below (its ancestors, now
    /// committed, and its siblings, now stale).
    pub(crate) async fn commit(
        &mut self,
        held: &mut Speculations,
        speculation: Speculation,
    ) -> Result<Hash, StoreError> {
        let batch = held.get(speculation)?.clone();
        let root = self.commit_batch(batch).await?;
        held.batches.retain(|kept, _| kept.height > speculation.height);
        Ok(root)
    }

    /// The value of a leaf, if present.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(stored) = self.db()?.get(&leaf::store_key(key)).await.map_err(StoreError::storage)? else {
            return Ok(None);
        };
        let leaf =
            leaf::decode(&stored).map_err(|e| StoreError::Corrupt { key: hex::encode(key), reason: e.to_string() })?;
        if leaf.key != key {
            return Err(StoreError::Corrupt {
                key: hex::encode(key),
                reason: "stored under another key's hash".into(),
            });
        }
        Ok(Some(leaf.value))
    }

    /// A proof of a leaf's value, or of its absence, against [`Self::root`].
    pub async fn prove(&self, key: &[u8]) -> Result<StateProof, StoreError> {
        let db = self.db()?;
        let stored_key = leaf::store_key(key);
        match self.get(key).await? {
            Some(value) => {
                let proof = db.key_value_proof(stored_key).await.map_err(StoreError::storage)?;
                Ok(StateProof { key: key.to_vec(), value: Some(value), proof: proof.encode().to_vec() })
            }
            None => {
                let proof = db.exclusion_proof(&stored_key).await.map_err(StoreError::storage)?;
                Ok(StateProof { key: key.to_vec(), value: None, proof: proof.encode().to_vec() })
            }
        }
    }

    /// Persists everything, so the next open need not replay the log.
    pub async fn sync(&mut self) -> Result<(), StoreError> {
        let db = self.db.take().ok_or(StoreError::Closed)?;
        self.db = Some(db.sync().await.map_err(StoreError::storage)?);
        Ok(())
    }
}
