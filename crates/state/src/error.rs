//! Why a transaction or a block was refused. Messages are written for the
//! person who sent the transaction.

use phalanx_primitives::{Balance, Hash};

/// Why a transaction cannot be applied. A refused transaction changes nothing.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TxError {
    #[error("transaction is for chain {got}, this chain is {expected}")]
    WrongChain { expected: Hash, got: Hash },
    #[error("bad signature: {0}")]
    BadSignature(#[from] phalanx_primitives::SignatureError),
    #[error("signer account does not exist (it has never received PHA)")]
    UnknownAccount,
    #[error("nonce {got} already used: the account's next nonce is {expected}")]
    StaleNonce { expected: u64, got: u64 },
    #[error("nonce {got} is ahead of the account's next nonce {expected}")]
    FutureNonce { expected: u64, got: u64 },
    #[error("fee {offered} planck is below the minimum of {minimum} planck for this transaction")]
    FeeTooLow { offered: Balance, minimum: Balance },
    #[error("insufficient balance: needs {needed} planck (amount plus fee), has {available} planck")]
    InsufficientBalance { needed: Balance, available: Balance },
    #[error("only a governance account may make this call")]
    NotGovernance,
    #[error("arithmetic overflow in {0}")]
    Overflow(&'static str),
    #[error("transaction is {size} bytes; this call allows at most {max}")]
    TooLarge { size: usize, max: usize },
    #[error("attestation refused: {0}")]
    Attestation(String),
    #[error("the registry is full ({0} workers)")]
    RegistryFull(usize),
    #[error("worker {0} is not registered")]
    UnknownWorker(phalanx_primitives::PublicKey),
    #[error("worker message is for chain {got}, this chain is {expected}")]
    MessageWrongChain { expected: Hash, got: Hash },
    #[error("worker message sequence {got} already used: the worker's next sequence is {expected}")]
    StaleSequence { expected: u64, got: u64 },
    #[error("worker message sequence {got} skips ahead of the worker's next sequence {expected}")]
    FutureSequence { expected: u64, got: u64 },
    #[error("worker message signature: {0}")]
    BadMessageSignature(phalanx_primitives::SignatureError),
    #[error("heartbeat claims height {claimed}, beyond the chain's height {height}")]
    HeartbeatAhead { claimed: u64, height: u64 },
    #[error("worker message: {0}")]
    WorkerMessage(String),
    #[error("gatekeeping: {0}")]
    Gatekeeping(String),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("validator set: {0}")]
    Validators(String),
    #[error("agent: {0}")]
    Agent(String),
    #[error("staking: {0}")]
    Staking(String),
    #[error("mining: {0}")]
    Mining(String),
    #[error("fees: {0}")]
    Fees(String),
    #[error("only the agent's owner or governance may manage agent {0}")]
    NotAgentOwner(Hash),
}

/// Why a block is invalid. An invalid block leaves the state unchanged.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    #[error("block height {got} does not follow the state's height {expected}")]
    Height { expected: u64, got: u64 },
    #[error("block timestamp {got_ms} ms is not after its parent's {parent_ms} ms")]
    Timestamp { parent_ms: u64, got_ms: u64 },
    #[error("block has {count} transactions, more than the limit of {max}")]
    TooManyTransactions { count: usize, max: usize },
    #[error("transaction {index} is invalid: {error}")]
    InvalidTransaction { index: usize, error: TxError },
    #[error("header {which} root {claimed} does not match the computed {computed}")]
    RootMismatch { which: &'static str, claimed: Hash, computed: Hash },
}
