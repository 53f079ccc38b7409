//! The mempool: signed transactions waiting for a finalized block.
//!
//! Admission checks a transaction against the finalized state *plus* the
//! signer's transactions already waiting, so a signer can queue several
//! transactions with consecutive nonces and never overdraw. Transactions stay
//! until a finalized block includes them (a proposed block may still be
//! dropped by consensus), or until they can no longer apply.

use phalanx_primitives::{Balance, Hash, PublicKey};
use phalanx_state::builder::Candidate;
use phalanx_state::{Block, Pending, SignedTransaction, State, TxError};
use std::collections::{BTreeMap, HashMap};

/// Mempool limits.
#[derive(Clone, Debug)]
pub struct MempoolConfig {
    /// Most transactions held at once.
    pub txs_max: usize,
    /// Most transactions held for one signer.
    pub txs_per_sender_max: usize,
    /// Most bytes of encoded transactions held at once (agent code makes
    /// some transactions a megabyte).
    pub bytes_max: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig { txs_max: 100_000, txs_per_sender_max: 4_096, bytes_max: 256 * 1024 * 1024 }
    }
}

/// Why a transaction was not admitted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmitError {
    #[error("transaction {0} is already waiting")]
    AlreadyKnown(Hash),
    #[error("mempool is full ({0} transactions); try again shortly")]
    Full(usize),
    #[error("signer already has {0} transactions waiting")]
    SenderFull(usize),
    #[error("mempool holds its limit of {0} bytes; try again shortly")]
    BytesFull(usize),
    #[error(transparent)]
    Invalid(#[from] TxError),
}

#[derive(Debug)]
struct Entry {
    tx: SignedTransaction,
    hash: Hash,
    encoded_len: usize,
    spend: Balance,
}

/// Transactions in arrival order, with per-signer bookkeeping.
#[derive(Debug)]
pub struct Mempool {
    config: MempoolConfig,
    next_sequence: u64,
    by_arrival: BTreeMap<u64, Entry>,
    by_hash: HashMap<Hash, u64>,
    by_sender: HashMap<PublicKey, Pending>,
    bytes: usize,
}

impl Mempool {
    pub fn new(config: MempoolConfig) -> Self {
        assert!(config.txs_max > 0 && config.txs_per_sender_max > 0, "a mempool of capacity zero is a bug");
        Mempool {
            config,
            next_sequence: 0,
            by_arrival: BTreeMap::new(),
            by_hash: HashMap::new(),
            by_sender: HashMap::new(),
            bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_arrival.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_arrival.is_empty()
    }

    /// How many transactions `signer` has waiting.
    pub fn pending_of(&self, signer: &PublicKey) -> u64 {
        self.by_sender.get(signer).map_or(0, |p| p.count)
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Admits a transaction whose signature the caller has verified.
    pub fn admit(&mut self, tx: SignedTransaction, encoded_len: usize, finalized: &State) -> Result<Hash, AdmitError> {
        let hash = tx.hash();
        if self.by_hash.contains_key(&hash) {
            return Err(AdmitError::AlreadyKnown(hash));
        }
        if self.by_arrival.len() >= self.config.txs_max {
            return Err(AdmitError::Full(self.config.txs_max));
        }
        if self.bytes + encoded_len > self.config.bytes_max {
            return Err(AdmitError::BytesFull(self.config.bytes_max));
        }
        let pending = self.by_sender.get(&tx.tx.signer).copied().unwrap_or_default();
        if pending.count as usize >= self.config.txs_per_sender_max {
            return Err(AdmitError::SenderFull(self.config.txs_per_sender_max));
        }
        let spend = finalized.check_pending_tx(&tx, encoded_len, pending)?;
        let sender = self.by_sender.entry(tx.tx.signer).or_default();
        sender.count += 1;
        sender.spend += spend;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.by_hash.insert(hash, sequence);
        self.bytes += encoded_len;
        self.by_arrival.insert(sequence, Entry { tx, hash, encoded_len, spend });
        Ok(hash)
    }

    /// Up to `max` waiting transactions in arrival order (so each signer's
    /// transactions come in nonce order).
    pub fn candidates(&self, max: usize) -> Vec<Candidate> {
        self.by_arrival
            .values()
            .take(max)
            .map(|e| Candidate { tx: e.tx.clone(), encoded_len: e.encoded_len, signature_verified: true })
            .collect()
    }

    /// Removes transactions by hash (included in a finalized block, or found
    /// invalid by the block builder).
    pub fn remove(&mut self, hashes: impl IntoIterator<Item = Hash>) {
        for hash in hashes {
            let Some(sequence) = self.by_hash.remove(&hash) else {
                continue;
            };
            let entry = self.by_arrival.remove(&sequence).expect("indexes agree");
            self.bytes -= entry.encoded_len;
            let sender = self.by_sender.get_mut(&entry.tx.tx.signer).expect("indexes agree");
            sender.count -= 1;
            sender.spend -= entry.spend;
            if sender.count == 0 {
                self.by_sender.remove(&entry.tx.tx.signer);
            }
        }
    }

    /// Forgets what `block` finalized, then drops transactions that can no
    /// longer apply because their nonce is used.
    pub fn on_finalized(&mut self, block: &Block, finalized: &State) {
        self.remove(block.txs.iter().map(|tx| tx.hash()));
        let stale: Vec<Hash> = self
            .by_arrival
            .values()
            .filter(|e| finalized.account(&e.tx.tx.signer).is_some_and(|a| e.tx.tx.nonce < a.nonce))
            .map(|e| e.hash)
            .collect();
        self.remove(stale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phalanx_primitives::mnemonic::dev_keypair;
    use phalanx_primitives::{Keypair, PLANCK_PER_PHA};
    use phalanx_state::{Call, Genesis, Transaction};

    fn tx(state: &State, from: &str, nonce: u64, amount: Balance) -> (SignedTransaction, usize) {
        let key = dev_keypair(from).unwrap();
        let to = dev_keypair("bob").unwrap().public();
        let signed = Transaction {
            chain_id: state.chain_id(),
            signer: key.public(),
            nonce,
            fee: PLANCK_PER_PHA / 100,
            call: Call::Transfer { to, amount },
        }
        .sign(&key);
        let len = signed.encode().len();
        (signed, len)
    }

    #[test]
    fn queues_consecutive_nonces_and_refuses_overdraft_and_gaps() {
        let (state, _) = Genesis::dev(vec![Keypair::from_seed(&[1; 32]).public()]).build().unwrap();
        let mut pool = Mempool::new(MempoolConfig { txs_max: 10, txs_per_sender_max: 3, bytes_max: 1 << 20 });
        let charlie_balance = state.account(&dev_keypair("charlie").unwrap().public()).unwrap().free;
        let (a, len) = tx(&state, "charlie", 0, charlie_balance / 2);
        pool.admit(a.clone(), len, &state).unwrap();
        assert_eq!(
            pool.admit(a, len, &state).unwrap_err(),
            AdmitError::AlreadyKnown(tx(&state, "charlie", 0, charlie_balance / 2).0.hash())
        );
        let (gap, len) = tx(&state, "charlie", 2, 1);
        assert!(matches!(
            pool.admit(gap, len, &state),
            Err(AdmitError::Invalid(TxError::FutureNonce { expected: 1, got: 2 }))
        ));
        // Each half fits the balance alone, not together with the first.
        let (overdraft, len) = tx(&state, "charlie", 1, charlie_balance / 2);
        assert!(matches!(
            pool.admit(overdraft, len, &state),
            Err(AdmitError::Invalid(TxError::InsufficientBalance { .. }))
        ));
        for nonce in 1..3 {
            let (next, len) = tx(&state, "charlie", nonce, 1);
            pool.admit(next, len, &state).unwrap();
        }
        let (fourth, len) = tx(&state, "charlie", 3, 1);
        assert_eq!(pool.admit(fourth, len, &state).unwrap_err(), AdmitError::SenderFull(3));
        let candidates = pool.candidates(10);
        assert_eq!(candidates.iter().map(|c| c.tx.tx.nonce).collect::<Vec<_>>(), vec![0, 1, 2]);
        pool.remove([candidates[0].tx.hash()]);
        assert_eq!(pool.len(), 2);
    }
}
