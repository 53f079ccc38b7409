//! The node's JSON-RPC interface, served over HTTP and WebSocket on one port.
//!
//! Methods are named by module (`chain_*`, `state_*`, `tx_*`). The trait
//! below generates both the server side (implemented by `phalanx-node`) and a
//! typed client (used by the CLI and, later, workers). Amounts are integer
//! planck; hashes and byte strings are `0x` hex; accounts are SS58 addresses.

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use phalanx_primitives::{Balance, Hash, PublicKey};
use phalanx_state::{
    Agent, AttestationPolicy, ChainParams, Cluster, EventRecord, GatekeeperParams, Gatekeepers, Genesis, Header,
    KeyEpochs, Transaction, Worker,
};
use serde::{Deserialize, Serialize};

/// Error codes returned by the node, beside JSON-RPC's standard ones.
pub mod codes {
    /// The transaction bytes do not decode or are too large.
    pub const MALFORMED_TX: i32 = 1001;
    /// The transaction decodes but cannot apply (signature, nonce, balance…).
    pub const INVALID_TX: i32 = 1002;
    /// The mempool cannot take the transaction now.
    pub const POOL_FULL: i32 = 1003;
    /// The transaction is already waiting.
    pub const ALREADY_KNOWN: i32 = 1004;
    /// The transaction's nonce was already used (another transaction of the
    /// signer got there first): sign again with the account's next nonce.
    pub const STALE_NONCE: i32 = 1005;
    /// The node cannot prove state at the height asked for: it keeps only
    /// the head's state (ask again without a height, or at the head).
    pub const PROOF_HEIGHT: i32 = 1006;
    /// The answer would exceed a bound (too many keys, too many bytes).
    pub const TOO_LARGE: i32 = 1007;
    /// A parameter is not valid (address, hash…).
    pub const INVALID_PARAMS: i32 = -32602;
    /// The node failed internally (storage).
    pub const INTERNAL: i32 = -32603;
}

/// The last finalized block.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeadInfo {
    pub height: u64,
    pub hash: Hash,
    pub timestamp_ms: u64,
    pub state_root: Hash,
    pub tx_count: u32,
}

/// Facts about the chain that do not change block to block.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainInfo {
    pub chain_name: String,
    /// The genesis hash every transaction must name.
    pub chain_id: Hash,
    pub genesis_hash: Hash,
    /// Consensus keys of the validators (hex): the set that certifies the next block.
    pub validators: Vec<String>,
    pub params: ChainParams,
    pub total_issuance: Balance,
    /// Blocks per consensus epoch, and the epoch of the next block.
    #[serde(default)]
    pub epoch_blocks: u64,
    #[serde(default)]
    pub epoch: u64,
    /// The set governance scheduled to take over after the current epoch (hex), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_validators: Option<Vec<String>>,
}

/// A transaction as shown in a block.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TxInfo {
    pub hash: Hash,
    #[serde(flatten)]
    pub tx: serde_json::Value,
}

/// A finalized block with its finalization certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockInfo {
    pub hash: Hash,
    pub header: Header,
    pub txs: Vec<TxInfo>,
    pub events: Vec<serde_json::Value>,
    /// The consensus certificate as 0x hex (empty for genesis).
    pub certificate: String,
    /// The whole encoded block as 0x hex, for verifiers that replay it.
    pub encoded: String,
}

/// Most blocks one `chain_rawBlocks` call returns.
pub const RAW_BLOCKS_MAX: u64 = 1024;
/// Bytes of blocks one `chain_rawBlocks` call gathers before it stops (the
/// first block is always included).
pub const RAW_BLOCKS_BYTES_MAX: usize = 8 * 1024 * 1024;

// A raw block's hex field must take the largest block.
const _: () =
    assert!(phalanx_primitives::hex_serde::large::HEX_LARGE_BYTES_MAX >= phalanx_state::block::BLOCK_BYTES_MAX);

/// A finalized block as bytes, for verifiers: nothing in it is trusted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RawBlock {
    /// The encoded block, 0x hex (up to the largest block, 4 MiB).
    #[serde(with = "phalanx_primitives::hex_serde::large")]
    pub block: Vec<u8>,
    /// Its finalization certificate, 0x hex (empty for genesis, or when the
    /// node finalized the block only through a descendant's certificate).
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub certificate: Vec<u8>,
}

/// Most leaves one `state_proof` call proves.
pub const PROOF_KEYS_MAX: usize = phalanx_statedb::service::PROOF_KEYS_MAX;
/// Bytes of leaf values one `state_proof` answer carries at most; a request
/// over it is refused whole (ask for fewer keys). One leaf always fits.
pub const PROOF_VALUE_BYTES_MAX: usize = 8 << 20;
/// Most validator-set transitions one `chain_validatorTransitions` call returns.
pub const TRANSITIONS_MAX: usize = 64;

/// A leaf's value, or its absence, with the proof of it: nothing in it is
/// trusted until [`phalanx_statedb::verify`] checks it against a certified root.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProvenLeaf {
    /// The leaf key, 0x hex.
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub key: Vec<u8>,
    /// Its value, 0x hex; null if the state has no such leaf.
    #[serde(with = "phalanx_primitives::hex_serde::option_large")]
    pub value: Option<Vec<u8>>,
    /// The encoded qmdb proof, 0x hex.
    #[serde(with = "phalanx_primitives::hex_serde::large")]
    pub proof: Vec<u8>,
}

impl From<phalanx_statedb::StateProof> for ProvenLeaf {
    fn from(proof: phalanx_statedb::StateProof) -> Self {
        ProvenLeaf { key: proof.key, value: proof.value, proof: proof.proof }
    }
}

impl From<ProvenLeaf> for phalanx_statedb::StateProof {
    fn from(leaf: ProvenLeaf) -> Self {
        phalanx_statedb::StateProof { key: leaf.key, value: leaf.value, proof: leaf.proof }
    }
}

/// Leaves proven against the state root of a finalized block, with the
/// block's header and finalization certificate: what a light client checks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StateProofs {
    pub header: Header,
    /// The block's finalization certificate, 0x hex.
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub certificate: Vec<u8>,
    /// One per key asked for, in the order asked.
    pub leaves: Vec<ProvenLeaf>,
}

/// A change of validator set: the last block of a consensus epoch,
/// certified by the set of that epoch, and proofs (against its state root)
/// of the set that certifies the next epoch and of the change record (which
/// names the set it replaced and since when that set served).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValidatorTransition {
    pub header: Header,
    /// The block's finalization certificate, 0x hex.
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub certificate: Vec<u8>,
    /// The `Validators` leaf.
    pub validators: ProvenLeaf,
    /// The `ValidatorChanges` leaf.
    pub changes: ProvenLeaf,
}

/// A state a node can join from: a finalized block with its certificate,
/// and the state store's sync target at that block (encoded
/// `phalanx_statedb::sync::SyncTarget`). Nothing in it is trusted until the
/// certificate and the target's witness are checked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncStart {
    pub header: Header,
    /// The block's finalization certificate, 0x hex.
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub certificate: Vec<u8>,
    /// The encoded sync target, 0x hex.
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub target: Vec<u8>,
}

/// A registered worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Identity key, as an address.
    pub identity: PublicKey,
    #[serde(flatten)]
    pub worker: serde_json::Value,
}

impl WorkerInfo {
    pub fn new(worker: &Worker) -> Self {
        WorkerInfo {
            identity: worker.info.identity,
            worker: serde_json::to_value(worker).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A stake pool and its holders.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PoolInfo {
    pub pool: phalanx_state::modules::staking::Pool,
    /// Holders with shares, and what their shares are worth now (planck).
    pub holders: Vec<HolderInfo>,
}

/// One holder of a pool.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HolderInfo {
    pub account: PublicKey,
    pub shares: Balance,
    pub value: Balance,
}

impl PoolInfo {
    /// The pool `id` of `state` with its holders (at most `holders_max`, largest first).
    pub fn of(state: &phalanx_state::State, id: u64, holders_max: usize) -> Option<Self> {
        let pool = state.pool(id)?.clone();
        let mut holders: Vec<HolderInfo> = state
            .stakes_in(id)
            .filter(|(_, s)| s.shares > 0)
            .map(|(who, s)| HolderInfo { account: *who, shares: s.shares, value: pool.value_of(s.shares) })
            .collect();
        holders.sort_by_key(|h| std::cmp::Reverse(h.shares));
        holders.truncate(holders_max);
        Some(PoolInfo { pool, holders })
    }
}

/// A vault, its value, its undelegated planck, its stake in each pool and its holders.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VaultInfo {
    pub vault: phalanx_state::modules::staking::Vault,
    pub value: Balance,
    pub free: Balance,
    /// (pool, shares held, their value now).
    pub delegated: Vec<(u64, Balance, Balance)>,
    pub holders: Vec<HolderInfo>,
}

impl VaultInfo {
    /// The vault `id` of `state` (at most `holders_max` holders, largest first).
    pub fn of(state: &phalanx_state::State, id: u64, holders_max: usize) -> Option<Self> {
        let vault = state.vault(id)?.clone();
        let me = phalanx_state::modules::staking::vault_account(id);
        let value = state.vault_value(&vault);
        let delegated = vault
            .pools
            .iter()
            .filter_map(|p| {
                let shares = state.stake(*p, &me).shares;
                state.pool(*p).map(|pool| (*p, shares, pool.value_of(shares)))
            })
            .collect();
        let mut holders: Vec<HolderInfo> = state
            .vault_stakes_in(id)
            .filter(|(_, s)| s.shares > 0)
            .map(|(who, s)| HolderInfo {
                account: *who,
                shares: s.shares,
                value: if vault.shares == 0 {
                    0
                } else {
                    phalanx_state::modules::staking::mul_div(s.shares, value, vault.shares).unwrap_or(0)
                },
            })
            .collect();
        holders.sort_by_key(|h| std::cmp::Reverse(h.shares));
        holders.truncate(holders_max);
        Some(VaultInfo { free: state.vault_free(id), vault, value, delegated, holders })
    }
}

/// Mining parameters, chain-wide figures and every bound worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MiningStatus {
    pub params: phalanx_state::modules::computation::MiningParams,
    pub totals: phalanx_state::modules::computation::MiningTotals,
    pub height: u64,
    pub miners: Vec<phalanx_state::modules::computation::Miner>,
}

/// Most holders `staking_pool` lists.
pub const POOL_HOLDERS_MAX: usize = 1_000;

/// An agent as the chain records it (secrets stay sealed).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The agent's fields (`id`, `name`, `owner`, `cluster`, `code_hash`, `version`, …).
    #[serde(flatten)]
    pub agent: serde_json::Value,
    /// Size of the current code, in bytes.
    pub code_bytes: usize,
}

impl AgentInfo {
    pub fn new(agent: &Agent, code_bytes: usize) -> Self {
        AgentInfo { agent: serde_json::to_value(agent).unwrap_or_default(), code_bytes }
    }

    /// The agent id as shown (0x hex).
    pub fn id(&self) -> &str {
        self.agent["id"].as_str().unwrap_or("?")
    }
}

/// Gatekeepers and master-key epochs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeysStatus {
    pub params: GatekeeperParams,
    pub gatekeepers: serde_json::Value,
    pub epochs: serde_json::Value,
    /// Clusters with their workers and published keys (who received each).
    pub clusters: Vec<serde_json::Value>,
}

impl KeysStatus {
    /// The status, with each cluster's rotation progress over `agents`:
    /// how many agents have a key from the cluster's newest key epoch, how
    /// many secrets still wait to be re-encrypted, and the older agent key
    /// epochs still kept.
    pub fn new<'a>(
        params: &GatekeeperParams,
        gatekeepers: &Gatekeepers,
        epochs: &KeyEpochs,
        clusters: impl Iterator<Item = &'a Cluster>,
        agents: &[&phalanx_state::Agent],
    ) -> Self {
        let mut by_cluster: std::collections::BTreeMap<Hash, Vec<&phalanx_state::Agent>> = Default::default();
        for agent in agents {
            by_cluster.entry(agent.cluster).or_default().push(agent);
        }
        let clusters = clusters
            .map(|c| {
                let mut value = serde_json::to_value(c).unwrap_or_default();
                let newest = c.newest_key().map(|k| k.epoch);
                let (mut count, mut current, mut pending, mut old) = (0u64, 0u64, 0u64, 0u64);
                for agent in by_cluster.get(&c.id).into_iter().flatten() {
                    count += 1;
                    let Some(key) = agent.newest_key() else { continue };
                    if Some(key.cluster_epoch) == newest {
                        current += 1;
                    }
                    pending += agent
                        .secrets
                        .iter()
                        .filter(|s| phalanx_state::modules::agents::secret_epoch(&s.sealed) != Some(key.epoch))
                        .count() as u64;
                    old += agent.keys.len().saturating_sub(1) as u64;
                }
                value["agents"] = serde_json::json!({
                    "count": count,
                    "on_newest_cluster_key": current,
                    "secrets_to_reencrypt": pending,
                    "old_agent_epochs_kept": old,
                });
                value
            })
            .collect();
        KeysStatus {
            params: params.clone(),
            gatekeepers: serde_json::to_value(gatekeepers).unwrap_or_default(),
            epochs: serde_json::to_value(epochs).unwrap_or_default(),
            clusters,
        }
    }
}

/// One account.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountInfo {
    pub address: PublicKey,
    /// Whether the account has ever received PHA.
    pub exists: bool,
    pub nonce: u64,
    pub free: Balance,
    /// Planck held for paid agent calls (`phalanx deposit`).
    #[serde(default)]
    pub deposit: Balance,
    /// Withdrawn deposit still unbonding (usage of calls admitted before
    /// may charge it), and the chain time (ms) a block pays it back from.
    #[serde(default)]
    pub unbonding: Balance,
    #[serde(default)]
    pub unbonding_release_at_ms: Option<u64>,
    /// Transactions of this account waiting in the mempool.
    pub pending_txs: u64,
    /// The nonce to sign the next transaction with.
    pub next_nonce: u64,
}

/// Where a submitted transaction is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxStatus {
    Pending,
    Finalized { height: u64, index: u32 },
    Unknown,
}

/// Renders a transaction for [`TxInfo`].
pub fn tx_json(tx: &Transaction) -> serde_json::Value {
    serde_json::to_value(tx).unwrap_or(serde_json::Value::Null)
}

/// Renders events for [`BlockInfo`].
pub fn events_json(events: &[EventRecord]) -> Vec<serde_json::Value> {
    events.iter().map(|e| serde_json::to_value(e).unwrap_or(serde_json::Value::Null)).collect()
}

/// The node API.
#[rpc(server, client)]
pub trait Phalanx {
    /// The last finalized block.
    #[method(name = "chain_head")]
    async fn chain_head(&self) -> RpcResult<HeadInfo>;

    /// Chain id, validators and parameters.
    #[method(name = "chain_info")]
    async fn chain_info(&self) -> RpcResult<ChainInfo>;

    /// A finalized block by height, with its certificate; null if not yet finalized.
    #[method(name = "chain_block")]
    async fn chain_block(&self, height: u64) -> RpcResult<Option<BlockInfo>>;

    /// The genesis configuration; its chain id is SHA-256 of its encoding, so
    /// a client that knows the chain id can check it.
    #[method(name = "chain_genesis")]
    async fn chain_genesis(&self) -> RpcResult<Genesis>;

    /// Up to `count` (at most [`RAW_BLOCKS_MAX`]) finalized blocks from
    /// height `from`, encoded, with their certificates.
    #[method(name = "chain_rawBlocks")]
    async fn chain_raw_blocks(&self, from: u64, count: u64) -> RpcResult<Vec<RawBlock>>;

    /// Registered workers at the last finalized block, by identity key.
    #[method(name = "registry_workers")]
    async fn registry_workers(&self) -> RpcResult<Vec<WorkerInfo>>;

    /// Gatekeepers (elected, governance overrides) and master-key epochs
    /// (current, rotation in progress, history).
    #[method(name = "keys_status")]
    async fn keys_status(&self) -> RpcResult<KeysStatus>;

    /// Every agent at the last finalized block.
    #[method(name = "agents_list")]
    async fn agents_list(&self) -> RpcResult<Vec<AgentInfo>>;

    /// One agent; null if there is none with this id.
    #[method(name = "agents_get")]
    async fn agents_get(&self, id: Hash) -> RpcResult<Option<AgentInfo>>;

    /// Agent source by its SHA-256, as 0x hex; null if unknown.
    #[method(name = "agents_code")]
    async fn agents_code(&self, hash: Hash) -> RpcResult<Option<String>>;

    /// Every stake pool at the last finalized block (without holders).
    #[method(name = "staking_pools")]
    async fn staking_pools(&self) -> RpcResult<Vec<phalanx_state::modules::staking::Pool>>;

    /// One stake pool with its holders (the largest [`POOL_HOLDERS_MAX`]); null if none.
    #[method(name = "staking_pool")]
    async fn staking_pool(&self, id: u64) -> RpcResult<Option<PoolInfo>>;

    /// One vault with its value, delegations and holders; null if none.
    #[method(name = "staking_vault")]
    async fn staking_vault(&self, id: u64) -> RpcResult<Option<VaultInfo>>;

    /// Mining parameters, totals and bound workers at the last finalized block.
    #[method(name = "mining_status")]
    async fn mining_status(&self) -> RpcResult<MiningStatus>;

    /// The attestation policy registrations are judged by.
    #[method(name = "registry_policy")]
    async fn registry_policy(&self) -> RpcResult<AttestationPolicy>;

    /// An account at the last finalized block (address: SS58 or 0x hex).
    #[method(name = "state_account")]
    async fn state_account(&self, address: String) -> RpcResult<AccountInfo>;

    /// Proofs of up to [`PROOF_KEYS_MAX`] leaves (keys as 0x hex; see
    /// `phalanx_state::leaves`) against the state root of the finalized head,
    /// with its header and certificate. `height`, if given, must be the head:
    /// the node keeps only the head's state.
    #[method(name = "state_proof")]
    async fn state_proof(&self, keys: Vec<String>, height: Option<u64>) -> RpcResult<StateProofs>;

    /// The validator-set changes that took effect after consensus epoch
    /// `after_epoch`, oldest first, at most [`TRANSITIONS_MAX`]: how a light
    /// client that trusts the set of `after_epoch` reaches today's.
    #[method(name = "chain_validatorTransitions")]
    async fn chain_validator_transitions(&self, after_epoch: u64) -> RpcResult<Vec<ValidatorTransition>>;

    /// Where a new node can sync its state to: the finalized head, its
    /// certificate and the state store's sync target there.
    #[method(name = "state_syncTarget")]
    async fn state_sync_target(&self) -> RpcResult<SyncStart>;

    /// Answers one state sync request (0x hex of an encoded qmdb sync
    /// request, against any log size the node has): 0x hex of the encoded
    /// response, at most `phalanx_statedb::sync::SYNC_OPS_MAX` operations and
    /// `SYNC_RESPONSE_BYTES_MAX` bytes.
    #[method(name = "state_syncOps")]
    async fn state_sync_ops(&self, request: String) -> RpcResult<String>;

    /// Submits a signed transaction (0x hex of its encoding); returns its hash.
    #[method(name = "tx_submit")]
    async fn tx_submit(&self, tx: String) -> RpcResult<Hash>;

    /// Where a transaction is: pending, finalized, or unknown.
    #[method(name = "tx_status")]
    async fn tx_status(&self, hash: Hash) -> RpcResult<TxStatus>;

    /// Pushes the head each time a block is finalized.
    #[subscription(name = "chain_subscribeFinalized" => "chain_finalized", unsubscribe = "chain_unsubscribeFinalized", item = HeadInfo)]
    async fn chain_subscribe_finalized(&self) -> SubscriptionResult;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block over 1 MiB (thousands of transfers) crosses the wire whole: the
    /// hex limit of other fields would have refused it, and stopped every
    /// worker and follower at the first big block.
    #[test]
    fn a_raw_block_of_several_mebibytes_roundtrips() {
        let raw = RawBlock { block: vec![7; 3 << 20], certificate: vec![1; 200] };
        let text = serde_json::to_string(&raw).unwrap();
        let back: RawBlock = serde_json::from_str(&text).unwrap();
        assert_eq!((back.block.len(), back.certificate), (3 << 20, vec![1; 200]));
    }
}
