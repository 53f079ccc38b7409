//! Encryption and decryption: AES-GCM, AES-CBC, AES-CTR (RustCrypto's
//! `aes-gcm`, `cbc`, `ctr`), AES-KW (`aes-kw`) and RSA-OAEP (`rsa`), with
//! the spec's parameter checks and error names.

use crate::error::{Result, not_supported, operation, type_error};
use crate::key::{Key, Material};
use crate::params::{Params, with_hash};
use aes::cipher::consts::{U12, U13, U14, U15, U16};
use aes::cipher::{BlockCipherEncrypt, BlockSizeUser, KeyInit};
use aes_gcm::AesGcm;
use aes_gcm::aead::array::{Array, ArraySize};
use aes_gcm::aead::{Aead, Payload};

/// Runs `$body` with `$aes` bound to the AES type for a key of `$len` bytes.
macro_rules! with_aes {
    ($len:expr, $aes:ident => $body:expr) => {
        match $len {
            16 => {
                type $aes = aes::Aes128;
                $body
            }
            24 => {
                type $aes = aes::Aes192;
                $body
            }
            32 => {
                type $aes = aes::Aes256;
                $body
            }
            other => Err($crate::error::data(format!("AES keys are 16, 24 or 32 bytes, not {other}"))),
        }
    };
}

fn aes_key(key: &Key) -> Result<&[u8]> {
    key.secret_bytes().ok_or_else(|| crate::error::invalid_access("not an AES key"))
}

/// AES-GCM with a nonce of `N` bytes and a tag of `T` bytes.
fn gcm<A, N, T>(key: &[u8], iv: &[u8], aad: &[u8], data: &[u8], encrypt: bool) -> Result<Vec<u8>>
where
    A: BlockSizeUser<BlockSize = U16> + BlockCipherEncrypt + KeyInit,
    N: ArraySize,
    T: aes_gcm::TagSize,
{
    let cipher = AesGcm::<A, N, T>::new_from_slice(key).map_err(|_| operation("bad AES key length"))?;
    let nonce = Array::<u8, N>::try_from(iv).map_err(|_| operation("bad AES-GCM iv length"))?;
    let payload = Payload { msg: data, aad };
    if encrypt {
        cipher.encrypt(&nonce, payload).map_err(|_| operation("AES-GCM encryption failed"))
    } else {
        cipher.decrypt(&nonce, payload).map_err(|_| operation("The operation failed for an operation-specific reason"))
    }
}

/// Most bytes of plaintext AES-GCM takes at once (2^39 - 256 bits, the spec's bound).
const GCM_PLAINTEXT_MAX: u64 = ((1u64 << 39) - 256) / 8;

fn aes_gcm(params: &Params, key: &Key, data: &[u8], encrypt: bool) -> Result<Vec<u8>> {
    let iv = params.require(params.iv.as_ref(), "iv")?;
    if data.len() as u64 > GCM_PLAINTEXT_MAX {
        return Err(operation("AES-GCM: the data is too long"));
    }
    let tag_bits = params.tag_length.unwrap_or(128);
    if ![32, 64, 96, 104, 112, 120, 128].contains(&tag_bits) {
        return Err(operation(format!("{tag_bits} is not a valid AES-GCM tag length")));
    }
    if iv.is_empty() {
        return Err(operation("AES-GCM: the iv must not be empty"));
    }
    if !encrypt && data.len() < (tag_bits / 8) as usize {
        return Err(operation("The provided data is too small."));
    }
    let aad = params.additional_data.as_deref().unwrap_or_default();
    let key_bytes = aes_key(key)?;
    macro_rules! by_tag {
        ($aes:ty, $n:ty) => {
            match tag_bits {
                96 => gcm::<$aes, $n, U12>(key_bytes, iv, aad, data, encrypt),
                104 => gcm::<$aes, $n, U13>(key_bytes, iv, aad, data, encrypt),
                112 => gcm::<$aes, $n, U14>(key_bytes, iv, aad, data, encrypt),
                120 => gcm::<$aes, $n, U15>(key_bytes, iv, aad, data, encrypt),
                128 => gcm::<$aes, $n, U16>(key_bytes, iv, aad, data, encrypt),
                other => Err(not_supported(format!("AES-GCM tags of {other} bits are not supported (96 to 128 are)"))),
            }
        };
    }
    with_aes!(key_bytes.len(), A => match iv.len() {
        12 => by_tag!(A, U12),
        16 => by_tag!(A, U16),
        other => Err(not_supported(format!("AES-GCM ivs of {other} bytes are not supported (12 and 16 are)"))),
    })
}

fn aes_cbc(params: &Params, key: &Key, data: &[u8], encrypt: bool) -> Result<Vec<u8>> {
    use aes::cipher::block_padding::Pkcs7;
    use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
    let iv = params.require(params.iv.as_ref(), "iv")?;
    if iv.len() != 16 {
        return Err(operation("algorithm.iv must contain exactly 16 bytes"));
    }
    let key_bytes = aes_key(key)?;
    with_aes!(key_bytes.len(), A => {
        if encrypt {
            let cipher = cbc::Encryptor::<A>::new_from_slices(key_bytes, iv).map_err(|_| operation("bad AES-CBC key or iv"))?;
            Ok(cipher.encrypt_padded_vec::<Pkcs7>(data))
        } else {
            let cipher = cbc::Decryptor::<A>::new_from_slices(key_bytes, iv).map_err(|_| operation("bad AES-CBC key or iv"))?;
            cipher.decrypt_padded_vec::<Pkcs7>(data).map_err(|_| operation("The operation failed for an operation-specific reason"))
        }
    })
}

/// AES-CTR with a counter of `length` bits in the last bits of the
/// counter block: the rest of the block stays fixed, and the counter wraps
/// to zero (the spec refuses data that would reuse a counter value).
fn aes_ctr(params: &Params, key: &Key, data: &[u8]) -> Result<Vec<u8>> {
    use aes::cipher::{KeyIvInit, StreamCipher};
    let counter = params.require(params.counter.as_ref(), "counter")?;
    let length = *params.require(params.length.as_ref(), "length")?;
    if counter.len() != 16 {
        return Err(operation("algorithm.counter must contain exactly 16 bytes"));
    }
    if length == 0 || length > 128 {
        return Err(operation("algorithm.length must be between 1 and 128"));
    }
    let block = u128::from_be_bytes(counter[..].try_into().expect("16 bytes"));
    let mask = if length == 128 { u128::MAX } else { (1u128 << length) - 1 };
    let blocks = (data.len() as u128).div_ceil(16);
    if length < 128 && blocks > (1u128 << length) {
        return Err(operation("The counter would be reused: the data is too long for the counter length"));
    }
    let start = block & mask;
    // Blocks before the counter wraps to zero.
    let before_wrap = (mask - start).saturating_add(1);
    let split = if blocks > before_wrap { (before_wrap * 16) as usize } else { data.len() };
    let key_bytes = aes_key(key)?;
    let mut out = data.to_vec();
    with_aes!(key_bytes.len(), A => {
        let (first, second) = out.split_at_mut(split);
        let mut cipher = ctr::Ctr128BE::<A>::new_from_slices(key_bytes, counter).map_err(|_| operation("bad AES-CTR key"))?;
        cipher.apply_keystream(first);
        if !second.is_empty() {
            let wrapped = (block & !mask).to_be_bytes();
            let mut cipher = ctr::Ctr128BE::<A>::new_from_slices(key_bytes, &wrapped).map_err(|_| operation("bad AES-CTR key"))?;
            cipher.apply_keystream(second);
        }
        Ok(())
    })?;
    Ok(out)
}

/// AES-KW (RFC 3394) wrapping of `data` (a multiple of 8 bytes, at least 16).
pub(crate) fn aes_kw(key: &Key, data: &[u8], wrap: bool) -> Result<Vec<u8>> {
    let key_bytes = aes_key(key)?;
    if wrap && (data.len() < 16 || !data.len().is_multiple_of(8)) {
        return Err(operation("AES-KW wraps data of a multiple of 8 bytes, at least 16"));
    }
    if !wrap && (data.len() < 24 || !data.len().is_multiple_of(8)) {
        return Err(operation("The operation failed for an operation-specific reason"));
    }
    let mut out = vec![0u8; if wrap { data.len() + 8 } else { data.len() - 8 }];
    let failed = |_| operation("The operation failed for an operation-specific reason");
    with_aes!(key_bytes.len(), A => {
        let kw = aes_kw::AesKw::<A>::new_from_slice(key_bytes).map_err(|_| operation("bad AES-KW key"))?;
        if wrap { kw.wrap_key(data, &mut out).map(|_| ()).map_err(failed) } else { kw.unwrap_key(data, &mut out).map(|_| ()).map_err(failed) }
    })?;
    Ok(out)
}

fn rsa_oaep(params: &Params, key: &Key, data: &[u8], encrypt: bool) -> Result<Vec<u8>> {
    let hash = key.algorithm.hash.ok_or_else(|| operation("the RSA key has no hash"))?;
    let label = params.label.clone().unwrap_or_default();
    match (&key.material, encrypt) {
        (Material::RsaPublic(public), true) => {
            let mut rng = crate::generate::rng();
            with_hash!(hash, D => public.encrypt(&mut rng, rsa::Oaep::<D>::new_with_label(label), data))
                .map_err(|e| operation(format!("RSA-OAEP encryption failed: {e}")))
        }
        (Material::RsaPrivate(private), false) => {
            with_hash!(hash, D => private.decrypt(rsa::Oaep::<D>::new_with_label(label), data))
                .map_err(|_| operation("The operation failed for an operation-specific reason"))
        }
        _ => Err(crate::error::invalid_access("The requested operation is not valid for the provided key")),
    }
}

/// `encrypt` (`true`) or `decrypt` of `data` with `key`, which the caller
/// has checked has the algorithm and the usage.
pub(crate) fn crypt(params: &Params, key: &Key, data: &[u8], encrypt: bool) -> Result<Vec<u8>> {
    use crate::params::Algorithm::*;
    match key.algorithm.algorithm {
        AesGcm => aes_gcm(params, key, data, encrypt),
        AesCbc => aes_cbc(params, key, data, encrypt),
        AesCtr => aes_ctr(params, key, data),
        RsaOaep => rsa_oaep(params, key, data, encrypt),
        other => Err(type_error(format!("{} does not encrypt", other.name()))),
    }
}
