//! Starting one validator: buffered broadcast (blocks), marshal with its
//! backfill resolver and archives, the finalizer, and one simplex engine per
//! consensus epoch. Generic over the runtime and the p2p network, so tests
//! run the exact production wiring on the deterministic simulator.
//!
//! Epochs: the chain state says which validator set certifies each epoch
//! (`phalanx_state` changes it only after an epoch's last block). The
//! finalizer, having committed an epoch's last block, hands the next
//! epoch's set to the orchestrator here, which installs its scheme (for
//! marshal to check that epoch's certificates) and starts a simplex engine
//! for it on its own sub-channel of the vote, certificate and resolver
//! channels, rooted at that last block; the previous engine stops. A node
//! that is not in an epoch's set runs that epoch's engine as an observer: it
//! verifies and follows but never votes, so a validator about to join
//! catches up through marshal and starts voting at the first block of its
//! epoch, and a removed one keeps following.

use super::application::{App, FinalizedReporter, Pacing, run_finalizer};
use super::block::{ConsensusBlock, to_digest};
use super::{Marshal, NAMESPACE, Scheme, ValidatorKey, ValidatorSecret};
use crate::chain::Chain;
use commonware_broadcast::buffered;
use commonware_consensus::marshal::{
    self,
    core::Actor as MarshalActor,
    resolver::p2p as marshal_resolver,
    standard::{Inline, Standard},
};
use commonware_consensus::simplex::{
    self,
    config::{ForwardPolicy, SkipPolicy},
    elector::RoundRobin,
};
use commonware_consensus::types::{Epoch, Epocher, FixedEpocher, ViewDelta};
use commonware_cryptography::{
    Digested, Sha256, Signer,
    certificate::{Provider, Scoped, Verifier},
};
use commonware_p2p::Provider as PeerProvider;
use commonware_p2p::{Blocker, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage, buffer::paged::CacheRef};
use commonware_storage::archive::immutable;
use commonware_utils::{NZDuration, NZU16, NZU64, NZUsize, ordered::Set};
use futures::FutureExt;
use rand_core::CryptoRng;
use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// p2p channel ids; identical on every validator.
pub const CHANNEL_VOTES: u64 = 0;
pub const CHANNEL_CERTIFICATES: u64 = 1;
pub const CHANNEL_RESOLVER: u64 = 2;
pub const CHANNEL_BLOCKS: u64 = 3;
pub const CHANNEL_BACKFILL: u64 = 4;

/// Largest p2p message, in bytes: a full block plus framing.
pub const P2P_MESSAGE_BYTES_MAX: u32 = (phalanx_state::block::BLOCK_BYTES_MAX + 64 * 1024) as u32;

/// Consensus timeouts. They matter only when something fails (a silent
/// leader, a lost message); the happy path runs as fast as the network and
/// the proposer's pacing allow.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Wait for the leader's proposal before voting to skip the view.
    pub leader_timeout: Duration,
    /// Wait for a view to be certified; greater than `leader_timeout`.
    pub certification_timeout: Duration,
    /// Rebroadcast period of skip votes while stuck.
    pub timeout_retry: Duration,
    /// Timeout of requests for missing certificates and blocks.
    pub fetch_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            leader_timeout: Duration::from_secs(2),
            certification_timeout: Duration::from_secs(3),
            timeout_retry: Duration::from_secs(5),
            fetch_timeout: Duration::from_secs(2),
        }
    }
}

/// One validator's configuration. The validator sets come from the chain.
#[derive(Debug)]
pub struct ValidatorConfig {
    pub secret: ValidatorSecret,
    /// Prefix of every storage partition (journal, archives) of this validator.
    pub partition_prefix: String,
    pub timing: Timing,
    pub pacing: Pacing,
    /// Capacity of each actor's mailbox.
    pub mailbox_size: usize,
}

/// p2p channel pairs a validator needs.
#[derive(Debug)]
pub struct Channels<S, R> {
    pub votes: (S, R),
    pub certificates: (S, R),
    pub resolver: (S, R),
    pub blocks: (S, R),
    pub backfill: (S, R),
}

/// A running validator.
#[allow(missing_debug_implementations)] // marshal's mailbox and the runtime handle are not Debug
pub struct Validator {
    pub marshal: Marshal,
    /// The epoch orchestrator (and with it the consensus engines); it ends
    /// only when the runtime stops.
    pub engine: Handle<()>,
}

/// Called after each committed block that scheduled or installed a
/// validator set, with the block's height and state: the p2p layer tracks
/// the current and the scheduled validators from then on.
pub type OnValidators = Arc<dyn Fn(u64, &phalanx_state::State) + Send + Sync>;

/// The signing scheme of each consensus epoch this node knows: a signer
/// where it is a validator, a verifier elsewhere. Marshal checks each
/// epoch's certificates with it; the orchestrator runs each epoch's engine
/// with it.
#[derive(Clone)]
pub struct Schemes {
    secret: ValidatorSecret,
    epochs: Arc<Mutex<BTreeMap<u64, EpochScheme>>>,
}

/// An epoch's scheme and whether this node signs with it.
type EpochScheme = (Arc<Scheme>, bool);

impl std::fmt::Debug for Schemes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let epochs: Vec<u64> = self.epochs.lock().expect("schemes lock").keys().copied().collect();
        write!(f, "Schemes({epochs:?})")
    }
}

/// Epoch schemes kept: marshal needs only the current epoch and the one before.
const SCHEMES_KEPT: usize = 4;

impl Schemes {
    fn new(secret: ValidatorSecret) -> Self {
        Schemes { secret, epochs: Arc::default() }
    }

    /// Installs the scheme of `epoch` for `validators` (keys that are not
    /// ed25519 points are left out; the state machine refuses them anyway).
    pub fn install(&self, epoch: u64, validators: &[phalanx_primitives::PublicKey]) -> (Arc<Scheme>, bool) {
        let keys = validators.iter().filter_map(|key| super::validator_key(key).ok());
        let participants = Set::from_iter_dedup(keys);
        let entry = match Scheme::signer(NAMESPACE, participants.clone(), self.secret.clone()) {
            Some(signer) => (Arc::new(signer), true),
            None => (Arc::new(Scheme::verifier(NAMESPACE, participants)), false),
        };
        let mut epochs = self.epochs.lock().expect("schemes lock");
        epochs.insert(epoch, entry.clone());
        while epochs.len() > SCHEMES_KEPT {
            epochs.pop_first();
        }
        entry
    }
}

impl Provider for Schemes {
    type Scope = Epoch;
    type Scheme = Scheme;

    fn scoped(&self, epoch: Epoch) -> Option<Scoped<Scheme>> {
        let epochs = self.epochs.lock().expect("schemes lock");
        epochs.get(&epoch.get()).map(|(scheme, signs)| {
            if *signs { Scoped::scheme(scheme.clone()) } else { Scoped::verifier(scheme.clone()) }
        })
    }
}

/// What the finalizer tells the orchestrator: enter `epoch`, certified by
/// `validators`, whose first block's parent is `floor`.
#[derive(Debug)]
pub struct EnterEpoch {
    pub epoch: u64,
    pub validators: Vec<phalanx_primitives::PublicKey>,
    pub floor: phalanx_primitives::Hash,
}

/// Starts a validator for `chain`. Every task is a child of `context`, so
/// aborting the task that owns `context` stops the whole validator.
pub async fn start<E, S, R, P, B>(
    context: E,
    config: ValidatorConfig,
    chain: Arc<Chain>,
    peers: P,
    blocker: B,
    channels: Channels<S, R>,
    on_validators: Option<OnValidators>,
) -> Validator
where
    E: Spawner + Clock + Metrics + Storage + CryptoRng,
    S: Sender<PublicKey = ValidatorKey>,
    R: Receiver<PublicKey = ValidatorKey>,
    P: PeerProvider<PublicKey = ValidatorKey>,
    B: Blocker<PublicKey = ValidatorKey>,
{
    let me = config.secret.public_key();
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(1024));
    let mailbox_size = NZUsize!(config.mailbox_size);
    let finalized = chain.finalized();
    let epoch_blocks = finalized.state.consensus_params().epoch_blocks;
    let epocher = FixedEpocher::new(NonZeroU64::new(epoch_blocks).expect("genesis checks the epoch length"));
    let genesis = ConsensusBlock(Arc::new(chain.genesis_block().clone()));
    let genesis_digest = to_digest(genesis.0.hash());
    let prefix = config.partition_prefix.clone();

    // The epoch of the next block, its set, and the one before it.
    let schemes = Schemes::new(config.secret.clone());
    let height = finalized.header.height;
    let epoch = finalized.state.epoch_of(height + 1);
    if let Some(previous) = epoch.checked_sub(1).and_then(|e| Some((e, finalized.state.validators_of_epoch(e)?))) {
        schemes.install(previous.0, previous.1);
    }
    schemes.install(epoch, finalized.state.validators());
    let floor = match epoch.checked_sub(1) {
        None => genesis.0.hash(),
        Some(previous) => {
            let last = epocher.last(Epoch::new(previous)).expect("fixed epochs cover every height").get();
            let block =
                chain.store().block(last).ok().flatten().expect("the last block of an epoch before the head is stored");
            block.hash()
        }
    };

    let (broadcast_engine, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: me.clone(),
            mailbox_size,
            deque_size: 10,
            priority: false,
            codec_config: (),
            peer_provider: peers.clone(),
            strategy: Sequential,
        },
    );
    broadcast_engine.start(channels.blocks);

    let resolver = marshal_resolver::init(
        context.child("marshal_resolver"),
        marshal_resolver::Config {
            public_key: me.clone(),
            peer_provider: peers,
            blocker: blocker.clone(),
            mailbox_size,
            fetch_timeout: NZDuration!(config.timing.fetch_timeout),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );

    let finalizations = immutable::Archive::init(
        context.child("finalizations_by_height"),
        archive_config(&prefix, "finalizations-by-height", &page_cache, Scheme::certificate_codec_config_unbounded()),
    )
    .await
    .expect("cannot open the finalizations archive");
    let blocks = immutable::Archive::init(
        context.child("finalized_blocks"),
        archive_config(&prefix, "finalized-blocks", &page_cache, ()),
    )
    .await
    .expect("cannot open the finalized blocks archive");

    let (marshal_actor, marshal, _floor) = MarshalActor::<_, Standard<ConsensusBlock>, _, _, _, _, _, _>::init(
        context.child("marshal"),
        finalizations,
        blocks,
        marshal::Config {
            provider: schemes.clone(),
            epocher: epocher.clone(),
            start: match floor_finalization(&mut context.child("floor"), &chain) {
                Some(finalization) => marshal::Start::Floor(finalization),
                None => marshal::Start::Genesis(Digested::precomputed(genesis, genesis_digest)),
            },
            partition_prefix: prefix.clone(),
            mailbox_size,
            view_retention: ViewDelta::new(10),
            prunable_items_per_section: NZU64!(10),
            page_cache: page_cache.clone(),
            replay_buffer: NZUsize!(1 << 16),
            key_write_buffer: NZUsize!(1 << 13),
            value_write_buffer: NZUsize!(1 << 16),
            block_codec_config: (),
            max_repair: NZUsize!(10),
            max_pending_acks: NZUsize!(16),
            strategy: Sequential,
        },
    )
    .await;

    let (reporter, finalized_blocks) = FinalizedReporter::new();
    marshal_actor.start(reporter, buffer, resolver);
    let (enter, entered) = futures::channel::mpsc::unbounded();
    context.child("finalizer").spawn({
        let marshal = marshal.clone();
        let chain = chain.clone();
        move |runtime| run_finalizer(runtime, me, marshal, finalized_blocks, chain, enter, on_validators)
    });

    let app = App { chain, pacing: config.pacing.clone() };
    let inline = Inline::new(context.child("application"), app, marshal.clone(), epocher.clone());
    let orchestrator = Orchestrator {
        schemes: schemes.clone(),
        marshal: marshal.clone(),
        epocher,
        inline,
        blocker,
        timing: config.timing.clone(),
        prefix,
        mailbox_size,
        page_cache,
    };
    let first = EnterEpoch { epoch, validators: finalized.state.validators().to_vec(), floor };
    let engine = context.child("orchestrator").spawn(move |context| {
        orchestrator.run(context, channels.votes, channels.certificates, channels.resolver, first, entered)
    });
    Validator { marshal, engine }
}

/// Marshal's start when the chain is past genesis: the finalization of its
/// head, checked against the head's epoch set (marshal verifies it again).
/// Marshal then dispatches from the head on, so blocks the node committed
/// without marshal (synced over RPC before consensus started) are not
/// fetched again; progress marshal made in an earlier run takes precedence.
/// `None` (start from genesis) for genesis or a head without a certificate
/// of its own.
fn floor_finalization(rng: &mut impl CryptoRng, chain: &Chain) -> Option<super::Finalization> {
    let head = chain.finalized();
    let height = head.header.height;
    if height == 0 {
        return None;
    }
    let certificate = chain.store().certificate(height).ok().flatten().filter(|c| !c.is_empty())?;
    let epoch = head.state.epoch_of(height);
    let validators = head.state.validators_of_epoch(epoch)?;
    match super::certificate::verified(rng, validators, head.hash, epoch, &certificate) {
        Ok(finalization) => Some(finalization),
        Err(error) => {
            tracing::warn!(height, %error, "the head's stored certificate does not verify; marshal starts at genesis");
            None
        }
    }
}

/// Runs one simplex engine at a time, for the newest epoch entered.
struct Orchestrator<B, I> {
    schemes: Schemes,
    marshal: Marshal,
    epocher: FixedEpocher,
    inline: I,
    blocker: B,
    timing: Timing,
    prefix: String,
    mailbox_size: std::num::NonZeroUsize,
    page_cache: CacheRef,
}

impl<B, I> Orchestrator<B, I>
where
    B: Blocker<PublicKey = ValidatorKey>,
    I: commonware_consensus::CertifiableAutomaton<Context = super::Context, Digest = super::Digest>
        + commonware_consensus::Relay<
            Digest = super::Digest,
            PublicKey = ValidatorKey,
            Plan = commonware_consensus::simplex::Plan<ValidatorKey>,
        > + commonware_consensus::Reporter<Activity = commonware_consensus::simplex::types::Activity<Scheme, super::Digest>>
        + Clone,
{
    async fn run<E, S, R>(
        self,
        context: E,
        votes: (S, R),
        certificates: (S, R),
        resolver: (S, R),
        first: EnterEpoch,
        mut entered: futures::channel::mpsc::UnboundedReceiver<EnterEpoch>,
    ) where
        E: Spawner + Clock + Metrics + Storage + CryptoRng,
        S: Sender<PublicKey = ValidatorKey>,
        R: Receiver<PublicKey = ValidatorKey>,
    {
        use commonware_p2p::utils::mux::{Builder, Muxer};
        use futures::StreamExt;
        let (mux, mut vote_mux, mut vote_backup) =
            Muxer::builder(context.child("vote_mux"), votes.0, votes.1).with_backup().build();
        mux.start();
        let (mux, mut certificate_mux) = Muxer::new(context.child("certificate_mux"), certificates.0, certificates.1);
        mux.start();
        let (mux, mut resolver_mux) = Muxer::new(context.child("resolver_mux"), resolver.0, resolver.1);
        mux.start();

        let mut current: Option<(u64, Handle<()>)> = None;
        let mut next = Some(first);
        loop {
            if let Some(enter) = next.take() {
                if current.as_ref().is_some_and(|(epoch, _)| *epoch >= enter.epoch) {
                    continue;
                }
                let (scheme, signs) = self.schemes.install(enter.epoch, &enter.validators);
                if let Some((_, engine)) = current.take() {
                    engine.abort();
                }
                // The journal of the epoch before the previous one is no
                // longer needed (a restart resumes at the epoch of the head).
                if let Some(old) = enter.epoch.checked_sub(2) {
                    let _ = context.remove(&self.partition(old), None).await;
                }
                tracing::info!(
                    epoch = enter.epoch,
                    validators = enter.validators.len(),
                    voting = signs,
                    "entering consensus epoch"
                );
                let channel = enter.epoch;
                let (Ok(votes), Ok(certificates), Ok(resolver)) = (
                    vote_mux.register(channel).await,
                    certificate_mux.register(channel).await,
                    resolver_mux.register(channel).await,
                ) else {
                    tracing::error!(epoch = enter.epoch, "cannot open the epoch's channels");
                    return;
                };
                let engine = self.engine(&context, enter.epoch, scheme, to_digest(enter.floor));
                current = Some((enter.epoch, engine.start(votes, certificates, resolver)));
            }
            futures::select! {
                enter = entered.next() => match enter {
                    Some(enter) => next = Some(enter),
                    None => return,
                },
                backup = vote_backup.recv().fuse() => {
                    // A vote for an epoch we have not entered: a peer is
                    // ahead, so fetch the finalization of our epoch's last
                    // block from it (it takes us into the next epoch).
                    let Some((their_epoch, (from, _))) = backup else { return };
                    let Some((ours, _)) = &current else { continue };
                    if their_epoch > *ours
                        && let Some(last) = self.epocher.last(Epoch::new(*ours))
                    {
                        self.marshal.hint_finalized(last, commonware_utils::vec::NonEmptyVec::new(from));
                    }
                }
            }
        }
    }

    /// The storage partition of `epoch`'s consensus journal.
    fn partition(&self, epoch: u64) -> String {
        format!("{}-simplex-{epoch}", self.prefix)
    }

    fn engine<E>(
        &self,
        context: &E,
        epoch: u64,
        scheme: Arc<Scheme>,
        floor: super::Digest,
    ) -> simplex::Engine<E, Scheme, RoundRobin<Sha256>, B, super::Digest, I, I, I, Sequential>
    where
        E: Spawner + Clock + Metrics + Storage + CryptoRng,
    {
        let timing = &self.timing;
        simplex::Engine::new(
            context.child("simplex").with_attribute("epoch", epoch),
            simplex::config::Config {
                scheme: (*scheme).clone(),
                elector: RoundRobin::<Sha256>::default(),
                blocker: self.blocker.clone(),
                automaton: self.inline.clone(),
                relay: self.inline.clone(),
                reporter: self.inline.clone(),
                track_historical_votes: false,
                strategy: Sequential,
                partition: self.partition(epoch),
                mailbox_size: self.mailbox_size,
                epoch: Epoch::new(epoch),
                floor: simplex::config::Floor::Genesis(floor),
                replay_buffer: NZUsize!(1 << 16),
                write_buffer: NZUsize!(1 << 13),
                page_cache: self.page_cache.clone(),
                leader_timeout: timing.leader_timeout,
                certification_timeout: timing.certification_timeout,
                timeout_retry: timing.timeout_retry,
                view_retention: ViewDelta::new(10),
                // Early skipping misfires on a proposer that paces itself (it
                // looks inactive while it waits for transactions).
                skip: SkipPolicy::Disabled,
                fetch_timeout: NZDuration!(timing.fetch_timeout),
                fetch_retry_delay: Duration::from_millis(100),
                forward: ForwardPolicy::SilentVoters,
            },
        )
    }
}

/// Storage layout of one of marshal's archives.
fn archive_config<C>(prefix: &str, name: &str, page_cache: &CacheRef, codec_config: C) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size: 64,
        freezer_table_resize_frequency: 10,
        freezer_table_resize_chunk_size: 10,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_target_size: 1 << 24,
        freezer_value_compression: None,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        items_per_section: NZU64!(1024),
        freezer_key_write_buffer: NZUsize!(1 << 13),
        freezer_value_write_buffer: NZUsize!(1 << 16),
        ordinal_write_buffer: NZUsize!(1 << 13),
        replay_buffer: NZUsize!(1 << 16),
        codec_config,
    }
}
