//! The phalanx state machine.
//!
//! Blocks in, state out: [`State::execute_block`] applies a block's signed
//! transactions to the state and checks the roots in its header;
//! [`builder::build_block`] is the proposer's side of the same function. The
//! crate does no I/O and reads no clock or randomness, so every validator and
//! every worker that replays the same blocks reaches the same state.
//!
//! State is a set of typed maps (persistent, so a clone per pending block is
//! O(1)) that also exists as canonical key/value *leaves*. The leaves a block
//! wrote ([`State::block_writes`]) are committed by the authenticated store
//! (`phalanx-statedb`), whose root the header carries; [`leaves`] names the
//! leaves a light client asks proofs of, and how their bytes decode.

pub mod block;
pub mod builder;
pub mod error;
pub mod events;
pub mod genesis;
pub mod leaves;
pub mod merkle;
pub mod modules;
pub mod state;
pub mod tx;

pub use block::{Block, Header};
pub use error::{BlockError, TxError};
pub use events::{Event, EventRecord};
pub use genesis::{Genesis, GenesisError};
pub use modules::agents::{Access, Agent, AgentChange, Language, Secret, agent_id};
pub use modules::balances::{Account, TOTAL_SUPPLY, account_key};
pub use modules::clusters::{Cluster, ClusterEpochKey, cluster_id};
pub use modules::gatekeeper::{GatekeeperParams, Gatekeepers, KeyEpochs, MasterEpoch, Rotation};
pub use modules::registry::{
    AttestationPolicy, Evidence, RegistrationInfo, SignedWorkerMessage, TeeKind, Worker, WorkerMessage, WorkerPayload,
};
pub use modules::system::{
    ChainParams, ConsensusParams, EPOCH_BLOCKS_MAX, EPOCH_BLOCKS_MIN, FeeSchedule, Head, VALIDATOR_ADDRESS_BYTES_MAX,
    ValidatorChanges, ValidatorEntry,
};
pub use state::{BLOCK_EVENT_INDEX, Pending, State, StateChange};
pub use tx::{Call, SignedTransaction, Transaction};
