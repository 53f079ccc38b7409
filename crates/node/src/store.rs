//! The node's embedded databases: redb for finalized blocks with their
//! certificates and events, a transaction index and the state leaves; and
//! the authenticated state store (`phalanx-statedb`, beside it) whose root
//! every header carries.
//!
//! Each finalized block is one write transaction with immediate durability:
//! block, certificate, events, index entries, state changes and the new head
//! land together or not at all. The authenticated store commits the block
//! first (the chain does it), so after a `kill -9` it is at the redb head or
//! one block past it; [`Store::initialize`] brings it back to the head.

use phalanx_primitives::{Hash, decode_bounded, encode};
use phalanx_state::{Block, EventRecord, State, StateChange};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const BLOCK_HEIGHTS: TableDefinition<[u8; 32], u64> = TableDefinition::new("block_heights");
const TX_LOCATIONS: TableDefinition<[u8; 32], (u64, u32)> = TableDefinition::new("tx_locations");
const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Validator-set changes by the first epoch of the new set: the proofs made
/// when the block that ended the old set's last epoch was committed.
const TRANSITIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("transitions");

const META_CHAIN_ID: &str = "chain_id";
const META_HEAD: &str = "head";
/// The state store's log size after the head (where to go back to after a crash).
const META_STATE_SIZE: &str = "state_size";
/// The lowest stored block, for a node that joined by state sync (absent: 0).
const META_BASE: &str = "base";

/// Largest stored events blob we will decode, in bytes.
const EVENTS_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest stored transition we will decode, in bytes (two small leaves
/// with their proofs; a validator set is at most a few KiB).
const TRANSITION_BYTES_MAX: usize = 1 << 20;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
    #[error("data directory belongs to chain {found}, not {expected}; use another --data-dir")]
    WrongChain { expected: Hash, found: Hash },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("block {got} does not follow the stored head {head}")]
    NotNext { head: u64, got: u64 },
    #[error(transparent)]
    State(#[from] phalanx_statedb::StoreError),
    #[error(
        "data from an older format: {0} holds a chain without its authenticated state store; \
         start with a fresh --data-dir (or sync it anew)"
    )]
    OlderFormat(String),
}

fn db<E: Into<redb::Error>>(error: E) -> StoreError {
    StoreError::Database(error.into())
}

/// The last finalized block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct StoredHead {
    pub height: u64,
    pub hash: Hash,
}

/// Everything committed for one finalized block.
#[derive(Debug)]
pub struct FinalizedBlock<'a> {
    pub block: &'a Block,
    pub certificate: &'a [u8],
    pub events: &'a [EventRecord],
    pub changes: &'a [StateChange],
    /// The state store's log size once it committed this block.
    pub state_size: u64,
    /// For a block that changed the validator set: the proofs of the change.
    pub transition: Option<&'a Transition>,
}

/// A validator-set change, proven against the state root of the block that
/// made it (the last block of the old set's last epoch). Proofs can only be
/// made at the committed head, so the node makes these as it commits such a
/// block and keeps them: a light client follows the set with them.
#[derive(Clone, Debug, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct Transition {
    /// The first consensus epoch of the new set.
    pub epoch: u64,
    /// The block that made the change, and its certificate (kept here too:
    /// a node that joined by state sync has the change, not the block).
    pub header: phalanx_state::Header,
    pub certificate: Vec<u8>,
    /// The `Validators` leaf (the new set).
    pub validators: phalanx_statedb::StateProof,
    /// The `ValidatorChanges` leaf (the set it replaced, and since when).
    pub changes: phalanx_statedb::StateProof,
}

/// Handle to the databases. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    db: Database,
    state: phalanx_statedb::StateService,
}

/// Where the authenticated state store of the database at `path` lives:
/// beside it, named after it (`chain.redb` → `chain.state/`).
pub fn state_dir(path: &Path) -> std::path::PathBuf {
    path.with_extension("state")
}

/// An encoded block and its encoded certificate, as stored.
pub type RawStored = (Vec<u8>, Vec<u8>);

/// Bytes of redb's page cache. Execution reads the state from memory and
/// blocks are read rarely, so the cache need not grow with the state
/// (redb's default lets it reach 1 GiB).
const REDB_CACHE_BYTES: usize = 64 << 20;

/// Creates (or opens) the redb database at `path` with [`REDB_CACHE_BYTES`].
fn create_database(path: &Path) -> Result<Database, StoreError> {
    redb::Builder::new().set_cache_size(REDB_CACHE_BYTES).create(path).map_err(db)
}

impl Store {
    /// Opens (or creates) the database file at `path` and its state store.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = create_database(path)?;
        let dir = state_dir(path);
        let mut state = phalanx_statedb::StateService::open(&dir)?;
        // The state store commits blocks before redb does: after a crash
        // between the two it is ahead (one block, or a synced batch), and
        // goes back.
        if let (Some(head), Some(size)) =
            (meta_of::<StoredHead>(&db, META_HEAD)?, meta_of::<u64>(&db, META_STATE_SIZE)?)
            && let Some(ahead) = state.status()?.height.filter(|height| *height > head.height)
        {
            tracing::warn!(head = head.height, ahead, "the state store is past the chain: going back to the head");
            drop(state);
            state = phalanx_statedb::StateService::open_at(&dir, Some(size))?;
        }
        Ok(Store { db, state })
    }

    /// Creates the databases of a node that joined by state sync: the
    /// state store synced under [`state_dir`]`(path)` (`state`, at `block`'s
    /// height and root), and a new redb at `path` holding `block` (the
    /// certified block the state is at) as its head, with its certificate
    /// and the state's leaves. No block below it is stored.
    pub fn create_synced(
        path: &Path,
        state: phalanx_statedb::StateService,
        chain_id: Hash,
        block: &Block,
        certificate: &[u8],
        leaves: &[StateChange],
    ) -> Result<Self, StoreError> {
        if path.exists() {
            return Err(StoreError::Corrupt(format!("{} exists already: a synced node starts empty", path.display())));
        }
        let status = state.status()?;
        if status.height != Some(block.header.height) || status.root != block.header.state_root {
            return Err(StoreError::Corrupt(format!(
                "the synced state is at {:?} (root {}), the block at {} (root {})",
                status.height, status.root, block.header.height, block.header.state_root
            )));
        }
        let database = create_database(path)?;
        let txn = database.begin_write().map_err(db)?;
        {
            let mut meta = txn.open_table(META).map_err(db)?;
            meta.insert(META_CHAIN_ID, encode(&chain_id).as_slice()).map_err(db)?;
            meta.insert(META_BASE, encode(&block.header.height).as_slice()).map_err(db)?;
        }
        let synced = FinalizedBlock {
            block,
            certificate,
            events: &[],
            changes: leaves,
            state_size: status.size,
            transition: None,
        };
        Self::write_block(&txn, &synced)?;
        txn.commit().map_err(db)?;
        Ok(Store { db: database, state })
    }

    /// The lowest block stored: 0, or the block a node joined at by state sync.
    pub fn base(&self) -> Result<u64, StoreError> {
        Ok(self.meta::<u64>(META_BASE)?.unwrap_or(0))
    }

    /// A database held in memory (simulations and tests); its state store
    /// is in a temporary directory, removed on drop.
    pub fn in_memory() -> Result<Self, StoreError> {
        let state = phalanx_statedb::StateService::temporary()?;
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).map_err(db)?;
        Ok(Store { db, state })
    }

    /// The authenticated state store.
    pub fn state(&self) -> &phalanx_statedb::StateService {
        &self.state
    }

    /// Writes genesis if the database is empty; otherwise checks that the
    /// stored chain is the same chain and that the state store is at its
    /// head. Returns the stored head.
    pub fn initialize(&self, genesis: &Block, genesis_state: &mut State) -> Result<StoredHead, StoreError> {
        let chain_id = genesis_state.chain_id();
        if let Some(found) = self.meta::<Hash>(META_CHAIN_ID)? {
            if found != chain_id {
                return Err(StoreError::WrongChain { expected: chain_id, found });
            }
            let head = self.head()?.ok_or_else(|| StoreError::Corrupt("chain id without head".into()))?;
            self.check_state_store(head)?;
            return Ok(head);
        }
        let writes = genesis_state.store_writes();
        let status = self.state.status()?;
        let root = match status.height {
            None => self.state.apply(0, writes)?,
            // Genesis committed to the state store, then a crash before redb.
            Some(0) => status.root,
            Some(height) => {
                return Err(StoreError::Corrupt(format!("the state store is at height {height} but the chain is new")));
            }
        };
        if root != genesis.header.state_root {
            return Err(StoreError::Corrupt(format!(
                "the state store's genesis root {root} is not the genesis header's {}",
                genesis.header.state_root
            )));
        }
        let changes = genesis_state.take_changes();
        let txn = self.db.begin_write().map_err(db)?;
        {
            let mut meta = txn.open_table(META).map_err(db)?;
            meta.insert(META_CHAIN_ID, encode(&chain_id).as_slice()).map_err(db)?;
        }
        let state_size = self.state.status()?.size;
        let first = FinalizedBlock {
            block: genesis,
            certificate: &[],
            events: &[],
            changes: &changes,
            state_size,
            transition: None,
        };
        Self::write_block(&txn, &first)?;
        txn.commit().map_err(db)?;
        Ok(StoredHead { height: 0, hash: genesis.hash() })
    }

    /// The state store must be at the head with the head's root.
    fn check_state_store(&self, head: StoredHead) -> Result<(), StoreError> {
        let block = self.block(head.height)?.ok_or_else(|| StoreError::Corrupt("head block missing".into()))?;
        let status = self.state.status()?;
        match status.height {
            None => Err(StoreError::OlderFormat(format!("the database at height {}", head.height))),
            Some(height) if height == head.height && status.root == block.header.state_root => Ok(()),
            Some(height) => Err(StoreError::Corrupt(format!(
                "the state store is at height {height} (root {}), the chain at {} (root {})",
                status.root, head.height, block.header.state_root
            ))),
        }
    }

    /// Writes state leaves outside any block, in one transaction: for tools
    /// that build a state rather than replay one (`phalanx bench state`).
    /// The head does not move; the leaves must be a state of the head.
    pub fn write_leaves(&self, leaves: &[StateChange]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        {
            let mut state = txn.open_table(STATE).map_err(db)?;
            for (key, value) in leaves {
                state.insert(key.as_slice(), value.as_slice()).map_err(db)?;
            }
        }
        txn.commit().map_err(db)
    }

    /// Durably commits one finalized block, which must follow the head.
    pub fn commit_block(&self, finalized: &FinalizedBlock<'_>) -> Result<(), StoreError> {
        let head = self.head()?.ok_or_else(|| StoreError::Corrupt("no head".into()))?;
        let height = finalized.block.header.height;
        if height != head.height + 1 {
            return Err(StoreError::NotNext { head: head.height, got: height });
        }
        let txn = self.db.begin_write().map_err(db)?;
        Self::write_block(&txn, finalized)?;
        txn.commit().map_err(db)
    }

    /// Durably commits consecutive finalized blocks, the first following
    /// the head, in one transaction: all of them or none.
    pub fn commit_blocks(&self, blocks: &[FinalizedBlock<'_>]) -> Result<(), StoreError> {
        let head = self.head()?.ok_or_else(|| StoreError::Corrupt("no head".into()))?;
        let txn = self.db.begin_write().map_err(db)?;
        for (i, finalized) in blocks.iter().enumerate() {
            let height = finalized.block.header.height;
            if height != head.height + 1 + i as u64 {
                return Err(StoreError::NotNext { head: head.height + i as u64, got: height });
            }
            Self::write_block(&txn, finalized)?;
        }
        txn.commit().map_err(db)
    }

    fn write_block(txn: &redb::WriteTransaction, finalized: &FinalizedBlock<'_>) -> Result<(), StoreError> {
        let block = finalized.block;
        let height = block.header.height;
        let hash = block.hash();
        txn.open_table(BLOCKS).map_err(db)?.insert(height, block.encode().as_slice()).map_err(db)?;
        txn.open_table(CERTIFICATES).map_err(db)?.insert(height, finalized.certificate).map_err(db)?;
        txn.open_table(EVENTS).map_err(db)?.insert(height, encode(finalized.events).as_slice()).map_err(db)?;
        txn.open_table(BLOCK_HEIGHTS).map_err(db)?.insert(hash.0, height).map_err(db)?;
        {
            let mut locations = txn.open_table(TX_LOCATIONS).map_err(db)?;
            for (index, tx) in block.txs.iter().enumerate() {
                locations.insert(tx.hash().0, (height, index as u32)).map_err(db)?;
            }
        }
        {
            let mut state = txn.open_table(STATE).map_err(db)?;
            for (key, value) in finalized.changes {
                state.insert(key.as_slice(), value.as_slice()).map_err(db)?;
            }
        }
        if let Some(transition) = finalized.transition {
            txn.open_table(TRANSITIONS)
                .map_err(db)?
                .insert(transition.epoch, encode(transition).as_slice())
                .map_err(db)?;
        }
        let head = StoredHead { height, hash };
        let mut meta = txn.open_table(META).map_err(db)?;
        meta.insert(META_HEAD, encode(&head).as_slice()).map_err(db)?;
        meta.insert(META_STATE_SIZE, encode(&finalized.state_size).as_slice()).map_err(db)?;
        Ok(())
    }

    fn meta<T: borsh::BorshDeserialize>(&self, key: &str) -> Result<Option<T>, StoreError> {
        meta_of(&self.db, key)
    }

    /// The last finalized block, if genesis has been written.
    pub fn head(&self) -> Result<Option<StoredHead>, StoreError> {
        self.meta(META_HEAD)
    }

    /// Loads the state as of the head, checking it against the head's root.
    pub fn load_state(&self) -> Result<State, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(STATE).map_err(db)?;
        let mut entries = Vec::new();
        for entry in table.iter().map_err(db)? {
            let (key, value) = entry.map_err(db)?;
            entries.push((key.value().to_vec(), value.value().to_vec()));
        }
        let state = State::load(entries).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let head = self.head()?.ok_or_else(|| StoreError::Corrupt("no head".into()))?;
        if state.height() != head.height {
            return Err(StoreError::Corrupt(format!("state is at {}, the head at {}", state.height(), head.height)));
        }
        self.check_state_store(head)?;
        Ok(state)
    }

    fn get_bytes(&self, table: TableDefinition<u64, &[u8]>, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(table).map_err(db)?;
        Ok(table.get(height).map_err(db)?.map(|v| v.value().to_vec()))
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        self.get_bytes(BLOCKS, height)?
            .map(|bytes| Block::decode(&bytes).map_err(|e| StoreError::Corrupt(format!("block {height}: {e}"))))
            .transpose()
    }

    /// Encoded blocks with their certificates from `from` on, in one read
    /// transaction: at most `count` blocks, and no more once `bytes_max`
    /// bytes are gathered (but always the first block, if it exists).
    pub fn raw_blocks(&self, from: u64, count: u64, bytes_max: usize) -> Result<Vec<RawStored>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let blocks = txn.open_table(BLOCKS).map_err(db)?;
        let certificates = txn.open_table(CERTIFICATES).map_err(db)?;
        let mut out = Vec::new();
        let mut total = 0;
        for height in from..from.saturating_add(count) {
            let Some(block) = blocks.get(height).map_err(db)? else { break };
            let block = block.value().to_vec();
            let certificate = certificates.get(height).map_err(db)?.map(|c| c.value().to_vec()).unwrap_or_default();
            total += block.len() + certificate.len();
            if !out.is_empty() && total > bytes_max {
                break;
            }
            out.push((block, certificate));
        }
        Ok(out)
    }

    /// The encoded finalization certificate of a block (empty for genesis).
    pub fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_bytes(CERTIFICATES, height)
    }

    pub fn events(&self, height: u64) -> Result<Option<Vec<EventRecord>>, StoreError> {
        self.get_bytes(EVENTS, height)?
            .map(|bytes| {
                decode_bounded(&bytes, EVENTS_BYTES_MAX)
                    .map_err(|e| StoreError::Corrupt(format!("events {height}: {e}")))
            })
            .transpose()
    }

    /// The validator-set changes whose new set starts after epoch
    /// `after_epoch`, oldest first, at most `max`.
    pub fn transitions(&self, after_epoch: u64, max: usize) -> Result<Vec<Transition>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = match txn.open_table(TRANSITIONS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db(e)),
        };
        let mut out = Vec::new();
        for entry in table.range(after_epoch.saturating_add(1)..).map_err(db)?.take(max) {
            let (epoch, bytes) = entry.map_err(db)?;
            let transition: Transition = decode_bounded(bytes.value(), TRANSITION_BYTES_MAX)
                .map_err(|e| StoreError::Corrupt(format!("transition to epoch {}: {e}", epoch.value())))?;
            out.push(transition);
        }
        Ok(out)
    }

    /// Records validator-set changes a node verified but did not commit
    /// itself (one that joined by state sync), so it serves them too.
    pub fn put_transitions(&self, transitions: &[Transition]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        {
            let mut table = txn.open_table(TRANSITIONS).map_err(db)?;
            for transition in transitions {
                table.insert(transition.epoch, encode(transition).as_slice()).map_err(db)?;
            }
        }
        txn.commit().map_err(db)
    }

    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(BLOCK_HEIGHTS).map_err(db)?;
        Ok(table.get(hash.0).map_err(db)?.map(|v| v.value()))
    }

    /// Where a finalized transaction is: block height and index in the block.
    pub fn tx_location(&self, hash: &Hash) -> Result<Option<(u64, u32)>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(TX_LOCATIONS).map_err(db)?;
        Ok(table.get(hash.0).map_err(db)?.map(|v| v.value()))
    }
}

fn meta_of<T: borsh::BorshDeserialize>(database: &Database, key: &str) -> Result<Option<T>, StoreError> {
    let txn = database.begin_read().map_err(db)?;
    let table = match txn.open_table(META) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(db(e)),
    };
    let Some(value) = table.get(key).map_err(db)? else {
        return Ok(None);
    };
    decode_bounded(value.value(), 1024).map(Some).map_err(|e| StoreError::Corrupt(format!("meta {key}: {e}")))
}
