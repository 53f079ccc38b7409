//! Validator set changes through governance, and consensus epochs.
//!
//! Consensus runs in epochs of a fixed number of blocks (genesis
//! `consensus.epoch_blocks`): epoch `e` holds heights `e × L ..= (e+1) × L − 1`
//! (the genesis block is in epoch 0). Every block of an epoch is certified by
//! one validator set. `SetValidators` (governance only) schedules a set; it
//! takes over at the end of the last block of the epoch the transaction is
//! in, so the state after any block `h` holds, in [`State::validators`], the
//! set that certifies block `h + 1`. That is what a verifier replaying the
//! chain checks a certificate against.

use super::State;
use crate::error::TxError;
use crate::events::{Event, EventRecord};
use crate::genesis::VALIDATORS_MAX;
use crate::modules::system::{
    ConsensusParams, VALIDATOR_ADDRESS_BYTES_MAX, VALIDATOR_CHANGES_KEY, VALIDATORS_KEY, ValidatorChanges,
    ValidatorEntry,
};
use crate::state::BLOCK_EVENT_INDEX;
use phalanx_primitives::{PublicKey, encode};
use std::collections::BTreeSet;

/// Checks a proposed validator set: 1 to [`VALIDATORS_MAX`] distinct, valid
/// ed25519 keys, each with an `ip:port` address.
pub(super) fn check_entries(entries: &[ValidatorEntry]) -> Result<(), TxError> {
    let invalid = |reason: String| Err(TxError::Validators(reason));
    if entries.is_empty() || entries.len() > VALIDATORS_MAX {
        return invalid(format!("a validator set holds 1 to {VALIDATORS_MAX} validators, not {}", entries.len()));
    }
    let mut seen = BTreeSet::new();
    for entry in entries {
        if !seen.insert(entry.key) {
            return invalid(format!("validator {} is named twice", entry.key));
        }
        if !entry.key.is_valid_ed25519() {
            return invalid(format!("{} is not a valid ed25519 public key", entry.key));
        }
        if entry.address.len() > VALIDATOR_ADDRESS_BYTES_MAX || entry.address.parse::<std::net::SocketAddr>().is_err() {
            return invalid(format!(
                "address of validator {} must be ip:port (at most {VALIDATOR_ADDRESS_BYTES_MAX} bytes)",
                entry.key
            ));
        }
    }
    Ok(())
}

impl State {
    /// Consensus parameters (fixed at genesis).
    pub fn consensus_params(&self) -> ConsensusParams {
        self.consensus
    }

    /// The consensus epoch of the block at `height`.
    pub fn epoch_of(&self, height: u64) -> u64 {
        height / self.consensus.epoch_blocks
    }

    /// Whether the block at `height` is the last of its epoch.
    pub fn is_epoch_last(&self, height: u64) -> bool {
        height % self.consensus.epoch_blocks == self.consensus.epoch_blocks - 1
    }

    /// The set scheduled to take over after the current epoch, if any.
    pub fn pending_validators(&self) -> Option<&[PublicKey]> {
        self.validator_changes.pending.as_deref()
    }

    /// The set that certifies blocks of `epoch`, if this state still knows
    /// it: the current set from its first epoch up to the epoch of the next
    /// block, and the set before it.
    pub fn validators_of_epoch(&self, epoch: u64) -> Option<&[PublicKey]> {
        let changes = &self.validator_changes;
        if epoch > self.epoch_of(self.height() + 1) {
            return None;
        }
        if epoch >= changes.since_epoch {
            return Some(&self.validators);
        }
        match &changes.previous {
            Some((since, set)) if epoch >= *since => Some(set),
            _ => None,
        }
    }

    /// The p2p address governance announced for validator `key`.
    pub fn validator_address(&self, key: &PublicKey) -> Option<&str> {
        self.validator_changes.addresses.iter().find(|(k, _)| k == key).map(|(_, address)| address.as_str())
    }

    /// Applies `SetValidators` (checked by `check_entries`).
    pub(super) fn schedule_validators(&mut self, entries: &[ValidatorEntry], emit: &mut impl FnMut(Event)) {
        let keys: Vec<PublicKey> = entries.iter().map(|entry| entry.key).collect();
        let mut changes = self.validator_changes.clone();
        changes.pending = Some(keys.clone());
        // Keep the addresses of current and pending validators, the newest announcement first.
        let mut addresses: Vec<(PublicKey, String)> =
            entries.iter().map(|entry| (entry.key, entry.address.clone())).collect();
        for (key, address) in &changes.addresses {
            if self.validators.contains(key) && !keys.contains(key) {
                addresses.push((*key, address.clone()));
            }
        }
        changes.addresses = addresses;
        self.set_validator_changes(changes);
        emit(Event::ValidatorSetScheduled { epoch: self.epoch_of(self.height()) + 1, validators: keys });
    }

    /// The block-level rule after a block's transactions: at the end of the
    /// last block of an epoch a scheduled set takes over.
    pub(crate) fn end_block(&mut self, events: &mut Vec<EventRecord>) {
        let height = self.height();
        if !self.is_epoch_last(height) {
            return;
        }
        let Some(next) = self.validator_changes.pending.clone() else { return };
        let epoch = self.epoch_of(height) + 1;
        let mut changes = self.validator_changes.clone();
        changes.pending = None;
        changes.previous = Some((changes.since_epoch, std::mem::replace(&mut self.validators, next.clone())));
        changes.since_epoch = epoch;
        changes.addresses.retain(|(key, _)| next.contains(key));
        self.write(VALIDATORS_KEY.to_vec(), encode(&self.validators));
        self.set_validator_changes(changes);
        events.push(EventRecord {
            tx_index: BLOCK_EVENT_INDEX,
            event: Event::ValidatorSetChanged { epoch, validators: next },
        });
    }

    fn set_validator_changes(&mut self, changes: ValidatorChanges) {
        self.write(VALIDATOR_CHANGES_KEY.to_vec(), encode(&changes));
        self.validator_changes = changes;
    }
}
