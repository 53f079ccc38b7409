//! The worker's own view of the chain, trusting nothing its host feeds it.
//!
//! Each block must extend the last one (height and parent hash), carry a
//! finalization certificate signed by a quorum of the validator set *as the
//! verified state records it*, and replay with the state machine to exactly
//! the roots in its header (the state root from the worker's own state
//! store, `phalanx-statedb`, on the host's disk: what the host could change
//! there only makes the roots differ). A block that fails any check is
//! refused and the verified state stays where it was.
//!
//! A node may hold a block without its own certificate (it finalized it
//! through a descendant's). Such blocks are replayed tentatively and kept
//! aside (at most [`UNCERTIFIED_MAX`]); they become verified only when a
//! later block that extends them by parent hash arrives with a valid
//! certificate, which vouches for its whole ancestry.

use crate::checkpoint::Checkpoint;
use imbl::OrdMap;
pub use phalanx_gateway::commands::OrderedCommand;
use phalanx_light::certificate::{self, CertificateError};
use phalanx_primitives::{DecodeError, Hash, PublicKey};
use phalanx_state::modules::agents::{Agent, CommandPayload, CommandSender};
use phalanx_state::{Block, BlockError, Call, Genesis, GenesisError, Header, State, WorkerPayload};
use phalanx_statedb::{Parent, Speculation, StateService};
use std::path::Path;

/// Most blocks held waiting for a certificate.
pub const UNCERTIFIED_MAX: usize = 1024;
/// Most key handovers kept for the runtime to read (older ones are dropped).
pub const INBOX_MAX: usize = 1024;

/// Why a block was refused.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("block does not decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("block at height {got} does not follow height {expected_after}")]
    Height { expected_after: u64, got: u64 },
    #[error("block {height} names parent {claimed}, but the verified chain has {expected}")]
    Parent { height: u64, claimed: Hash, expected: Hash },
    #[error("block {height} has a bad certificate: {source}")]
    Certificate { height: u64, source: CertificateError },
    #[error("block {height} does not replay: {source}")]
    Replay { height: u64, source: BlockError },
    #[error("more than {UNCERTIFIED_MAX} blocks in a row without a certificate")]
    TooManyUncertified,
    #[error("block {height} ends a consensus epoch and must carry its own certificate")]
    EpochEndUncertified { height: u64 },
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    #[error("the state store: {0}")]
    Store(#[from] phalanx_statedb::StoreError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("the state to join from did not verify: {0}")]
    Start(#[from] phalanx_light::LightError),
    #[error("the synced state did not verify: {0}")]
    StateSync(#[from] phalanx_statedb::sync::SyncError),
    #[error("joining by state sync: {0}")]
    Joined(String),
}

/// A block of a batch was refused: `index` blocks before it were applied.
#[derive(Debug, thiserror::Error)]
#[error("block {index} of the batch: {error}")]
pub struct BatchRefused {
    pub index: usize,
    pub error: Box<SyncError>,
}

/// What applying a block did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The block and `count` waiting ancestors (if any) are now verified.
    Verified { height: u64, count: usize },
    /// The block replayed but waits for a certificate from a descendant.
    Waiting { height: u64 },
}

struct Tentative {
    header: Header,
    hash: Hash,
    state: State,
    /// The block's writes in the state store, on its parent's.
    speculation: Speculation,
    changes: Vec<phalanx_state::StateChange>,
    inbox: Vec<Vec<u8>>,
    commands: Vec<OrderedCommand>,
}

/// Verified chain state, advanced only by verified blocks.
pub struct VerifiedChain {
    /// The authenticated state: committed at the verified block.
    store: StateService,
    state: State,
    header: Header,
    hash: Hash,
    /// Every leaf of `state` as bytes, for checkpoints.
    leaves: OrdMap<Vec<u8>, Vec<u8>>,
    uncertified: Vec<Tentative>,
    /// Whose key handovers to collect.
    watch: Option<PublicKey>,
    /// Key handover envelopes addressed to `watch`, from verified blocks.
    inbox: Vec<Vec<u8>>,
    /// Commands for agents of `watch`'s clusters, from verified blocks, in
    /// order. Never dropped: the host drains them after every batch (a
    /// batch is bounded by the host's fetch limit).
    commands: Vec<OrderedCommand>,
}

impl std::fmt::Debug for VerifiedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifiedChain(height {}, {})", self.header.height, self.hash)
    }
}

impl VerifiedChain {
    /// Starts at a genesis the worker trusts (checked against its pinned
    /// chain id by the caller), with a new state store in `store_dir`
    /// (whatever was there is removed).
    pub fn from_genesis(genesis: &Genesis, store_dir: &Path) -> Result<Self, SyncError> {
        let (mut state, block) = genesis.build()?;
        if store_dir.exists() {
            std::fs::remove_dir_all(store_dir).map_err(|e| {
                phalanx_statedb::StoreError::Storage(format!("cannot clear {}: {e}", store_dir.display()))
            })?;
        }
        let store = StateService::open(store_dir)?;
        let root = store.apply(0, state.store_writes())?;
        phalanx_state::block::check_root("state", block.header.state_root, root)
            .map_err(|source| SyncError::Replay { height: 0, source })?;
        let leaves = state.take_changes().into_iter().collect();
        Ok(VerifiedChain {
            store,
            hash: block.hash(),
            header: block.header,
            state,
            leaves,
            uncertified: Vec::new(),
            watch: None,
            inbox: Vec::new(),
            commands: Vec::new(),
        })
    }

    /// Starts at a state synced from an untrusted node: `start` was checked
    /// against the validator set the worker follows from its genesis
    /// ([`phalanx_light::Trusted::verify_sync_start`]); the state store is
    /// synced into `store_dir` (whatever was there is removed) against the
    /// certified block's state root, and the typed state loaded from its
    /// leaves. On failure nothing synced is kept.
    pub fn from_synced<F>(
        start: phalanx_light::VerifiedStart,
        chain_id: Hash,
        store_dir: &Path,
        fetch: F,
    ) -> Result<Self, SyncError>
    where
        F: Fn(Vec<u8>) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    {
        let phalanx_light::VerifiedStart { block, target, .. } = start;
        let height = block.header.height;
        if store_dir.exists() {
            std::fs::remove_dir_all(store_dir).map_err(|e| {
                phalanx_statedb::StoreError::Storage(format!("cannot clear {}: {e}", store_dir.display()))
            })?;
        }
        let store = phalanx_statedb::sync::sync(store_dir, &target, block.header.state_root, fetch)?;
        let loaded = phalanx_node::state_sync::load_synced(&store, chain_id, height)
            .map_err(|e| SyncError::Joined(format!("the synced state does not load: {e}")));
        let (state, leaves) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                drop(store);
                let _ = std::fs::remove_dir_all(store_dir);
                return Err(error);
            }
        };
        Ok(VerifiedChain {
            store,
            hash: block.hash(),
            header: block.header,
            state,
            leaves: leaves.into_iter().collect(),
            uncertified: Vec::new(),
            watch: None,
            inbox: Vec::new(),
            commands: Vec::new(),
        })
    }

    /// Resumes from a checkpoint, with the state store in `store_dir` opened
    /// back at the checkpoint's block (its root must be the header's).
    pub fn from_checkpoint(checkpoint: Checkpoint, store_dir: &Path) -> Result<Self, SyncError> {
        let Checkpoint { header, state, leaves, state_size } = checkpoint;
        let store = StateService::open_at(store_dir, Some(state_size))?;
        let status = store.status()?;
        if status.height != Some(header.height) || status.root != header.state_root {
            return Err(
                crate::checkpoint::CheckpointError::Root { claimed: header.state_root, computed: status.root }.into()
            );
        }
        Ok(VerifiedChain {
            store,
            hash: header.hash(),
            header,
            state,
            leaves,
            uncertified: Vec::new(),
            watch: None,
            inbox: Vec::new(),
            commands: Vec::new(),
        })
    }

    /// Collects key handovers addressed to `worker` from now on.
    pub fn watch(&mut self, worker: PublicKey) {
        self.watch = Some(worker);
    }

    /// Key handover envelopes for the watched worker from verified blocks, oldest first.
    pub fn take_inbox(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.inbox)
    }

    /// Commands for the watched worker's agents from verified blocks, oldest first.
    pub fn take_commands(&mut self) -> Vec<OrderedCommand> {
        std::mem::take(&mut self.commands)
    }

    /// The verified state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Header of the last verified block.
    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn height(&self) -> u64 {
        self.header.height
    }

    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Height of the last block applied, verified or waiting.
    pub fn tip_height(&self) -> u64 {
        self.uncertified.last().map_or(self.header.height, |t| t.header.height)
    }

    /// A snapshot of the verified state for sealing.
    pub fn checkpoint(&self) -> Result<Checkpoint, phalanx_statedb::StoreError> {
        let state_size = self.store.status()?.size;
        Ok(Checkpoint {
            header: self.header.clone(),
            state: self.state.clone(),
            leaves: self.leaves.clone(),
            state_size,
        })
    }

    /// The worker's authenticated state store (committed at the verified block).
    pub fn store(&self) -> &StateService {
        &self.store
    }

    /// Applies one block as served by an untrusted host.
    pub fn apply(&mut self, encoded: &[u8], certificate_bytes: &[u8]) -> Result<Applied, SyncError> {
        let block = Block::decode(encoded)?;
        self.apply_decoded(block, certificate_bytes, false)
    }

    /// Applies consecutive blocks, using every core: decoding and
    /// transaction signatures are checked in parallel first, then blocks are
    /// linked, certified and replayed in order exactly as [`Self::apply`]
    /// does. Stops at the first refused block, returning how many blocks
    /// before it were applied.
    pub fn apply_batch(&mut self, raw: &[(&[u8], &[u8])]) -> Result<usize, BatchRefused> {
        let refused = |index, error: SyncError| BatchRefused { index, error: Box::new(error) };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(raw.len().max(1));
        let chunk = raw.len().div_ceil(threads).max(1);
        let prepared: Vec<Result<(Block, bool), DecodeError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = raw
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(encoded, _)| {
                                let block = Block::decode(encoded)?;
                                let signed = block.txs.iter().all(|tx| tx.verify_signature().is_ok());
                                Ok((block, signed))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("decoding thread panicked")).collect()
        });
        for (index, (result, (_, certificate))) in prepared.into_iter().zip(raw).enumerate() {
            let (block, signatures_verified) = result.map_err(|e| refused(index, e.into()))?;
            // A block whose signatures did not all verify replays with
            // verification on, which names the offending transaction.
            self.apply_decoded(block, certificate, signatures_verified).map_err(|e| refused(index, e))?;
        }
        Ok(raw.len())
    }

    fn apply_decoded(
        &mut self,
        block: Block,
        certificate_bytes: &[u8],
        signatures_verified: bool,
    ) -> Result<Applied, SyncError> {
        let (tip_height, tip_hash, tip_state, tip_root) = match self.uncertified.last() {
            Some(t) => (t.header.height, t.hash, &t.state, Parent::Speculation(t.speculation)),
            None => (self.header.height, self.hash, &self.state, Parent::Committed),
        };
        let height = block.header.height;
        if height != tip_height + 1 {
            return Err(SyncError::Height { expected_after: tip_height, got: height });
        }
        if block.header.parent != tip_hash {
            return Err(SyncError::Parent { height, claimed: block.header.parent, expected: tip_hash });
        }
        let hash = block.hash();
        let certified = !certificate_bytes.is_empty();
        if certified {
            // The validator set that finalizes a block is the one in its
            // parent's state (the set of the block's consensus epoch).
            let epoch = tip_state.epoch_of(height);
            certificate::verify(&mut rand::rng(), tip_state.validators(), hash, epoch, certificate_bytes)
                .map_err(|source| SyncError::Certificate { height, source })?;
        } else if tip_state.is_epoch_last(height) {
            // The next epoch's set comes from this block's state: only the
            // current set may vouch for it, never the set it installs.
            return Err(SyncError::EpochEndUncertified { height });
        } else if self.uncertified.len() >= UNCERTIFIED_MAX {
            return Err(SyncError::TooManyUncertified);
        }
        let mut state = tip_state.clone();
        state
            .execute_block_checked(&block, signatures_verified)
            .map_err(|source| SyncError::Replay { height, source })?;
        let speculation = self.store.speculate(tip_root, height, state.store_writes())?;
        if let Err(source) = phalanx_state::block::check_root("state", block.header.state_root, speculation.root) {
            self.store.discard(speculation);
            return Err(SyncError::Replay { height, source });
        }
        let changes = state.take_changes();
        let inbox = match &self.watch {
            Some(me) => block
                .txs
                .iter()
                .filter_map(|tx| match &tx.tx.call {
                    Call::WorkerMessage { message } => match &message.message.payload {
                        WorkerPayload::KeyHandover { to, envelope } if to == me => Some(envelope.clone()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        let commands = match &self.watch {
            Some(me) => commands_for(me, &block, hash, &state),
            None => Vec::new(),
        };
        let tentative = Tentative { header: block.header, hash, state, speculation, changes, inbox, commands };
        if !certified {
            self.uncertified.push(tentative);
            return Ok(Applied::Waiting { height });
        }
        // Committing the certified block commits the waiting ones before it.
        self.store.commit(speculation)?;
        let count = self.uncertified.len() + 1;
        for done in std::mem::take(&mut self.uncertified).into_iter().chain([tentative]) {
            self.leaves.extend(done.changes);
            self.inbox.extend(done.inbox);
            self.commands.extend(done.commands);
            if self.inbox.len() > INBOX_MAX {
                let excess = self.inbox.len() - INBOX_MAX;
                self.inbox.drain(..excess);
            }
            self.state = done.state;
            self.header = done.header;
            self.hash = done.hash;
        }
        Ok(Applied::Verified { height, count })
    }
}

/// The commands `block` ordered for agents of `me`'s clusters, numbered:
/// the state after the block counts each agent's commands, so the block's
/// commands for an agent are the last ones counted, in transaction order.
fn commands_for(me: &PublicKey, block: &Block, hash: Hash, after: &State) -> Vec<OrderedCommand> {
    let ordered: Vec<(Hash, CommandSender, &CommandPayload)> = block
        .txs
        .iter()
        .filter_map(|tx| match &tx.tx.call {
            Call::SendToAgent { agent, payload } => Some((*agent, CommandSender::Account(tx.tx.signer), payload)),
            Call::WorkerMessage { message } => match &message.message.payload {
                WorkerPayload::AgentCommand { agent, payload } => Some((*agent, CommandSender::Agent(*agent), payload)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    if ordered.is_empty() {
        return Vec::new();
    }
    let mut in_block: std::collections::HashMap<Hash, u64> = std::collections::HashMap::new();
    for (agent, _, _) in &ordered {
        *in_block.entry(*agent).or_default() += 1;
    }
    let mut agents: std::collections::HashMap<Hash, (std::sync::Arc<Agent>, u64)> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (id, from, payload) in ordered {
        let Some(agent) = after.agent(&id) else { continue };
        let member = after.cluster(&agent.cluster).is_some_and(|c| c.workers.contains(me));
        if !member {
            continue;
        }
        let (snapshot, next) = agents
            .entry(id)
            .or_insert_with(|| (std::sync::Arc::new(agent.clone()), agent.commands + 1 - in_block[&id]));
        out.push(OrderedCommand {
            height: block.header.height,
            timestamp_ms: block.header.timestamp_ms,
            block: hash,
            seq: *next,
            from,
            payload: payload.clone(),
            agent: snapshot.clone(),
        });
        *next += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use phalanx_node::consensus::{ValidatorSecret, validator_secret};
    use phalanx_primitives::mnemonic::dev_keypair;
    use phalanx_primitives::{Keypair, PLANCK_PER_PHA};
    use phalanx_state::builder::Candidate;
    use phalanx_state::{ConsensusParams, Transaction, ValidatorEntry};

    const EPOCH: u64 = 4;

    struct Validators {
        old: ValidatorSecret,
        new: ValidatorSecret,
        old_key: PublicKey,
        new_key: PublicKey,
    }

    /// A chain of `count` blocks with epochs of 4 blocks; block 1 schedules
    /// a set of one other validator, which takes over at block 4.
    fn chain(count: u64) -> (Genesis, Validators, Vec<Block>) {
        let (old, new) = (validator_secret(&[1; 32]), validator_secret(&[2; 32]));
        let old_key = Keypair::from_seed(&[1; 32]).public();
        let new_key = Keypair::from_seed(&[2; 32]).public();
        let mut genesis = Genesis::dev(vec![old_key]);
        genesis.consensus = ConsensusParams { epoch_blocks: EPOCH };
        let mut dev = phalanx_node::dev::DevBlocks::new(&genesis).unwrap();
        let alice = dev_keypair("alice").unwrap();
        let mut blocks = Vec::new();
        for height in 1..=count {
            let state = dev.state.clone();
            let mut candidates = Vec::new();
            if height == 1 {
                let entry = ValidatorEntry { key: new_key, address: "127.0.0.1:1".into() };
                let call = Call::SetValidators { validators: vec![entry] };
                let tx = Transaction {
                    chain_id: state.chain_id(),
                    signer: alice.public(),
                    nonce: 0,
                    fee: PLANCK_PER_PHA,
                    call,
                }
                .sign(&alice);
                candidates.push(Candidate { encoded_len: tx.encode().len(), tx, signature_verified: false });
            }
            let built = dev.build(state.timestamp_ms() + 500, candidates).unwrap();
            assert!(built.rejected.is_empty());
            blocks.push(built.block);
        }
        (genesis, Validators { old, new, old_key, new_key }, blocks)
    }

    fn sign(key: PublicKey, secret: &ValidatorSecret, block: &Block, epoch: u64) -> Vec<u8> {
        certificate::sign(&[key], std::slice::from_ref(secret), block.hash(), epoch, block.header.height)
    }

    #[test]
    fn certificates_are_checked_against_the_set_of_their_epoch() {
        let (genesis, v, blocks) = chain(6);
        let dir = tempfile::tempdir().unwrap();
        let mut verified = VerifiedChain::from_genesis(&genesis, dir.path()).unwrap();
        // Blocks 1 and 2 wait for a certified descendant; block 3 ends epoch 0.
        for block in &blocks[..2] {
            assert!(matches!(verified.apply(&block.encode(), &[]).unwrap(), Applied::Waiting { .. }));
        }
        let last_of_epoch = &blocks[2];
        assert!(matches!(
            verified.apply(&last_of_epoch.encode(), &[]),
            Err(SyncError::EpochEndUncertified { height: 3 })
        ));
        // Signed by the set that block 3 installs: refused.
        let by_new_set = sign(v.new_key, &v.new, last_of_epoch, 0);
        assert!(matches!(
            verified.apply(&last_of_epoch.encode(), &by_new_set),
            Err(SyncError::Certificate { height: 3, source: CertificateError::BadSignatures })
        ));
        let applied = verified.apply(&last_of_epoch.encode(), &sign(v.old_key, &v.old, last_of_epoch, 0)).unwrap();
        assert_eq!(applied, Applied::Verified { height: 3, count: 3 });
        assert_eq!(verified.state().validators(), &[v.new_key]);

        // Block 4 is in epoch 1: the old set, or the right set naming the wrong epoch, is refused.
        let first_of_epoch = &blocks[3];
        for (certificate, why) in [
            (sign(v.old_key, &v.old, first_of_epoch, 1), "the old set"),
            (sign(v.new_key, &v.new, first_of_epoch, 0), "the wrong epoch"),
        ] {
            let refused = verified.apply(&first_of_epoch.encode(), &certificate);
            assert!(matches!(refused, Err(SyncError::Certificate { height: 4, .. })), "{why}: {refused:?}");
        }
        let applied = verified.apply(&first_of_epoch.encode(), &sign(v.new_key, &v.new, first_of_epoch, 1)).unwrap();
        assert_eq!(applied, Applied::Verified { height: 4, count: 1 });
        assert_eq!(verified.height(), 4);
    }
}
