//! The state: typed maps plus their canonical leaves, the state root, and the
//! rules that apply one transaction.
//!
//! Every write goes through [`State::write`], which updates the leaf hash used
//! by [`State::root`] and records the change for persistence, so the typed maps
//! and the committed leaves cannot drift apart.

use crate::error::TxError;
use crate::events::{Event, EventRecord};
use crate::merkle;
use crate::modules::balances::{ACCOUNT_PREFIX, Account, ISSUANCE_KEY, account_key};
use crate::modules::registry::{
    self, AttestationPolicy, POLICY_KEY, WORKER_PREFIX, WORKERS_MAX, Worker, WorkerPayload, worker_key,
};
use crate::modules::system::{ChainParams, HEAD_KEY, Head, PARAMS_KEY, VALIDATORS_KEY};
use crate::tx::{Call, SignedTransaction};
use imbl::OrdMap;
use phalanx_primitives::{Balance, Hash, PublicKey, decode_bounded, encode};

/// Leaf key of the chain id (the genesis hash).
const CHAIN_ID_KEY: &[u8] = &[0x00, 0x03];

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
    pub(crate) head: Head,
    pub(crate) issuance: Balance,
    pub(crate) accounts: OrdMap<PublicKey, Account>,
    pub(crate) attestation: AttestationPolicy,
    pub(crate) workers: OrdMap<PublicKey, Worker>,
    leaves: OrdMap<Vec<u8>, Hash>,
    changes: OrdMap<Vec<u8>, Vec<u8>>,
}

impl State {
    pub(crate) fn empty(
        chain_id: Hash,
        params: ChainParams,
        validators: Vec<PublicKey>,
        head: Head,
        attestation: AttestationPolicy,
    ) -> Self {
        let mut state = State {
            chain_id,
            params,
            validators,
            head,
            issuance: 0,
            accounts: OrdMap::new(),
            attestation,
            workers: OrdMap::new(),
            leaves: OrdMap::new(),
            changes: OrdMap::new(),
        };
        state.write(CHAIN_ID_KEY.to_vec(), encode(&chain_id));
        state.write(PARAMS_KEY.to_vec(), encode(&state.params));
        state.write(VALIDATORS_KEY.to_vec(), encode(&state.validators));
        state.write(HEAD_KEY.to_vec(), encode(&head));
        state.write(ISSUANCE_KEY.to_vec(), encode(&0u128));
        state.write(POLICY_KEY.to_vec(), encode(&state.attestation));
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
        let mut accounts = OrdMap::new();
        let mut workers = OrdMap::new();
        let mut leaves = OrdMap::new();
        for (key, value) in entries {
            match key.as_slice() {
                CHAIN_ID_KEY => chain_id = Some(decode(&key, &value)?),
                PARAMS_KEY => params = Some(decode(&key, &value)?),
                VALIDATORS_KEY => validators = Some(decode(&key, &value)?),
                HEAD_KEY => head = Some(decode(&key, &value)?),
                ISSUANCE_KEY => issuance = Some(decode(&key, &value)?),
                POLICY_KEY => attestation = Some(decode(&key, &value)?),
                k if k.len() == ACCOUNT_PREFIX.len() + 32 && k.starts_with(ACCOUNT_PREFIX) => {
                    let who = PublicKey(k[ACCOUNT_PREFIX.len()..].try_into().expect("length checked"));
                    accounts.insert(who, decode(&key, &value)?);
                }
                k if k.len() == WORKER_PREFIX.len() + 32 && k.starts_with(WORKER_PREFIX) => {
                    let who = PublicKey(k[WORKER_PREFIX.len()..].try_into().expect("length checked"));
                    workers.insert(who, decode(&key, &value)?);
                }
                _ => {
                    return Err(LoadError::Corrupt { key: hex_key(&key), reason: "unknown key".into() });
                }
            }
            leaves.insert(key.clone(), merkle::leaf_hash(&key, &value));
        }
        Ok(State {
            chain_id: chain_id.ok_or(LoadError::Missing("chain id"))?,
            params: params.ok_or(LoadError::Missing("chain parameters"))?,
            validators: validators.ok_or(LoadError::Missing("validator set"))?,
            head: head.ok_or(LoadError::Missing("head"))?,
            issuance: issuance.ok_or(LoadError::Missing("total issuance"))?,
            accounts,
            attestation: attestation.ok_or(LoadError::Missing("attestation policy"))?,
            workers,
            leaves,
            changes: OrdMap::new(),
        })
    }

    /// Writes one leaf: the only way state reaches the root and the disk.
    pub(crate) fn write(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.leaves.insert(key.clone(), merkle::leaf_hash(&key, &value));
        self.changes.insert(key, value);
    }

    /// The state root: Merkle root over all leaves in key order.
    pub fn root(&self) -> Hash {
        merkle::root(self.leaves.values().copied())
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
        self.check(tx, encoded_len, true, Pending::default()).map(|_| ())
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
        self.check(tx, encoded_len, false, pending).map(|checked| checked.spend)
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
            Call::Transfer { amount, .. } => *amount,
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
        if let WorkerPayload::Heartbeat { synced_height } = message.payload
            && synced_height > self.head.height
        {
            return Err(TxError::HeartbeatAhead { claimed: synced_height, height: self.head.height });
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
            Call::SetAttestationPolicy { policy } => {
                self.attestation = policy.clone();
                self.write(POLICY_KEY.to_vec(), encode(&self.attestation));
                emit(Event::AttestationPolicyChanged);
            }
            Call::RegisterWorker { info, .. } => {
                let attested = attested.expect("check verified the evidence");
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
                match message.message.payload {
                    WorkerPayload::Heartbeat { synced_height } => {
                        worker.synced_height = synced_height;
                        worker.heartbeat_at = self.head.height;
                    }
                    WorkerPayload::Benchmark { score } => worker.info.benchmark_score = score,
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

fn hex_key(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}
