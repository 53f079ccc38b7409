//! Key derivation: HKDF (`hkdf`), PBKDF2 (`pbkdf2`), ECDH over P-256 and
//! P-384 and X25519 (`x25519-dalek`). PBKDF2's work is bounded so one call
//! stays well inside an agent call's CPU limit.

use crate::error::{Result, invalid_access, not_supported, operation, type_error};
use crate::key::{EcPublic, EcSecret, Key, KeyType, Material};
use crate::params::{Algorithm, Params, with_hash};

/// Most PBKDF2 iterations one derivation may ask for (Cloudflare Workers
/// refuses more than 100,000 too).
pub const PBKDF2_ITERATIONS_MAX: u32 = 100_000;

/// Most HMAC computations one PBKDF2 derivation may cost: iterations times
/// output blocks (a block is one hash output). 250,000 HMAC-SHA-512 take
/// about a quarter of the default 500 ms CPU limit of a call.
pub const PBKDF2_WORK_MAX: u64 = 250_000;

/// Bytes of output for `length` bits, which must be a whole number of bytes.
fn whole_bytes(length: Option<u32>, what: &str) -> Result<usize> {
    match length {
        None => Err(operation(format!("{what}: length cannot be null"))),
        Some(bits) if bits % 8 != 0 => Err(operation(format!("{what}: length must be a multiple of 8"))),
        Some(bits) => Ok((bits / 8) as usize),
    }
}

fn hkdf(params: &Params, secret: &[u8], length: Option<u32>) -> Result<Vec<u8>> {
    let hash = params.hash()?;
    let salt = params.require(params.salt.as_ref(), "salt")?;
    let info = params.require(params.info.as_ref(), "info")?;
    let bytes = whole_bytes(length, "HKDF")?;
    if bytes > 255 * hash.output_len() {
        return Err(operation(format!(
            "HKDF with {} derives at most {} bits",
            hash.name(),
            255 * hash.output_len() * 8
        )));
    }
    let mut out = vec![0u8; bytes];
    with_hash!(hash, D => hkdf::Hkdf::<D>::new(Some(salt), secret).expand(info, &mut out))
        .map_err(|_| operation("HKDF: invalid length"))?;
    Ok(out)
}

fn pbkdf2(params: &Params, secret: &[u8], length: Option<u32>) -> Result<Vec<u8>> {
    let hash = params.hash()?;
    let salt = params.require(params.salt.as_ref(), "salt")?;
    let iterations = *params.require(params.iterations.as_ref(), "iterations")?;
    let bytes = whole_bytes(length, "PBKDF2")?;
    if iterations == 0 {
        return Err(operation("PBKDF2: iterations must be greater than 0"));
    }
    if iterations > PBKDF2_ITERATIONS_MAX {
        return Err(not_supported(format!("PBKDF2: iteration counts above {PBKDF2_ITERATIONS_MAX} are not supported")));
    }
    let blocks = bytes.div_ceil(hash.output_len()) as u64;
    if u64::from(iterations) * blocks > PBKDF2_WORK_MAX {
        return Err(not_supported(format!(
            "PBKDF2: {iterations} iterations for {bytes} bytes is more than {PBKDF2_WORK_MAX} HMAC computations"
        )));
    }
    let mut out = vec![0u8; bytes];
    if bytes > 0 {
        with_hash!(hash, D => pbkdf2::pbkdf2_hmac::<D>(secret, salt, iterations, &mut out));
    }
    Ok(out)
}

/// The first `length` bits of a shared secret (all of it for `None`).
fn truncate(mut secret: Vec<u8>, length: Option<u32>) -> Result<Vec<u8>> {
    let Some(bits) = length else { return Ok(secret) };
    let bits = bits as usize;
    if bits > secret.len() * 8 {
        return Err(operation(format!("the shared secret has {} bits, not {bits}", secret.len() * 8)));
    }
    secret.truncate(bits.div_ceil(8));
    if !bits.is_multiple_of(8) {
        let last = secret.len() - 1;
        secret[last] &= 0xffu8 << (8 - bits % 8);
    }
    Ok(secret)
}

/// The other party's public key from `params.public`, checked.
fn peer<'a>(params: &'a Params, key: &Key) -> Result<&'a Key> {
    let public = params.require(params.public.as_ref(), "public")?;
    if public.kind != KeyType::Public {
        return Err(invalid_access("algorithm.public must be a public key"));
    }
    if public.algorithm.algorithm != key.algorithm.algorithm {
        return Err(invalid_access("algorithm.public is a key of another algorithm"));
    }
    if public.algorithm.named_curve != key.algorithm.named_curve {
        return Err(invalid_access("algorithm.public is on another curve"));
    }
    Ok(public)
}

fn ecdh(params: &Params, key: &Key) -> Result<Vec<u8>> {
    let public = peer(params, key)?;
    match (&key.material, &public.material) {
        (Material::EcPrivate(EcSecret::P256(s)), Material::EcPublic(EcPublic::P256(p))) => {
            Ok(p256::ecdh::diffie_hellman(s.to_nonzero_scalar(), p.as_affine()).raw_secret_bytes().to_vec())
        }
        (Material::EcPrivate(EcSecret::P384(s)), Material::EcPublic(EcPublic::P384(p))) => {
            Ok(p384::ecdh::diffie_hellman(s.to_nonzero_scalar(), p.as_affine()).raw_secret_bytes().to_vec())
        }
        _ => Err(invalid_access("algorithm.public does not match the key")),
    }
}

fn x25519(params: &Params, key: &Key) -> Result<Vec<u8>> {
    let public = peer(params, key)?;
    match (&key.material, &public.material) {
        (Material::X25519Private(s), Material::X25519Public(p)) => {
            let shared = s.diffie_hellman(p);
            if !shared.was_contributory() {
                return Err(operation("X25519: the shared secret is all zeros (a small-order public key)"));
            }
            Ok(shared.as_bytes().to_vec())
        }
        _ => Err(invalid_access("algorithm.public does not match the key")),
    }
}

/// `deriveBits` with `key`, which the caller has checked has the
/// algorithm and the usage.
pub(crate) fn derive_bits(params: &Params, key: &Key, length: Option<u32>) -> Result<Vec<u8>> {
    match (key.algorithm.algorithm, &key.material) {
        (Algorithm::Hkdf, Material::Secret(secret)) => hkdf(params, secret, length),
        (Algorithm::Pbkdf2, Material::Secret(secret)) => pbkdf2(params, secret, length),
        (Algorithm::Ecdh, _) => truncate(ecdh(params, key)?, length),
        (Algorithm::X25519, _) => truncate(x25519(params, key)?, length),
        (other, _) => Err(type_error(format!("{} does not derive bits", other.name()))),
    }
}
