//! The envelope: one versioned format for everything confidential.
//!
//! ```text
//! envelope   = header (116 bytes, borsh) ‖ ChaCha20-Poly1305 ciphertext and tag
//! header     = version 1 ‖ purpose ‖ direction ‖ key ref (kind, id, epoch) ‖ agent id
//!              ‖ ephemeral X25519 public key ‖ sequence
//! shared     = X25519(ephemeral secret, recipient public)   (all-zero results refused)
//! request    : key ‖ nonce = HKDF-SHA256(salt = ephemeral ‖ recipient, ikm = shared,
//!                                        info = "phalanx/envelope/v1" ‖ header)   (32 + 12 bytes)
//! response   : exporter   = HKDF-SHA256(same salt and ikm, info = "phalanx/envelope/v1/response" ‖ request header)
//!              key ‖ nonce = HKDF-SHA256(ikm = exporter, info = "phalanx/envelope/v1/response-message" ‖ header)
//! AAD        = the header
//! ```
//!
//! A request is sealed to a published key (an agent's, a cluster's, a
//! worker's) with a fresh ephemeral key, so its key and nonce are used once.
//! Whoever opens it gets a [`ResponseKey`] that only the sender can also
//! derive: responses (numbered by `sequence`, so a stream cannot be
//! reordered, truncated in the middle or spliced from another exchange)
//! travel back under it. The header is the associated data, so changing the
//! agent id, epoch, purpose, direction or sequence makes opening fail.

use crate::hierarchy::SecretKey;
use borsh::{BorshDeserialize, BorshSerialize};
use hkdf::Hkdf;
use phalanx_primitives::Hash;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The envelope version this code writes and reads.
pub const VERSION: u8 = 1;
/// Length of the encoded header.
pub const HEADER_BYTES: usize = 116;
/// Authentication tag length.
pub const TAG_BYTES: usize = 16;
/// Largest envelope accepted, in bytes.
pub const ENVELOPE_BYTES_MAX: usize = 64 * 1024 * 1024;

const LABEL: &[u8] = b"phalanx/envelope/v1";
const RESPONSE_LABEL: &[u8] = b"phalanx/envelope/v1/response";
const RESPONSE_MESSAGE_LABEL: &[u8] = b"phalanx/envelope/v1/response-message";

/// What an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Purpose {
    Call,
    Secret,
    State,
    Log,
    /// A key handed from a gatekeeper to a worker or gatekeeper.
    KeyHandover,
}

/// Which way an envelope travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Direction {
    /// To the holder of the named key.
    Request,
    /// Back to the request's sender.
    Response,
}

/// The kind of key an envelope is sealed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum KeyKind {
    Cluster,
    Agent,
    /// A worker's (or gatekeeper's) attested key-agreement key.
    Worker,
    /// An account's key derived from its secret (the owner's log key); the id
    /// is the account's public key.
    Account,
}

/// Names the recipient key: kind, id (cluster, agent or worker) and epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct KeyRef {
    pub kind: KeyKind,
    pub id: Hash,
    pub epoch: u64,
}

/// The envelope header; all of it is authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Header {
    pub version: u8,
    pub purpose: Purpose,
    pub direction: Direction,
    pub key: KeyRef,
    /// The agent the payload belongs to (zero when none).
    pub agent: Hash,
    /// The request's ephemeral public key (responses repeat it).
    pub ephemeral: [u8; 32],
    /// 0 for a request; a response's position in its stream.
    pub sequence: u64,
}

/// Why an envelope did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is {size} bytes, more than the {ENVELOPE_BYTES_MAX} allowed")]
    TooLarge { size: usize },
    #[error("envelope is too short or its header is malformed")]
    Malformed,
    #[error("envelope version {0} is not supported (this is version {VERSION})")]
    Version(u8),
    #[error("envelope travels the wrong way for this use")]
    Direction,
    #[error("response belongs to another exchange, or is out of sequence")]
    Exchange,
    #[error("the ephemeral key is a low-order point")]
    WeakKey,
    #[error("envelope does not open: wrong key or epoch, or tampered")]
    Open,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let bytes = borsh::to_vec(self).expect("in-memory encoding");
        debug_assert_eq!(bytes.len(), HEADER_BYTES);
        bytes
    }

    /// Reads the header of an envelope (to pick the key to open it with).
    /// Nothing in it is trusted until the envelope opens.
    pub fn peek(envelope: &[u8]) -> Result<Header, EnvelopeError> {
        if envelope.len() > ENVELOPE_BYTES_MAX {
            return Err(EnvelopeError::TooLarge { size: envelope.len() });
        }
        if envelope.len() < HEADER_BYTES + TAG_BYTES {
            return Err(EnvelopeError::Malformed);
        }
        let header = Header::try_from_slice(&envelope[..HEADER_BYTES]).map_err(|_| EnvelopeError::Malformed)?;
        if header.version != VERSION {
            return Err(EnvelopeError::Version(header.version));
        }
        Ok(header)
    }
}

fn aead(key_and_nonce: &[u8; 44]) -> (chacha20poly1305::ChaCha20Poly1305, chacha20poly1305::Nonce) {
    use chacha20poly1305::KeyInit;
    let key: [u8; 32] = key_and_nonce[..32].try_into().expect("32 bytes");
    let nonce: [u8; 12] = key_and_nonce[32..].try_into().expect("12 bytes");
    (chacha20poly1305::ChaCha20Poly1305::new(&key.into()), nonce.into())
}

fn seal_raw(header: &Header, key_and_nonce: &[u8; 44], plaintext: &[u8]) -> Vec<u8> {
    use chacha20poly1305::aead::{Aead, Payload};
    let header_bytes = header.encode();
    let (cipher, nonce) = aead(key_and_nonce);
    let ciphertext =
        cipher.encrypt(&nonce, Payload { msg: plaintext, aad: &header_bytes }).expect("in-memory encryption");
    let mut out = header_bytes;
    out.extend_from_slice(&ciphertext);
    out
}

fn open_raw(envelope: &[u8], key_and_nonce: &[u8; 44]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    use chacha20poly1305::aead::{Aead, Payload};
    let (header_bytes, ciphertext) = envelope.split_at(HEADER_BYTES);
    let (cipher, nonce) = aead(key_and_nonce);
    cipher
        .decrypt(&nonce, Payload { msg: ciphertext, aad: header_bytes })
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Open)
}

struct Schedule {
    prk: Hkdf<Sha256>,
}

impl Schedule {
    fn new(
        shared: &x25519_dalek::SharedSecret,
        ephemeral: &[u8; 32],
        recipient: &[u8; 32],
    ) -> Result<Self, EnvelopeError> {
        if !shared.was_contributory() {
            return Err(EnvelopeError::WeakKey);
        }
        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(ephemeral);
        salt[32..].copy_from_slice(recipient);
        Ok(Schedule { prk: Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes()) })
    }

    fn request(&self, header: &Header) -> Zeroizing<[u8; 44]> {
        let mut out = Zeroizing::new([0u8; 44]);
        self.prk.expand_multi_info(&[LABEL, &header.encode()], out.as_mut()).expect("valid length");
        out
    }

    fn response(&self, request: &Header) -> ResponseKey {
        let mut exporter = Zeroizing::new([0u8; 32]);
        self.prk.expand_multi_info(&[RESPONSE_LABEL, &request.encode()], exporter.as_mut()).expect("valid length");
        ResponseKey { exporter, request: *request }
    }
}

/// Sealing and opening requests.
#[derive(Debug)]
pub struct Envelope;

/// An opened request.
#[derive(Debug)]
pub struct Opened {
    pub header: Header,
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Seals responses only the sender can open.
    pub response: ResponseKey,
}

impl Envelope {
    /// Seals `plaintext` to `recipient` (the public key `key` names) with a
    /// fresh ephemeral key. Returns the envelope and the key that opens responses.
    pub fn seal(
        recipient: &[u8; 32],
        key: KeyRef,
        agent: Hash,
        purpose: Purpose,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, ResponseKey), EnvelopeError> {
        Self::seal_with_ephemeral(&SecretKey::generate(), recipient, key, agent, purpose, plaintext)
    }

    /// [`Envelope::seal`] with a given ephemeral key: for test vectors only.
    /// Reusing an ephemeral key reuses the AEAD key and nonce.
    pub fn seal_with_ephemeral(
        ephemeral: &SecretKey,
        recipient: &[u8; 32],
        key: KeyRef,
        agent: Hash,
        purpose: Purpose,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, ResponseKey), EnvelopeError> {
        let ephemeral_public = ephemeral.public();
        let header = Header {
            version: VERSION,
            purpose,
            direction: Direction::Request,
            key,
            agent,
            ephemeral: ephemeral_public,
            sequence: 0,
        };
        let schedule = Schedule::new(&ephemeral.diffie_hellman(recipient), &ephemeral_public, recipient)?;
        let envelope = seal_raw(&header, &schedule.request(&header), plaintext);
        Ok((envelope, schedule.response(&header)))
    }

    /// Opens a request with the recipient's secret key.
    pub fn open(envelope: &[u8], recipient: &SecretKey) -> Result<Opened, EnvelopeError> {
        let header = Header::peek(envelope)?;
        if header.direction != Direction::Request || header.sequence != 0 {
            return Err(EnvelopeError::Direction);
        }
        let schedule =
            Schedule::new(&recipient.diffie_hellman(&header.ephemeral), &header.ephemeral, &recipient.public())?;
        let plaintext = open_raw(envelope, &schedule.request(&header))?;
        Ok(Opened { header, plaintext, response: schedule.response(&header) })
    }
}

impl Envelope {
    /// Re-encrypts a request-direction envelope (stored data: state,
    /// secrets) from `old` to the key `new` names: opened with the old key,
    /// sealed with a fresh ephemeral key to the new one, same purpose and
    /// agent. The plaintext exists only in zeroized memory meanwhile.
    pub fn reseal(
        envelope: &[u8],
        old: &SecretKey,
        new_recipient: &[u8; 32],
        new_key: KeyRef,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let opened = Envelope::open(envelope, old)?;
        let (sealed, _) =
            Envelope::seal(new_recipient, new_key, opened.header.agent, opened.header.purpose, &opened.plaintext)?;
        Ok(sealed)
    }
}

/// The key of one exchange's responses, held by the request's sender and
/// its recipient.
#[derive(Clone)]
pub struct ResponseKey {
    exporter: Zeroizing<[u8; 32]>,
    request: Header,
}

impl std::fmt::Debug for ResponseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResponseKey({:?}, secret redacted)", self.request.key)
    }
}

impl ResponseKey {
    fn header(&self, sequence: u64) -> Header {
        Header { direction: Direction::Response, sequence, ..self.request }
    }

    fn key_and_nonce(&self, header: &Header) -> Zeroizing<[u8; 44]> {
        let mut out = Zeroizing::new([0u8; 44]);
        Hkdf::<Sha256>::from_prk(self.exporter.as_ref())
            .expect("32 bytes is a valid PRK")
            .expand_multi_info(&[RESPONSE_MESSAGE_LABEL, &header.encode()], out.as_mut())
            .expect("valid length");
        out
    }

    /// Seals the response at position `sequence` (0, 1, 2… for a stream).
    pub fn seal(&self, sequence: u64, plaintext: &[u8]) -> Vec<u8> {
        let header = self.header(sequence);
        seal_raw(&header, &self.key_and_nonce(&header), plaintext)
    }

    /// Opens the response expected at position `sequence`.
    pub fn open(&self, sequence: u64, envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let header = Header::peek(envelope)?;
        if header.direction != Direction::Response {
            return Err(EnvelopeError::Direction);
        }
        if header != self.header(sequence) {
            return Err(EnvelopeError::Exchange);
        }
        open_raw(envelope, &self.key_and_nonce(&header))
    }
}
