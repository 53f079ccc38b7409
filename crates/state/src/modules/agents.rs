//! The `agents` module: AI agent contracts on chain.
//!
//! An agent is JavaScript/TypeScript code (stored once per content hash),
//! an owner, the cluster whose workers run it, and what the owner governs:
//! pausing, ownership, who may call it (anyone, an allowlist of accounts, or
//! anyone paying the per-call price), its price, and its secrets. Secrets
//! are envelopes the owner sealed on their own machine to the agent's key;
//! the chain stores and counts them but cannot read them. Upgrading replaces
//! the code and keeps the id (so keys and state stay).
//!
//! Only the owner, or governance, manages an agent.
//!
//! Leaves: `0x05 0x01 ‖ code hash` the code, `0x05 0x02 ‖ agent id` one [`Agent`].

use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{Balance, Hash, PublicKey};

pub(crate) const CODE_PREFIX: &[u8] = &[0x05, 0x01];
pub(crate) const AGENT_PREFIX: &[u8] = &[0x05, 0x02];

/// Largest agent source, in bytes.
pub const AGENT_CODE_BYTES_MAX: usize = 1_000_000;
/// Longest agent name, in bytes.
pub const AGENT_NAME_BYTES_MAX: usize = 64;
/// Most agents on a chain.
pub const AGENTS_MAX: usize = 1_000_000;
/// Most accounts on an agent's allowlist.
pub const ALLOWLIST_MAX: usize = 256;
/// Most secrets per agent.
pub const SECRETS_MAX: usize = 64;
/// Longest secret name, in bytes (`[A-Z0-9_]`, as in `env.NAME`).
pub const SECRET_NAME_BYTES_MAX: usize = 64;
/// Largest sealed secret, in bytes.
pub const SECRET_BYTES_MAX: usize = 8 * 1024;
/// Largest command payload (JSON, or an envelope sealed to the agent's key), in bytes.
pub const COMMAND_BYTES_MAX: usize = 8 * 1024;

/// The payload of a command for an agent's `command(message, env, ctx)`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "bytes", rename_all = "snake_case")]
pub enum CommandPayload {
    /// JSON everyone can read (it is on chain).
    Plain(#[serde(with = "phalanx_primitives::hex_serde")] Vec<u8>),
    /// JSON in an envelope (purpose `Call`) sealed to one of the agent's
    /// published keys: only the workers of its cluster read it.
    Sealed(#[serde(with = "phalanx_primitives::hex_serde")] Vec<u8>),
}

impl CommandPayload {
    pub fn bytes(&self) -> &[u8] {
        match self {
            CommandPayload::Plain(bytes) | CommandPayload::Sealed(bytes) => bytes,
        }
    }
}

/// Who ordered a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum CommandSender {
    /// An account, with a signed transaction (`phalanx agent send`).
    Account(PublicKey),
    /// The agent itself (`ctx.submit` in its `fetch`), through a worker of its cluster.
    Agent(Hash),
}

/// The language an agent is written in (TypeScript types are stripped by workers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    JavaScript,
    TypeScript,
}

impl Language {
    /// The file name workers compile the source under.
    pub fn file_name(self) -> &'static str {
        match self {
            Language::JavaScript => "agent.js",
            Language::TypeScript => "agent.ts",
        }
    }
}

/// Who may call an agent.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Access {
    /// Anyone.
    Public,
    /// Only these accounts (signed calls).
    Allowlist { accounts: Vec<PublicKey> },
    /// Anyone who pays the agent's price per call.
    Paid,
}

/// One secret: a name and an envelope sealed to the agent's key.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Secret {
    pub name: String,
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub sealed: Vec<u8>,
}

/// An agent's public key in one agent key epoch, published by a gatekeeper.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct AgentEpochKey {
    /// The agent key epoch (what envelopes name).
    pub epoch: u64,
    /// The cluster key epoch it derives from.
    pub cluster_epoch: u64,
    #[serde(with = "phalanx_primitives::hex_serde")]
    pub public: [u8; 32],
    /// Height of the block that published it.
    pub published_at: u64,
}

/// Versions of an agent's code the chain remembers (for checking receipts).
pub const CODE_HISTORY_MAX: usize = 32;

/// One version of an agent's code and the height from which it served.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct CodeVersion {
    pub version: u32,
    pub code_hash: Hash,
    /// Height of the block that deployed or upgraded to it.
    pub from_height: u64,
}

/// Most agent key epochs the chain keeps at once (beyond that the oldest is
/// dropped even if data is still sealed under it).
pub const AGENT_EPOCHS_MAX: usize = 4;

/// An agent.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Agent {
    pub id: Hash,
    pub name: String,
    pub owner: PublicKey,
    pub cluster: Hash,
    /// SHA-256 of the current source.
    pub code_hash: Hash,
    pub language: Language,
    /// 1 at deployment, +1 per upgrade.
    pub version: u32,
    pub paused: bool,
    pub access: Access,
    /// Planck per call, paid by callers (see the economics issue).
    pub price: Balance,
    pub secrets: Vec<Secret>,
    /// Public keys clients encrypt calls and secrets to, newest last.
    pub keys: Vec<AgentEpochKey>,
    /// The owner or governance asked for a new key of this agent alone.
    pub rotation_requested: bool,
    /// The X25519 key the owner reads the agent's logs with (workers seal
    /// console output to it; without one they keep no logs). Cleared when
    /// the agent changes owner.
    #[serde(with = "option_hex")]
    pub log_key: Option<[u8; 32]>,
    /// The code versions, oldest first (the last [`CODE_HISTORY_MAX`]).
    pub code_history: Vec<CodeVersion>,
    /// The highest key epoch ever published for this agent (0 before the
    /// first), so an epoch number never names two keys even after the limit
    /// on kept epochs dropped every kept key.
    pub key_epoch_last: u64,
    /// Commands ordered so far: the last command's sequence number (the
    /// first is 1). Workers apply them in this order, each exactly once.
    pub commands: u64,
    pub created_at: u64,
    pub updated_at: u64,
}

impl Agent {
    /// The code that served at `height`: `Ok(hash)`, or `Err` if that height
    /// is before deployment or older than the history kept.
    pub fn code_at(&self, height: u64) -> Result<&CodeVersion, String> {
        let served = self.code_history.iter().rev().find(|v| v.from_height <= height);
        match served {
            Some(version) => Ok(version),
            None if self.code_history.first().is_some_and(|v| v.version > 1) => {
                Err(format!("height {height} is older than the {CODE_HISTORY_MAX} code versions the chain keeps"))
            }
            None => Err(format!("agent {} was not deployed at height {height}", self.id)),
        }
    }

    /// Records the current code as a new version from `height`.
    pub(crate) fn record_code(&mut self, height: u64) {
        self.code_history.push(CodeVersion { version: self.version, code_hash: self.code_hash, from_height: height });
        if self.code_history.len() > CODE_HISTORY_MAX {
            self.code_history.remove(0);
        }
    }

    /// The newest published key.
    pub fn newest_key(&self) -> Option<&AgentEpochKey> {
        self.keys.last()
    }

    /// A kept key by agent key epoch.
    pub fn key(&self, epoch: u64) -> Option<&AgentEpochKey> {
        self.keys.iter().find(|k| k.epoch == epoch)
    }

    /// The agent key epoch a gatekeeper should publish next, given its
    /// cluster's ready key (`Cluster::ready_key`): the cluster key epoch for
    /// the first key; the next epoch (at least the cluster key epoch) when the
    /// newest key derives from an older cluster key or a rotation was asked for.
    pub fn due_key_epoch(&self, cluster_key_epoch: u64) -> Option<u64> {
        // Never an epoch used before: for the first key this is the cluster key epoch.
        let next = (self.key_epoch_last + 1).max(cluster_key_epoch);
        match self.newest_key() {
            None => Some(next),
            Some(newest) if newest.cluster_epoch < cluster_key_epoch || self.rotation_requested => Some(next),
            Some(_) => None,
        }
    }

    /// Secrets sealed under key epoch `epoch` (by their envelope headers).
    pub fn secrets_under(&self, epoch: u64) -> usize {
        self.secrets.iter().filter(|s| secret_epoch(&s.sealed) == Some(epoch)).count()
    }

    /// Whether the older key `epoch` may be retired at `height`: no secret
    /// is sealed under it any more and the grace period has passed.
    pub fn retirable(&self, epoch: u64, height: u64) -> Result<(), String> {
        let newest = self.newest_key().ok_or("the agent has no keys")?;
        if self.key(epoch).is_none() {
            return Err(format!("the agent keeps no key of epoch {epoch}"));
        }
        if epoch == newest.epoch {
            return Err("the newest key is never retired".into());
        }
        let sealed = self.secrets_under(epoch);
        if sealed > 0 {
            return Err(format!("{sealed} secrets are still sealed under epoch {epoch}"));
        }
        let grace = newest.published_at + crate::modules::clusters::RETIRE_GRACE_BLOCKS;
        if height < grace {
            return Err(format!("epoch {epoch} stays until block {grace}"));
        }
        Ok(())
    }
}

/// The agent key epoch a sealed secret names in its envelope header (`None`
/// if the header does not parse or names another kind of key).
pub fn secret_epoch(sealed: &[u8]) -> Option<u64> {
    let header = phalanx_keys::Header::peek(sealed).ok()?;
    (header.key.kind == phalanx_keys::envelope::KeyKind::Agent).then_some(header.key.epoch)
}

/// A change the owner (or governance) makes to an agent.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum AgentChange {
    /// New code, same id, keys and state.
    Upgrade {
        language: Language,
        #[serde(serialize_with = "code_summary")]
        code: Vec<u8>,
    },
    Pause,
    Resume,
    Transfer {
        to: PublicKey,
    },
    Access {
        access: Access,
    },
    Price {
        price: Balance,
    },
    /// Sets (or replaces) a secret, sealed to the agent's key.
    SetSecret {
        name: String,
        #[serde(with = "phalanx_primitives::hex_serde")]
        sealed: Vec<u8>,
    },
    RemoveSecret {
        name: String,
    },
    /// Sets (or clears) the owner's log key.
    LogKey {
        #[serde(with = "option_hex")]
        public: Option<[u8; 32]>,
    },
}

/// `Option<[u8; 32]>` as hex (or null) in JSON.
mod option_hex {
    pub(crate) fn serialize<S: serde::Serializer>(value: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_some(&format!("0x{}", hex::encode(bytes))),
            None => s.serialize_none(),
        }
    }
}

/// Shows code in JSON as its size and hash, not its bytes.
pub(crate) fn code_summary<S: serde::Serializer>(code: &[u8], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut summary = s.serialize_struct("Code", 2)?;
    summary.serialize_field("bytes", &code.len())?;
    summary.serialize_field("sha256", &phalanx_primitives::sha256(code))?;
    summary.end()
}

pub(crate) fn agent_key(id: &Hash) -> Vec<u8> {
    [AGENT_PREFIX, &id.0].concat()
}

pub(crate) fn code_key(hash: &Hash) -> Vec<u8> {
    [CODE_PREFIX, &hash.0].concat()
}

/// The id of the agent deployed by the transaction with hash `tx`.
pub fn agent_id(tx: &Hash) -> Hash {
    phalanx_primitives::sha256_parts(&[b"phalanx/agent/v1", &tx.0])
}

/// Whether `name` is a valid secret name (`env.NAME`): 1–64 of `A-Z`, `0-9`, `_`, not starting with a digit.
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= SECRET_NAME_BYTES_MAX
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}
