//! The state: typed maps plus the leaves they are written as, and the rules
//! that apply one transaction.
//!
//! Every write goes through [`State::write`], which records the leaf for
//! persistence and for the block's commitment, so the typed maps and the
//! committed leaves cannot drift apart. The state root is not computed
//! here: the leaves a block wrote ([`State::block_writes`]) are committed by
//! the authenticated store (`phalanx-statedb`), whose root the header
//! carries.

mod commands;
mod computation;
mod fees;
mod keying;
mod staking;
mod validators;
mod vaults;

use crate::error::TxError;
use crate::events::{Event, EventRecord};
use crate::modules::agents::{
    self as agents, AGENT_CODE_BYTES_MAX, AGENT_NAME_BYTES_MAX, AGENT_PREFIX, AGENTS_MAX, ALLOWLIST_MAX, Access, Agent,
    AgentChange, CODE_PREFIX, SECRET_BYTES_MAX, SECRETS_MAX, Secret,
};
use crate::modules::balances::{ACCOUNT_PREFIX, Account, ISSUANCE_KEY, account_key};
use crate::modules::clusters::{
    CLUSTER_NAME_BYTES_MAX, CLUSTER_PREFIX, CLUSTER_WORKERS_MAX, CLUSTERS_MAX, Cluster, cluster_id, cluster_key,
};
use crate::modules::gatekeeper::{
    self, EPOCHS_KEY, GATEKEEPERS_KEY, GOVERNANCE_LIST_MAX, GatekeeperParams, Gatekeepers, HANDOVER_BYTES_MAX,
    KeyEpochs, MasterEpoch, Rotation,
};
use crate::modules::registry::{
    self, AttestationPolicy, POLICY_KEY, WORKER_PREFIX, WORKERS_MAX, Worker, WorkerPayload, worker_key,
};
use crate::modules::system::{
    CONSENSUS_KEY, ChainParams, ConsensusParams, HEAD_KEY, Head, PARAMS_KEY, VALIDATOR_CHANGES_KEY, VALIDATORS_KEY,
    ValidatorChanges,
};
use crate::tx::{Call, SignedTransaction};
use imbl::OrdMap;
use phalanx_primitives::{Balance, Hash, PublicKey, decode_bounded, encode};

/// Leaf key of the chain id (the genesis hash).
const CHAIN_ID_KEY: &[u8] = &[0x00, 0x03];

/// Leaf keys of the computation module.
mod mining_keys {
    pub(super) use crate::modules::computation::{MINER_PREFIX as MINER, PARAMS_KEY as PARAMS, TOTALS_KEY as TOTALS};
}

/// Leaf prefixes of the staking module.
mod staking_prefix {
    pub(super) use crate::modules::staking::{
        POOL_PREFIX as POOL, STAKE_PREFIX as STAKE, VAULT_PREFIX as VAULT, VAULT_STAKE_PREFIX as VAULT_STAKE,
    };
}

/// Largest single stored value, in bytes (bounds decoding of loaded leaves).
const LEAF_VALUE_BYTES_MAX: usize = 1 << 20;

/// Transactions of one signer that a mempool holds ahead of a new one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// How many (their nonces precede the new transaction's).
    pub count: u64,
    /// Planck they spend in total (amounts plus fees).
    pub spend: Balance,
}

/// A leaf written since the last [`State::take_changes`]: key and new value.
pub type StateChange = (Vec<u8>, Vec<u8>);

/// The transaction index of events a block emits outside its transactions
/// (elections, epoch activations).
pub const BLOCK_EVENT_INDEX: u32 = u32::MAX;

/// What [`State::check`] established about a transaction.
struct Checked {
    signer: Account,
    /// Amount plus fee.
    spend: Balance,
    /// The verdict on a registration's evidence.
    attested: Option<registry::Attested>,
}

/// Why stored leaves could not be loaded into a state.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("stored state is missing the {0} entry")]
    Missing(&'static str),
    #[error("stored state entry {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// The whole chain state. Cloning is O(1) (persistent maps), which is how a
/// node keeps one state per not-yet-finalized block.
#[derive(Clone, Debug)]
pub struct State {
    pub(crate) chain_id: Hash,
    pub(crate) params: ChainParams,
    pub(crate) validators: Vec<PublicKey>,
    pub(crate) validator_changes: ValidatorChanges,
    pub(crate) consensus: ConsensusParams,
    pub(crate) head: Head,
    pub(crate) issuance: Balance,
    pub(crate) accounts: OrdMap<PublicKey, Account>,
    pub(crate) attestation: AttestationPolicy,
    pub(crate) workers: OrdMap<PublicKey, Worker>,
    pub(crate) gatekeeper_params: GatekeeperParams,
    pub(crate) gatekeepers: Gatekeepers,
    pub(crate) epochs: KeyEpochs,
    pub(crate) clusters: OrdMap<Hash, Cluster>,
    pub(crate) agents: OrdMap<Hash, Agent>,
    /// Agent source by content hash.
    pub(crate) codes: OrdMap<Hash, std::sync::Arc<Vec<u8>>>,
    pub(crate) pools: OrdMap<u64, crate::modules::staking::Pool>,
    pub(crate) stakes: OrdMap<(u64, PublicKey), crate::modules::staking::Stake>,
    pub(crate) fees: crate::modules::fees::FeeParams,
    pub(crate) deposits: OrdMap<PublicKey, Balance>,
    pub(crate) unbonding: OrdMap<PublicKey, crate::modules::fees::Unbonding>,
    /// Derived from `unbonding`: release time and account, in release order.
    pub(crate) unbonding_due: OrdMap<(u64, PublicKey), ()>,
    pub(crate) vaults: OrdMap<u64, crate::modules::staking::Vault>,
    pub(crate) vault_stakes: OrdMap<(u64, PublicKey), crate::modules::staking::Stake>,
    /// Derived from `vaults`: each vault's account, to its id.
    pub(crate) vault_accounts: OrdMap<PublicKey, u64>,
    pub(crate) mining: crate::modules::computation::MiningParams,
    pub(crate) totals: crate::modules::computation::MiningTotals,
    pub(crate) miners: OrdMap<PublicKey, crate::modules::computation::Miner>,
    /// Derived from `miners` (see [`crate::modules::computation::MinerIndex`]).
    pub(crate) miner_index: crate::modules::computation::MinerIndex,
    /// Leaves written since the last [`State::take_changes`] (persistence).
    changes: OrdMap<Vec<u8>, Vec<u8>>,
    /// Leaves written by the current block (genesis: all of them).
    block_writes: OrdMap<Vec<u8>, Vec<u8>>,
}

/// Two states are equal when every typed map and value is; what is waiting
/// to be persisted or committed is not part of a state, and indexes derived
/// from the maps (the miner index) follow from them.
impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.chain_id == other.chain_id
            && self.params == other.params
            && self.validators == other.validators
            && self.validator_changes == other.validator_changes
            && self.consensus == other.consensus
            && self.head == other.head
            && self.issuance == other.issuance
            && self.accounts == other.accounts
            && self.attestation == other.attestation
            && self.workers == other.workers
            && self.gatekeeper_params == other.gatekeeper_params
            && self.gatekeepers == other.gatekeepers
            && self.epochs == other.epochs
            && self.clusters == other.clusters
            && self.agents == other.agents
            && self.codes == other.codes
            && self.pools == other.pools
            && self.stakes == other.stakes
            && self.fees == other.fees
            && self.deposits == other.deposits
            && self.unbonding == other.unbonding
            && self.unbonding_due == other.unbonding_due
            && self.vaults == other.vaults
            && self.vault_stakes == other.vault_stakes
            && self.vault_accounts == other.vault_accounts
            && self.mining == other.mining
            && self.totals == other.totals
            && self.miners == other.miners
    }
}

impl Eq for State {}

impl State {
    /// The state a genesis configuration starts from (no balances yet).
    pub(crate) fn empty(chain_id: Hash, genesis: &crate::Genesis) -> Self {
        let head = Head { height: 0, timestamp_ms: genesis.timestamp_ms };
        let (params, validators, attestation) =
            (genesis.params.clone(), genesis.validators.clone(), genesis.attestation.clone());
        let (gatekeeper_params, mining, fees) = (genesis.gatekeeper.clone(), genesis.mining, genesis.fees);
        let gatekeepers =
            Gatekeepers { next_election: head.height + gatekeeper_params.era_blocks, ..Default::default() };
        let mut state = State {
            chain_id,
            params,
            validators,
            validator_changes: ValidatorChanges::default(),
            consensus: genesis.consensus,
            head,
            issuance: 0,
            accounts: OrdMap::new(),
            attestation,
            workers: OrdMap::new(),
            gatekeeper_params,
            gatekeepers,
            epochs: KeyEpochs::default(),
            clusters: OrdMap::new(),
            agents: OrdMap::new(),
            codes: OrdMap::new(),
            pools: OrdMap::new(),
            stakes: OrdMap::new(),
            fees,
            deposits: OrdMap::new(),
            unbonding: OrdMap::new(),
            unbonding_due: OrdMap::new(),
            vaults: OrdMap::new(),
            vault_stakes: OrdMap::new(),
            vault_accounts: OrdMap::new(),
            mining,
            totals: Default::default(),
            miners: OrdMap::new(),
            miner_index: Default::default(),
            changes: OrdMap::new(),
            block_writes: OrdMap::new(),
        };
        state.write(mining_keys::PARAMS.to_vec(), encode(&state.mining));
        state.write(crate::modules::fees::PARAMS_KEY.to_vec(), encode(&state.fees));
        state.write(mining_keys::TOTALS.to_vec(), encode(&state.totals));
        state.write(CHAIN_ID_KEY.to_vec(), encode(&chain_id));
        state.write(PARAMS_KEY.to_vec(), encode(&state.params));
        state.write(VALIDATORS_KEY.to_vec(), encode(&state.validators));
        state.write(VALIDATOR_CHANGES_KEY.to_vec(), encode(&state.validator_changes));
        state.write(CONSENSUS_KEY.to_vec(), encode(&state.consensus));
        state.write(HEAD_KEY.to_vec(), encode(&head));
        state.write(ISSUANCE_KEY.to_vec(), encode(&0u128));
        state.write(POLICY_KEY.to_vec(), encode(&state.attestation));
        state.write(gatekeeper::PARAMS_KEY.to_vec(), encode(&state.gatekeeper_params));
        state.write(GATEKEEPERS_KEY.to_vec(), encode(&state.gatekeepers));
        state.write(EPOCHS_KEY.to_vec(), encode(&state.epochs));
        state
    }

    /// Rebuilds a state from its stored leaves (as written by a node).
    pub fn load(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<Self, LoadError> {
        fn decode<T: borsh::BorshDeserialize>(key: &[u8], value: &[u8]) -> Result<T, LoadError> {
            decode_bounded(value, LEAF_VALUE_BYTES_MAX)
                .map_err(|e| LoadError::Corrupt { key: hex_key(key), reason: e.to_string() })
        }
        let (mut chain_id, mut params, mut validators, mut head, mut issuance) = (None, None, None, None, None);
        let mut attestation = None;
        let (mut gatekeeper_params, mut gatekeepers, mut epochs) = (None, None, None);
        let mut accounts = OrdMap::new();
        let mut workers = OrdMap::new();
        let mut clusters = OrdMap::new();
        let (mut agents, mut codes) = (OrdMap::new(), OrdMap::new());
        let (mut pools, mut stakes) = (OrdMap::new(), OrdMap::new());
        let (mut vaults, mut vault_stakes) = (OrdMap::new(), OrdMap::new());
        let (mut fees, mut deposits, mut unbonding) = (None, OrdMap::new(), OrdMap::new());
        let (mut mining, mut totals, mut miners) = (None, None, OrdMap::new());
        let (mut validator_changes, mut consensus) = (None, None);
        for (key, value) in entries {
            match key.as_slice() {
                CHAIN_ID_KEY => chain_id = Some(decode(&key, &value)?),
                PARAMS_KEY => params = Some(decode(&key, &value)?),
                VALIDATORS_KEY => validators = Some(decode(&key, &value)?),
                VALIDATOR_CHANGES_KEY => validator_changes = Some(decode(&key, &value)?),
                CONSENSUS_KEY => consensus = Some(decode(&key, &value)?),
                HEAD_KEY => head = Some(decode(&key, &value)?),
                ISSUANCE_KEY => issuance = Some(decode(&key, &value)?),
                POLICY_KEY => attestation = Some(decode(&key, &value)?),
                gatekeeper::PARAMS_KEY => gatekeeper_params = Some(decode(&key, &value)?),
                GATEKEEPERS_KEY => gatekeepers = Some(decode(&key, &value)?),
                EPOCHS_KEY => epochs = Some(decode(&key, &value)?),
                k if k.len() == ACCOUNT_PREFIX.len() + 32 && k.starts_with(ACCOUNT_PREFIX) => {
                    let who = PublicKey(k[ACCOUNT_PREFIX.len()..].try_into().expect("length checked"));
                    accounts.insert(who, decode(&key, &value)?);
                }
                k if k.len() == WORKER_PREFIX.len() + 32 && k.starts_with(WORKER_PREFIX) => {
                    let who = PublicKey(k[WORKER_PREFIX.len()..].try_into().expect("length checked"));
                    workers.insert(who, decode(&key, &value)?);
                }
                k if k.len() == AGENT_PREFIX.len() + 32 && k.starts_with(AGENT_PREFIX) => {
                    let id = Hash(k[AGENT_PREFIX.len()..].try_into().expect("length checked"));
                    agents.insert(id, decode(&key, &value)?);
                }
                k if k.len() == CODE_PREFIX.len() + 32 && k.starts_with(CODE_PREFIX) => {
                    let hash = Hash(k[CODE_PREFIX.len()..].try_into().expect("length checked"));
                    codes.insert(hash, std::sync::Arc::new(decode::<Vec<u8>>(&key, &value)?));
                }
                k if k.len() == CLUSTER_PREFIX.len() + 32 && k.starts_with(CLUSTER_PREFIX) => {
                    let id = Hash(k[CLUSTER_PREFIX.len()..].try_into().expect("length checked"));
                    clusters.insert(id, decode(&key, &value)?);
                }
                mining_keys::PARAMS => mining = Some(decode(&key, &value)?),
                crate::modules::fees::PARAMS_KEY => fees = Some(decode(&key, &value)?),
                k if k.len() == crate::modules::fees::DEPOSIT_PREFIX.len() + 32
                    && k.starts_with(crate::modules::fees::DEPOSIT_PREFIX) =>
                {
                    let who =
                        PublicKey(k[crate::modules::fees::DEPOSIT_PREFIX.len()..].try_into().expect("length checked"));
                    deposits.insert(who, decode(&key, &value)?);
                }
                k if k.len() == crate::modules::fees::UNBONDING_PREFIX.len() + 32
                    && k.starts_with(crate::modules::fees::UNBONDING_PREFIX) =>
                {
                    let who = PublicKey(
                        k[crate::modules::fees::UNBONDING_PREFIX.len()..].try_into().expect("length checked"),
                    );
                    let entry: crate::modules::fees::Unbonding = decode(&key, &value)?;
                    if entry.amount > 0 {
                        unbonding.insert(who, entry);
                    }
                }
                mining_keys::TOTALS => totals = Some(decode(&key, &value)?),
                k if k.len() == mining_keys::MINER.len() + 32 && k.starts_with(mining_keys::MINER) => {
                    let who = PublicKey(k[mining_keys::MINER.len()..].try_into().expect("length checked"));
                    miners.insert(who, decode(&key, &value)?);
                }
                k if k.len() == staking_prefix::VAULT.len() + 8 && k.starts_with(staking_prefix::VAULT) => {
                    let id = u64::from_be_bytes(k[staking_prefix::VAULT.len()..].try_into().expect("length checked"));
                    vaults.insert(id, decode(&key, &value)?);
                }
                k if k.len() == staking_prefix::VAULT_STAKE.len() + 40
                    && k.starts_with(staking_prefix::VAULT_STAKE) =>
                {
                    let rest = &k[staking_prefix::VAULT_STAKE.len()..];
                    let id = u64::from_be_bytes(rest[..8].try_into().expect("length checked"));
                    let who = PublicKey(rest[8..].try_into().expect("length checked"));
                    vault_stakes.insert((id, who), decode(&key, &value)?);
                }
                k if k.len() == staking_prefix::POOL.len() + 8 && k.starts_with(staking_prefix::POOL) => {
                    let id = u64::from_be_bytes(k[staking_prefix::POOL.len()..].try_into().expect("length checked"));
                    pools.insert(id, decode(&key, &value)?);
                }
                k if k.len() == staking_prefix::STAKE.len() + 40 && k.starts_with(staking_prefix::STAKE) => {
                    let rest = &k[staking_prefix::STAKE.len()..];
                    let id = u64::from_be_bytes(rest[..8].try_into().expect("length checked"));
                    let who = PublicKey(rest[8..].try_into().expect("length checked"));
                    stakes.insert((id, who), decode(&key, &value)?);
                }
                _ => {
                    return Err(LoadError::Corrupt { key: hex_key(&key), reason: "unknown key".into() });
                }
            }
        }
        Ok(State {
            chain_id: chain_id.ok_or(LoadError::Missing("chain id"))?,
            params: params.ok_or(LoadError::Missing("chain parameters"))?,
            validators: validators.ok_or(LoadError::Missing("validator set"))?,
            validator_changes: validator_changes.ok_or(LoadError::Missing("validator changes"))?,
            consensus: consensus.ok_or(LoadError::Missing("consensus parameters"))?,
            head: head.ok_or(LoadError::Missing("head"))?,
            issuance: issuance.ok_or(LoadError::Missing("total issuance"))?,
            accounts,
            attestation: attestation.ok_or(LoadError::Missing("attestation policy"))?,
            workers,
            gatekeeper_params: gatekeeper_params.ok_or(LoadError::Missing("gatekeeper parameters"))?,
            gatekeepers: gatekeepers.ok_or(LoadError::Missing("gatekeepers"))?,
            epochs: epochs.ok_or(LoadError::Missing("key epochs"))?,
            clusters,
            agents,
            codes,
            pools,
            stakes,
            fees: fees.ok_or(LoadError::Missing("fee parameters"))?,
            deposits,
            unbonding_due: unbonding
                .iter()
                .map(|(who, u): (&PublicKey, &crate::modules::fees::Unbonding)| ((u.release_at_ms, *who), ()))
                .collect(),
            unbonding,
            vault_accounts: vaults.keys().map(|id| (crate::modules::staking::vault_account(*id), *id)).collect(),
            vaults,
            vault_stakes,
            mining: mining.ok_or(LoadError::Missing("mining parameters"))?,
            totals: totals.ok_or(LoadError::Missing("mining totals"))?,
            miner_index: {
                let mut index = crate::modules::computation::MinerIndex::default();
                miners.values().for_each(|miner| index.update(None, miner));
                index
            },
            miners,
            changes: OrdMap::new(),
            block_writes: OrdMap::new(),
        })
    }

    /// Writes one leaf: the only way state reaches the root and the disk.
    pub(crate) fn write(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.block_writes.insert(key.clone(), value.clone());
        self.changes.insert(key, value);
    }

    /// The leaves the current block wrote, in key order, each with its
    /// final value: exactly what the store commits for the block (for a
    /// genesis state, every leaf).
    pub fn block_writes(&self) -> Vec<StateChange> {
        self.block_writes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// [`State::block_writes`] as the state store takes them (the state
    /// machine never deletes a leaf, so every value is present).
    pub fn store_writes(&self) -> Vec<phalanx_statedb::service::Write> {
        self.block_writes.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect()
    }

    /// Leaves written since the last call, in key order.
    pub fn take_changes(&mut self) -> Vec<StateChange> {
        std::mem::take(&mut self.changes).into_iter().collect()
    }

    pub fn chain_id(&self) -> Hash {
        self.chain_id
    }

    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    pub fn validators(&self) -> &[PublicKey] {
        &self.validators
    }

    pub fn height(&self) -> u64 {
        self.head.height
    }

    pub fn timestamp_ms(&self) -> u64 {
        self.head.timestamp_ms
    }

    /// Planck in existence. Changes only by minting (none yet) or burning.
    pub fn total_issuance(&self) -> Balance {
        self.issuance
    }

    /// The account of `who`, if it has ever received PHA.
    pub fn account(&self, who: &PublicKey) -> Option<Account> {
        self.accounts.get(who).copied()
    }

    /// All accounts in key order.
    pub fn accounts(&self) -> impl Iterator<Item = (&PublicKey, &Account)> {
        self.accounts.iter()
    }

    /// The attestation policy registrations are judged by.
    pub fn attestation_policy(&self) -> &AttestationPolicy {
        &self.attestation
    }

    /// A registered worker by identity key.
    pub fn worker(&self, identity: &PublicKey) -> Option<&Worker> {
        self.workers.get(identity)
    }

    /// All registered workers in key order.
    pub fn workers(&self) -> impl Iterator<Item = (&PublicKey, &Worker)> {
        self.workers.iter()
    }

    pub fn gatekeeper_params(&self) -> &GatekeeperParams {
        &self.gatekeeper_params
    }

    /// The elected gatekeepers and governance's overrides.
    pub fn gatekeepers(&self) -> &Gatekeepers {
        &self.gatekeepers
    }

    /// Master-key epochs: current, rotation in progress, history.
    pub fn key_epochs(&self) -> &KeyEpochs {
        &self.epochs
    }

    /// An agent by id.
    pub fn agent(&self, id: &Hash) -> Option<&Agent> {
        self.agents.get(id)
    }

    /// All agents in id order.
    pub fn agents(&self) -> impl Iterator<Item = (&Hash, &Agent)> {
        self.agents.iter()
    }

    /// Agent source by its SHA-256.
    pub fn code(&self, hash: &Hash) -> Option<&std::sync::Arc<Vec<u8>>> {
        self.codes.get(hash)
    }

    fn set_agent(&mut self, agent: Agent) {
        self.write(agents::agent_key(&agent.id), encode(&agent));
        self.agents.insert(agent.id, agent);
    }

    /// Stores `code` under its hash (once) and returns the hash.
    fn store_code(&mut self, code: &[u8]) -> Hash {
        let hash = phalanx_primitives::sha256(code);
        if !self.codes.contains_key(&hash) {
            self.write(agents::code_key(&hash), encode(&code.to_vec()));
            self.codes.insert(hash, std::sync::Arc::new(code.to_vec()));
        }
        hash
    }

    /// Checks an agent change by `signer`.
    fn check_agent_change(&self, signer: &PublicKey, agent: &Hash, change: &AgentChange) -> Result<(), TxError> {
        let found = self.agents.get(agent).ok_or_else(|| TxError::Agent(format!("no agent {agent}")))?;
        if &found.owner != signer && !self.params.governance.contains(signer) {
            return Err(TxError::NotAgentOwner(*agent));
        }
        match change {
            AgentChange::Upgrade { code, .. } => check_code(code)?,
            AgentChange::Pause if found.paused => return Err(TxError::Agent("the agent is already paused".into())),
            AgentChange::Resume if !found.paused => return Err(TxError::Agent("the agent is not paused".into())),
            AgentChange::Access { access: Access::Allowlist { accounts } } if accounts.len() > ALLOWLIST_MAX => {
                return Err(TxError::Agent(format!("an allowlist holds at most {ALLOWLIST_MAX} accounts")));
            }
            AgentChange::SetSecret { name, sealed } => {
                if !agents::valid_secret_name(name) {
                    return Err(TxError::Agent(format!(
                        "secret name {name:?} must be 1 to 64 of A-Z, 0-9 and _, not starting with a digit"
                    )));
                }
                if sealed.is_empty() || sealed.len() > SECRET_BYTES_MAX {
                    return Err(TxError::Agent(format!("a sealed secret is 1 to {SECRET_BYTES_MAX} bytes")));
                }
                if !found.secrets.iter().any(|s| &s.name == name) && found.secrets.len() >= SECRETS_MAX {
                    return Err(TxError::Agent(format!("an agent holds at most {SECRETS_MAX} secrets")));
                }
            }
            AgentChange::RemoveSecret { name } if !found.secrets.iter().any(|s| &s.name == name) => {
                return Err(TxError::Agent(format!("the agent has no secret {name:?}")));
            }
            _ => {}
        }
        Ok(())
    }

    /// A cluster by id.
    pub fn cluster(&self, id: &Hash) -> Option<&Cluster> {
        self.clusters.get(id)
    }

    /// All clusters in id order.
    pub fn clusters(&self) -> impl Iterator<Item = (&Hash, &Cluster)> {
        self.clusters.iter()
    }

    fn set_cluster(&mut self, cluster: Cluster) {
        self.write(cluster_key(&cluster.id), encode(&cluster));
        self.clusters.insert(cluster.id, cluster);
    }

    fn set_gatekeepers(&mut self, gatekeepers: Gatekeepers) {
        self.write(GATEKEEPERS_KEY.to_vec(), encode(&gatekeepers));
        self.gatekeepers = gatekeepers;
    }

    fn set_epochs(&mut self, epochs: KeyEpochs) {
        self.write(EPOCHS_KEY.to_vec(), encode(&epochs));
        self.epochs = epochs;
    }

    /// Starts a rotation to `members` at the current height.
    fn start_rotation(&mut self, members: Vec<PublicKey>, emit: &mut impl FnMut(Event)) {
        let mut epochs = self.epochs.clone();
        let epoch = epochs.current.as_ref().map_or(1, |c| c.epoch + 1);
        let leader = gatekeeper::leader(&members, epochs.current.as_ref());
        emit(Event::RotationStarted { epoch, leader, members: members.clone() });
        epochs.rotation = Some(Rotation {
            id: self.head.height,
            epoch,
            leader,
            members,
            commitment: None,
            confirmed: Vec::new(),
            activates_at: None,
        });
        self.set_epochs(epochs);
    }

    /// The block-level part of applying a block, before its transactions:
    /// the new head, epoch activation, rotation timeouts and elections.
    /// Events it emits carry [`BLOCK_EVENT_INDEX`] as their transaction index.
    pub(crate) fn begin_block(&mut self, head: Head, parent: &Hash, events: &mut Vec<EventRecord>) {
        self.block_writes = OrdMap::new();
        self.set_head(head);
        let height = head.height;
        let mut emit = |event| events.push(EventRecord { tx_index: BLOCK_EVENT_INDEX, event });
        self.begin_mining_block(parent, &mut emit);
        self.begin_vaults_block(&mut emit);
        self.release_unbonded(&mut emit);
        if let Some(rotation) = &self.epochs.rotation {
            if rotation.activates_at.is_some_and(|at| height >= at) {
                let mut epochs = self.epochs.clone();
                let rotation = epochs.rotation.take().expect("checked");
                if let Some(previous) = epochs.current.take() {
                    epochs.previous.push(previous);
                    if epochs.previous.len() > gatekeeper::EPOCH_HISTORY_MAX {
                        epochs.previous.remove(0);
                    }
                }
                emit(Event::MasterKeyActivated { epoch: rotation.epoch, holders: rotation.confirmed.clone() });
                epochs.current = Some(MasterEpoch {
                    epoch: rotation.epoch,
                    commitment: rotation.commitment.expect("confirmed rotations have a commitment"),
                    holders: rotation.confirmed,
                    activated_at: height,
                });
                self.set_epochs(epochs);
            } else if rotation.activates_at.is_none()
                && height >= rotation.id.saturating_add(self.gatekeeper_params.era_blocks)
            {
                // Timed out: go ahead with two thirds, or start over.
                let enough =
                    rotation.commitment.is_some() && rotation.confirmed.len() * 3 >= rotation.members.len() * 2;
                if enough {
                    let mut epochs = self.epochs.clone();
                    let rotation = epochs.rotation.as_mut().expect("checked");
                    rotation.members = rotation.confirmed.clone();
                    rotation.activates_at = Some(height + self.gatekeeper_params.activation_delay);
                    self.set_epochs(epochs);
                } else {
                    let members = rotation.members.clone();
                    self.start_rotation(members, &mut emit);
                }
            }
        }
        if height >= self.gatekeepers.next_election {
            let elected = gatekeeper::elect(&self.gatekeeper_params, &self.gatekeepers, self.workers.values());
            let mut gatekeepers = self.gatekeepers.clone();
            gatekeepers.next_election = height + self.gatekeeper_params.era_blocks.max(1);
            if elected != gatekeepers.elected {
                emit(Event::GatekeepersElected { members: elected.clone() });
            }
            gatekeepers.elected = elected.clone();
            self.set_gatekeepers(gatekeepers);
            let holders = self.epochs.current.as_ref().map(|c| c.holders.clone()).unwrap_or_default();
            let rotating_to = self.epochs.rotation.as_ref().map(|r| r.members.clone());
            // A rotation about to activate is left alone: the next election
            // compares the set with its holders.
            let activating = self.epochs.rotation.as_ref().is_some_and(|r| r.activates_at.is_some());
            if !elected.is_empty() && elected != holders && rotating_to.as_ref() != Some(&elected) && !activating {
                self.start_rotation(elected, &mut emit);
            }
        }
    }

    pub(crate) fn set_worker(&mut self, worker: Worker) {
        self.write(worker_key(&worker.info.identity), encode(&worker));
        self.workers.insert(worker.info.identity, worker);
    }

    pub(crate) fn set_account(&mut self, who: PublicKey, account: Account) {
        self.accounts.insert(who, account);
        self.write(account_key(&who), encode(&account));
    }

    pub(crate) fn set_head(&mut self, head: Head) {
        self.head = head;
        self.write(HEAD_KEY.to_vec(), encode(&head));
    }

    pub(crate) fn set_issuance(&mut self, issuance: Balance) {
        self.issuance = issuance;
        self.write(ISSUANCE_KEY.to_vec(), encode(&issuance));
    }

    /// Checks that `tx` would apply to this state, without changing it.
    /// `encoded_len` is the length of the signed transaction's encoding.
    pub fn check_tx(&self, tx: &SignedTransaction, encoded_len: usize) -> Result<(), TxError> {
        self.next_block_view().check(tx, encoded_len, true, Pending::default()).map(|_| ())
    }

    /// This state as the next block's transactions see it: rules that
    /// depend on the height (challenge windows, grace periods) are judged at
    /// the height the transaction would be applied in, not the last block's.
    /// O(1): the maps are shared; nothing is written.
    fn next_block_view(&self) -> State {
        let mut next = self.clone();
        next.head.height += 1;
        next
    }

    /// Checks that `tx` would apply after `pending` earlier transactions of
    /// the same signer (a mempool's view). The signature is not checked here:
    /// callers verify it first, outside any lock. Returns what the
    /// transaction spends (amount plus fee).
    pub fn check_pending_tx(
        &self,
        tx: &SignedTransaction,
        encoded_len: usize,
        pending: Pending,
    ) -> Result<Balance, TxError> {
        self.next_block_view().check(tx, encoded_len, false, pending).map(|checked| checked.spend)
    }

    fn check(
        &self,
        signed: &SignedTransaction,
        encoded_len: usize,
        verify_signature: bool,
        pending: Pending,
    ) -> Result<Checked, TxError> {
        let tx = &signed.tx;
        if tx.chain_id != self.chain_id {
            return Err(TxError::WrongChain { expected: self.chain_id, got: tx.chain_id });
        }
        let signer = self.account(&tx.signer).ok_or(TxError::UnknownAccount)?;
        let expected = signer.nonce.checked_add(pending.count).ok_or(TxError::Overflow("nonce"))?;
        if tx.nonce < expected {
            return Err(TxError::StaleNonce { expected, got: tx.nonce });
        }
        if tx.nonce > expected {
            return Err(TxError::FutureNonce { expected, got: tx.nonce });
        }
        // Signatures are checked after the cheap checks, so replays and
        // stale transactions cost no curve arithmetic.
        if verify_signature {
            signed.verify_signature()?;
        }
        let minimum = self.params.fees.minimum(encoded_len).ok_or(TxError::Overflow("fee"))?;
        if tx.fee < minimum {
            return Err(TxError::FeeTooLow { offered: tx.fee, minimum });
        }
        if encoded_len > tx.call.bytes_max() {
            return Err(TxError::TooLarge { size: encoded_len, max: tx.call.bytes_max() });
        }
        let amount = match &tx.call {
            Call::Transfer { to, amount } => {
                if let Some(vault) = self.vault_of_account(to) {
                    return Err(TxError::Staking(format!(
                        "{to} is vault {vault}'s account, which takes no transfers (no one could spend them): \
                         contribute with `phalanx vault contribute {vault}`"
                    )));
                }
                *amount
            }
            Call::SetGatekeeper { worker, .. } => {
                if !self.params.governance.contains(&tx.signer) {
                    return Err(TxError::NotGovernance);
                }
                if !self.workers.contains_key(worker) {
                    return Err(TxError::UnknownWorker(*worker));
                }
                let g = &self.gatekeepers;
                if g.forced.len() >= GOVERNANCE_LIST_MAX || g.excluded.len() >= GOVERNANCE_LIST_MAX {
                    return Err(TxError::Gatekeeping(format!("governance lists hold at most {GOVERNANCE_LIST_MAX}")));
                }
                0
            }
            Call::RotateMasterKey => {
                if !self.params.governance.contains(&tx.signer) {
                    return Err(TxError::NotGovernance);
                }
                if self.epochs.rotation.is_some() {
                    return Err(TxError::Gatekeeping("a master-key rotation is already in progress".into()));
                }
                if self.gatekeepers.elected.is_empty() {
                    return Err(TxError::Gatekeeping("there are no gatekeepers to rotate the master key".into()));
                }
                0
            }
            Call::RotateClusterKey { cluster } => {
                self.check_scoped_rotation(&tx.signer, Some(cluster), None)?;
                0
            }
            Call::RotateAgentKey { agent } => {
                self.check_scoped_rotation(&tx.signer, None, Some(agent))?;
                0
            }
            Call::SetGatekeeperParams { params } => {
                if !self.params.governance.contains(&tx.signer) {
                    return Err(TxError::NotGovernance);
                }
                if params.gatekeepers_max == 0 || params.gatekeepers_max > gatekeeper::GATEKEEPERS_MAX {
                    return Err(TxError::Gatekeeping(format!(
                        "gatekeepers_max must be 1 to {}",
                        gatekeeper::GATEKEEPERS_MAX
                    )));
                }
                if params.era_blocks == 0 {
                    return Err(TxError::Gatekeeping("era_blocks must be at least 1".into()));
                }
                0
            }
            Call::DeployAgent { name, cluster, code, .. } => {
                if name.is_empty() || name.len() > AGENT_NAME_BYTES_MAX {
                    return Err(TxError::Agent(format!("an agent name is 1 to {AGENT_NAME_BYTES_MAX} bytes")));
                }
                if !self.clusters.contains_key(cluster) {
                    return Err(TxError::Cluster(format!("no cluster {cluster}")));
                }
                if self.agents.len() >= AGENTS_MAX {
                    return Err(TxError::Agent(format!("the chain holds at most {AGENTS_MAX} agents")));
                }
                check_code(code)?;
                0
            }
            Call::ManageAgent { agent, change } => {
                self.check_agent_change(&tx.signer, agent, change)?;
                0
            }
            Call::SendToAgent { agent, payload } => {
                self.check_command(&crate::modules::agents::CommandSender::Account(tx.signer), agent, payload)?;
                0
            }
            Call::CreatePool { commission, cap } => {
                self.check_create_pool(*commission, *cap)?;
                0
            }
            Call::Contribute { pool, amount } => {
                self.check_contribute(*pool, *amount)?;
                *amount
            }
            Call::Withdraw { pool, shares } => {
                self.check_withdraw(&tx.signer, *pool, *shares)?;
                0
            }
            Call::BindWorker { pool, worker } => {
                self.check_bind(&tx.signer, *pool, worker)?;
                0
            }
            Call::CreateVault { commission } => {
                self.check_create_vault(*commission)?;
                0
            }
            Call::Deposit { amount } => {
                if *amount == 0 {
                    return Err(TxError::Fees("deposit at least 1 planck".into()));
                }
                *amount
            }
            Call::WithdrawDeposit { amount } => {
                self.check_withdraw_deposit(&tx.signer, *amount)?;
                0
            }
            Call::VaultContribute { vault, amount } => {
                self.check_vault_contribute(*vault, *amount)?;
                *amount
            }
            Call::VaultWithdraw { vault, shares } => {
                self.check_vault_withdraw(&tx.signer, *vault, *shares)?;
                0
            }
            Call::Delegate { vault, pool, amount } => {
                self.check_delegate(&tx.signer, *vault, *pool, *amount)?;
                0
            }
            Call::Undelegate { vault, pool, shares } => {
                self.check_undelegate(&tx.signer, *vault, *pool, *shares)?;
                0
            }
            Call::StartMining { worker, stake } => {
                self.check_start(&tx.signer, worker, *stake)?;
                0
            }
            Call::StopMining { worker } => {
                self.check_stop(&tx.signer, worker)?;
                0
            }
            Call::CreateCluster { name } => {
                if !self.params.governance.contains(&tx.signer) {
                    return Err(TxError::NotGovernance);
                }
                if name.is_empty() || name.len() > CLUSTER_NAME_BYTES_MAX {
                    return Err(TxError::Cluster(format!("a cluster name is 1 to {CLUSTER_NAME_BYTES_MAX} bytes")));
                }
                if self.clusters.len() >= CLUSTERS_MAX {
                    return Err(TxError::Cluster(format!("the chain holds at most {CLUSTERS_MAX} clusters")));
                }
                0
            }
            Call::SetClusterWorker { cluster, worker, member } => {
                if !self.params.governance.contains(&tx.signer) {
                    return Err(TxError::NotGovernance);
                }
                let found =
                    self.clusters.get(cluster).ok_or_else(|| TxError::Cluster(format!("no cluster {cluster}")))?;
                if !self.workers.contains_key(worker) {
                    return Err(TxError::UnknownWorker(*worker));
                }
                if *member && !found.workers.contains(worker) && found.workers.len() >= CLUSTER_WORKERS_MAX {
                    return Err(TxError::Cluster(format!("a cluster holds at most {CLUSTER_WORKERS_MAX} workers")));
                }
                0
            }
            Call::SetValidators { validators } => {
                if !self.params.governance.contains(&tx.signer) {
                    return Err(TxError::NotGovernance);
                }
                validators::check_entries(validators)?;
                0
            }
            Call::SetFeeSchedule { .. } | Call::SetAttestationPolicy { .. } => {
                if !self.params.governance.contains(&tx.signer) {
                    return Err(TxError::NotGovernance);
                }
                0
            }
            Call::RegisterWorker { info, .. } => {
                if info.chain_id != self.chain_id {
                    return Err(TxError::Attestation(format!(
                        "registration is for chain {}, this chain is {}",
                        info.chain_id, self.chain_id
                    )));
                }
                if !self.workers.contains_key(&info.identity) && self.workers.len() >= WORKERS_MAX {
                    return Err(TxError::RegistryFull(WORKERS_MAX));
                }
                0
            }
            Call::WorkerMessage { message } => {
                self.check_worker_message(message, pending.count)?;
                0
            }
        };
        let spend = amount.checked_add(tx.fee).ok_or(TxError::Overflow("amount plus fee"))?;
        let needed = spend.checked_add(pending.spend).ok_or(TxError::Overflow("pending spend"))?;
        if signer.free < needed {
            return Err(TxError::InsufficientBalance { needed, available: signer.free });
        }
        // Quote verification is the most expensive check: it runs last.
        let attested = match &tx.call {
            Call::RegisterWorker { info, evidence } => {
                Some(registry::verify_evidence(&self.attestation, info, evidence, self.head.timestamp_ms / 1000)?)
            }
            _ => None,
        };
        Ok(Checked { signer, spend, attested })
    }

    /// Checks a worker message: chain, sender, sequence (allowing `pending`
    /// earlier messages of the same submitter ahead of it) and signature.
    fn check_worker_message(&self, signed: &crate::SignedWorkerMessage, pending: u64) -> Result<(), TxError> {
        let message = &signed.message;
        if message.chain_id != self.chain_id {
            return Err(TxError::MessageWrongChain { expected: self.chain_id, got: message.chain_id });
        }
        let worker = self.workers.get(&message.worker).ok_or(TxError::UnknownWorker(message.worker))?;
        let expected = worker.next_sequence;
        if message.sequence < expected {
            return Err(TxError::StaleSequence { expected, got: message.sequence });
        }
        if message.sequence > expected.saturating_add(pending) {
            return Err(TxError::FutureSequence { expected, got: message.sequence });
        }
        let sender = &message.worker;
        let rotation = self.epochs.rotation.as_ref();
        let in_rotation = |id: u64| {
            rotation
                .filter(|r| r.id == id)
                .ok_or_else(|| TxError::Gatekeeping(format!("no rotation {id} is in progress")))
        };
        match &message.payload {
            WorkerPayload::Heartbeat { synced_height } if *synced_height > self.head.height => {
                return Err(TxError::HeartbeatAhead { claimed: *synced_height, height: self.head.height });
            }
            WorkerPayload::Heartbeat { .. } | WorkerPayload::Benchmark { .. } => {}
            WorkerPayload::Gateway { url } => {
                let scheme = url.starts_with("http://") || url.starts_with("https://");
                if !scheme || url.len() > registry::GATEWAY_URL_BYTES_MAX || url.chars().any(char::is_whitespace) {
                    return Err(TxError::WorkerMessage(format!(
                        "a gateway URL is http(s)://… without spaces, at most {} bytes",
                        registry::GATEWAY_URL_BYTES_MAX
                    )));
                }
            }
            WorkerPayload::MasterKeyAnnounce { rotation, .. } => {
                let r = in_rotation(*rotation)?;
                if &r.leader != sender {
                    return Err(TxError::Gatekeeping("only the rotation's leader announces its key".into()));
                }
                if r.commitment.is_some() {
                    return Err(TxError::Gatekeeping("the rotation's key is already announced".into()));
                }
            }
            WorkerPayload::MasterKeyConfirm { rotation, commitment } => {
                let r = in_rotation(*rotation)?;
                if !r.members.contains(sender) || r.confirmed.contains(sender) || r.activates_at.is_some() {
                    return Err(TxError::Gatekeeping("not a member waiting to confirm this rotation".into()));
                }
                if r.commitment != Some(*commitment) {
                    return Err(TxError::Gatekeeping("confirmation does not match the announced key".into()));
                }
            }
            payload @ (WorkerPayload::ClusterKeyPublish { .. }
            | WorkerPayload::AgentKeyPublish { .. }
            | WorkerPayload::ClusterKeyReceived { .. }
            | WorkerPayload::SecretResealed { .. }
            | WorkerPayload::AgentKeyRetire { .. }
            | WorkerPayload::ClusterKeyRetire { .. }) => {
                self.check_key_message(sender, payload)?;
            }
            WorkerPayload::MiningHeartbeat { challenge } => self.check_answer(sender, *challenge)?,
            WorkerPayload::Usage { agent, caller, price, calls, cpu_ms, egress_bytes } => self.check_usage(
                sender,
                &fees::Usage {
                    agent: *agent,
                    caller: *caller,
                    price: *price,
                    calls: *calls,
                    cpu_ms: *cpu_ms,
                    egress_bytes: *egress_bytes,
                },
            )?,
            WorkerPayload::AgentCommand { agent, payload } => {
                self.check_worker_command(sender, agent)?;
                self.check_command(&crate::modules::agents::CommandSender::Agent(*agent), agent, payload)?;
            }
            WorkerPayload::KeyHandover { to, envelope } => {
                if envelope.len() > HANDOVER_BYTES_MAX {
                    return Err(TxError::Gatekeeping(format!("handover is larger than {HANDOVER_BYTES_MAX} bytes")));
                }
                if !self.epochs.may_hand_over(sender) {
                    return Err(TxError::Gatekeeping("only gatekeepers hand over keys".into()));
                }
                if !self.workers.contains_key(to) {
                    return Err(TxError::UnknownWorker(*to));
                }
            }
        }
        // The message signature is the worker's, not the submitter's: it is
        // checked even where the transaction signature was checked earlier.
        signed.verify_signature().map_err(TxError::BadMessageSignature)
    }

    /// Applies one transaction: all of it or, on error, nothing.
    pub(crate) fn apply_tx(
        &mut self,
        signed: &SignedTransaction,
        encoded_len: usize,
        verify_signature: bool,
        tx_index: u32,
        events: &mut Vec<EventRecord>,
    ) -> Result<Hash, TxError> {
        let Checked { mut signer, attested, .. } =
            self.check(signed, encoded_len, verify_signature, Pending::default())?;
        // Every check is done: from here on nothing can fail.
        let tx = &signed.tx;
        let hash = signed.hash();
        let mut emit = |event| events.push(EventRecord { tx_index, event });
        signer.nonce += 1;
        signer.free -= tx.fee;
        self.set_account(tx.signer, signer);
        self.credit(self.params.treasury, tx.fee, &mut emit);
        emit(Event::FeePaid { who: tx.signer, amount: tx.fee });
        match &tx.call {
            Call::Transfer { to, amount } => {
                let mut from = self.account(&tx.signer).expect("signer exists");
                from.free -= amount;
                self.set_account(tx.signer, from);
                self.credit(*to, *amount, &mut emit);
                emit(Event::Transfer { from: tx.signer, to: *to, amount: *amount });
            }
            Call::SetFeeSchedule { base_fee, byte_fee } => {
                self.params.fees = crate::FeeSchedule { base_fee: *base_fee, byte_fee: *byte_fee };
                self.write(PARAMS_KEY.to_vec(), encode(&self.params));
                emit(Event::FeeScheduleChanged { base_fee: *base_fee, byte_fee: *byte_fee });
            }
            Call::SetValidators { validators } => self.schedule_validators(validators, &mut emit),
            Call::SetAttestationPolicy { policy } => {
                self.attestation = policy.clone();
                self.write(POLICY_KEY.to_vec(), encode(&self.attestation));
                emit(Event::AttestationPolicyChanged);
            }
            Call::SetGatekeeper { worker, member } => {
                let mut gatekeepers = self.gatekeepers.clone();
                gatekeepers.forced.retain(|w| w != worker);
                gatekeepers.excluded.retain(|w| w != worker);
                match member {
                    Some(true) => gatekeepers.forced.push(*worker),
                    Some(false) => gatekeepers.excluded.push(*worker),
                    None => {}
                }
                // Re-elect at the next block.
                gatekeepers.next_election = self.head.height + 1;
                self.set_gatekeepers(gatekeepers);
                emit(Event::GatekeeperOverride { worker: *worker, member: *member });
            }
            Call::DeployAgent { name, cluster, code, language } => {
                let id = agents::agent_id(&hash);
                let code_hash = self.store_code(code);
                let height = self.head.height;
                emit(Event::AgentDeployed { agent: id, owner: tx.signer, cluster: *cluster, code_hash });
                let mut agent = Agent {
                    id,
                    name: name.clone(),
                    owner: tx.signer,
                    cluster: *cluster,
                    code_hash,
                    language: *language,
                    version: 1,
                    paused: false,
                    access: Access::Public,
                    price: 0,
                    secrets: Vec::new(),
                    keys: Vec::new(),
                    rotation_requested: false,
                    key_epoch_last: 0,
                    commands: 0,
                    log_key: None,
                    code_history: Vec::new(),
                    created_at: height,
                    updated_at: height,
                };
                agent.record_code(height);
                self.set_agent(agent);
            }
            Call::ManageAgent { agent, change } => {
                let mut found = self.agents.get(agent).expect("checked").clone();
                let what = match change {
                    AgentChange::Upgrade { code, language } => {
                        found.code_hash = self.store_code(code);
                        found.language = *language;
                        found.version += 1;
                        found.record_code(self.head.height);
                        "upgrade"
                    }
                    AgentChange::Pause => {
                        found.paused = true;
                        "pause"
                    }
                    AgentChange::Resume => {
                        found.paused = false;
                        "resume"
                    }
                    AgentChange::Transfer { to } => {
                        found.owner = *to;
                        // The previous owner's log key must not read the new owner's logs.
                        found.log_key = None;
                        "transfer"
                    }
                    AgentChange::LogKey { public } => {
                        found.log_key = *public;
                        "log_key"
                    }
                    AgentChange::Access { access } => {
                        found.access = access.clone();
                        "access"
                    }
                    AgentChange::Price { price } => {
                        found.price = *price;
                        "price"
                    }
                    AgentChange::SetSecret { name, sealed } => {
                        let secret = Secret { name: name.clone(), sealed: sealed.clone() };
                        match found.secrets.iter_mut().find(|s| &s.name == name) {
                            Some(existing) => *existing = secret,
                            None => found.secrets.push(secret),
                        }
                        "set_secret"
                    }
                    AgentChange::RemoveSecret { name } => {
                        found.secrets.retain(|s| &s.name != name);
                        "remove_secret"
                    }
                };
                found.updated_at = self.head.height;
                emit(Event::AgentChanged { agent: *agent, change: what.into(), version: found.version });
                self.set_agent(found);
            }
            Call::CreateCluster { name } => {
                let id = cluster_id(&hash);
                emit(Event::ClusterCreated { cluster: id, name: name.clone() });
                self.set_cluster(Cluster {
                    id,
                    name: name.clone(),
                    workers: Vec::new(),
                    keys: Vec::new(),
                    rotation_requested: false,
                    created_at: self.head.height,
                });
            }
            Call::SetClusterWorker { cluster, worker, member } => {
                let mut found = self.clusters.get(cluster).expect("checked").clone();
                found.workers.retain(|w| w != worker);
                if *member {
                    found.workers.push(*worker);
                }
                for key in &mut found.keys {
                    key.received.retain(|w| found.workers.contains(w));
                }
                emit(Event::ClusterWorker { cluster: *cluster, worker: *worker, member: *member });
                self.set_cluster(found);
            }
            Call::RotateMasterKey => {
                let members = self.gatekeepers.elected.clone();
                self.start_rotation(members, &mut emit);
            }
            Call::RotateClusterKey { cluster } => self.apply_scoped_rotation(Some(cluster), None, &mut emit),
            Call::RotateAgentKey { agent } => self.apply_scoped_rotation(None, Some(agent), &mut emit),
            Call::SendToAgent { agent, .. } => {
                self.apply_command(crate::modules::agents::CommandSender::Account(tx.signer), agent, &mut emit)
            }
            Call::CreatePool { commission, cap } => self.apply_create_pool(tx.signer, *commission, *cap, &mut emit),
            Call::Contribute { pool, amount } => self.apply_contribute(tx.signer, *pool, *amount, &mut emit),
            Call::Withdraw { pool, shares } => self.apply_withdraw(tx.signer, *pool, *shares, &mut emit),
            Call::BindWorker { pool, worker } => self.apply_bind(*pool, *worker, &mut emit),
            Call::CreateVault { commission } => self.apply_create_vault(tx.signer, *commission, &mut emit),
            Call::Deposit { amount } => self.apply_deposit(tx.signer, *amount, &mut emit),
            Call::WithdrawDeposit { amount } => self.apply_withdraw_deposit(tx.signer, *amount, &mut emit),
            Call::VaultContribute { vault, amount } => {
                self.apply_vault_contribute(tx.signer, *vault, *amount, &mut emit)
            }
            Call::VaultWithdraw { vault, shares } => self.apply_vault_withdraw(tx.signer, *vault, *shares, &mut emit),
            Call::Delegate { vault, pool, amount } => self.apply_delegate(*vault, *pool, *amount, &mut emit),
            Call::Undelegate { vault, pool, shares } => self.apply_undelegate(*vault, *pool, *shares, &mut emit),
            Call::StartMining { worker, stake } => self.apply_start(*worker, *stake, &mut emit),
            Call::StopMining { worker } => self.stop_mining(*worker, &mut emit),
            Call::SetGatekeeperParams { params } => {
                self.gatekeeper_params = params.clone();
                self.write(gatekeeper::PARAMS_KEY.to_vec(), encode(&self.gatekeeper_params));
                emit(Event::GatekeeperParamsChanged);
            }
            Call::RegisterWorker { info, .. } => {
                let attested = attested.expect("check verified the evidence");
                // The first gatekeeper candidate is elected at the next block.
                if info.features & crate::modules::registry::FEATURE_GATEKEEPER != 0
                    && self.gatekeepers.elected.is_empty()
                    && self.gatekeepers.next_election > self.head.height + 1
                {
                    let mut gatekeepers = self.gatekeepers.clone();
                    gatekeepers.next_election = self.head.height + 1;
                    self.set_gatekeepers(gatekeepers);
                }
                let height = self.head.height;
                let worker = match self.workers.get(&info.identity) {
                    // A renewal keeps the worker's history and message sequence.
                    Some(existing) => Worker {
                        info: info.clone(),
                        tee: attested.tee,
                        confidence: attested.confidence,
                        measurement: attested.measurement,
                        attested_at: height,
                        ..existing.clone()
                    },
                    None => Worker {
                        info: info.clone(),
                        tee: attested.tee,
                        confidence: attested.confidence,
                        measurement: attested.measurement,
                        registered_at: height,
                        attested_at: height,
                        next_sequence: 0,
                        synced_height: 0,
                        heartbeat_at: 0,
                        gateway_url: None,
                    },
                };
                emit(Event::WorkerRegistered {
                    worker: info.identity,
                    operator: info.operator,
                    tee: worker.tee,
                    confidence: worker.confidence,
                });
                self.set_worker(worker);
            }
            Call::WorkerMessage { message } => {
                let mut worker = self.workers.get(&message.message.worker).expect("checked").clone();
                worker.next_sequence += 1;
                match message.message.payload.clone() {
                    WorkerPayload::Heartbeat { synced_height } => {
                        worker.synced_height = synced_height;
                        worker.heartbeat_at = self.head.height;
                    }
                    WorkerPayload::Benchmark { score } => worker.info.benchmark_score = score,
                    WorkerPayload::Gateway { url } => worker.gateway_url = Some(url),
                    WorkerPayload::MasterKeyAnnounce { commitment, .. } => {
                        let mut epochs = self.epochs.clone();
                        let rotation = epochs.rotation.as_mut().expect("checked");
                        rotation.commitment = Some(commitment);
                        rotation.confirmed = vec![worker.info.identity];
                        if rotation.members.len() == 1 {
                            rotation.activates_at = Some(self.head.height + self.gatekeeper_params.activation_delay);
                        }
                        emit(Event::MasterKeyAnnounced { epoch: rotation.epoch, commitment });
                        self.set_epochs(epochs);
                    }
                    WorkerPayload::MasterKeyConfirm { .. } => {
                        let mut epochs = self.epochs.clone();
                        let rotation = epochs.rotation.as_mut().expect("checked");
                        rotation.confirmed.push(worker.info.identity);
                        if rotation.confirmed.len() == rotation.members.len() {
                            rotation.activates_at = Some(self.head.height + self.gatekeeper_params.activation_delay);
                        }
                        emit(Event::MasterKeyConfirmed { epoch: rotation.epoch, gatekeeper: worker.info.identity });
                        self.set_epochs(epochs);
                    }
                    payload @ (WorkerPayload::ClusterKeyPublish { .. }
                    | WorkerPayload::AgentKeyPublish { .. }
                    | WorkerPayload::ClusterKeyReceived { .. }
                    | WorkerPayload::SecretResealed { .. }
                    | WorkerPayload::AgentKeyRetire { .. }
                    | WorkerPayload::ClusterKeyRetire { .. }) => {
                        let applied = self.apply_key_message(&worker.info.identity, &payload, &mut emit);
                        debug_assert!(applied);
                    }
                    WorkerPayload::KeyHandover { to, .. } => {
                        emit(Event::KeyHandedOver { from: worker.info.identity, to });
                    }
                    WorkerPayload::MiningHeartbeat { .. } => self.apply_answer(worker.info.identity, &mut emit),
                    WorkerPayload::Usage { agent, caller, price, calls, cpu_ms, egress_bytes } => self.apply_usage(
                        worker.info.identity,
                        fees::Usage { agent, caller, price, calls, cpu_ms, egress_bytes },
                        &mut emit,
                    ),
                    WorkerPayload::AgentCommand { agent, .. } => {
                        self.apply_command(crate::modules::agents::CommandSender::Agent(agent), &agent, &mut emit);
                    }
                }
                emit(Event::WorkerMessage { worker: worker.info.identity, sequence: message.message.sequence });
                self.set_worker(worker);
            }
        }
        emit(Event::TxApplied { hash, signer: tx.signer, nonce: tx.nonce });
        Ok(hash)
    }

    /// Adds planck to an account, creating it if needed. The amount was taken
    /// from another account, so the sum of balances cannot exceed issuance.
    fn credit(&mut self, who: PublicKey, amount: Balance, emit: &mut impl FnMut(Event)) {
        let existing = self.account(&who);
        if existing.is_none() && amount == 0 {
            return;
        }
        let mut account = existing.unwrap_or_default();
        account.free = account.free.checked_add(amount).expect("balances never exceed total issuance");
        if existing.is_none() {
            emit(Event::AccountCreated { who });
        }
        self.set_account(who, account);
    }
}

fn check_code(code: &[u8]) -> Result<(), TxError> {
    if code.is_empty() || code.len() > AGENT_CODE_BYTES_MAX {
        return Err(TxError::Agent(format!("agent code is 1 to {AGENT_CODE_BYTES_MAX} bytes, this is {}", code.len())));
    }
    if std::str::from_utf8(code).is_err() {
        return Err(TxError::Agent("agent code is not UTF-8 text".into()));
    }
    Ok(())
}

fn hex_key(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}
