//! Transactions: what an account asks the chain to do, signed by that account.
//!
//! A transaction names the chain it is for (the genesis hash, so it cannot be
//! replayed on another chain), the signer, the signer's next nonce (so it
//! cannot be replayed on this chain), the fee the signer pays and the call.
//! The signature covers the canonical encoding of all of that under
//! [`TX_SIGNING_LABEL`].

use crate::modules::agents::AgentChange;
use crate::modules::gatekeeper::GatekeeperParams;
use crate::modules::registry::{AttestationPolicy, Evidence, RegistrationInfo, SignedWorkerMessage};
use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{Balance, DecodeError, Hash, Keypair, PublicKey, Signature, decode_bounded, encode, sha256};

/// Domain label of transaction signatures.
pub const TX_SIGNING_LABEL: &[u8] = b"phalanx/tx/v1";

/// Largest encoded signed transaction accepted anywhere, in bytes: an agent
/// deployment or upgrade with its code. Worker registrations may be
/// [`REGISTRATION_BYTES_MAX`]; every other call is held to [`CALL_BYTES_MAX`]
/// (see [`Call::bytes_max`]).
pub const TX_BYTES_MAX: usize = crate::modules::agents::AGENT_CODE_BYTES_MAX + 16 * 1024;

/// Largest worker registration (quote and collateral included).
pub const REGISTRATION_BYTES_MAX: usize = 96 * 1024;

/// Largest encoded signed transaction for calls other than worker registration.
pub const CALL_BYTES_MAX: usize = 16 * 1024;

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// Moves `amount` planck from the signer to `to`, creating `to` if needed.
    Transfer { to: PublicKey, amount: Balance },
    /// Governance only: replaces the fee schedule.
    SetFeeSchedule { base_fee: Balance, byte_fee: Balance },
    /// Registers a worker (or renews its registration) with evidence from its
    /// TEE. Anyone may submit it: the evidence, not the signer, is what counts.
    RegisterWorker { info: RegistrationInfo, evidence: Evidence },
    /// Governance only: replaces the attestation policy. Registered workers
    /// keep their registration until they renew it.
    SetAttestationPolicy { policy: AttestationPolicy },
    /// Delivers a message signed by a registered worker.
    WorkerMessage { message: SignedWorkerMessage },
    /// Governance only: always elect (`Some(true)`), never elect
    /// (`Some(false)`) or drop the override for (`None`) a worker as
    /// gatekeeper; the set is re-elected at the next block.
    SetGatekeeper { worker: PublicKey, member: Option<bool> },
    /// Governance only: starts a master-key rotation with the elected set.
    RotateMasterKey,
    /// Governance only: election period, set size, activation delay.
    SetGatekeeperParams { params: GatekeeperParams },
    /// Governance only: a new cluster (its id derives from this transaction's hash).
    CreateCluster { name: String },
    /// Governance only: adds a worker to a cluster or removes it.
    SetClusterWorker { cluster: Hash, worker: PublicKey, member: bool },
    /// Deploys an agent owned by the signer (its id derives from this
    /// transaction's hash). Code is stored once per content hash.
    DeployAgent {
        name: String,
        cluster: Hash,
        language: crate::modules::agents::Language,
        #[serde(serialize_with = "crate::modules::agents::code_summary")]
        code: Vec<u8>,
    },
    /// The owner (or governance) changes an agent.
    ManageAgent { agent: Hash, change: AgentChange },
    /// Governance only: a new key for one cluster (and so for its agents),
    /// from the current master key; stored data moves to it in the background.
    RotateClusterKey { cluster: Hash },
    /// Governance or the agent's owner: a new key for one agent.
    RotateAgentKey { agent: Hash },
    /// Orders a command for the agent's `command(message, env, ctx)`: every
    /// worker of its cluster applies it, in chain order, exactly once.
    SendToAgent { agent: Hash, payload: crate::modules::agents::CommandPayload },
    /// Creates a stake pool owned by the signer, taking `commission` parts
    /// per million of its rewards, holding at most `cap` planck (if set).
    CreatePool { commission: u32, cap: Option<Balance> },
    /// Puts `amount` planck into pool `pool` for shares at its price.
    Contribute { pool: u64, amount: Balance },
    /// Sells `shares` of pool `pool` back: paid now from free stake, the rest queued.
    Withdraw { pool: u64, shares: Balance },
    /// Moves `amount` planck of the signer's free balance into their deposit for paid agent calls.
    Deposit { amount: Balance },
    /// Moves `amount` planck of the signer's deposit back to their free balance.
    WithdrawDeposit { amount: Balance },
    /// Creates a vault owned by the signer, taking `commission` ppm of its gains.
    CreateVault { commission: u32 },
    /// Puts `amount` planck into a vault for shares at its price.
    VaultContribute { vault: u64, amount: Balance },
    /// Sells `shares` of a vault back: paid from its undelegated planck, the rest queued.
    VaultWithdraw { vault: u64, shares: Balance },
    /// The vault's owner puts `amount` of its undelegated planck into a pool.
    Delegate { vault: u64, pool: u64, amount: Balance },
    /// The vault's owner takes `shares` of the vault's stake out of a pool.
    Undelegate { vault: u64, pool: u64, shares: Balance },
    /// The pool's owner binds a registered worker they operate to the pool.
    BindWorker { pool: u64, worker: PublicKey },
    /// The pool's owner starts a bound worker mining with `stake` planck of the pool's free stake.
    StartMining { worker: PublicKey, stake: Balance },
    /// The pool's owner stops a worker; its stake returns after the cooldown.
    StopMining { worker: PublicKey },
    /// Governance only: the validator set that takes over after the last
    /// block of the current consensus epoch (replacing any set scheduled
    /// before), with each validator's p2p address.
    SetValidators { validators: Vec<crate::modules::system::ValidatorEntry> },
}

impl Call {
    /// Largest encoded signed transaction carrying this call.
    pub fn bytes_max(&self) -> usize {
        match self {
            Call::RegisterWorker { .. } => REGISTRATION_BYTES_MAX,
            Call::DeployAgent { .. } | Call::ManageAgent { change: AgentChange::Upgrade { .. }, .. } => TX_BYTES_MAX,
            _ => CALL_BYTES_MAX,
        }
    }
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Transaction {
    /// Genesis hash of the chain this transaction is for.
    pub chain_id: Hash,
    pub signer: PublicKey,
    /// Must equal the signer's account nonce when the transaction is applied.
    pub nonce: u64,
    /// Planck paid to the treasury; at least the chain's minimum fee.
    pub fee: Balance,
    pub call: Call,
}

/// A transaction with its signer's signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct SignedTransaction {
    pub tx: Transaction,
    pub signature: Signature,
}

impl Transaction {
    /// Signs the transaction. `keypair` must belong to `self.signer`.
    pub fn sign(self, keypair: &Keypair) -> SignedTransaction {
        assert_eq!(keypair.public(), self.signer, "a transaction is signed by its signer");
        let signature = keypair.sign(TX_SIGNING_LABEL, &encode(&self));
        SignedTransaction { tx: self, signature }
    }
}

impl Transaction {
    /// Sets the fee to the minimum `fees` asks for this transaction's length
    /// and signs it. The length does not depend on the fee (fixed-width
    /// integers), so one pass is exact. Fails only if the fee overflows.
    pub fn sign_paying_minimum(
        mut self,
        fees: &crate::FeeSchedule,
        keypair: &Keypair,
    ) -> Result<SignedTransaction, crate::TxError> {
        let signed_len = borsh::object_length(&self).expect("length of an in-memory value") + 64;
        self.fee = fees.minimum(signed_len).ok_or(crate::TxError::Overflow("fee"))?;
        Ok(self.sign(keypair))
    }
}

impl SignedTransaction {
    /// Decodes an untrusted transaction of at most [`TX_BYTES_MAX`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_bounded(bytes, TX_BYTES_MAX)
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// The transaction hash: SHA-256 of the encoded signed transaction.
    pub fn hash(&self) -> Hash {
        sha256(&self.encode())
    }

    /// Checks the signature (strict ed25519, under [`TX_SIGNING_LABEL`]).
    pub fn verify_signature(&self) -> Result<(), phalanx_primitives::SignatureError> {
        self.tx.signer.verify(TX_SIGNING_LABEL, &encode(&self.tx), &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SignedTransaction {
        let alice = Keypair::from_seed(&[1; 32]);
        Transaction {
            chain_id: Hash([9; 32]),
            signer: alice.public(),
            nonce: 3,
            fee: 10,
            call: Call::Transfer { to: Keypair::from_seed(&[2; 32]).public(), amount: 5 },
        }
        .sign(&alice)
    }

    #[test]
    fn roundtrip_and_signature() {
        let tx = sample();
        let bytes = tx.encode();
        assert_eq!(SignedTransaction::decode(&bytes).unwrap(), tx);
        assert!(tx.verify_signature().is_ok());
        let mut changed = tx.clone();
        changed.tx.nonce += 1;
        assert!(changed.verify_signature().is_err());
    }

    #[test]
    fn paying_the_minimum_fee_is_exact() {
        let alice = Keypair::from_seed(&[1; 32]);
        let fees = crate::FeeSchedule { base_fee: 7, byte_fee: 3 };
        let signed = sample().tx.sign_paying_minimum(&fees, &alice).unwrap();
        assert_eq!(signed.tx.fee, fees.minimum(signed.encode().len()).unwrap());
        assert!(signed.verify_signature().is_ok());
    }

    #[test]
    fn oversized_rejected_before_parsing() {
        let bytes = vec![0u8; TX_BYTES_MAX + 1];
        assert!(matches!(SignedTransaction::decode(&bytes), Err(DecodeError::TooLarge { .. })));
    }

    proptest::proptest! {
        /// Decoding arbitrary bytes never panics, and whatever decodes
        /// re-encodes to exactly the same bytes (one encoding per value).
        #[test]
        fn decode_is_total_and_canonical(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(tx) = SignedTransaction::decode(&bytes) {
                proptest::prop_assert_eq!(tx.encode(), bytes);
            }
        }

        /// Flipping any bit of a valid transaction either breaks decoding or the signature.
        #[test]
        fn any_bit_flip_is_caught(position in 0usize..2000, bit in 0u8..8) {
            let bytes = sample().encode();
            let mut flipped = bytes.clone();
            let index = position % flipped.len();
            flipped[index] ^= 1 << bit;
            if let Ok(tx) = SignedTransaction::decode(&flipped) {
                proptest::prop_assert!(tx.verify_signature().is_err());
            }
        }
    }
}
