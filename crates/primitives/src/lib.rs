//! Primitives shared by every phalanx component: hashes, account keys and
//! signatures with domain separation, SS58 addresses, BIP-39 mnemonics and the
//! dev accounts, PHA amounts, and bounded decoding of untrusted bytes.
//!
//! Nothing here does I/O except [`keys::Keypair::generate`], which reads the
//! operating system's randomness; the state machine never calls it.

pub mod amount;
pub mod codec;
pub mod hash;
pub mod hex_serde;
pub mod keys;
pub mod mnemonic;
pub mod ss58;

pub use amount::{Balance, PLANCK_PER_PHA, format_pha, parse_pha};
pub use codec::{DecodeError, decode_bounded, encode};
pub use hash::{Hash, sha256, sha256_parts, sha512_parts};
pub use keys::{Keypair, PublicKey, Signature, SignatureError};
pub use ss58::{AddressError, SS58_PREFIX};
