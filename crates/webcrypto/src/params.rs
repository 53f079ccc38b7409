//! What an operation is asked to do: the algorithm (by its registered
//! name), hash functions and curves, and the members of the algorithm
//! dictionary the caller passed, already converted from JavaScript.

use crate::error::{Result, not_supported, type_error};
use crate::key::Key;
use sha2::Digest;
use std::sync::Arc;

/// The algorithms of the Web Cryptography API this crate implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    RsassaPkcs1V15,
    RsaPss,
    RsaOaep,
    Ecdsa,
    Ecdh,
    Ed25519,
    X25519,
    AesCtr,
    AesCbc,
    AesGcm,
    AesKw,
    Hmac,
    Hkdf,
    Pbkdf2,
}

impl Algorithm {
    const ALL: [Algorithm; 14] = [
        Algorithm::RsassaPkcs1V15,
        Algorithm::RsaPss,
        Algorithm::RsaOaep,
        Algorithm::Ecdsa,
        Algorithm::Ecdh,
        Algorithm::Ed25519,
        Algorithm::X25519,
        Algorithm::AesCtr,
        Algorithm::AesCbc,
        Algorithm::AesGcm,
        Algorithm::AesKw,
        Algorithm::Hmac,
        Algorithm::Hkdf,
        Algorithm::Pbkdf2,
    ];

    /// The registered name, as `CryptoKey.algorithm.name` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RsassaPkcs1V15 => "RSASSA-PKCS1-v1_5",
            Algorithm::RsaPss => "RSA-PSS",
            Algorithm::RsaOaep => "RSA-OAEP",
            Algorithm::Ecdsa => "ECDSA",
            Algorithm::Ecdh => "ECDH",
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::X25519 => "X25519",
            Algorithm::AesCtr => "AES-CTR",
            Algorithm::AesCbc => "AES-CBC",
            Algorithm::AesGcm => "AES-GCM",
            Algorithm::AesKw => "AES-KW",
            Algorithm::Hmac => "HMAC",
            Algorithm::Hkdf => "HKDF",
            Algorithm::Pbkdf2 => "PBKDF2",
        }
    }

    /// The algorithm a name refers to (names match case-insensitively).
    pub fn parse(name: &str) -> Result<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| not_supported(format!("Unrecognized algorithm name: {}", shorten(name))))
    }
}

/// At most this much of a caller's string is repeated in an error.
pub(crate) fn shorten(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// The hash functions of the SHA family the API names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub fn parse(name: &str) -> Result<Hash> {
        [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512]
            .into_iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| not_supported(format!("Unrecognized hash algorithm: {}", shorten(name))))
    }

    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "SHA-1",
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }

    /// Output bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// Bytes of the hash's input block (an HMAC key's default length).
    pub fn block_len(self) -> usize {
        match self {
            Hash::Sha1 | Hash::Sha256 => 64,
            Hash::Sha384 | Hash::Sha512 => 128,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The digits of JWK algorithm names (`HS256`, `RS1`, ...).
    pub(crate) fn jwk_suffix(self) -> &'static str {
        match self {
            Hash::Sha1 => "1",
            Hash::Sha256 => "256",
            Hash::Sha384 => "384",
            Hash::Sha512 => "512",
        }
    }
}

/// Runs `$body` with `$d` bound to the RustCrypto type of `$hash`.
macro_rules! with_hash {
    ($hash:expr, $d:ident => $body:expr) => {
        match $hash {
            $crate::params::Hash::Sha1 => {
                type $d = sha1::Sha1;
                $body
            }
            $crate::params::Hash::Sha256 => {
                type $d = sha2::Sha256;
                $body
            }
            $crate::params::Hash::Sha384 => {
                type $d = sha2::Sha384;
                $body
            }
            $crate::params::Hash::Sha512 => {
                type $d = sha2::Sha512;
                $body
            }
        }
    };
}
pub(crate) use with_hash;

/// The named curves of ECDSA and ECDH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    /// Curve names are case-sensitive.
    pub fn parse(name: &str) -> Result<Curve> {
        match name {
            "P-256" => Ok(Curve::P256),
            "P-384" => Ok(Curve::P384),
            "P-521" => Err(not_supported("the curve P-521 is not supported (P-256 and P-384 are)")),
            other => Err(not_supported(format!("Unrecognized namedCurve: {}", shorten(other)))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    /// Bytes of a field element (and of a scalar).
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

/// The members of an algorithm dictionary (`{ name, hash, iv, ... }`),
/// converted from JavaScript: `BufferSource` members copied to bytes, `hash`
/// reduced to its name, `public` to the key it holds. Which members an
/// operation needs depends on it; a missing one is a `TypeError`.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pub name: String,
    pub hash: Option<String>,
    pub named_curve: Option<String>,
    /// Key length (AES, HMAC) or counter length (AES-CTR), in bits.
    pub length: Option<u32>,
    pub modulus_length: Option<u32>,
    pub public_exponent: Option<Vec<u8>>,
    pub iv: Option<Vec<u8>>,
    pub counter: Option<Vec<u8>>,
    pub additional_data: Option<Vec<u8>>,
    pub tag_length: Option<u32>,
    pub label: Option<Vec<u8>>,
    pub salt: Option<Vec<u8>>,
    pub info: Option<Vec<u8>>,
    pub iterations: Option<u32>,
    pub salt_length: Option<u32>,
    pub public: Option<Arc<Key>>,
}

impl Params {
    /// Only a name (`"HMAC"`, or `{ name: "HMAC" }` with nothing else).
    pub fn named(name: &str) -> Params {
        Params { name: name.to_string(), ..Params::default() }
    }

    pub fn algorithm(&self) -> Result<Algorithm> {
        Algorithm::parse(&self.name)
    }

    pub(crate) fn require<'a, T>(&self, member: Option<&'a T>, what: &str) -> Result<&'a T>
    where
        T: ?Sized,
    {
        member.ok_or_else(|| type_error(format!("{}: the algorithm's member {what} is required", self.name)))
    }

    pub(crate) fn hash(&self) -> Result<Hash> {
        Hash::parse(self.require(self.hash.as_deref(), "hash")?)
    }

    pub(crate) fn curve(&self) -> Result<Curve> {
        Curve::parse(self.require(self.named_curve.as_deref(), "namedCurve")?)
    }
}
