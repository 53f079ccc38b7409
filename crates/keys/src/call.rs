//! Encrypted agent calls: what travels inside the envelopes.
//!
//! The client seals a [`SealedRequest`] to the agent's published key (the
//! envelope header names the agent and the epoch) and posts it with content
//! type [`ENVELOPE_CONTENT_TYPE`]; the worker opens it inside its TEE, runs
//! the agent, and answers with a [`SealedResponse`] sealed under the
//! exchange's response key, so the host sees neither.

use crate::envelope::{Envelope, EnvelopeError, KeyKind, KeyRef, Purpose, ResponseKey};
use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::Hash;

/// Content type of an encrypted call or response body.
pub const ENVELOPE_CONTENT_TYPE: &str = "application/phalanx-envelope";
/// Largest decoded request or response inside an envelope, in bytes.
pub const SEALED_MESSAGE_BYTES_MAX: usize = 40 * 1024 * 1024;

/// The HTTP request an encrypted call carries.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SealedRequest {
    pub method: String,
    /// Path and query inside the agent (`/chat?x=1`).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The HTTP response an encrypted call gets back.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SealedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SealedRequest {
    /// Seals the request to `agent`'s public key of `epoch`.
    pub fn seal(&self, agent: Hash, epoch: u64, public: &[u8; 32]) -> Result<(Vec<u8>, ResponseKey), EnvelopeError> {
        let plaintext = zeroize::Zeroizing::new(borsh::to_vec(self).expect("in-memory encoding"));
        Envelope::seal(public, KeyRef { kind: KeyKind::Agent, id: agent, epoch }, agent, Purpose::Call, &plaintext)
    }

    /// Decodes an opened request (bounded).
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        phalanx_primitives::decode_bounded(bytes, SEALED_MESSAGE_BYTES_MAX).map_err(|_| EnvelopeError::Malformed)
    }
}

impl SealedResponse {
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        phalanx_primitives::decode_bounded(bytes, SEALED_MESSAGE_BYTES_MAX).map_err(|_| EnvelopeError::Malformed)
    }
}
