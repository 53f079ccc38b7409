//! The `gatekeeper` module: who holds the master key, and master-key epochs.
//!
//! **Election.** Every `era_blocks` blocks (and every block while there is
//! no gatekeeper) the chain elects up to `gatekeepers_max` gatekeepers from
//! registered workers that declared [`FEATURE_GATEKEEPER`]: governance's
//! forced members first, then by confidence level (lower is better), then
//! by age (earlier registration), then by identity key. Governance's
//! excluded workers are never elected. If the elected set differs from the
//! holders of the current master key, a rotation starts.
//!
//! **Rotation.** A rotation names the new epoch, the new set and a leader
//! (the first member of the new set that already holds the current key, or
//! else the first member). The leader generates the new master key inside
//! its TEE and announces a *commitment* to it (a public key derived from it;
//! the key itself never appears), then hands the key to every other member
//! encrypted to their attested key-agreement keys (`KeyHandover` messages
//! carried by the chain). Each member confirms the same commitment. When all
//! members have confirmed, the new epoch activates `activation_delay` blocks
//! later; if a rotation has not completed one era after it started, it
//! activates with the members that confirmed, provided they are at least
//! two thirds of the set, or else starts again. A worker that is not in the
//! new set is never sent the new key.
//!
//! Leaves: `0x03 0x00` [`GatekeeperParams`], `0x03 0x01` [`Gatekeepers`],
//! `0x03 0x02` [`KeyEpochs`].

use crate::modules::registry::{FEATURE_GATEKEEPER, Worker};
use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::PublicKey;

pub(crate) const PARAMS_KEY: &[u8] = &[0x03, 0x00];
pub(crate) const GATEKEEPERS_KEY: &[u8] = &[0x03, 0x01];
pub(crate) const EPOCHS_KEY: &[u8] = &[0x03, 0x02];

/// Most gatekeepers a chain may elect.
pub const GATEKEEPERS_MAX: u32 = 64;
/// Most workers on governance's forced or excluded lists.
pub const GOVERNANCE_LIST_MAX: usize = 256;
/// Largest key handover envelope, in bytes.
pub const HANDOVER_BYTES_MAX: usize = 4096;
/// Retired epochs remembered on chain.
pub const EPOCH_HISTORY_MAX: usize = 16;

/// Governance-controlled parameters of gatekeeping.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct GatekeeperParams {
    /// Blocks between elections.
    pub era_blocks: u64,
    /// Size of the elected set (at most [`GATEKEEPERS_MAX`]).
    pub gatekeepers_max: u32,
    /// Blocks between the last confirmation and the new epoch's activation.
    pub activation_delay: u64,
}

impl Default for GatekeeperParams {
    fn default() -> Self {
        GatekeeperParams { era_blocks: 600, gatekeepers_max: 3, activation_delay: 2 }
    }
}

/// The elected set and governance's overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Gatekeepers {
    /// Elected at the last election, in rank order.
    pub elected: Vec<PublicKey>,
    /// Always elected (if registered as candidates).
    pub forced: Vec<PublicKey>,
    /// Never elected.
    pub excluded: Vec<PublicKey>,
    /// Height of the next election.
    pub next_election: u64,
}

/// A master-key epoch.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct MasterEpoch {
    pub epoch: u64,
    /// Public commitment to the master key (see `phalanx_keys::MasterKey::commitment`).
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub commitment: [u8; 32],
    /// Gatekeepers holding it.
    pub holders: Vec<PublicKey>,
    pub activated_at: u64,
}

/// A master-key rotation in progress.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Rotation {
    /// Identifies this attempt: the height it started at.
    pub id: u64,
    /// The epoch it creates.
    pub epoch: u64,
    pub leader: PublicKey,
    /// The new set.
    pub members: Vec<PublicKey>,
    /// Announced by the leader.
    #[serde(with = "option_hex")]
    pub commitment: Option<[u8; 32]>,
    /// Members that confirmed holding the announced key.
    pub confirmed: Vec<PublicKey>,
    /// Height at which the new epoch becomes current, once set.
    pub activates_at: Option<u64>,
}

mod option_hex {
    pub(super) fn serialize<S: serde::Serializer>(value: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => phalanx_primitives::hex_serde::serialize(bytes, s),
            None => s.serialize_none(),
        }
    }
}

/// Master-key epochs: the current one, a rotation in progress, and recent history.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct KeyEpochs {
    pub current: Option<MasterEpoch>,
    pub rotation: Option<Rotation>,
    /// Earlier epochs, newest last (at most [`EPOCH_HISTORY_MAX`]).
    pub previous: Vec<MasterEpoch>,
}

impl KeyEpochs {
    /// Whether `who` may hand out keys now: a holder of the current epoch or
    /// the leader of the rotation.
    pub fn may_hand_over(&self, who: &PublicKey) -> bool {
        self.current.as_ref().is_some_and(|c| c.holders.contains(who))
            || self.rotation.as_ref().is_some_and(|r| &r.leader == who)
    }
}

/// The election rule (see the module documentation).
pub(crate) fn elect<'a>(
    params: &GatekeeperParams,
    gatekeepers: &Gatekeepers,
    workers: impl Iterator<Item = &'a Worker>,
) -> Vec<PublicKey> {
    let mut candidates: Vec<&Worker> = workers
        .filter(|w| w.info.features & FEATURE_GATEKEEPER != 0 && !gatekeepers.excluded.contains(&w.info.identity))
        .collect();
    candidates.sort_by_key(|w| {
        (!gatekeepers.forced.contains(&w.info.identity), w.confidence, w.registered_at, w.info.identity)
    });
    candidates.into_iter().take(params.gatekeepers_max as usize).map(|w| w.info.identity).collect()
}

/// The leader of a rotation to `members`: the first that holds the current key, else the first.
pub(crate) fn leader(members: &[PublicKey], current: Option<&MasterEpoch>) -> PublicKey {
    members
        .iter()
        .find(|m| current.is_some_and(|c| c.holders.contains(m)))
        .or(members.first())
        .copied()
        .expect("a rotation has members")
}
