//! Starting one validator: buffered broadcast (blocks), marshal with its
//! backfill resolver and archives, the finalizer, and the simplex engine.
//! Generic over the runtime and the p2p network, so tests run the exact
//! production wiring on the deterministic simulator.

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
use commonware_consensus::types::{Epoch, FixedEpocher, ViewDelta};
use commonware_cryptography::{Digested, Sha256, Signer, certificate::ConstantProvider, certificate::Verifier};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage, buffer::paged::CacheRef};
use commonware_storage::archive::immutable;
use commonware_utils::{NZDuration, NZU16, NZU64, NZUsize, ordered::Set};
use rand_core::CryptoRng;
use std::sync::Arc;
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

/// One validator's configuration.
#[derive(Debug)]
pub struct ValidatorConfig {
    pub secret: ValidatorSecret,
    pub validators: Vec<ValidatorKey>,
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
    /// The consensus engine; it ends only when the runtime stops.
    pub engine: Handle<()>,
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
) -> Validator
where
    E: Spawner + Clock + Metrics + Storage + CryptoRng,
    S: Sender<PublicKey = ValidatorKey>,
    R: Receiver<PublicKey = ValidatorKey>,
    P: Provider<PublicKey = ValidatorKey>,
    B: Blocker<PublicKey = ValidatorKey>,
{
    let me = config.secret.public_key();
    let participants = Set::from_iter_dedup(config.validators.iter().cloned());
    let scheme =
        Scheme::signer(NAMESPACE, participants, config.secret.clone()).expect("this validator is in the validator set");
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(1024));
    let mailbox_size = NZUsize!(config.mailbox_size);
    // One epoch for the whole chain: the validator set is fixed at genesis for now.
    let epocher = FixedEpocher::new(NZU64!(u64::MAX));
    let genesis = ConsensusBlock(Arc::new(chain.genesis_block().clone()));
    let genesis_digest = to_digest(genesis.0.hash());
    let prefix = config.partition_prefix.clone();

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
            provider: ConstantProvider::new(scheme.clone()),
            epocher: epocher.clone(),
            start: marshal::Start::Genesis(Digested::precomputed(genesis, genesis_digest)),
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

    let (reporter, finalized) = FinalizedReporter::new();
    marshal_actor.start(reporter, buffer, resolver);
    let others: Vec<ValidatorKey> = config.validators.iter().filter(|v| **v != me).cloned().collect();
    context.child("finalizer").spawn({
        let marshal = marshal.clone();
        let chain = chain.clone();
        move |runtime| run_finalizer(runtime, others, marshal, finalized, chain)
    });

    let app = App { chain, pacing: config.pacing.clone() };
    let inline = Inline::new(context.child("application"), app, marshal.clone(), epocher);
    let timing = &config.timing;
    let engine = simplex::Engine::new(
        context.child("simplex"),
        simplex::config::Config {
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker,
            automaton: inline.clone(),
            relay: inline.clone(),
            reporter: inline,
            track_historical_votes: false,
            strategy: Sequential,
            partition: format!("{prefix}-simplex"),
            mailbox_size,
            epoch: Epoch::zero(),
            floor: simplex::config::Floor::Genesis(genesis_digest),
            replay_buffer: NZUsize!(1 << 16),
            write_buffer: NZUsize!(1 << 13),
            page_cache,
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
    );
    let engine = engine.start(channels.votes, channels.certificates, channels.resolver);
    Validator { marshal, engine }
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
