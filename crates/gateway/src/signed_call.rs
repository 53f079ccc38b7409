//! Signed calls: how a caller proves which account makes a call, for agents
//! whose access policy is an allowlist.
//!
//! The caller signs, with its account key under [`SIGNED_CALL_LABEL`], the
//! borsh encoding of ([`SignedCallMessage`]): chain id, the identity of the
//! one worker that may run the call, agent id, method, path and query,
//! SHA-256 of the body, a fresh 16-byte nonce and an expiry time. It sends
//! the address, worker, nonce, expiry and signature as headers
//! ([`CALLER_HEADER`], [`WORKER_HEADER`], [`NONCE_HEADER`],
//! [`EXPIRES_HEADER`], [`SIGNATURE_HEADER`]); in an encrypted call they travel inside the sealed
//! request. The gateway checks the signature, refuses expired calls and
//! expiries further ahead than [`SIGNED_CALL_WINDOW_MS`], refuses a call
//! signed for another worker (so no other worker of the cluster runs it),
//! and refuses a nonce it has seen. Seen nonces are kept until the call's
//! expiry (at most [`REPLAY_ENTRIES_MAX`] at once) in memory and in a file
//! written through to disk before the call runs ([`ReplayGuard::open`]), so
//! a signed call runs at most once, across the cluster and across restarts.
//! The file holds SHA-256(caller, nonce) and the expiry, never the caller.
//! The agent then sees the verified address in `phalanx-caller`; an
//! unverified one never reaches it.

use borsh::BorshSerialize;
use phalanx_primitives::{Hash, Keypair, PublicKey, Signature, sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Domain label of signed-call signatures.
pub const SIGNED_CALL_LABEL: &[u8] = b"phalanx/signed-call/v2";
pub const CALLER_HEADER: &str = "phalanx-caller";
pub const NONCE_HEADER: &str = "phalanx-nonce";
/// The worker the call is signed for (its identity key).
pub const WORKER_HEADER: &str = "phalanx-worker";
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
    /// The worker that may run the call (its identity, as `/attestation` and
    /// the chain's registry name it).
    pub worker: PublicKey,
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
        "this agent takes signed calls only: send {CALLER_HEADER}, {WORKER_HEADER}, {NONCE_HEADER}, {EXPIRES_HEADER} and {SIGNATURE_HEADER}"
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
    #[error("this call is signed for another worker; sign it for this one ({0})")]
    OtherWorker(PublicKey),
    #[error("the gateway cannot record signed calls durably now; retry shortly")]
    Unrecorded,
    #[error("the gateway remembers {REPLAY_ENTRIES_MAX} signed calls already; retry shortly")]
    Busy,
}

/// The headers of a call signed by `key`.
pub fn sign(key: &Keypair, message: &SignedCallMessage<'_>) -> Vec<(String, String)> {
    let signature = key.sign(SIGNED_CALL_LABEL, &borsh::to_vec(message).expect("in-memory encoding"));
    vec![
        (CALLER_HEADER.into(), key.public().to_string()),
        (WORKER_HEADER.into(), message.worker.to_string()),
        (NONCE_HEADER.into(), hex::encode(message.nonce)),
        (EXPIRES_HEADER.into(), message.expires_ms.to_string()),
        (SIGNATURE_HEADER.into(), hex::encode(signature.0)),
    ]
}

/// The signed-call headers of a request, if it has any.
#[derive(Clone, Debug)]
pub struct Presented {
    pub caller: PublicKey,
    pub worker: PublicKey,
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
        let worker = header(WORKER_HEADER).ok_or(SignedCallError::Missing)?;
        let worker: PublicKey = worker.parse().map_err(|_| SignedCallError::Malformed(WORKER_HEADER))?;
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
        Ok(Some(Presented { caller, worker, nonce, expires_ms, signature: Signature(signature) }))
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
            worker: self.worker,
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

/// Nonces seen, until their calls expire, in memory and (unless detached)
/// in an append-only file synced before a call is admitted.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    inner: Mutex<Seen>,
}

/// One record of the replay file: SHA-256(caller, nonce), then the expiry
/// (little-endian milliseconds).
const RECORD_BYTES: usize = 40;
/// Most bytes of the replay file read back on open.
const FILE_BYTES_MAX: u64 = ((2 * REPLAY_ENTRIES_MAX + 1024 + 1) * RECORD_BYTES) as u64;

#[derive(Debug, Default)]
struct Seen {
    by_key: HashMap<Hash, u64>,
    by_expiry: BTreeMap<(u64, Hash), ()>,
    file: Option<Journal>,
}

#[derive(Debug)]
struct Journal {
    path: std::path::PathBuf,
    file: std::fs::File,
    /// Records in the file (live or expired); it is rewritten with the live
    /// ones when this passes twice their number.
    records: usize,
}

/// What identifies a call in the guard: the caller's nonce, hashed so the
/// file on the host's disk names no caller.
fn key_of(caller: &PublicKey, nonce: &[u8; 16]) -> Hash {
    phalanx_primitives::sha256_parts(&[b"phalanx/signed-call-seen/v1", &caller.0, nonce])
}

impl ReplayGuard {
    /// A guard whose nonces survive restarts, in the file at `path`
    /// (created if missing; expired records are dropped on open). A torn
    /// last record (a crash mid-write) is ignored: its call never ran,
    /// since admission waits for the write.
    pub fn open(path: &std::path::Path, now_ms: u64) -> std::io::Result<ReplayGuard> {
        // The host owns the disk: read no more than the file can hold when
        // it is written here (live entries, twice over, before a rewrite).
        let bytes = match std::fs::File::open(path) {
            Ok(file) => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(file, FILE_BYTES_MAX), &mut bytes)?;
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut seen = Seen::default();
        for record in bytes.chunks_exact(RECORD_BYTES) {
            let key = Hash(record[..32].try_into().expect("32 bytes"));
            let expires = u64::from_le_bytes(record[32..].try_into().expect("8 bytes"));
            if expires >= now_ms && seen.by_key.len() < REPLAY_ENTRIES_MAX {
                seen.by_key.insert(key, expires);
                seen.by_expiry.insert((expires, key), ());
            }
        }
        seen.file = Some(Journal::rewrite(path, &seen.by_key)?);
        Ok(ReplayGuard { inner: Mutex::new(seen) })
    }

    /// Records a verified call's nonce; refuses one seen before. With a
    /// file, returns only once the record is on disk (it blocks: call it off
    /// the async threads).
    pub fn admit(&self, presented: &Presented, now_ms: u64) -> Result<(), SignedCallError> {
        let mut seen = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some((&(expires, key), ())) = seen.by_expiry.first_key_value() {
            if expires >= now_ms {
                break;
            }
            seen.by_expiry.remove(&(expires, key));
            seen.by_key.remove(&key);
        }
        let key = key_of(&presented.caller, &presented.nonce);
        if seen.by_key.contains_key(&key) {
            return Err(SignedCallError::Replayed);
        }
        if seen.by_key.len() >= REPLAY_ENTRIES_MAX {
            return Err(SignedCallError::Busy);
        }
        let Seen { by_key, file, .. } = &mut *seen;
        if let Some(journal) = file
            && let Err(error) = journal.append(key, presented.expires_ms, by_key)
        {
            tracing::error!(path = %journal.path.display(), %error, "cannot record a signed call; refusing signed calls");
            return Err(SignedCallError::Unrecorded);
        }
        seen.by_key.insert(key, presented.expires_ms);
        seen.by_expiry.insert((presented.expires_ms, key), ());
        Ok(())
    }
}

impl Journal {
    /// Writes the live records to a fresh file that replaces `path`.
    fn rewrite(path: &std::path::Path, live: &HashMap<Hash, u64>) -> std::io::Result<Journal> {
        let mut bytes = Vec::with_capacity(live.len() * RECORD_BYTES);
        for (key, expires) in live {
            bytes.extend_from_slice(&key.0);
            bytes.extend_from_slice(&expires.to_le_bytes());
        }
        crate::fs::write_atomic(path, &bytes)?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Journal { path: path.to_path_buf(), file, records: live.len() })
    }

    fn append(&mut self, key: Hash, expires_ms: u64, live: &HashMap<Hash, u64>) -> std::io::Result<()> {
        use std::io::Write;
        if self.records >= 2 * live.len() + 1024 {
            *self = Journal::rewrite(&self.path, live)?;
        }
        let mut record = [0u8; RECORD_BYTES];
        record[..32].copy_from_slice(&key.0);
        record[32..].copy_from_slice(&expires_ms.to_le_bytes());
        self.file.write_all(&record)?;
        self.file.sync_data()?;
        self.records += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(nonce: u8, expires_ms: u64) -> SignedCallMessage<'static> {
        SignedCallMessage {
            chain_id: Hash([1; 32]),
            worker: Keypair::from_seed(&[5; 32]).public(),
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
        let mut moved = call.clone();
        moved.worker = Keypair::from_seed(&[6; 32]).public();
        assert_eq!(
            check(&moved, "POST", "/x?y=1", b"body", 9_000),
            Err(SignedCallError::BadSignature),
            "a call signed for one worker does not verify as another's"
        );
        assert_eq!(check(&call, "POST", "/x?y=1", b"body", 10_001), Err(SignedCallError::Expired));
        let far = presented(&sign(&key, &message(2, 9_000 + SIGNED_CALL_WINDOW_MS + 1)));
        assert_eq!(check(&far, "POST", "/x?y=1", b"body", 9_000), Err(SignedCallError::TooFarAhead));

        let guard = ReplayGuard::default();
        assert_eq!(guard.admit(&call, 9_000), Ok(()));
        assert_eq!(guard.admit(&call, 9_500), Err(SignedCallError::Replayed));
        // Once expired, the nonce is forgotten (the call itself would be refused as expired).
        assert_eq!(guard.admit(&call, 10_001), Ok(()));

        // A guard with a file remembers across a restart (a reopen), until expiry.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signed-calls");
        let durable = ReplayGuard::open(&path, 9_000).unwrap();
        assert_eq!(durable.admit(&call, 9_000), Ok(()));
        drop(durable);
        let reopened = ReplayGuard::open(&path, 9_100).unwrap();
        assert_eq!(reopened.admit(&call, 9_100), Err(SignedCallError::Replayed));
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), RECORD_BYTES, "one record, the live one");
        assert!(!on_disk.windows(32).any(|w| w == key.public().0), "the file never names the caller");
        // A torn record is ignored; expired records are dropped on open.
        std::fs::write(&path, [on_disk.as_slice(), &[7u8; 13]].concat()).unwrap();
        assert_eq!(ReplayGuard::open(&path, 9_200).unwrap().admit(&call, 9_200), Err(SignedCallError::Replayed));
        let later = ReplayGuard::open(&path, 10_001).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 0, "expired records are gone");
        assert_eq!(later.admit(&call, 10_001), Ok(()));

        let mut forged = headers.clone();
        forged[0].1 = Keypair::from_seed(&[8; 32]).public().to_string();
        assert_eq!(check(&presented(&forged), "POST", "/x?y=1", b"body", 9_000), Err(SignedCallError::BadSignature));
        let mut broken = headers;
        broken[2].1 = "zz".into();
        let refused = Presented::from_headers(|name| broken.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()));
        assert!(matches!(refused, Err(SignedCallError::Malformed(NONCE_HEADER))));
    }
}
