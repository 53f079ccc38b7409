//! Events: what a block did, for clients and indexers. Their Merkle root is in
//! the block header, so a client can check an event against a certificate.

use crate::modules::registry::TeeKind;
use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{Balance, Hash, PublicKey};

/// Something that happened while applying a block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A transaction was applied.
    TxApplied {
        hash: Hash,
        signer: PublicKey,
        nonce: u64,
    },
    /// A fee was paid to the treasury.
    FeePaid {
        who: PublicKey,
        amount: Balance,
    },
    /// An account received its first planck.
    AccountCreated {
        who: PublicKey,
    },
    Transfer {
        from: PublicKey,
        to: PublicKey,
        amount: Balance,
    },
    FeeScheduleChanged {
        base_fee: Balance,
        byte_fee: Balance,
    },
    /// A worker's evidence was accepted (first registration or renewal).
    WorkerRegistered {
        worker: PublicKey,
        operator: PublicKey,
        tee: TeeKind,
        confidence: u8,
    },
    AttestationPolicyChanged,
    /// A worker message was accepted.
    WorkerMessage {
        worker: PublicKey,
        sequence: u64,
    },
    /// The elected gatekeeper set changed.
    GatekeepersElected {
        members: Vec<PublicKey>,
    },
    GatekeeperOverride {
        worker: PublicKey,
        member: Option<bool>,
    },
    GatekeeperParamsChanged,
    /// A master-key rotation started (or restarted).
    RotationStarted {
        epoch: u64,
        leader: PublicKey,
        members: Vec<PublicKey>,
    },
    MasterKeyAnnounced {
        epoch: u64,
        #[serde(with = "phalanx_primitives::hex_serde")]
        commitment: [u8; 32],
    },
    MasterKeyConfirmed {
        epoch: u64,
        gatekeeper: PublicKey,
    },
    /// A new master-key epoch is current.
    MasterKeyActivated {
        epoch: u64,
        holders: Vec<PublicKey>,
    },
    ClusterCreated {
        cluster: Hash,
        name: String,
    },
    ClusterWorker {
        cluster: Hash,
        worker: PublicKey,
        member: bool,
    },
    /// A cluster's public key of an epoch is on chain.
    ClusterKeyPublished {
        cluster: Hash,
        epoch: u64,
    },
    ClusterKeyReceived {
        cluster: Hash,
        epoch: u64,
        worker: PublicKey,
    },
    AgentDeployed {
        agent: Hash,
        owner: PublicKey,
        cluster: Hash,
        code_hash: Hash,
    },
    /// An agent changed (upgrade, pause, transfer, access, price, secrets).
    AgentChanged {
        agent: Hash,
        change: String,
        version: u32,
    },
    /// A gatekeeper handed a key to a worker (the key travels encrypted).
    KeyHandedOver {
        from: PublicKey,
        to: PublicKey,
    },
    /// Governance (or an agent's owner) asked for a new key of one cluster or agent.
    KeyRotationRequested {
        scope: String,
        id: Hash,
    },
    /// An agent's public key of a key epoch is on chain.
    AgentKeyPublished {
        agent: Hash,
        epoch: u64,
        cluster_epoch: u64,
    },
    /// A secret was re-encrypted to the agent's newest key (by a gatekeeper).
    SecretResealed {
        agent: Hash,
        name: String,
        epoch: u64,
    },
    PoolCreated {
        pool: u64,
        owner: PublicKey,
        commission: u32,
    },
    /// `who` put `amount` planck into a pool for `shares`.
    Contributed {
        pool: u64,
        who: PublicKey,
        amount: Balance,
        shares: Balance,
    },
    /// A pool bought back `shares` of `who` for `amount` planck.
    Withdrawn {
        pool: u64,
        who: PublicKey,
        shares: Balance,
        amount: Balance,
    },
    /// Free stake did not cover a withdrawal: `shares` wait in the queue.
    WithdrawalQueued {
        pool: u64,
        who: PublicKey,
        shares: Balance,
    },
    Deposited {
        who: PublicKey,
        amount: Balance,
        deposit: Balance,
    },
    /// `amount` left the deposit and unbonds (with what unbonded already)
    /// until `release_at_ms`; usage of calls admitted before may charge it.
    DepositUnbonding {
        who: PublicKey,
        amount: Balance,
        deposit: Balance,
        unbonding: Balance,
        release_at_ms: u64,
    },
    /// An unbonded deposit was paid back to the account.
    DepositWithdrawn {
        who: PublicKey,
        amount: Balance,
        deposit: Balance,
    },
    /// A usage report charged the caller's deposit; `unpaid` is what it could not cover.
    UsageCharged {
        agent: Hash,
        caller: PublicKey,
        worker: PublicKey,
        calls: u64,
        cpu_ms: u64,
        egress_bytes: u64,
        to_worker: Balance,
        to_treasury: Balance,
        unpaid: Balance,
    },
    VaultCreated {
        vault: u64,
        owner: PublicKey,
        commission: u32,
    },
    VaultContributed {
        vault: u64,
        who: PublicKey,
        amount: Balance,
        shares: Balance,
    },
    VaultWithdrawn {
        vault: u64,
        who: PublicKey,
        shares: Balance,
        amount: Balance,
    },
    /// The owner's commission on the vault's gains, as new shares.
    VaultCommission {
        vault: u64,
        owner: PublicKey,
        shares: Balance,
    },
    /// The vault's oldest withdrawal waited past the grace period: its stake is asked back from every pool.
    VaultUndelegated {
        vault: u64,
    },
    WorkerBound {
        worker: PublicKey,
        pool: u64,
    },
    MiningStarted {
        worker: PublicKey,
        pool: u64,
        stake: Balance,
        share: u128,
    },
    /// The stake returns to the pool at `release_at`.
    MiningStopped {
        worker: PublicKey,
        pool: u64,
        release_at: u64,
    },
    /// An answered challenge paid the blocks since the last one.
    MiningReward {
        worker: PublicKey,
        pool: u64,
        to_pool: Balance,
        to_treasury: Balance,
        commission: Balance,
    },
    /// The challenge at `challenge` went unanswered.
    MinerUnresponsive {
        worker: PublicKey,
        challenge: u64,
    },
    MinerRecovered {
        worker: PublicKey,
        v: Balance,
    },
    StakeReleased {
        worker: PublicKey,
        pool: u64,
        amount: Balance,
    },
    /// The pool's oldest withdrawal waited past the grace period.
    PoolWorkersStopped {
        pool: u64,
        workers: u32,
    },
    /// A command for an agent was ordered: workers apply it as number `seq`.
    AgentCommand {
        agent: Hash,
        seq: u64,
        from: crate::modules::agents::CommandSender,
    },
    /// An older key epoch was retired: workers destroy it. `forced` when the
    /// limit on kept epochs dropped it before its data was re-encrypted.
    KeyRetired {
        scope: String,
        id: Hash,
        epoch: u64,
        forced: bool,
    },
    /// Governance scheduled a validator set: it certifies blocks from the
    /// first block of consensus epoch `epoch` on.
    ValidatorSetScheduled {
        epoch: u64,
        validators: Vec<PublicKey>,
    },
    /// The scheduled set took over: it certifies every block of `epoch` on.
    ValidatorSetChanged {
        epoch: u64,
        validators: Vec<PublicKey>,
    },
}

/// An event with the index of the transaction that emitted it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct EventRecord {
    pub tx_index: u32,
    #[serde(flatten)]
    pub event: Event,
}
