//! Signatures and MACs: HMAC (`hmac`), ECDSA over P-256 and P-384 (`p256`,
//! `p384`, signatures as `r || s`), Ed25519 (`ed25519-dalek`),
//! RSASSA-PKCS1-v1_5 and RSA-PSS (`rsa`).

use crate::error::{Result, invalid_access, operation};
use crate::key::{EcPublic, EcSecret, Key, Material};
use crate::params::{Algorithm, Hash, Params, with_hash};
use hmac::{KeyInit, Mac};

fn hmac(hash: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    with_hash!(hash, D => {
        let mut mac = <hmac::Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    })
}

fn hmac_verify(hash: Hash, key: &[u8], data: &[u8], signature: &[u8]) -> bool {
    with_hash!(hash, D => {
        let mut mac = <hmac::Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(data);
        mac.verify_slice(signature).is_ok()
    })
}

fn ecdsa_sign(secret: &EcSecret, hash: Hash, data: &[u8]) -> Result<Vec<u8>> {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let prehash = hash.digest(data);
    let failed = |_| operation("ECDSA signing failed");
    Ok(match secret {
        EcSecret::P256(key) => {
            let signature: p256::ecdsa::Signature =
                p256::ecdsa::SigningKey::from(key).sign_prehash(&prehash).map_err(failed)?;
            signature.to_bytes().to_vec()
        }
        EcSecret::P384(key) => {
            let signature: p384::ecdsa::Signature =
                p384::ecdsa::SigningKey::from(key).sign_prehash(&prehash).map_err(failed)?;
            signature.to_bytes().to_vec()
        }
    })
}

fn ecdsa_verify(public: &EcPublic, hash: Hash, data: &[u8], signature: &[u8]) -> bool {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let prehash = hash.digest(data);
    match public {
        EcPublic::P256(key) => p256::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|s| p256::ecdsa::VerifyingKey::from(key).verify_prehash(&prehash, &s).is_ok()),
        EcPublic::P384(key) => p384::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|s| p384::ecdsa::VerifyingKey::from(key).verify_prehash(&prehash, &s).is_ok()),
    }
}

fn salt_length(params: &Params) -> Result<usize> {
    Ok(*params.require(params.salt_length.as_ref(), "saltLength")? as usize)
}

/// Signs `data` with `key`, which the caller has checked has the
/// algorithm and the `sign` usage.
pub(crate) fn sign(params: &Params, key: &Key, data: &[u8]) -> Result<Vec<u8>> {
    let key_hash = || key.algorithm.hash.ok_or_else(|| operation("the key has no hash"));
    match (key.algorithm.algorithm, &key.material) {
        (Algorithm::Hmac, Material::Secret(secret)) => Ok(hmac(key_hash()?, secret, data)),
        (Algorithm::Ecdsa, Material::EcPrivate(secret)) => ecdsa_sign(secret, params.hash()?, data),
        (Algorithm::Ed25519, Material::Ed25519Private(secret)) => {
            use ed25519_dalek::Signer;
            Ok(secret.sign(data).to_bytes().to_vec())
        }
        (Algorithm::RsassaPkcs1V15, Material::RsaPrivate(private)) => {
            let hash = key_hash()?;
            with_hash!(hash, D => private.sign(rsa::Pkcs1v15Sign::new::<D>(), &hash.digest(data)))
                .map_err(|e| operation(format!("RSASSA-PKCS1-v1_5 signing failed: {e}")))
        }
        (Algorithm::RsaPss, Material::RsaPrivate(private)) => {
            let (hash, salt) = (key_hash()?, salt_length(params)?);
            let mut rng = crate::generate::rng();
            with_hash!(hash, D => private.sign_with_rng(&mut rng, rsa::Pss::<D>::new_with_salt(salt), &hash.digest(data)))
                .map_err(|e| operation(format!("RSA-PSS signing failed: {e}")))
        }
        _ => Err(invalid_access("The requested operation is not valid for the provided key")),
    }
}

/// Whether `signature` is `key`'s over `data` (a malformed signature is
/// simply not valid).
pub(crate) fn verify(params: &Params, key: &Key, signature: &[u8], data: &[u8]) -> Result<bool> {
    let key_hash = || key.algorithm.hash.ok_or_else(|| operation("the key has no hash"));
    Ok(match (key.algorithm.algorithm, &key.material) {
        (Algorithm::Hmac, Material::Secret(secret)) => hmac_verify(key_hash()?, secret, data, signature),
        (Algorithm::Ecdsa, Material::EcPublic(public)) => ecdsa_verify(public, params.hash()?, data, signature),
        (Algorithm::Ed25519, Material::Ed25519Public(public)) => ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|s| ed25519_dalek::Verifier::verify(public, data, &s).is_ok()),
        (Algorithm::RsassaPkcs1V15, Material::RsaPublic(public)) => {
            let hash = key_hash()?;
            with_hash!(hash, D => public.verify(rsa::Pkcs1v15Sign::new::<D>(), &hash.digest(data), signature)).is_ok()
        }
        (Algorithm::RsaPss, Material::RsaPublic(public)) => {
            let (hash, salt) = (key_hash()?, salt_length(params)?);
            with_hash!(hash, D => public.verify(rsa::Pss::<D>::new_with_salt(salt), &hash.digest(data), signature))
                .is_ok()
        }
        _ => return Err(invalid_access("The requested operation is not valid for the provided key")),
    })
}
