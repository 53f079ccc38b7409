//! The W3C Web Cryptography API's operations (`crypto.subtle`), for agent
//! sandboxes: every primitive from RustCrypto, errors named as the spec
//! names them, and limits on everything an agent controls.
//!
//! A [`Key`] is the host's side of a `CryptoKey`: the sandbox hands
//! JavaScript an opaque handle and keeps the `Key`; its material leaves
//! this crate only through [`export_key`] of an extractable key (or
//! [`wrap_key`], which exports it). Nothing here knows about JavaScript:
//! the sandbox converts arguments into [`Params`] and results back.
//!
//! - [`params`]: algorithms, hashes, curves and the algorithm dictionary.
//! - [`key`]: keys, their types, usages and algorithm descriptions.
//! - `formats`: `importKey` and `exportKey` (`raw`, `pkcs8`, `spki`, `jwk`).
//! - `generate`: `generateKey`.
//! - `cipher`, `sign`, `derive`: the operations.

mod cipher;
mod derive;
pub mod error;
mod formats;
mod generate;
pub mod key;
pub mod params;
mod sign;

pub use derive::{PBKDF2_ITERATIONS_MAX, PBKDF2_WORK_MAX};
pub use error::{Error, ErrorName, Result};
pub use formats::{Exported, Format, KEY_DATA_BYTES_MAX, KeyData};
pub use generate::{Generated, RSA_MODULUS_BITS_MAX, RSA_MODULUS_BITS_MIN};
pub use key::{Key, KeyAlgorithm, KeyType, UsageList, Usages};
pub use params::{Algorithm, Curve, Hash, Params};

use error::{invalid_access, not_supported};
use zeroize::Zeroizing;

/// The operations of `SubtleCrypto` that take an algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    DeriveBits,
    WrapKey,
    UnwrapKey,
    GenerateKey,
    /// The derived key's algorithm in `deriveKey`.
    GetKeyLength,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Encrypt => "encrypt",
            Operation::Decrypt => "decrypt",
            Operation::Sign => "sign",
            Operation::Verify => "verify",
            Operation::DeriveBits => "deriveBits",
            Operation::WrapKey => "wrapKey",
            Operation::UnwrapKey => "unwrapKey",
            Operation::GenerateKey => "generateKey",
            Operation::GetKeyLength => "get key length",
        }
    }
}

/// Whether the spec registers `algorithm` for `operation`.
pub fn supports(algorithm: Algorithm, operation: Operation) -> bool {
    use Algorithm::*;
    match operation {
        Operation::Encrypt | Operation::Decrypt => matches!(algorithm, RsaOaep | AesCtr | AesCbc | AesGcm),
        Operation::Sign | Operation::Verify => matches!(algorithm, RsassaPkcs1V15 | RsaPss | Ecdsa | Ed25519 | Hmac),
        Operation::DeriveBits => matches!(algorithm, Ecdh | X25519 | Hkdf | Pbkdf2),
        Operation::WrapKey | Operation::UnwrapKey => matches!(algorithm, RsaOaep | AesCtr | AesCbc | AesGcm | AesKw),
        Operation::GenerateKey => !matches!(algorithm, Hkdf | Pbkdf2),
        Operation::GetKeyLength => matches!(algorithm, AesCtr | AesCbc | AesGcm | AesKw | Hmac | Hkdf | Pbkdf2),
    }
}

/// The algorithm of `params`, registered for `operation`.
pub fn normalize(params: &Params, operation: Operation) -> Result<Algorithm> {
    let algorithm = params.algorithm()?;
    if !supports(algorithm, operation) {
        return Err(not_supported(format!("{} does not support {}", algorithm.name(), operation.name())));
    }
    Ok(algorithm)
}

/// Checks that `key` is of the algorithm asked for and has `usage`.
fn usable(algorithm: Algorithm, key: &Key, usage: Usages) -> Result<()> {
    if key.algorithm.algorithm != algorithm {
        return Err(invalid_access(format!(
            "The requested operation is not valid for the provided key: it is a {} key, not {}",
            key.algorithm.algorithm.name(),
            algorithm.name()
        )));
    }
    if !key.usages().contains(usage) {
        return Err(invalid_access(format!(
            "The requested operation is not valid for the provided key: its usages are [{}]",
            key.usage_names().join(", ")
        )));
    }
    Ok(())
}

/// `digest`: SHA-1, SHA-256, SHA-384 or SHA-512 of `data`.
pub fn digest(name: &str, data: &[u8]) -> Result<Vec<u8>> {
    Ok(Hash::parse(name)?.digest(data))
}

/// `encrypt`.
pub fn encrypt(params: &Params, key: &Key, data: &[u8]) -> Result<Vec<u8>> {
    usable(normalize(params, Operation::Encrypt)?, key, Usages::ENCRYPT)?;
    cipher::crypt(params, key, data, true)
}

/// `decrypt`.
pub fn decrypt(params: &Params, key: &Key, data: &[u8]) -> Result<Vec<u8>> {
    usable(normalize(params, Operation::Decrypt)?, key, Usages::DECRYPT)?;
    cipher::crypt(params, key, data, false)
}

/// `sign`.
pub fn sign(params: &Params, key: &Key, data: &[u8]) -> Result<Vec<u8>> {
    usable(normalize(params, Operation::Sign)?, key, Usages::SIGN)?;
    sign::sign(params, key, data)
}

/// `verify`: whether `signature` is valid (a malformed one is not).
pub fn verify(params: &Params, key: &Key, signature: &[u8], data: &[u8]) -> Result<bool> {
    usable(normalize(params, Operation::Verify)?, key, Usages::VERIFY)?;
    sign::verify(params, key, signature, data)
}

/// `deriveBits`: `length` bits (`None`: all an ECDH or X25519 secret has).
pub fn derive_bits(params: &Params, key: &Key, length: Option<u32>) -> Result<Vec<u8>> {
    usable(normalize(params, Operation::DeriveBits)?, key, Usages::DERIVE_BITS)?;
    derive::derive_bits(params, key, length)
}

/// `deriveKey`: a key of `derived`'s algorithm from bits derived with `base`.
/// The bits never leave the host.
pub fn derive_key(params: &Params, base: &Key, derived: &Params, extractable: bool, usages: &UsageList) -> Result<Key> {
    let algorithm = normalize(params, Operation::DeriveBits)?;
    let derived_algorithm = normalize(derived, Operation::GetKeyLength)?;
    usable(algorithm, base, Usages::DERIVE_KEY)?;
    let length = match derived_algorithm {
        Algorithm::Hmac => Some(generate::hmac_length(derived)?),
        Algorithm::Hkdf | Algorithm::Pbkdf2 => None,
        _ => Some(generate::aes_length(derived)?),
    };
    let bits = Zeroizing::new(derive::derive_bits(params, base, length)?);
    formats::import_key(Format::Raw, &KeyData::Bytes(bits), derived, extractable, usages)
}

/// `generateKey`.
pub fn generate_key(params: &Params, extractable: bool, usages: &UsageList) -> Result<Generated> {
    generate_key_until(params, extractable, usages, &|| false)
}

/// `generateKey` that gives up (an `OperationError`) once `stop` returns
/// true: RSA key generation asks it for every prime candidate, so a caller
/// with a CPU budget ends a 4096-bit generation within one candidate.
pub fn generate_key_until(
    params: &Params,
    extractable: bool,
    usages: &UsageList,
    stop: &dyn Fn() -> bool,
) -> Result<Generated> {
    normalize(params, Operation::GenerateKey)?;
    generate::generate_key(params, extractable, usages, stop)
}

/// `importKey`.
pub fn import_key(
    format: Format,
    key_data: &KeyData,
    params: &Params,
    extractable: bool,
    usages: &UsageList,
) -> Result<Key> {
    formats::import_key(format, key_data, params, extractable, usages)
}

/// `exportKey` (an `InvalidAccessError` for a key that is not extractable).
pub fn export_key(format: Format, key: &Key) -> Result<Exported> {
    formats::export_key(format, key)
}

/// `wrapKey`: `key` exported in `format`, encrypted with `wrapping_key`.
pub fn wrap_key(format: Format, key: &Key, wrapping_key: &Key, params: &Params) -> Result<Vec<u8>> {
    let algorithm = normalize(params, Operation::WrapKey)?;
    usable(algorithm, wrapping_key, Usages::WRAP_KEY)?;
    let exported = match formats::export_key(format, key)? {
        Exported::Bytes(bytes) => bytes,
        Exported::Jwk(text) => Zeroizing::new(text.as_bytes().to_vec()),
    };
    match algorithm {
        Algorithm::AesKw => cipher::aes_kw(wrapping_key, &exported, true),
        _ => cipher::crypt(params, wrapping_key, &exported, true),
    }
}

/// `unwrapKey`: `wrapped` decrypted with `unwrapping_key`, imported in
/// `format` as a key of `import_params`' algorithm. The plaintext never
/// leaves the host.
#[allow(clippy::too_many_arguments)]
pub fn unwrap_key(
    format: Format,
    wrapped: &[u8],
    unwrapping_key: &Key,
    params: &Params,
    import_params: &Params,
    extractable: bool,
    usages: &UsageList,
) -> Result<Key> {
    let algorithm = normalize(params, Operation::UnwrapKey)?;
    import_params.algorithm()?;
    usable(algorithm, unwrapping_key, Usages::UNWRAP_KEY)?;
    let plain = Zeroizing::new(match algorithm {
        Algorithm::AesKw => cipher::aes_kw(unwrapping_key, wrapped, false)?,
        _ => cipher::crypt(params, unwrapping_key, wrapped, false)?,
    });
    let key_data = match format {
        Format::Jwk => KeyData::Jwk(Zeroizing::new(
            String::from_utf8(plain.to_vec()).map_err(|_| error::data("the unwrapped JWK is not UTF-8"))?,
        )),
        _ => KeyData::Bytes(plain),
    };
    // Node reports a key that does not import after unwrapping as an
    // OperationError (the spec would pass the import's error on).
    formats::import_key(format, &key_data, import_params, extractable, usages).map_err(|e| match e.name {
        ErrorName::Type | ErrorName::NotSupported => e,
        _ => error::operation(format!("the unwrapped key does not import: {}", e.message)),
    })
}
