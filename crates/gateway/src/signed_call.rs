//! Signed calls: how a caller proves which account makes a call, for agents
//! whose access policy is an allowlist.
//!
//! The caller signs, with its account key under [`SIGNED_CALL_LABEL`], the
//! borsh encoding of ([`SignedCallMessage`]): chain id, agent id, method,
//! path and query, SHA-256 of the body, a fresh 16-byte nonce and an expiry
//! time. It sends the address, nonce, expiry and signature as headers
//! ([`CALLER_HEADER`], [`NONCE_HEADER`], [`EXPIRES_HEADER`],
//! [`SIGNATURE_HEADER`]); in an encrypted call they travel inside the sealed
//! request. The gateway checks the signature, refuses expired calls and
//! expiries further ahead than [`SIGNED_CALL_WINDOW_MS`], and refuses a nonce
//! it has seen (kept until the call's expiry, at most
//! [`REPLAY_ENTRIES_MAX`] at once), so a signed call runs at most once per
//! worker. The agent then sees the verified address in `phalanx-caller`;
//! an unverified one never reaches it.

use borsh::BorshSerialize;
use phalanx_primitives::{Hash, Keypair, PublicKey, Signature, sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Domain label of signed-call signatures.
pub const SIGNED_CALL_LABEL: &[u8] = b"phalanx/signed-call/v1";
pub const CALLER_HEADER: &str = "phalanx-caller";
pub const NONCE_HEADER: &str = "phalanx-nonce";
pub const EXPIRES_HEADER: &str = "phalanx-expires";
pub const SIGNATURE_HEADER: &str = "phalanx-signature";
/// Furthest a signed call's expiry may lie ahead, in milliseconds.
pub const SIGNED_CALL_WINDOW_MS: u64 = 5 * 60 * 1000;
/// Most nonces a gateway remembers at once; beyond that signed calls are
/// refused (503) until old ones expire.
pub const REPLAY_ENTRIES_MAX: usize = 100_000;

/// What a caller signs.
#[derive(Debug, BorshSerialize)]
pub struct SignedCallMessage<'a> {
    pub chain_id: Hash,
    pub agent: Hash,
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub body_hash: Hash,
    pub nonce: [u8; 16],
    pub expires_ms: u64,
}

/// Why a signed call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedCallError {
    #[error(
        "this agent takes signed calls only: send {CALLER_HEADER}, {NONCE_HEADER}, {EXPIRES_HEADER} and {SIGNATURE_HEADER}"
    )]
    Missing,
    #[error("malformed signed-call header {0}")]
    Malformed(&'static str),
    #[error("the signed call expired")]
    Expired,
    #[error("the signed call expires more than {SIGNED_CALL_WINDOW_MS} ms ahead")]
    TooFarAhead,
    #[error("the call's signature is not the caller's")]
    BadSignature,
    #[error("this signed call was already made (replayed nonce)")]
    Replayed,
    #[error("the gateway remembers {REPLAY_ENTRIES_MAX} signed calls already; retry shortly")]
    Busy,
}

/// The headers of a call signed by `key`.
pub fn sign(key: &Keypair, message: &SignedCallMessage<'_>) -> Vec<(String, String)> {
    let signature = key.sign(SIGNED_CALL_LABEL, &borsh::to_vec(message).expect("in-memory encoding"));
    vec![
        (CALLER_HEADER.into(), key.public().to_string()),
        (NONCE_HEADER.into(), hex::encode(message.nonce)),
        (EXPIRES_HEADER.into(), message.expires_ms.to_string()),
        (SIGNATURE_HEADER.into(), hex::encode(signature.0)),
    ]
}

/// The signed-call headers of a request, if it has any.
#[derive(Debug)]
pub struct Presented {
    pub caller: PublicKey,
    pub nonce: [u8; 16],
    pub expires_ms: u64,
    pub signature: Signature,
}

impl Presented {
    /// Reads the four headers (`None` if there is no caller header at all).
    pub fn from_headers<'a>(
        mut header: impl FnMut(&str) -> Option<&'a str>,
    ) -> Result<Option<Presented>, SignedCallError> {
        let Some(caller) = header(CALLER_HEADER) else { return Ok(None) };
        let caller: PublicKey = caller.parse().map_err(|_| SignedCallError::Malformed(CALLER_HEADER))?;
        let nonce = header(NONCE_HEADER).ok_or(SignedCallError::Missing)?;
        let nonce: [u8; 16] =
            hex::decode(nonce).ok().and_then(|b| b.try_into().ok()).ok_or(SignedCallError::Malformed(NONCE_HEADER))?;
        let expires_ms = header(EXPIRES_HEADER)
            .ok_or(SignedCallError::Missing)?
            .parse()
            .map_err(|_| SignedCallError::Malformed(EXPIRES_HEADER))?;
        let signature: [u8; 64] = hex::decode(header(SIGNATURE_HEADER).ok_or(SignedCallError::Missing)?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SignedCallError::Malformed(SIGNATURE_HEADER))?;
        Ok(Some(Presented { caller, nonce, expires_ms, signature: Signature(signature) }))
    }

    /// Checks the signature over this request (`body` as received).
    pub fn verify(
        &self,
        chain_id: Hash,
        agent: Hash,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now_ms: u64,
    ) -> Result<(), SignedCallError> {
        if self.expires_ms < now_ms {
            return Err(SignedCallError::Expired);
        }
        if self.expires_ms > now_ms + SIGNED_CALL_WINDOW_MS {
            return Err(SignedCallError::TooFarAhead);
        }
        let message = SignedCallMessage {
            chain_id,
            agent,
            method,
            path_and_query,
            body_hash: sha256(body),
            nonce: self.nonce,
            expires_ms: self.expires_ms,
        };
        let bytes = borsh::to_vec(&message).expect("in-memory encoding");
        self.caller.verify(SIGNED_CALL_LABEL, &bytes, &self.signature).map_err(|_| SignedCallError::BadSignature)
    }
}

/// Nonces seen, until their calls expire.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    by_nonce: HashMap<(PublicKey, [u8; 16]), u64>,
    by_expiry: BTreeMap<(u64, PublicKey, [u8; 16]), ()>,
}

impl ReplayGuard {
    /// Records a verified call's nonce; refuses one seen before.
    pub fn admit(&self, presented: &Presented, now_ms: u64) -> Result<(), SignedCallError> {
        let mut seen = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some((&(expires, caller, nonce), ())) = seen.by_expiry.first_key_value() {
            if expires >= now_ms {
                break;
            }
            seen.by_expiry.remove(&(expires, caller, nonce));
            seen.by_nonce.remove(&(caller, nonce));
        }
        let key = (presented.caller, presented.nonce);
        if seen.by_nonce.contains_key(&key) {
            return Err(SignedCallError::Replayed);
        }
        if seen.by_nonce.len() >= REPLAY_ENTRIES_MAX {
            return Err(SignedCallError::Busy);
        }
        seen.by_nonce.insert(key, presented.expires_ms);
        seen.by_expiry.insert((presented.expires_ms, presented.caller, presented.nonce), ());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(nonce: u8, expires_ms: u64) -> SignedCallMessage<'static> {
        SignedCallMessage {
            chain_id: Hash([1; 32]),
            agent: Hash([2; 32]),
            method: "POST",
            path_and_query: "/x?y=1",
            body_hash: sha256(b"body"),
            nonce: [nonce; 16],
            expires_ms,
        }
    }

    fn presented(headers: &[(String, String)]) -> Presented {
        Presented::from_headers(|name| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_signed_call_verifies_once_and_only_as_signed() {
        let key = Keypair::from_seed(&[9; 32]);
        let headers = sign(&key, &message(1, 10_000));
        let call = presented(&headers);
        let check = |c: &Presented, method, path, body: &[u8], now| {
            c.verify(Hash([1; 32]), Hash([2; 32]), method, path, body, now)
        };
        assert_eq!(check(&call, "POST", "/x?y=1", b"body", 9_000), Ok(()));
        assert_eq!(check(&call, "GET", "/x?y=1", b"body", 9_000), Err(SignedCallError::BadSignature));
        assert_eq!(check(&call, "POST", "/x?y=2", b"body", 9_000), Err(SignedCallError::BadSignature));
        assert_eq!(check(&call, "POST", "/x?y=1", b"bodY", 9_000), Err(SignedCallError::BadSignature));
        assert_eq!(
            call.verify(Hash([3; 32]), Hash([2; 32]), "POST", "/x?y=1", b"body", 9_000),
            Err(SignedCallError::BadSignature)
        );
        assert_eq!(check(&call, "POST", "/x?y=1", b"body", 10_001), Err(SignedCallError::Expired));
        let far = presented(&sign(&key, &message(2, 9_000 + SIGNED_CALL_WINDOW_MS + 1)));
        assert_eq!(check(&far, "POST", "/x?y=1", b"body", 9_000), Err(SignedCallError::TooFarAhead));

        let guard = ReplayGuard::default();
        assert_eq!(guard.admit(&call, 9_000), Ok(()));
        assert_eq!(guard.admit(&call, 9_500), Err(SignedCallError::Replayed));
        // Once expired, the nonce is forgotten (the call itself would be refused as expired).
        assert_eq!(guard.admit(&call, 10_001), Ok(()));

        let mut forged = headers.clone();
        forged[0].1 = Keypair::from_seed(&[8; 32]).public().to_string();
        assert_eq!(check(&presented(&forged), "POST", "/x?y=1", b"body", 9_000), Err(SignedCallError::BadSignature));
        let mut broken = headers;
        broken[1].1 = "zz".into();
        let refused = Presented::from_headers(|name| broken.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()));
        assert!(matches!(refused, Err(SignedCallError::Malformed(NONCE_HEADER))));
    }
}
