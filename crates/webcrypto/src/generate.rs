//! `generateKey`: secret keys from the operating system's randomness,
//! key pairs for the asymmetric algorithms. RSA moduli are bounded.

use crate::error::{Result, operation, syntax};
use crate::key::{EcPublic, EcSecret, Key, KeyAlgorithm, KeyType, Material, UsageList, allowed_usages};
use crate::params::{Algorithm, Curve, Params};
use zeroize::Zeroizing;

/// Smallest and largest RSA moduli, in bits.
pub const RSA_MODULUS_BITS_MIN: u32 = 1024;
pub const RSA_MODULUS_BITS_MAX: u32 = 4096;

/// The operating system's randomness, as RustCrypto's key generators take it.
pub(crate) fn rng() -> rand_core::UnwrapErr<getrandom_sys::SysRng> {
    rand_core::UnwrapErr(getrandom_sys::SysRng)
}

/// The operating system's randomness until `stop` says the caller's time
/// is spent: RSA key generation draws from it for every prime candidate it
/// tests, so a stop ends the search within one candidate.
struct Stoppable<'a> {
    stop: &'a dyn Fn() -> bool,
}

/// Why a [`Stoppable`] draw failed.
#[derive(Debug)]
enum Stopped {
    Stopped,
    Os(getrandom_sys::Error),
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::Stopped => f.write_str("stopped: the call's CPU time is spent"),
            Stopped::Os(e) => write!(f, "no randomness: {e}"),
        }
    }
}

impl std::error::Error for Stopped {}

impl rand_core::TryRng for Stoppable<'_> {
    type Error = Stopped;

    fn try_next_u32(&mut self) -> std::result::Result<u32, Stopped> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> std::result::Result<u64, Stopped> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> std::result::Result<(), Stopped> {
        if (self.stop)() {
            return Err(Stopped::Stopped);
        }
        rand_core::TryRng::try_fill_bytes(&mut getrandom_sys::SysRng, dst).map_err(Stopped::Os)
    }
}

impl rand_core::TryCryptoRng for Stoppable<'_> {}

pub(crate) fn random_bytes(n: usize) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    getrandom::fill(&mut bytes).expect("the operating system must provide randomness");
    bytes
}

/// A new key: one secret key, or a pair.
#[derive(Debug)]
pub enum Generated {
    Secret(Key),
    Pair { public: Key, private: Key },
}

/// Bits of an AES key from `length`.
pub(crate) fn aes_length(params: &Params) -> Result<u32> {
    match *params.require(params.length.as_ref(), "length")? {
        bits @ (128 | 192 | 256) => Ok(bits),
        _ => Err(operation("AES key length must be 128, 192 or 256 bits")),
    }
}

/// Bits of an HMAC key: `length`, or the hash's block size.
pub(crate) fn hmac_length(params: &Params) -> Result<u32> {
    let hash = params.hash()?;
    match params.length {
        None => Ok(hash.block_len() as u32 * 8),
        Some(0) => Err(operation("HMAC key length must not be 0")),
        Some(bits) => Ok(bits),
    }
}

/// The public exponent as a number, if it is one the generator takes.
fn public_exponent(bytes: &[u8]) -> Result<u64> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.len() > 8 {
        return Err(operation("RSA public exponent is too large"));
    }
    let value = trimmed.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
    if value < 3 || value % 2 == 0 {
        return Err(operation("RSA public exponent must be odd and at least 3"));
    }
    Ok(value)
}

/// Splits a pair's usages between its keys, as the spec does.
fn pair(
    algorithm: KeyAlgorithm,
    extractable: bool,
    usages: &UsageList,
    keys: (Material, Material),
) -> Result<Generated> {
    let allowed_private = allowed_usages(algorithm.algorithm, KeyType::Private);
    let allowed_public = allowed_usages(algorithm.algorithm, KeyType::Public);
    if !(allowed_private | allowed_public).contains(usages.set()) {
        return Err(syntax(format!(
            "Unsupported key usage for a {} key: allowed are [{}]",
            algorithm.algorithm.name(),
            (allowed_private | allowed_public).names().join(", ")
        )));
    }
    let public =
        Key::new(KeyType::Public, algorithm.clone(), keys.0).with_usages(true, &usages.only(allowed_public))?;
    let private =
        Key::new(KeyType::Private, algorithm, keys.1).with_usages(extractable, &usages.only(allowed_private))?;
    Ok(Generated::Pair { public, private })
}

/// `generateKey`; a long generation (RSA) gives up when `stop` returns true.
pub(crate) fn generate_key(
    params: &Params,
    extractable: bool,
    usages: &UsageList,
    stop: &dyn Fn() -> bool,
) -> Result<Generated> {
    let algorithm = params.algorithm()?;
    let mut description = KeyAlgorithm::of(algorithm);
    // The usages are checked before any work is done.
    let allowed = allowed_usages(algorithm, KeyType::Secret)
        | allowed_usages(algorithm, KeyType::Private)
        | allowed_usages(algorithm, KeyType::Public);
    if !allowed.contains(usages.set()) {
        return Err(syntax(format!(
            "Unsupported key usage for a {} key: allowed are [{}]",
            algorithm.name(),
            allowed.names().join(", ")
        )));
    }
    match algorithm {
        Algorithm::AesCtr | Algorithm::AesCbc | Algorithm::AesGcm | Algorithm::AesKw => {
            let bits = aes_length(params)?;
            description.length = Some(bits);
            let key = Key::new(KeyType::Secret, description, Material::Secret(random_bytes(bits as usize / 8)));
            Ok(Generated::Secret(key.with_usages(extractable, usages)?))
        }
        Algorithm::Hmac => {
            let bits = hmac_length(params)?;
            description.hash = Some(params.hash()?);
            description.length = Some(bits);
            let mut bytes = random_bytes(bits.div_ceil(8) as usize);
            if !bits.is_multiple_of(8) {
                let last = bytes.len() - 1;
                bytes[last] &= 0xffu8 << (8 - bits % 8);
            }
            let key = Key::new(KeyType::Secret, description, Material::Secret(bytes));
            Ok(Generated::Secret(key.with_usages(extractable, usages)?))
        }
        Algorithm::Ecdsa | Algorithm::Ecdh => {
            let curve = params.curve()?;
            description.named_curve = Some(curve);
            let mut rng = rng();
            let keys = match curve {
                Curve::P256 => {
                    let secret = <p256::SecretKey as p256::elliptic_curve::Generate>::generate_from_rng(&mut rng);
                    (EcPublic::P256(secret.public_key()), EcSecret::P256(secret))
                }
                Curve::P384 => {
                    let secret = <p384::SecretKey as p256::elliptic_curve::Generate>::generate_from_rng(&mut rng);
                    (EcPublic::P384(secret.public_key()), EcSecret::P384(secret))
                }
            };
            pair(description, extractable, usages, (Material::EcPublic(keys.0), Material::EcPrivate(keys.1)))
        }
        Algorithm::Ed25519 => {
            let seed = random_bytes(32);
            let secret = ed25519_dalek::SigningKey::from_bytes(&seed[..].try_into().expect("32 bytes"));
            let keys = (Material::Ed25519Public(secret.verifying_key()), Material::Ed25519Private(secret));
            pair(description, extractable, usages, keys)
        }
        Algorithm::X25519 => {
            let seed = random_bytes(32);
            let secret = x25519_dalek::StaticSecret::from(<[u8; 32]>::try_from(&seed[..]).expect("32 bytes"));
            let keys =
                (Material::X25519Public(x25519_dalek::PublicKey::from(&secret)), Material::X25519Private(secret));
            pair(description, extractable, usages, keys)
        }
        Algorithm::RsassaPkcs1V15 | Algorithm::RsaPss | Algorithm::RsaOaep => {
            let bits = *params.require(params.modulus_length.as_ref(), "modulusLength")?;
            let exponent_bytes = params.require(params.public_exponent.as_ref(), "publicExponent")?;
            description.hash = Some(params.hash()?);
            if !(RSA_MODULUS_BITS_MIN..=RSA_MODULUS_BITS_MAX).contains(&bits) || bits % 8 != 0 {
                return Err(operation(format!(
                    "RSA modulusLength must be a multiple of 8 from {RSA_MODULUS_BITS_MIN} to {RSA_MODULUS_BITS_MAX}"
                )));
            }
            let exponent = public_exponent(exponent_bytes)?;
            let private =
                rsa::PrivateKey::new_with_exp(&mut Stoppable { stop }, bits as usize, rsa::BoxedUint::from(exponent))
                    .map_err(|e| match stop() {
                    true => operation("RSA key generation stopped: the call's CPU time is spent"),
                    false => operation(format!("RSA key generation failed: {e}")),
                })?;
            description.modulus_length = Some(bits);
            description.public_exponent = Some(exponent_bytes.iter().copied().skip_while(|b| *b == 0).collect());
            let public = private.to_public_key();
            pair(
                description,
                extractable,
                usages,
                (Material::RsaPublic(Box::new(public)), Material::RsaPrivate(Box::new(private))),
            )
        }
        Algorithm::Hkdf | Algorithm::Pbkdf2 => {
            Err(crate::error::not_supported(format!("{} keys cannot be generated", algorithm.name())))
        }
    }
}
