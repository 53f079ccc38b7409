//! `importKey` and `exportKey` in the spec's four formats: `raw`, `pkcs8`
//! and `spki` (DER, parsed and written by RustCrypto's `pkcs8`, `spki` and
//! the algorithm crates) and `jwk` (RFC 7517 JSON, base64url members).

use crate::error::{Result, data, invalid_access, not_supported, syntax};
use crate::generate::hmac_length;
use crate::key::{EcPublic, EcSecret, Key, KeyAlgorithm, KeyType, Material, UsageList, Usages, allowed_usages};
use crate::params::{Algorithm, Curve, Hash, Params, shorten};
use base64ct::{Base64UrlUnpadded, Encoding};
use pkcs8::der::{Decode, Encode};
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use serde::Deserialize;
use spki::{DecodePublicKey, EncodePublicKey};
use zeroize::Zeroizing;

/// Most bytes of key data (DER, raw or a JWK's JSON) one import takes.
pub const KEY_DATA_BYTES_MAX: usize = 64 * 1024;

/// A key format (`KeyFormat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Pkcs8,
    Spki,
    Jwk,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Pkcs8 => "pkcs8",
            Format::Spki => "spki",
            Format::Jwk => "jwk",
        }
    }

    /// An unknown format is a `TypeError` (a WebIDL enum).
    pub fn parse(name: &str) -> Result<Format> {
        match name {
            "raw" => Ok(Format::Raw),
            "pkcs8" => Ok(Format::Pkcs8),
            "spki" => Ok(Format::Spki),
            "jwk" => Ok(Format::Jwk),
            other => Err(crate::error::type_error(format!("'{}' is not a valid KeyFormat", shorten(other)))),
        }
    }
}

/// Key data: bytes for `raw`, `pkcs8` and `spki`; a JWK's JSON text for `jwk`.
#[derive(Clone, Debug)]
pub enum KeyData {
    Bytes(Zeroizing<Vec<u8>>),
    Jwk(Zeroizing<String>),
}

/// A JSON Web Key's members (RFC 7517, 7518, 8037).
#[derive(Default, Deserialize)]
struct Jwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    ext: Option<bool>,
    crv: Option<String>,
    k: Option<Zeroizing<String>>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<Zeroizing<String>>,
    p: Option<Zeroizing<String>>,
    q: Option<Zeroizing<String>>,
    dp: Option<Zeroizing<String>>,
    dq: Option<Zeroizing<String>>,
    qi: Option<Zeroizing<String>>,
    oth: Option<serde_json::Value>,
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// Base64url of secret bytes, in a string zeroized on drop.
fn b64_secret(bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(b64(bytes))
}

fn unb64<S: AsRef<str>>(member: &Option<S>, name: &str) -> Result<Zeroizing<Vec<u8>>> {
    let text =
        member.as_ref().map(AsRef::as_ref).ok_or_else(|| data(format!("The JWK member \"{name}\" is missing")))?;
    Base64UrlUnpadded::decode_vec(text)
        .map(Zeroizing::new)
        .map_err(|_| data(format!("The JWK member \"{name}\" is not valid base64url")))
}

impl Jwk {
    fn parse(text: &str) -> Result<Jwk> {
        serde_json::from_str(text).map_err(|e| data(format!("Invalid JWK: {e}")))
    }

    /// The checks every JWK import makes: `kty`, `use`, `key_ops`, `ext`, `alg`.
    fn check(&self, kty: &str, use_: &str, alg: Option<&str>, extractable: bool, usages: &UsageList) -> Result<()> {
        let usages = usages.set();
        if self.kty.as_deref() != Some(kty) {
            return Err(data(format!("The JWK \"kty\" member was not \"{kty}\"")));
        }
        if !usages.is_empty() && self.use_.as_deref().is_some_and(|u| u != use_) {
            return Err(data(format!("The JWK \"use\" member was not \"{use_}\"")));
        }
        if let Some(ops) = &self.key_ops {
            let listed = Usages::parse(ops).map_err(|e| data(e.message))?;
            if ops.len() != listed.names().len() {
                return Err(data("The JWK \"key_ops\" member contains duplicates"));
            }
            if !listed.contains(usages) {
                return Err(data(
                    "The JWK \"key_ops\" member was inconsistent with that specified by the Web Crypto call",
                ));
            }
        }
        if self.ext == Some(false) && extractable {
            return Err(data("The JWK \"ext\" member was inconsistent with that specified by the Web Crypto call"));
        }
        if let (Some(given), Some(expected)) = (&self.alg, alg)
            && given != expected
        {
            return Err(data(format!("The JWK \"alg\" member was not \"{expected}\"")));
        }
        Ok(())
    }
}

/// The JWK `alg` of a key of this algorithm.
fn jwk_alg(algorithm: &KeyAlgorithm) -> Option<String> {
    let suffix = algorithm.hash.map(Hash::jwk_suffix);
    let length = algorithm.length.unwrap_or(0);
    Some(match algorithm.algorithm {
        Algorithm::Hmac => format!("HS{}", suffix?),
        Algorithm::AesGcm => format!("A{length}GCM"),
        Algorithm::AesCbc => format!("A{length}CBC"),
        Algorithm::AesCtr => format!("A{length}CTR"),
        Algorithm::AesKw => format!("A{length}KW"),
        Algorithm::RsassaPkcs1V15 => format!("RS{}", suffix?),
        Algorithm::RsaPss => format!("PS{}", suffix?),
        Algorithm::RsaOaep => match algorithm.hash? {
            Hash::Sha1 => "RSA-OAEP".to_string(),
            hash => format!("RSA-OAEP-{}", hash.jwk_suffix()),
        },
        _ => return None,
    })
}

fn jwk_use(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Hmac | Algorithm::Ecdsa | Algorithm::Ed25519 | Algorithm::RsassaPkcs1V15 | Algorithm::RsaPss => {
            "sig"
        }
        _ => "enc",
    }
}

fn bytes(key_data: &KeyData) -> Result<&[u8]> {
    match key_data {
        KeyData::Bytes(bytes) => Ok(bytes),
        KeyData::Jwk(_) => Err(crate::error::type_error("key data must be a BufferSource for this format")),
    }
}

fn jwk_text(key_data: &KeyData) -> Result<&str> {
    match key_data {
        KeyData::Jwk(text) => Ok(text),
        KeyData::Bytes(_) => Err(crate::error::type_error("key data must be a JsonWebKey for the jwk format")),
    }
}

fn unsupported_format(algorithm: Algorithm, format: Format) -> crate::error::Error {
    not_supported(format!("Unable to import {} key with format {}", algorithm.name(), format.name()))
}

/// The usages a key of this kind may have, checked before any parsing.
fn check_usages(algorithm: Algorithm, kinds: &[KeyType], usages: &UsageList) -> Result<()> {
    let usages = usages.set();
    let allowed = kinds.iter().fold(Usages::default(), |set, kind| set | allowed_usages(algorithm, *kind));
    if !allowed.contains(usages) {
        return Err(syntax(format!(
            "Unsupported key usage for a {} key: allowed are [{}]",
            algorithm.name(),
            allowed.names().join(", ")
        )));
    }
    Ok(())
}

fn import_secret(
    format: Format,
    key_data: &KeyData,
    params: &Params,
    extractable: bool,
    usages: &UsageList,
) -> Result<Key> {
    let algorithm = params.algorithm()?;
    check_usages(algorithm, &[KeyType::Secret], usages)?;
    let mut description = KeyAlgorithm::of(algorithm);
    let secret: Zeroizing<Vec<u8>> = match format {
        Format::Raw => Zeroizing::new(bytes(key_data)?.to_vec()),
        Format::Jwk if !matches!(algorithm, Algorithm::Hkdf | Algorithm::Pbkdf2) => {
            let jwk = Jwk::parse(jwk_text(key_data)?)?;
            let k = unb64(&jwk.k, "k")?;
            let mut expected = description.clone();
            expected.length = Some(k.len() as u32 * 8);
            if algorithm == Algorithm::Hmac {
                expected.hash = Some(params.hash()?);
            }
            jwk.check("oct", jwk_use(algorithm), jwk_alg(&expected).as_deref(), extractable, usages)?;
            k
        }
        _ => return Err(unsupported_format(algorithm, format)),
    };
    match algorithm {
        Algorithm::Hmac => {
            description.hash = Some(params.hash()?);
            let bits = secret.len() as u32 * 8;
            if bits == 0 {
                return Err(data("HMAC key data must not be empty"));
            }
            // Node takes only a length equal to the key data's.
            let length = match params.length {
                None => bits,
                Some(length) if length != bits => {
                    return Err(data(format!("HMAC key length {length} does not match key data of {bits} bits")));
                }
                Some(length) => length,
            };
            let _ = hmac_length(params)?;
            description.length = Some(length);
        }
        Algorithm::Hkdf | Algorithm::Pbkdf2 => {
            if extractable {
                return Err(syntax(format!("{} keys cannot be extractable", algorithm.name())));
            }
        }
        _ => {
            let bits = secret.len() as u32 * 8;
            if ![128, 192, 256].contains(&bits) {
                return Err(data(format!("AES key data must be 128, 192 or 256 bits, not {bits}")));
            }
            description.length = Some(bits);
        }
    }
    Key::new(KeyType::Secret, description, Material::Secret(secret)).with_usages(extractable, usages)
}

fn ec_public(curve: Curve, point: &[u8]) -> Result<EcPublic> {
    let invalid = |_| data("Invalid EC public key: not a point on the curve");
    Ok(match curve {
        Curve::P256 => EcPublic::P256(p256::PublicKey::from_sec1_bytes(point).map_err(invalid)?),
        Curve::P384 => EcPublic::P384(p384::PublicKey::from_sec1_bytes(point).map_err(invalid)?),
    })
}

fn ec_point(public: &EcPublic) -> Vec<u8> {
    use p256::elliptic_curve::sec1::ToSec1Point;
    match public {
        EcPublic::P256(key) => key.as_affine().to_sec1_point(false).as_bytes().to_vec(),
        EcPublic::P384(key) => key.as_affine().to_sec1_point(false).as_bytes().to_vec(),
    }
}

fn import_ec(
    format: Format,
    key_data: &KeyData,
    params: &Params,
    extractable: bool,
    usages: &UsageList,
) -> Result<Key> {
    let algorithm = params.algorithm()?;
    let curve = params.curve()?;
    let mut description = KeyAlgorithm::of(algorithm);
    description.named_curve = Some(curve);
    let wrong = || data(format!("Invalid key data for {} on {}", algorithm.name(), curve.name()));
    let (kind, material) = match format {
        Format::Raw => (KeyType::Public, Material::EcPublic(ec_public(curve, bytes(key_data)?)?)),
        Format::Spki => {
            let der = bytes(key_data)?;
            let public = match curve {
                Curve::P256 => EcPublic::P256(p256::PublicKey::from_public_key_der(der).map_err(|_| wrong())?),
                Curve::P384 => EcPublic::P384(p384::PublicKey::from_public_key_der(der).map_err(|_| wrong())?),
            };
            (KeyType::Public, Material::EcPublic(public))
        }
        Format::Pkcs8 => {
            let der = bytes(key_data)?;
            let secret = match curve {
                Curve::P256 => EcSecret::P256(p256::SecretKey::from_pkcs8_der(der).map_err(|_| wrong())?),
                Curve::P384 => EcSecret::P384(p384::SecretKey::from_pkcs8_der(der).map_err(|_| wrong())?),
            };
            (KeyType::Private, Material::EcPrivate(secret))
        }
        Format::Jwk => {
            let jwk = Jwk::parse(jwk_text(key_data)?)?;
            let alg = (algorithm == Algorithm::Ecdsa).then_some(match curve {
                Curve::P256 => "ES256",
                Curve::P384 => "ES384",
            });
            jwk.check("EC", jwk_use(algorithm), alg, extractable, usages)?;
            if jwk.crv.as_deref() != Some(curve.name()) {
                return Err(data("The JWK \"crv\" member was inconsistent with the namedCurve"));
            }
            let (x, y) = (unb64(&jwk.x, "x")?, unb64(&jwk.y, "y")?);
            if x.len() != curve.field_len() || y.len() != curve.field_len() {
                return Err(data("The JWK's x and y members have the wrong length for the curve"));
            }
            let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
            let public = ec_public(curve, &point)?;
            match &jwk.d {
                None => (KeyType::Public, Material::EcPublic(public)),
                Some(_) => {
                    let d = unb64(&jwk.d, "d")?;
                    if d.len() != curve.field_len() {
                        return Err(data("The JWK's d member has the wrong length for the curve"));
                    }
                    let secret = match curve {
                        Curve::P256 => EcSecret::P256(p256::SecretKey::from_slice(&d).map_err(|_| wrong())?),
                        Curve::P384 => EcSecret::P384(p384::SecretKey::from_slice(&d).map_err(|_| wrong())?),
                    };
                    if ec_point(&ec_public_of(&secret)) != point {
                        return Err(data("The JWK's d member does not match its x and y"));
                    }
                    (KeyType::Private, Material::EcPrivate(secret))
                }
            }
        }
    };
    Key::new(kind, description, material).with_usages(extractable, usages)
}

pub(crate) fn ec_public_of(secret: &EcSecret) -> EcPublic {
    match secret {
        EcSecret::P256(s) => EcPublic::P256(s.public_key()),
        EcSecret::P384(s) => EcPublic::P384(s.public_key()),
    }
}

/// Object identifiers of the curves of RFC 8410.
const X25519_OID: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.110");
const ED25519_OID: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");

fn okp_32(bytes: &[u8], what: &str) -> Result<[u8; 32]> {
    bytes.try_into().map_err(|_| data(format!("{what} must be 32 bytes")))
}

fn x25519_from_pkcs8(der: &[u8]) -> Result<x25519_dalek::StaticSecret> {
    let info = pkcs8::PrivateKeyInfoRef::from_der(der).map_err(|_| data("Invalid PKCS #8 key data"))?;
    if info.algorithm.oid != X25519_OID {
        return Err(data("The PKCS #8 key is not an X25519 key"));
    }
    // RFC 8410: the private key is an OCTET STRING inside the OCTET STRING.
    let inner = <&pkcs8::der::asn1::OctetStringRef>::from_der(info.private_key.as_bytes())
        .map_err(|_| data("Invalid X25519 private key"))?;
    Ok(x25519_dalek::StaticSecret::from(okp_32(inner.as_bytes(), "an X25519 private key")?))
}

/// RFC 8410 PKCS #8 (version 1, no public key, as Node writes it) of a
/// 32-byte private key.
fn okp_to_pkcs8(oid: pkcs8::ObjectIdentifier, bytes: &[u8; 32]) -> Result<Vec<u8>> {
    let failed = |_| crate::error::operation("cannot encode the key");
    let inner =
        Zeroizing::new(pkcs8::der::asn1::OctetStringRef::new(&bytes[..]).map_err(failed)?.to_der().map_err(failed)?);
    let info = pkcs8::PrivateKeyInfoRef {
        algorithm: spki::AlgorithmIdentifierRef { oid, parameters: None },
        private_key: pkcs8::der::asn1::OctetStringRef::new(&inner).map_err(failed)?,
        public_key: None,
    };
    info.to_der().map_err(failed)
}

fn x25519_from_spki(der: &[u8]) -> Result<x25519_dalek::PublicKey> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| data("Invalid SPKI key data"))?;
    if info.algorithm.oid != X25519_OID {
        return Err(data("The SPKI key is not an X25519 key"));
    }
    let raw = info.subject_public_key.as_bytes().ok_or_else(|| data("Invalid X25519 public key"))?;
    Ok(x25519_dalek::PublicKey::from(okp_32(raw, "an X25519 public key")?))
}

fn x25519_to_spki(public: &x25519_dalek::PublicKey) -> Result<Vec<u8>> {
    let failed = |_| crate::error::operation("cannot encode the X25519 key");
    let info = spki::SubjectPublicKeyInfoRef {
        algorithm: spki::AlgorithmIdentifierRef { oid: X25519_OID, parameters: None },
        subject_public_key: pkcs8::der::asn1::BitStringRef::from_bytes(public.as_bytes()).map_err(failed)?,
    };
    info.to_der().map_err(failed)
}

fn import_okp(
    format: Format,
    key_data: &KeyData,
    params: &Params,
    extractable: bool,
    usages: &UsageList,
) -> Result<Key> {
    let algorithm = params.algorithm()?;
    let description = KeyAlgorithm::of(algorithm);
    let ed = algorithm == Algorithm::Ed25519;
    let wrong = || data(format!("Invalid {} key data", algorithm.name()));
    let public = |raw: &[u8]| -> Result<Material> {
        let raw = okp_32(raw, "the public key")?;
        Ok(if ed {
            Material::Ed25519Public(ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|_| wrong())?)
        } else {
            Material::X25519Public(x25519_dalek::PublicKey::from(raw))
        })
    };
    let private = |raw: &[u8]| -> Result<Material> {
        let raw = Zeroizing::new(okp_32(raw, "the private key")?);
        Ok(if ed {
            Material::Ed25519Private(ed25519_dalek::SigningKey::from_bytes(&raw))
        } else {
            Material::X25519Private(x25519_dalek::StaticSecret::from(*raw))
        })
    };
    let (kind, material) = match format {
        Format::Raw => (KeyType::Public, public(bytes(key_data)?)?),
        Format::Spki if ed => (
            KeyType::Public,
            Material::Ed25519Public(
                ed25519_dalek::VerifyingKey::from_public_key_der(bytes(key_data)?).map_err(|_| wrong())?,
            ),
        ),
        Format::Spki => (KeyType::Public, Material::X25519Public(x25519_from_spki(bytes(key_data)?)?)),
        Format::Pkcs8 if ed => (
            KeyType::Private,
            Material::Ed25519Private(ed25519_dalek::SigningKey::from_pkcs8_der(bytes(key_data)?).map_err(|_| wrong())?),
        ),
        Format::Pkcs8 => (KeyType::Private, Material::X25519Private(x25519_from_pkcs8(bytes(key_data)?)?)),
        Format::Jwk => {
            let jwk = Jwk::parse(jwk_text(key_data)?)?;
            let alg = ed.then_some("EdDSA");
            let alg = match (&jwk.alg, alg) {
                (Some(given), Some(_)) if given == "Ed25519" => Some("Ed25519"),
                _ => alg,
            };
            jwk.check("OKP", jwk_use(algorithm), alg, extractable, usages)?;
            if jwk.crv.as_deref() != Some(algorithm.name()) {
                return Err(data(format!("The JWK \"crv\" member was not \"{}\"", algorithm.name())));
            }
            let x = unb64(&jwk.x, "x")?;
            match &jwk.d {
                None => (KeyType::Public, public(&x)?),
                Some(_) => {
                    let material = private(&unb64(&jwk.d, "d")?)?;
                    let derived = match &material {
                        Material::Ed25519Private(s) => s.verifying_key().to_bytes(),
                        Material::X25519Private(s) => x25519_dalek::PublicKey::from(s).to_bytes(),
                        _ => unreachable!("an OKP private key"),
                    };
                    if derived[..] != x[..] {
                        return Err(data("The JWK's d member does not match its x"));
                    }
                    (KeyType::Private, material)
                }
            }
        }
    };
    Key::new(kind, description, material).with_usages(extractable, usages)
}

fn uint(bytes: &[u8]) -> rsa::BoxedUint {
    rsa::BoxedUint::from_be_slice_vartime(bytes)
}

fn import_rsa(
    format: Format,
    key_data: &KeyData,
    params: &Params,
    extractable: bool,
    usages: &UsageList,
) -> Result<Key> {
    let algorithm = params.algorithm()?;
    let mut description = KeyAlgorithm::of(algorithm);
    let hash = params.hash()?;
    description.hash = Some(hash);
    let wrong = || data(format!("Invalid key data for {}", algorithm.name()));
    let (kind, material) = match format {
        Format::Spki => {
            let public = rsa::PublicKey::from_public_key_der(bytes(key_data)?).map_err(|_| wrong())?;
            (KeyType::Public, Material::RsaPublic(Box::new(public)))
        }
        Format::Pkcs8 => {
            let private = rsa::PrivateKey::from_pkcs8_der(bytes(key_data)?).map_err(|_| wrong())?;
            (KeyType::Private, Material::RsaPrivate(Box::new(private)))
        }
        Format::Jwk => {
            let jwk = Jwk::parse(jwk_text(key_data)?)?;
            let mut expected = description.clone();
            expected.hash = Some(hash);
            jwk.check("RSA", jwk_use(algorithm), jwk_alg(&expected).as_deref(), extractable, usages)?;
            if jwk.oth.is_some() {
                return Err(not_supported("RSA keys with more than two primes are not supported"));
            }
            let (n, e) = (unb64(&jwk.n, "n")?, unb64(&jwk.e, "e")?);
            if n.len() * 8 > crate::generate::RSA_MODULUS_BITS_MAX as usize + 8 {
                return Err(not_supported("RSA moduli of more than 4096 bits are not supported"));
            }
            match &jwk.d {
                None => {
                    let public = rsa::PublicKey::new(uint(&n), uint(&e)).map_err(|_| wrong())?;
                    (KeyType::Public, Material::RsaPublic(Box::new(public)))
                }
                Some(_) => {
                    let d = unb64(&jwk.d, "d")?;
                    let (p, q) = (unb64(&jwk.p, "p")?, unb64(&jwk.q, "q")?);
                    let private =
                        rsa::PrivateKey::from_components(uint(&n), uint(&e), uint(&d), vec![uint(&p), uint(&q)])
                            .map_err(|_| wrong())?;
                    private.validate().map_err(|_| wrong())?;
                    (KeyType::Private, Material::RsaPrivate(Box::new(private)))
                }
            }
        }
        Format::Raw => return Err(unsupported_format(algorithm, format)),
    };
    let public: &rsa::PublicKey = match &material {
        Material::RsaPublic(public) => public,
        Material::RsaPrivate(private) => private.as_public_key(),
        _ => unreachable!("an RSA key"),
    };
    let bits = public.n().bit_width();
    if bits > crate::generate::RSA_MODULUS_BITS_MAX {
        return Err(not_supported(format!(
            "RSA moduli of more than {} bits are not supported",
            crate::generate::RSA_MODULUS_BITS_MAX
        )));
    }
    description.modulus_length = Some(bits);
    description.public_exponent = Some(public.e().to_be_bytes_trimmed_vartime().to_vec());
    Key::new(kind, description, material).with_usages(extractable, usages)
}

/// `importKey`.
pub(crate) fn import_key(
    format: Format,
    key_data: &KeyData,
    params: &Params,
    extractable: bool,
    usages: &UsageList,
) -> Result<Key> {
    if match key_data {
        KeyData::Bytes(bytes) => bytes.len(),
        KeyData::Jwk(text) => text.len(),
    } > KEY_DATA_BYTES_MAX
    {
        return Err(data(format!("key data is larger than {KEY_DATA_BYTES_MAX} bytes")));
    }
    let algorithm = params.algorithm()?;
    match algorithm {
        Algorithm::AesCtr
        | Algorithm::AesCbc
        | Algorithm::AesGcm
        | Algorithm::AesKw
        | Algorithm::Hmac
        | Algorithm::Hkdf
        | Algorithm::Pbkdf2 => import_secret(format, key_data, params, extractable, usages),
        Algorithm::Ecdsa | Algorithm::Ecdh => {
            check_usages(algorithm, &[KeyType::Public, KeyType::Private], usages)?;
            import_ec(format, key_data, params, extractable, usages)
        }
        Algorithm::Ed25519 | Algorithm::X25519 => {
            check_usages(algorithm, &[KeyType::Public, KeyType::Private], usages)?;
            import_okp(format, key_data, params, extractable, usages)
        }
        Algorithm::RsassaPkcs1V15 | Algorithm::RsaPss | Algorithm::RsaOaep => {
            check_usages(algorithm, &[KeyType::Public, KeyType::Private], usages)?;
            import_rsa(format, key_data, params, extractable, usages)
        }
    }
}

/// An exported key: bytes, or a JWK's JSON text.
#[derive(Debug)]
pub enum Exported {
    Bytes(Zeroizing<Vec<u8>>),
    Jwk(Zeroizing<String>),
}

impl Jwk {
    /// A member's text, by name (only the members export writes).
    fn text(&self, name: &str) -> Option<&str> {
        fn secret(member: &Option<Zeroizing<String>>) -> Option<&str> {
            member.as_ref().map(|s| s.as_str())
        }
        match name {
            "kty" => self.kty.as_deref(),
            "alg" => self.alg.as_deref(),
            "crv" => self.crv.as_deref(),
            "x" => self.x.as_deref(),
            "y" => self.y.as_deref(),
            "n" => self.n.as_deref(),
            "e" => self.e.as_deref(),
            "k" => secret(&self.k),
            "d" => secret(&self.d),
            "p" => secret(&self.p),
            "q" => secret(&self.q),
            "dp" => secret(&self.dp),
            "dq" => secret(&self.dq),
            "qi" => secret(&self.qi),
            _ => None,
        }
    }
}

/// The JWK's JSON text, members in the order Node writes them (so a
/// wrapped JWK is the same bytes in both). Every member written is ASCII
/// that needs no escaping (names, base64url); secrets go only into the
/// zeroized output.
fn jwk_json(jwk: Jwk, key: &Key) -> Result<Exported> {
    let order: &[&str] = match jwk.kty.as_deref() {
        Some("oct") => &["kty", "k", "alg"],
        Some("EC") => &["kty", "x", "y", "crv", "d", "alg"],
        Some("OKP") => &["crv", "d", "x", "kty", "alg"],
        _ => &["kty", "n", "e", "d", "p", "q", "dp", "dq", "qi", "alg"],
    };
    let ops: Vec<String> = key.listed.names().iter().map(|u| format!("\"{u}\"")).collect();
    let mut out = Zeroizing::new(format!("{{\"key_ops\":[{}],\"ext\":{}", ops.join(","), key.extractable));
    for name in order {
        if let Some(text) = jwk.text(name) {
            debug_assert!(text.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'));
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":\"");
            out.push_str(text);
            out.push('"');
        }
    }
    out.push('}');
    Ok(Exported::Jwk(out))
}

fn der(result: std::result::Result<impl AsRef<[u8]>, impl std::fmt::Display>) -> Result<Exported> {
    result
        .map(|bytes| Exported::Bytes(Zeroizing::new(bytes.as_ref().to_vec())))
        .map_err(|e| crate::error::operation(format!("cannot encode the key: {e}")))
}

/// `exportKey`.
pub(crate) fn export_key(format: Format, key: &Key) -> Result<Exported> {
    if !key.extractable {
        return Err(invalid_access("key is not extractable"));
    }
    let algorithm = key.algorithm.algorithm;
    let unsupported = || {
        not_supported(format!(
            "Unable to export {} {} key with format {}",
            algorithm.name(),
            key.kind.as_str(),
            format.name()
        ))
    };
    match (&key.material, format) {
        (Material::Secret(secret), Format::Raw) => Ok(Exported::Bytes(secret.clone())),
        (Material::Secret(secret), Format::Jwk) => jwk_json(
            Jwk {
                kty: Some("oct".into()),
                k: Some(b64_secret(secret)),
                alg: jwk_alg(&key.algorithm),
                ..Jwk::default()
            },
            key,
        ),
        (Material::EcPublic(public), Format::Raw) => Ok(Exported::Bytes(Zeroizing::new(ec_point(public)))),
        (Material::EcPublic(EcPublic::P256(public)), Format::Spki) => {
            der(public.to_public_key_der().map(|d| d.as_bytes().to_vec()))
        }
        (Material::EcPublic(EcPublic::P384(public)), Format::Spki) => {
            der(public.to_public_key_der().map(|d| d.as_bytes().to_vec()))
        }
        (Material::EcPrivate(EcSecret::P256(secret)), Format::Pkcs8) => {
            der(secret.to_pkcs8_der().map(|d| d.as_bytes().to_vec()))
        }
        (Material::EcPrivate(EcSecret::P384(secret)), Format::Pkcs8) => {
            der(secret.to_pkcs8_der().map(|d| d.as_bytes().to_vec()))
        }
        (Material::EcPublic(public), Format::Jwk) => jwk_json(ec_jwk(public, key), key),
        (Material::EcPrivate(secret), Format::Jwk) => {
            let d = match secret {
                EcSecret::P256(s) => b64_secret(&s.to_bytes()),
                EcSecret::P384(s) => b64_secret(&s.to_bytes()),
            };
            jwk_json(Jwk { d: Some(d), ..ec_jwk(&ec_public_of(secret), key) }, key)
        }
        (Material::Ed25519Public(public), Format::Raw) => {
            Ok(Exported::Bytes(Zeroizing::new(public.to_bytes().to_vec())))
        }
        (Material::X25519Public(public), Format::Raw) => {
            Ok(Exported::Bytes(Zeroizing::new(public.to_bytes().to_vec())))
        }
        (Material::Ed25519Public(public), Format::Spki) => {
            der(public.to_public_key_der().map(|d| d.as_bytes().to_vec()))
        }
        (Material::X25519Public(public), Format::Spki) => der(x25519_to_spki(public)),
        (Material::Ed25519Private(secret), Format::Pkcs8) => {
            der(okp_to_pkcs8(ED25519_OID, &Zeroizing::new(secret.to_bytes())))
        }
        (Material::X25519Private(secret), Format::Pkcs8) => {
            der(okp_to_pkcs8(X25519_OID, &Zeroizing::new(secret.to_bytes())))
        }
        (Material::Ed25519Public(public), Format::Jwk) => jwk_json(okp_jwk(&public.to_bytes(), None, key), key),
        (Material::X25519Public(public), Format::Jwk) => jwk_json(okp_jwk(&public.to_bytes(), None, key), key),
        (Material::Ed25519Private(secret), Format::Jwk) => {
            jwk_json(okp_jwk(&secret.verifying_key().to_bytes(), Some(&secret.to_bytes()), key), key)
        }
        (Material::X25519Private(secret), Format::Jwk) => {
            let public = x25519_dalek::PublicKey::from(secret);
            jwk_json(okp_jwk(&public.to_bytes(), Some(&secret.to_bytes()), key), key)
        }
        (Material::RsaPublic(public), Format::Spki) => der(public.to_public_key_der().map(|d| d.as_bytes().to_vec())),
        (Material::RsaPrivate(private), Format::Pkcs8) => der(private.to_pkcs8_der().map(|d| d.as_bytes().to_vec())),
        (Material::RsaPublic(public), Format::Jwk) => jwk_json(rsa_jwk(public, key), key),
        (Material::RsaPrivate(private), Format::Jwk) => {
            let trimmed = |v: &rsa::BoxedUint| b64_secret(&v.to_be_bytes_trimmed_vartime());
            let primes = private.primes();
            if primes.len() != 2 {
                return Err(not_supported("RSA keys with more than two primes cannot be exported as JWK"));
            }
            let (dp, dq, qi) = (private.dp(), private.dq(), private.crt_coefficient());
            let (Some(dp), Some(dq), Some(qi)) = (dp, dq, qi) else {
                return Err(crate::error::operation("the RSA key has no CRT values"));
            };
            let jwk = Jwk {
                d: Some(trimmed(private.d())),
                p: Some(trimmed(primes[0].as_ref())),
                q: Some(trimmed(primes[1].as_ref())),
                dp: Some(trimmed(dp)),
                dq: Some(trimmed(dq)),
                qi: Some(trimmed(&qi)),
                ..rsa_jwk(private.as_public_key(), key)
            };
            jwk_json(jwk, key)
        }
        // A key of the wrong type for the format (a private key as raw or
        // spki, a public one as pkcs8), as Node reports it.
        (_, Format::Raw | Format::Spki) if key.kind == KeyType::Private => {
            Err(invalid_access(format!("a private key cannot be exported as {}", format.name())))
        }
        (_, Format::Pkcs8) if key.kind == KeyType::Public => {
            Err(invalid_access("a public key cannot be exported as pkcs8"))
        }
        _ => Err(unsupported()),
    }
}

fn ec_jwk(public: &EcPublic, key: &Key) -> Jwk {
    let point = ec_point(public);
    let half = (point.len() - 1) / 2;
    Jwk {
        kty: Some("EC".into()),
        crv: key.algorithm.named_curve.map(|c| c.name().to_string()),
        x: Some(b64(&point[1..1 + half])),
        y: Some(b64(&point[1 + half..])),
        ..Jwk::default()
    }
}

fn okp_jwk(x: &[u8], d: Option<&[u8]>, key: &Key) -> Jwk {
    Jwk {
        kty: Some("OKP".into()),
        crv: Some(key.algorithm.algorithm.name().to_string()),
        x: Some(b64(x)),
        d: d.map(b64_secret),
        alg: (key.algorithm.algorithm == Algorithm::Ed25519).then(|| "Ed25519".to_string()),
        ..Jwk::default()
    }
}

fn rsa_jwk(public: &rsa::PublicKey, key: &Key) -> Jwk {
    Jwk {
        kty: Some("RSA".into()),
        n: Some(b64(&public.n().to_be_bytes_trimmed_vartime())),
        e: Some(b64(&public.e().to_be_bytes_trimmed_vartime())),
        alg: jwk_alg(&key.algorithm),
        ..Jwk::default()
    }
}
