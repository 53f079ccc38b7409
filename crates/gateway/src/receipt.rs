//! Receipts: what a worker signs about every agent response it serves.
//!
//! A receipt names the chain, the worker's identity key, the agent, the code
//! (hash and version) that ran, the key epoch an encrypted call was sealed
//! to, the verified height the call ran at, and SHA-256 hashes of the request
//! target (`METHOD /path?query`), the request body and the response body as
//! they crossed the wire (for an encrypted call: the envelopes, so a receipt
//! says nothing about the plaintext). A streamed response's body is not
//! known when its headers leave, so its receipt has no response hash.
//!
//! It travels as the [`RECEIPT_HEADER`] response header: hex of the borsh
//! encoding of a [`SignedReceipt`], signed with the worker's identity key
//! under [`RECEIPT_SIGNING_LABEL`]. Anyone can check it against the chain
//! (`phalanx verify`): the worker was registered and attested, and the code
//! hash is the agent's code at that height.

use borsh::{BorshDeserialize, BorshSerialize};
use phalanx_primitives::{Hash, Keypair, PublicKey, Signature, SignatureError, decode_bounded, sha256};

/// Domain label of receipt signatures.
pub const RECEIPT_SIGNING_LABEL: &[u8] = b"phalanx/receipt/v1";
/// The response header carrying the receipt.
pub const RECEIPT_HEADER: &str = "phalanx-receipt";
/// Receipt format version.
pub const RECEIPT_VERSION: u8 = 1;
/// Largest encoded receipt accepted, in bytes.
pub const RECEIPT_BYTES_MAX: usize = 1024;

/// What a worker attests about one response.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Receipt {
    pub version: u8,
    pub chain_id: Hash,
    /// The worker's identity key (it signs the receipt).
    pub worker: PublicKey,
    pub agent: Hash,
    pub code_hash: Hash,
    pub agent_version: u32,
    /// The agent key epoch an encrypted call was sealed to.
    pub key_epoch: Option<u64>,
    /// The height of the verified state the call ran on.
    pub height: u64,
    /// SHA-256 of `METHOD /path?query` as the gateway received it.
    pub target_hash: Hash,
    /// SHA-256 of the request body as received.
    pub request_hash: Hash,
    pub status: u16,
    /// SHA-256 of the response body as sent; `None` for a streamed body.
    pub response_hash: Option<Hash>,
}

/// A receipt with the worker's signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct SignedReceipt {
    pub receipt: Receipt,
    pub signature: Signature,
}

/// Why a receipt could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("a receipt is hex of at most {RECEIPT_BYTES_MAX} bytes")]
    Encoding,
    #[error("receipt version {0} is not supported (this is version {RECEIPT_VERSION})")]
    Version(u8),
    #[error("the receipt's signature is not the worker's: {0}")]
    Signature(#[from] SignatureError),
}

/// SHA-256 of a request target as receipts hash it.
pub fn target_hash(method: &str, path_and_query: &str) -> Hash {
    sha256(format!("{method} {path_and_query}").as_bytes())
}

impl SignedReceipt {
    /// The header value: hex of the borsh encoding.
    pub fn to_header(&self) -> String {
        hex::encode(borsh::to_vec(self).expect("in-memory encoding"))
    }

    /// Decodes a header value (bounded) and checks the version and signature.
    pub fn from_header(value: &str) -> Result<Self, ReceiptError> {
        let value = value.trim();
        if value.len() > 2 * RECEIPT_BYTES_MAX {
            return Err(ReceiptError::Encoding);
        }
        let bytes = hex::decode(value.trim_start_matches("0x")).map_err(|_| ReceiptError::Encoding)?;
        let signed: SignedReceipt = decode_bounded(&bytes, RECEIPT_BYTES_MAX).map_err(|_| ReceiptError::Encoding)?;
        if signed.receipt.version != RECEIPT_VERSION {
            return Err(ReceiptError::Version(signed.receipt.version));
        }
        let message = borsh::to_vec(&signed.receipt).expect("in-memory encoding");
        signed.receipt.worker.verify(RECEIPT_SIGNING_LABEL, &message, &signed.signature)?;
        Ok(signed)
    }
}

/// Signs receipts with a worker's identity key (held only by the worker).
pub struct ReceiptSigner {
    key: Keypair,
    chain_id: Hash,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReceiptSigner({}, secret redacted)", self.key.public())
    }
}

impl ReceiptSigner {
    pub fn new(key: Keypair, chain_id: Hash) -> Self {
        ReceiptSigner { key, chain_id }
    }

    pub fn worker(&self) -> PublicKey {
        self.key.public()
    }

    pub fn chain_id(&self) -> Hash {
        self.chain_id
    }

    /// Signs `receipt` (its chain and worker are set here).
    pub fn sign(&self, mut receipt: Receipt) -> SignedReceipt {
        receipt.chain_id = self.chain_id;
        receipt.worker = self.key.public();
        let signature = self.key.sign(RECEIPT_SIGNING_LABEL, &borsh::to_vec(&receipt).expect("in-memory encoding"));
        SignedReceipt { receipt, signature }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> Receipt {
        Receipt {
            version: RECEIPT_VERSION,
            chain_id: Hash::ZERO,
            worker: PublicKey([0; 32]),
            agent: Hash([1; 32]),
            code_hash: Hash([2; 32]),
            agent_version: 1,
            key_epoch: Some(3),
            height: 9,
            target_hash: target_hash("GET", "/?a=1"),
            request_hash: sha256(b""),
            status: 200,
            response_hash: Some(sha256(b"hi")),
        }
    }

    #[test]
    fn a_receipt_round_trips_and_every_change_breaks_its_signature() {
        let signer = ReceiptSigner::new(Keypair::from_seed(&[7; 32]), Hash([5; 32]));
        let signed = signer.sign(receipt());
        let header = signed.to_header();
        let back = SignedReceipt::from_header(&header).unwrap();
        assert_eq!(back, signed);
        assert_eq!((back.receipt.chain_id, back.receipt.worker), (Hash([5; 32]), signer.worker()));
        let bytes = hex::decode(&header).unwrap();
        for index in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[index] ^= 1;
            assert!(SignedReceipt::from_header(&hex::encode(&tampered)).is_err(), "byte {index} changed undetected");
        }
        assert!(matches!(SignedReceipt::from_header(&"00".repeat(RECEIPT_BYTES_MAX + 1)), Err(ReceiptError::Encoding)));
        assert!(matches!(SignedReceipt::from_header("zz"), Err(ReceiptError::Encoding)));
    }
}
