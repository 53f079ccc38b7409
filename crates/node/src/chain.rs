//! The application side of consensus, independent of the consensus engine:
//! build a block to propose, verify a proposed block, and commit a finalized
//! one. Also the mempool's front door and the finalized view that RPC reads.
//!
//! Blocks that are proposed or verified but not yet finalized are kept in
//! memory with the state after them (states share structure, so this is
//! cheap) and their writes merkleized in the authenticated state store as a
//! speculation on their parent's; that gives the state root the header
//! carries. A block finalizes on top of the stored head: its speculation
//! is committed, then the block in the database in one transaction. No clock is read here: callers pass the
//! time in, so the same code runs under the deterministic simulator.

use crate::mempool::{AdmitError, Mempool, MempoolConfig};
use crate::store::{FinalizedBlock, Store, StoreError, StoredHead};
use phalanx_primitives::{DecodeError, Hash};
use phalanx_state::builder::build_block;
use phalanx_state::{Block, BlockError, EventRecord, Genesis, Header, SignedTransaction, State, TxError};
use phalanx_statedb::{Parent, Speculation};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::broadcast;

/// How often [`Chain::verify`] resolves a block's parent again when the
/// state store is ahead of the finalized view (1 ms apart).
const STALE_RETRIES: u32 = 100;

/// Limits and pacing of the chain application.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    pub mempool: MempoolConfig,
    /// How far ahead of the local clock a proposed block's timestamp may be.
    pub timestamp_drift_ms_max: u64,
    /// Most unfinalized blocks kept in memory; beyond it the oldest go.
    pub pending_blocks_max: usize,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig { mempool: MempoolConfig::default(), timestamp_drift_ms_max: 2_000, pending_blocks_max: 1_024 }
    }
}

/// Why a submitted transaction was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("malformed transaction: {0}")]
    Malformed(#[from] DecodeError),
    #[error(transparent)]
    Admit(#[from] AdmitError),
}

/// Why a proposed block was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("parent block {0} is unknown")]
    UnknownParent(Hash),
    #[error("block does not name its parent {expected} (names {got})")]
    WrongParent { expected: Hash, got: Hash },
    #[error("block timestamp {block_ms} ms is more than {drift_ms} ms ahead of the local clock {now_ms} ms")]
    FromTheFuture { block_ms: u64, now_ms: u64, drift_ms: u64 },
    #[error(transparent)]
    Invalid(#[from] BlockError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommitError> for VerifyError {
    fn from(error: CommitError) -> Self {
        match error {
            CommitError::Invalid(error) => VerifyError::Invalid(error),
            CommitError::Store(error) => VerifyError::Store(error),
        }
    }
}

/// Why a finalized block could not be committed. Any of these is fatal for
/// the node: consensus finalized something this node cannot follow.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("finalized block does not apply: {0}")]
    Invalid(#[from] BlockError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone, Debug)]
struct PendingBlock {
    block: Arc<Block>,
    state: State,
    events: Vec<EventRecord>,
    /// The block's writes, merkleized in the state store on its parent's.
    speculation: Speculation,
}

/// The finalized view: state and header of the last finalized block.
#[derive(Clone, Debug)]
pub struct Finalized {
    pub state: State,
    pub header: Header,
    pub hash: Hash,
}

/// The chain application. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Chain {
    config: ChainConfig,
    genesis: Genesis,
    genesis_block: Block,
    store: Arc<Store>,
    finalized: RwLock<Arc<Finalized>>,
    pending: Mutex<HashMap<Hash, PendingBlock>>,
    mempool: Mutex<Mempool>,
    finalized_events: broadcast::Sender<Arc<Finalized>>,
    metrics: crate::metrics::NodeMetrics,
}

impl Chain {
    /// Opens the chain on `store`, writing genesis on first start and
    /// otherwise resuming from the stored head.
    pub fn open(genesis: Genesis, store: Arc<Store>, config: ChainConfig) -> Result<Self, StoreError> {
        let (mut genesis_state, genesis_block) =
            genesis.build().map_err(|e| StoreError::Corrupt(format!("invalid genesis: {e}")))?;
        let head: StoredHead = store.initialize(&genesis_block, &mut genesis_state)?;
        let state = store.load_state()?;
        let header = store.block(head.height)?.ok_or_else(|| StoreError::Corrupt("head block missing".into()))?.header;
        let (finalized_events, _) = broadcast::channel(1_024);
        Ok(Chain {
            mempool: Mutex::new(Mempool::new(config.mempool.clone())),
            config,
            genesis,
            genesis_block,
            store,
            finalized: RwLock::new(Arc::new(Finalized { state, header, hash: head.hash })),
            pending: Mutex::new(HashMap::new()),
            finalized_events,
            metrics: {
                let metrics = crate::metrics::NodeMetrics::default();
                metrics.finalized_height.set(i64::try_from(head.height).unwrap_or(i64::MAX));
                metrics
            },
        })
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    pub fn genesis_hash(&self) -> Hash {
        self.genesis_block.hash()
    }

    pub fn genesis_block(&self) -> &Block {
        &self.genesis_block
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// This node's metrics.
    pub fn metrics(&self) -> &crate::metrics::NodeMetrics {
        &self.metrics
    }

    /// The last finalized block and the state after it.
    pub fn finalized(&self) -> Arc<Finalized> {
        self.finalized.read().expect("lock poisoned").clone()
    }

    /// Notified with each newly finalized block.
    pub fn subscribe_finalized(&self) -> broadcast::Receiver<Arc<Finalized>> {
        self.finalized_events.subscribe()
    }

    /// Decodes, verifies and admits a transaction to the mempool.
    pub fn submit(&self, bytes: &[u8]) -> Result<Hash, SubmitError> {
        let admitted = self.admit(bytes);
        match &admitted {
            Ok(_) => self.metrics.txs_submitted.inc(),
            Err(_) => self.metrics.txs_refused.inc(),
        };
        admitted
    }

    fn admit(&self, bytes: &[u8]) -> Result<Hash, SubmitError> {
        let tx = SignedTransaction::decode(bytes)?;
        // The signature is verified before taking the mempool lock, so
        // concurrent submitters verify in parallel.
        tx.verify_signature().map_err(|e| AdmitError::Invalid(TxError::BadSignature(e)))?;
        // The finalized view is read under the mempool lock, and `commit`
        // changes both under it: admission always sees a pool and a state
        // that agree on which transactions are final.
        let mut mempool = self.mempool.lock().expect("lock poisoned");
        let finalized = self.finalized();
        let hash = mempool.admit(tx, bytes.len(), &finalized.state)?;
        self.metrics.mempool_size.set(mempool.len() as i64);
        Ok(hash)
    }

    /// Transactions waiting, and how many of them a given signer has.
    pub fn mempool_len(&self) -> usize {
        self.mempool.lock().expect("lock poisoned").len()
    }

    pub fn pending_count(&self, signer: &phalanx_primitives::PublicKey) -> u64 {
        self.mempool.lock().expect("lock poisoned").pending_of(signer)
    }

    pub fn is_pending(&self, hash: &Hash) -> bool {
        self.mempool.lock().expect("lock poisoned").contains(hash)
    }

    /// The state after block `hash` and where its state store commitment
    /// is, if it is the finalized head or pending.
    fn state_after(&self, hash: &Hash) -> Option<(State, Parent)> {
        let finalized = self.finalized();
        if finalized.hash == *hash {
            return Some((finalized.state.clone(), Parent::Committed));
        }
        let pending = self.pending.lock().expect("lock poisoned");
        pending.get(hash).map(|p| (p.state.clone(), Parent::Speculation(p.speculation)))
    }

    /// Merkleizes `state`'s block writes (block `height`) on `parent` in the state store.
    fn speculate(&self, parent: Parent, height: u64, state: &State) -> Result<Speculation, StoreError> {
        Ok(self.store.state().speculate(parent, height, state.store_writes())?)
    }

    /// [`Chain::speculate`] for a block received (`state` is the state
    /// after it): the store's root must be the one its header names, else
    /// the speculation is dropped and the block refused.
    fn rooted(&self, parent: Parent, block: &Block, state: &State) -> Result<Speculation, CommitError> {
        let speculation = self.speculate(parent, block.header.height, state)?;
        let claimed = block.header.state_root;
        if let Err(error) = phalanx_state::block::check_root("state", claimed, speculation.root) {
            self.store.state().discard(speculation);
            return Err(error.into());
        }
        Ok(speculation)
    }

    /// Whether the state after block `hash` is known (finalized head or pending).
    pub fn knows(&self, hash: &Hash) -> bool {
        self.finalized().hash == *hash || self.pending.lock().expect("lock poisoned").contains_key(hash)
    }

    /// How far ahead of the local clock a block timestamp may be.
    pub fn timestamp_drift_ms_max(&self) -> u64 {
        self.config.timestamp_drift_ms_max
    }

    /// Whether the mempool has anything to propose.
    pub fn has_waiting_txs(&self) -> bool {
        !self.mempool.lock().expect("lock poisoned").is_empty()
    }

    /// Builds a block on `parent` from the mempool. `None` if the parent's
    /// state is unknown here.
    pub fn propose(&self, parent: Hash, now_ms: u64) -> Option<Arc<Block>> {
        let (parent_state, parent_root) = self.state_after(&parent)?;
        let candidates =
            self.mempool.lock().expect("lock poisoned").candidates(phalanx_state::block::BLOCK_TXS_MAX * 2);
        let built = build_block(&parent_state, parent, now_ms, candidates);
        // A stale nonce means the transaction is in an ancestor still waiting
        // for finality; anything else can no longer apply and is dropped.
        let dropped: Vec<Hash> = built
            .rejected
            .iter()
            .filter(|(_, e)| !matches!(e, TxError::StaleNonce { .. }))
            .map(|(hash, _)| *hash)
            .collect();
        if !dropped.is_empty() {
            tracing::debug!(count = dropped.len(), "dropping transactions that no longer apply");
            self.mempool.lock().expect("lock poisoned").remove(dropped);
        }
        let speculation = match self.speculate(parent_root, built.block.header.height, &built.state) {
            Ok(speculation) => speculation,
            // The parent was finalized and a child of it committed meanwhile.
            Err(StoreError::State(phalanx_statedb::StoreError::Stale(stale))) => {
                tracing::debug!(%stale, "the parent is no longer the head: not proposing");
                return None;
            }
            Err(error) => {
                tracing::error!(%error, "cannot commit the proposal's state: not proposing");
                return None;
            }
        };
        let built = built.with_state_root(speculation.root);
        let block = Arc::new(built.block);
        self.remember(PendingBlock { block: block.clone(), state: built.state, events: built.events, speculation });
        Some(block)
    }

    /// Verifies a block proposed by another validator on top of its parent.
    pub fn verify(&self, block: &Block, parent: Hash, now_ms: u64) -> Result<(), VerifyError> {
        if block.header.parent != parent {
            return Err(VerifyError::WrongParent { expected: parent, got: block.header.parent });
        }
        if block.header.timestamp_ms > now_ms + self.config.timestamp_drift_ms_max {
            return Err(VerifyError::FromTheFuture {
                block_ms: block.header.timestamp_ms,
                now_ms,
                drift_ms: self.config.timestamp_drift_ms_max,
            });
        }
        let hash = block.hash();
        if self.pending.lock().expect("lock poisoned").contains_key(&hash) {
            return Ok(());
        }
        let (mut state, mut parent_root) = self.state_after(&parent).ok_or(VerifyError::UnknownParent(parent))?;
        let events = execute(&mut state, block)?;
        // The state store commits a finalized block just before the
        // finalized view shows it: a block verified in between finds its
        // parent "committed" while the store is already past it. Once the
        // view catches up the parent resolves again (or the block turns out
        // to be final already).
        let mut attempts = 0;
        let speculation = loop {
            match self.rooted(parent_root, block, &state) {
                Err(CommitError::Store(StoreError::State(phalanx_statedb::StoreError::Stale(stale))))
                    if parent_root == Parent::Committed && attempts < STALE_RETRIES =>
                {
                    if self.store.height_of(&hash)?.is_some() {
                        return Ok(());
                    }
                    tracing::debug!(%stale, height = block.header.height, "the finalized view lags the state store");
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    parent_root = self.state_after(&parent).ok_or(VerifyError::UnknownParent(parent))?.1;
                }
                other => break other?,
            }
        };
        self.remember(PendingBlock { block: Arc::new(block.clone()), state, events, speculation });
        Ok(())
    }

    fn remember(&self, pending: PendingBlock) {
        let mut map = self.pending.lock().expect("lock poisoned");
        if map.len() >= self.config.pending_blocks_max {
            // Consensus keeps few blocks in flight; this only bounds memory
            // if something upstream misbehaves.
            if let Some(oldest) = map.iter().min_by_key(|(_, p)| p.block.header.height).map(|(h, _)| *h)
                && let Some(dropped) = map.remove(&oldest)
            {
                self.store.state().discard(dropped.speculation);
            }
        }
        map.insert(pending.block.hash(), pending);
    }

    /// Commits a finalized block (which must follow the finalized head) with
    /// its encoded certificate.
    pub fn commit(&self, block: &Block, certificate: &[u8]) -> Result<(), CommitError> {
        let current = self.finalized();
        if block.header.height <= current.header.height {
            return Ok(()); // Already committed (replayed after a restart).
        }
        let hash = block.hash();
        // The pending entry stays until the finalized view has moved past it,
        // so a concurrent `state_after` always finds the block's state in one
        // of the two places.
        let pending = self.pending.lock().expect("lock poisoned").get(&hash).cloned();
        let (mut state, events, speculation) = match pending {
            Some(p) => (p.state, p.events, p.speculation),
            None => {
                let mut state = current.state.clone();
                let events = execute(&mut state, block)?;
                let speculation = self.rooted(Parent::Committed, block, &state)?;
                (state, events, speculation)
            }
        };
        // The state store first: after a crash between the two commits it
        // is one block ahead, which the next open undoes. A speculation on
        // a parent committed by another path (a synced batch) is stale: the
        // block's writes are merkleized again on the committed state.
        match self.store.state().commit(speculation) {
            Ok(_) => {}
            Err(
                stale
                @ (phalanx_statedb::StoreError::Stale(_) | phalanx_statedb::StoreError::UnknownSpeculation { .. }),
            ) => {
                tracing::debug!(%stale, height = block.header.height, "committing the block's writes anew");
                let fresh = self.rooted(Parent::Committed, block, &state)?;
                self.store.state().commit(fresh).map_err(StoreError::from)?;
            }
            Err(error) => return Err(StoreError::from(error).into()),
        }
        let transition = self.transition_of(block, certificate, &events)?;
        let state_size = self.store.state().status().map_err(StoreError::from)?.size;
        // The finalized state has no unpersisted changes, so the changes a
        // descendant carries are exactly the writes since the stored head
        // (for a block on a pending parent, also the parent's: rewriting
        // those keys with their newer values is harmless).
        let changes = state.take_changes();
        self.store.commit_block(&FinalizedBlock {
            block,
            certificate,
            events: &events,
            changes: &changes,
            state_size,
            transition: transition.as_ref(),
        })?;
        let finalized = Arc::new(Finalized { state, header: block.header.clone(), hash });
        {
            let mut mempool = self.mempool.lock().expect("lock poisoned");
            *self.finalized.write().expect("lock poisoned") = finalized.clone();
            mempool.on_finalized(block, &finalized.state);
            self.metrics.mempool_size.set(mempool.len() as i64);
        }
        self.metrics.committed(block.header.height, block.txs.len(), block.header.timestamp_ms);
        self.pending.lock().expect("lock poisoned").retain(|_, p| p.block.header.height > block.header.height);
        let _ = self.finalized_events.send(finalized);
        Ok(())
    }
}

impl Chain {
    /// Commits consecutive finalized blocks (each with its certificate) that
    /// extend the head, in one durable transaction: what a node syncing
    /// many blocks does instead of one transaction per block. Signatures of
    /// the whole batch are checked on every core first. On error nothing is
    /// committed.
    pub fn commit_batch(&self, blocks: &[(Block, Vec<u8>)]) -> Result<(), CommitError> {
        let current = self.finalized();
        let fresh: Vec<&(Block, Vec<u8>)> =
            blocks.iter().filter(|(block, _)| block.header.height > current.header.height).collect();
        let Some((last, _)) = fresh.last() else { return Ok(()) };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(fresh.len());
        let verified: Vec<bool> = std::thread::scope(|scope| {
            let chunk = fresh.len().div_ceil(threads);
            let handles: Vec<_> = fresh
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || part.iter().map(|(block, _)| block.signatures_valid(1)).collect::<Vec<_>>())
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("signature thread panicked")).collect()
        });
        let mut state = current.state.clone();
        let mut done = Vec::with_capacity(fresh.len());
        let mut parent = Parent::Committed;
        let mut speculations = Vec::with_capacity(fresh.len());
        let checked = (|| -> Result<(), CommitError> {
            for ((block, certificate), verified) in fresh.iter().zip(verified) {
                // A block with a bad signature replays with verification on, which names it.
                let events = state.execute_block_checked(block, verified)?;
                let speculation = self.rooted(parent, block, &state)?;
                speculations.push(speculation);
                parent = Parent::Speculation(speculation);
                done.push((block, certificate, events, state.take_changes()));
            }
            Ok(())
        })();
        if let Err(error) = checked {
            for speculation in speculations {
                self.store.state().discard(speculation);
            }
            return Err(error);
        }
        // Committing the last speculation commits the batch's others with
        // it; a block that changed the validator set is committed first on
        // its own, to prove the change at its height.
        let mut transitions = Vec::with_capacity(done.len());
        for ((block, certificate, events, _), speculation) in done.iter().zip(&speculations) {
            let changes_set = crate::proofs::set_change(events).is_some();
            if changes_set {
                self.store.state().commit(*speculation).map_err(StoreError::from)?;
            }
            transitions.push(if changes_set { self.transition_of(block, certificate, events)? } else { None });
        }
        // Unless the last block was committed on its own above.
        if let (Some(last), Some(None)) = (speculations.last(), transitions.last()) {
            self.store.state().commit(*last).map_err(StoreError::from)?;
        }
        let state_size = self.store.state().status().map_err(StoreError::from)?.size;
        let finalized: Vec<FinalizedBlock<'_>> = done
            .iter()
            .zip(&transitions)
            .map(|((block, certificate, events, changes), transition)| FinalizedBlock {
                block,
                certificate,
                events,
                changes,
                state_size,
                transition: transition.as_ref(),
            })
            .collect();
        self.store.commit_blocks(&finalized)?;
        let head = Arc::new(Finalized { state, header: last.header.clone(), hash: last.hash() });
        {
            let mut mempool = self.mempool.lock().expect("lock poisoned");
            *self.finalized.write().expect("lock poisoned") = head.clone();
            for (block, ..) in &done {
                mempool.on_finalized(block, &head.state);
            }
            self.metrics.mempool_size.set(mempool.len() as i64);
        }
        for (block, ..) in &done {
            self.metrics.committed(block.header.height, block.txs.len(), block.header.timestamp_ms);
        }
        self.pending.lock().expect("lock poisoned").retain(|_, p| p.block.header.height > last.header.height);
        let _ = self.finalized_events.send(head);
        Ok(())
    }
}

/// Executes `block` on `state` with its transaction signatures checked on
/// every core first (a block with a bad signature then replays with
/// verification on, which names the transaction).
fn execute(state: &mut State, block: &Block) -> Result<Vec<phalanx_state::EventRecord>, phalanx_state::BlockError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let verified = block.signatures_valid(threads);
    state.execute_block_checked(block, verified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{DevBlocks, dev_genesis};
    use phalanx_primitives::{PLANCK_PER_PHA, mnemonic::dev_keypair};
    use phalanx_state::builder::Candidate;
    use phalanx_state::{Call, Transaction};

    /// Five certified dev blocks, each with one transfer from alice.
    fn blocks() -> Vec<(Block, Vec<u8>)> {
        let mut chain = DevBlocks::new(&dev_genesis()).unwrap();
        let alice = dev_keypair("alice").unwrap();
        let bob = dev_keypair("bob").unwrap().public();
        let mut out = Vec::new();
        for nonce in 0..5 {
            let call = Call::Transfer { to: bob, amount: PLANCK_PER_PHA };
            let chain_id = chain.state.chain_id();
            let tx = Transaction { chain_id, signer: alice.public(), nonce, fee: PLANCK_PER_PHA, call }.sign(&alice);
            let candidate = Candidate { encoded_len: tx.encode().len(), tx, signature_verified: false };
            let (built, certificate) = chain.next(chain.state.timestamp_ms() + 500, [candidate]).unwrap();
            out.push((built.block, certificate));
        }
        out
    }

    fn chain() -> Chain {
        Chain::open(dev_genesis(), Arc::new(Store::in_memory().unwrap()), ChainConfig::default()).unwrap()
    }

    #[test]
    fn a_batch_commits_like_single_blocks_and_all_or_nothing() {
        let blocks = blocks();
        let (one_by_one, batched) = (chain(), chain());
        for (block, certificate) in &blocks {
            one_by_one.commit(block, certificate).unwrap();
        }
        batched.commit_batch(&blocks).unwrap();
        assert_eq!(batched.finalized().hash, one_by_one.finalized().hash);
        assert_eq!(batched.finalized().state, one_by_one.finalized().state);
        let (a, b) = (batched.store().state().status().unwrap(), one_by_one.store().state().status().unwrap());
        assert_eq!((a.height, a.root), (Some(5), blocks[4].0.header.state_root));
        assert_eq!((b.height, b.root), (a.height, a.root));
        for height in 1..=5 {
            assert_eq!(batched.store().certificate(height).unwrap(), Some(blocks[height as usize - 1].1.clone()));
        }
        // Already committed blocks are skipped.
        batched.commit_batch(&blocks).unwrap();
        assert_eq!(batched.finalized().header.height, 5);

        // A gap, or a bad signature in the last block: nothing of the batch is committed.
        let gap = chain();
        assert!(gap.commit_batch(&[blocks[0].clone(), blocks[2].clone()]).is_err());
        assert_eq!(gap.store().head().unwrap().unwrap().height, 0);
        let mut forged = blocks.clone();
        forged[4].0.txs[0].tx.fee += 1;
        let tampered = chain();
        assert!(tampered.commit_batch(&forged).is_err());
        assert_eq!(tampered.store().head().unwrap().unwrap().height, 0);
        assert_eq!(tampered.finalized().header.height, 0);
    }

    /// A block whose header names another state root is refused, whether
    /// verified as a proposal or committed as final, and nothing moves.
    #[test]
    fn a_wrong_state_root_is_refused() {
        let blocks = blocks();
        let chain = chain();
        let mut lying = blocks[0].0.clone();
        lying.header.state_root = phalanx_primitives::Hash([7; 32]);
        let parent = chain.genesis_hash();
        let refused = chain.verify(&lying, parent, u64::MAX / 2).unwrap_err();
        assert!(refused.to_string().contains("state root"), "{refused}");
        assert!(chain.commit(&lying, &blocks[0].1).is_err());
        assert!(chain.commit_batch(&[(lying, blocks[0].1.clone())]).is_err());
        assert_eq!(chain.finalized().header.height, 0);
        let status = chain.store().state().status().unwrap();
        assert_eq!((status.height, status.root), (Some(0), chain.genesis_block().header.state_root));
        // The honest block still goes through.
        chain.verify(&blocks[0].0, parent, u64::MAX / 2).unwrap();
        chain.commit(&blocks[0].0, &blocks[0].1).unwrap();
        assert_eq!(chain.store().state().status().unwrap().root, blocks[0].0.header.state_root);
    }

    /// Restarts: the stores agree after each; a state store one block ahead
    /// of redb (a crash between the two commits) goes back; a data dir
    /// without a state store (an older format) is refused clearly.
    #[test]
    fn restarts_keep_the_stores_together_and_old_data_is_refused() {
        let blocks = blocks();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        let open = || Chain::open(dev_genesis(), Arc::new(Store::open(&path).unwrap()), ChainConfig::default());
        {
            let chain = open().unwrap();
            chain.commit(&blocks[0].0, &blocks[0].1).unwrap();
            chain.commit(&blocks[1].0, &blocks[1].1).unwrap();
            // Block 3 reaches the state store, then the node dies before redb.
            let state = chain.finalized().state.clone();
            let mut next = state.clone();
            next.execute_block(&blocks[2].0).unwrap();
            chain.store().state().apply(3, next.store_writes()).unwrap();
        }
        {
            let chain = open().unwrap();
            assert_eq!(chain.finalized().header.height, 2);
            let status = chain.store().state().status().unwrap();
            assert_eq!((status.height, status.root), (Some(2), blocks[1].0.header.state_root));
            chain.commit(&blocks[2].0, &blocks[2].1).unwrap();
            assert_eq!(chain.store().state().status().unwrap().root, blocks[2].0.header.state_root);
        }
        std::fs::remove_dir_all(crate::store::state_dir(&path)).unwrap();
        let refused = open().unwrap_err().to_string();
        assert!(refused.contains("data from an older format"), "{refused}");
    }
}
