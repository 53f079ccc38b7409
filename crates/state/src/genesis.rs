//! Genesis: the chain's first state, read from a JSON file.
//!
//! The chain id is the SHA-256 of the genesis configuration's canonical
//! encoding, so two chains with different genesis files never accept each
//! other's transactions.

use crate::block::Block;
use crate::modules::balances::TOTAL_SUPPLY;
use crate::modules::gatekeeper::GatekeeperParams;
use crate::modules::registry::AttestationPolicy;
use crate::modules::system::{ChainParams, ConsensusParams, EPOCH_BLOCKS_MAX, EPOCH_BLOCKS_MIN, FeeSchedule};
use crate::state::State;
use borsh::BorshSerialize;
use phalanx_primitives::mnemonic::{DEV_ACCOUNTS, dev_keypair};
use phalanx_primitives::{Balance, Hash, PLANCK_PER_PHA, PublicKey, encode, sha256};
use std::collections::BTreeSet;

/// Most validators a genesis may name.
pub const VALIDATORS_MAX: usize = 128;
/// Most accounts a genesis may fund.
pub const GENESIS_ACCOUNTS_MAX: usize = 100_000;
/// Longest chain name, in bytes.
pub const CHAIN_NAME_BYTES_MAX: usize = 64;

/// The genesis configuration.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_name: String,
    /// Timestamp of the genesis block, ms since the Unix epoch.
    pub timestamp_ms: u64,
    pub params: ChainParams,
    /// Consensus public keys (ed25519) of the validators.
    pub validators: Vec<PublicKey>,
    /// Initial balances in planck; they must add up to exactly [`TOTAL_SUPPLY`].
    pub balances: Vec<(PublicKey, Balance)>,
    /// How worker evidence is judged; absent means the fail-closed default
    /// (no simulated evidence).
    #[serde(default)]
    pub attestation: AttestationPolicy,
    /// Gatekeeper elections and key epochs; absent means the defaults.
    #[serde(default)]
    pub gatekeeper: GatekeeperParams,
    /// Mining rewards, challenges, cooldown and grace; absent means the defaults.
    #[serde(default)]
    pub mining: crate::modules::computation::MiningParams,
    /// Network fees for agent use; absent means the defaults.
    #[serde(default)]
    pub fees: crate::modules::fees::FeeParams,
    /// Consensus epochs; absent means the defaults.
    #[serde(default)]
    pub consensus: ConsensusParams,
}

/// Why a genesis configuration is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenesisError {
    #[error("genesis balances add up to {got} planck; they must be exactly {expected} (1,000,000,000 PHA)")]
    Supply { expected: Balance, got: Balance },
    #[error("account {0} appears twice in genesis balances")]
    DuplicateAccount(PublicKey),
    #[error("genesis needs between 1 and {VALIDATORS_MAX} distinct validators")]
    Validators,
    #[error("genesis funds more than {GENESIS_ACCOUNTS_MAX} accounts")]
    TooManyAccounts,
    #[error("chain name must be 1 to {CHAIN_NAME_BYTES_MAX} bytes")]
    ChainName,
    #[error("consensus epochs must be {EPOCH_BLOCKS_MIN} to {EPOCH_BLOCKS_MAX} blocks")]
    EpochBlocks,
    #[error(
        "fees.deposit_unbonding_ms must be at least {} (a call's wall time and its report's way to the chain)",
        crate::modules::fees::DEPOSIT_UNBONDING_MS_MIN
    )]
    DepositUnbonding,
    #[error("validator {0} is not a valid ed25519 public key")]
    ValidatorKey(PublicKey),
    #[error("the genesis state root: {0}")]
    Root(String),
}

/// The treasury of dev networks: an address no one holds a key for.
pub fn dev_treasury() -> PublicKey {
    PublicKey(sha256(b"phalanx/treasury/v1").0)
}

impl Genesis {
    /// A dev network's genesis: alice (also governance) holds 100,000,000 PHA,
    /// bob, charlie and dave 10,000,000 each, the treasury the rest; simulated
    /// worker evidence is accepted.
    pub fn dev(validators: Vec<PublicKey>) -> Genesis {
        let mut balances = Vec::new();
        let mut allocated = 0;
        for (index, name) in DEV_ACCOUNTS.iter().enumerate() {
            let amount = if index == 0 { 100_000_000 } else { 10_000_000 } * PLANCK_PER_PHA;
            balances.push((dev_keypair(name).expect("dev account").public(), amount));
            allocated += amount;
        }
        balances.push((dev_treasury(), TOTAL_SUPPLY - allocated));
        Genesis {
            chain_name: "phalanx-dev".into(),
            timestamp_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z, fixed so the chain id is too.
            params: ChainParams {
                // 0.001 PHA per transaction plus 0.000001 PHA per byte.
                fees: FeeSchedule { base_fee: PLANCK_PER_PHA / 1000, byte_fee: PLANCK_PER_PHA / 1_000_000 },
                treasury: dev_treasury(),
                governance: vec![dev_keypair("alice").expect("dev account").public()],
            },
            validators,
            balances,
            // A dev network has no TEE: simulated workers are welcome.
            attestation: AttestationPolicy { allow_simulated: true, ..AttestationPolicy::default() },
            // One gatekeeper, elections every 20 blocks (10 s when idle).
            gatekeeper: GatekeeperParams { era_blocks: 20, gatekeepers_max: 1, activation_delay: 2 },
            // Challenges every ~10 blocks, short cooldown and grace, so a dev
            // network shows a whole mining cycle in a minute or two.
            mining: crate::modules::computation::MiningParams {
                challenge_interval: 10,
                challenge_window: 10,
                cooldown_blocks: 20,
                grace_blocks: 40,
                ..Default::default()
            },
            fees: crate::modules::fees::FeeParams::default(),
            consensus: ConsensusParams::default(),
        }
    }

    /// The chain id: SHA-256 of the canonical encoding of this configuration.
    pub fn chain_id(&self) -> Hash {
        sha256(&encode(self))
    }

    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.chain_name.is_empty() || self.chain_name.len() > CHAIN_NAME_BYTES_MAX {
            return Err(GenesisError::ChainName);
        }
        let distinct: BTreeSet<_> = self.validators.iter().collect();
        if self.validators.is_empty()
            || self.validators.len() > VALIDATORS_MAX
            || distinct.len() != self.validators.len()
        {
            return Err(GenesisError::Validators);
        }
        if let Some(bad) = self.validators.iter().find(|key| !key.is_valid_ed25519()) {
            return Err(GenesisError::ValidatorKey(*bad));
        }
        if !(EPOCH_BLOCKS_MIN..=EPOCH_BLOCKS_MAX).contains(&self.consensus.epoch_blocks) {
            return Err(GenesisError::EpochBlocks);
        }
        if self.fees.deposit_unbonding_ms < crate::modules::fees::DEPOSIT_UNBONDING_MS_MIN {
            return Err(GenesisError::DepositUnbonding);
        }
        if self.balances.len() > GENESIS_ACCOUNTS_MAX {
            return Err(GenesisError::TooManyAccounts);
        }
        let mut seen = BTreeSet::new();
        let mut total: Balance = 0;
        for (who, amount) in &self.balances {
            if !seen.insert(who) {
                return Err(GenesisError::DuplicateAccount(*who));
            }
            total = total.saturating_add(*amount);
        }
        if total != TOTAL_SUPPLY {
            return Err(GenesisError::Supply { expected: TOTAL_SUPPLY, got: total });
        }
        Ok(())
    }

    /// The genesis state and block.
    pub fn build(&self) -> Result<(State, Block), GenesisError> {
        self.validate()?;
        let mut state = State::empty(self.chain_id(), self);
        for (who, amount) in &self.balances {
            state.set_account(*who, crate::Account { nonce: 0, free: *amount });
        }
        state.set_issuance(TOTAL_SUPPLY);
        let root =
            phalanx_statedb::root_in_memory(0, state.store_writes()).map_err(|e| GenesisError::Root(e.to_string()))?;
        let block = Block::genesis(&state, root);
        Ok((state, block))
    }
}
