//! Keys: the hierarchy gatekeepers derive and the envelope everything
//! confidential travels in.
//!
//! - [`hierarchy`]: master key (epoch e) → cluster key (cluster, e) → agent
//!   key (agent, e), HKDF-SHA256 under fixed domain labels. Each derived key
//!   is an X25519 key pair whose public half is published on chain.
//! - [`envelope`]: one versioned format for calls, responses, secrets, state
//!   and logs: X25519 with an ephemeral key, HKDF-SHA256, ChaCha20-Poly1305;
//!   the header names the recipient key and epoch, and the associated data
//!   binds the header (agent id, epoch, purpose and direction).
//!
//! No primitive is implemented here: X25519 is `x25519-dalek`, HKDF `hkdf`,
//! the AEAD `chacha20poly1305` (RustCrypto). Formats are pinned by test
//! vectors (`tests/vectors.rs`).

pub mod call;
pub mod envelope;
pub mod hierarchy;

pub use envelope::{Direction, Envelope, EnvelopeError, Header, KeyRef, Opened, Purpose, ResponseKey};
pub use hierarchy::{AgentKey, ClusterKey, MasterKey, SecretKey, account_log_key};
