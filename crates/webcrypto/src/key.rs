//! A `CryptoKey`'s host side: its type, extractability, algorithm and
//! usages, and the key material, which never leaves this crate except
//! through [`crate::export_key`] of an extractable key. `Debug` shows
//! everything but the material.

use crate::error::{Result, syntax, type_error};
use crate::params::{Algorithm, Curve, Hash};
use zeroize::Zeroizing;

/// `CryptoKey.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Secret,
    Public,
    Private,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Secret => "secret",
            KeyType::Public => "public",
            KeyType::Private => "private",
        }
    }
}

/// `CryptoKey.usages`: a set of the spec's eight usages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usages(u8);

impl Usages {
    pub const ENCRYPT: Usages = Usages(1);
    pub const DECRYPT: Usages = Usages(2);
    pub const SIGN: Usages = Usages(4);
    pub const VERIFY: Usages = Usages(8);
    pub const DERIVE_KEY: Usages = Usages(16);
    pub const DERIVE_BITS: Usages = Usages(32);
    pub const WRAP_KEY: Usages = Usages(64);
    pub const UNWRAP_KEY: Usages = Usages(128);
    /// In the order the spec lists them (and `usages` shows them).
    const NAMES: [(&'static str, Usages); 8] = [
        ("encrypt", Usages::ENCRYPT),
        ("decrypt", Usages::DECRYPT),
        ("sign", Usages::SIGN),
        ("verify", Usages::VERIFY),
        ("deriveKey", Usages::DERIVE_KEY),
        ("deriveBits", Usages::DERIVE_BITS),
        ("wrapKey", Usages::WRAP_KEY),
        ("unwrapKey", Usages::UNWRAP_KEY),
    ];

    /// One usage by name (its canonical name and bit); an unknown name is a
    /// `TypeError` (a WebIDL enum).
    fn named(name: &str) -> Result<(&'static str, Usages)> {
        Usages::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .copied()
            .ok_or_else(|| type_error(format!("'{}' is not a valid KeyUsage", crate::params::shorten(name))))
    }

    /// Usages by name; an unknown name is a `TypeError` (a WebIDL enum).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Usages> {
        names.iter().try_fold(Usages(0), |set, name| Ok(set | Usages::named(name.as_ref())?.1))
    }

    pub fn names(self) -> Vec<&'static str> {
        Usages::NAMES.iter().filter(|(_, u)| self.contains(*u)).map(|(n, _)| *n).collect()
    }

    pub fn contains(self, other: Usages) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Those of `self` that are also in `other`.
    pub fn intersect(self, other: Usages) -> Usages {
        Usages(self.0 & other.0)
    }
}

/// Usages as the caller listed them: `CryptoKey.usages` and a JWK's
/// `key_ops` keep this order (and any repeats), as Node does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageList {
    names: Vec<&'static str>,
    set: Usages,
}

impl UsageList {
    /// Usages by name; an unknown name is a `TypeError` (a WebIDL enum).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<UsageList> {
        let named = names.iter().map(|name| Usages::named(name.as_ref())).collect::<Result<Vec<_>>>()?;
        Ok(UsageList::from_named(named.into_iter()))
    }

    fn from_named(named: impl Iterator<Item = (&'static str, Usages)>) -> UsageList {
        named.fold(UsageList::default(), |mut list, (name, usage)| {
            list.names.push(name);
            list.set = list.set | usage;
            list
        })
    }

    /// The set of usages listed.
    pub fn set(&self) -> Usages {
        self.set
    }

    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// Those listed that are in `allowed`, in order.
    pub(crate) fn only(&self, allowed: Usages) -> UsageList {
        let named = self.names.iter().map(|name| Usages::named(name).expect("listed usages are valid names"));
        UsageList::from_named(named.filter(|(_, usage)| allowed.contains(*usage)))
    }
}

impl std::ops::BitOr for Usages {
    type Output = Usages;
    fn bitor(self, other: Usages) -> Usages {
        Usages(self.0 | other.0)
    }
}

/// `CryptoKey.algorithm`: the algorithm and its key parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAlgorithm {
    pub algorithm: Algorithm,
    /// AES key bits; HMAC key bits.
    pub length: Option<u32>,
    /// HMAC and RSA.
    pub hash: Option<Hash>,
    /// ECDSA and ECDH.
    pub named_curve: Option<Curve>,
    /// RSA.
    pub modulus_length: Option<u32>,
    /// RSA, big-endian.
    pub public_exponent: Option<Vec<u8>>,
}

impl KeyAlgorithm {
    pub(crate) fn of(algorithm: Algorithm) -> KeyAlgorithm {
        KeyAlgorithm {
            algorithm,
            length: None,
            hash: None,
            named_curve: None,
            modulus_length: None,
            public_exponent: None,
        }
    }
}

/// Key material of one curve.
#[derive(Clone)]
pub(crate) enum EcSecret {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
}

#[derive(Clone)]
pub(crate) enum EcPublic {
    P256(p256::PublicKey),
    P384(p384::PublicKey),
}

/// The bytes (or parsed form) of a key. Secret parts zeroize on drop.
#[derive(Clone)]
pub(crate) enum Material {
    Secret(Zeroizing<Vec<u8>>),
    EcPrivate(EcSecret),
    EcPublic(EcPublic),
    Ed25519Private(ed25519_dalek::SigningKey),
    Ed25519Public(ed25519_dalek::VerifyingKey),
    X25519Private(x25519_dalek::StaticSecret),
    X25519Public(x25519_dalek::PublicKey),
    RsaPrivate(Box<rsa::PrivateKey>),
    RsaPublic(Box<rsa::PublicKey>),
}

/// A key as the host holds it. JavaScript gets a handle to it.
#[derive(Clone)]
pub struct Key {
    pub(crate) kind: KeyType,
    pub(crate) extractable: bool,
    pub(crate) algorithm: KeyAlgorithm,
    /// The usages in the caller's order.
    pub(crate) listed: UsageList,
    pub(crate) material: Material,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("type", &self.kind)
            .field("extractable", &self.extractable)
            .field("algorithm", &self.algorithm)
            .field("usages", &self.listed.names())
            .finish_non_exhaustive()
    }
}

impl Key {
    pub fn kind(&self) -> KeyType {
        self.kind
    }

    pub fn extractable(&self) -> bool {
        self.extractable
    }

    pub fn algorithm(&self) -> &KeyAlgorithm {
        &self.algorithm
    }

    pub fn usages(&self) -> Usages {
        self.listed.set()
    }

    /// The usages in the order they were given (`CryptoKey.usages`).
    pub fn usage_names(&self) -> &[&'static str] {
        self.listed.names()
    }

    pub(crate) fn new(kind: KeyType, algorithm: KeyAlgorithm, material: Material) -> Key {
        Key { kind, extractable: false, algorithm, listed: UsageList::default(), material }
    }

    /// Sets extractability and usages, checking them against what the
    /// algorithm allows for this type of key (a `SyntaxError` otherwise,
    /// and for a secret or private key with no usages at all).
    pub(crate) fn with_usages(mut self, extractable: bool, listed: &UsageList) -> Result<Key> {
        let usages = listed.set();
        let allowed = allowed_usages(self.algorithm.algorithm, self.kind);
        if !allowed.contains(usages) {
            return Err(syntax(format!(
                "Unsupported key usage for a {} {} key: allowed are [{}]",
                self.algorithm.algorithm.name(),
                self.kind.as_str(),
                allowed.names().join(", ")
            )));
        }
        if usages.is_empty() && self.kind != KeyType::Public {
            return Err(syntax("Usages cannot be empty when creating a key."));
        }
        // Public keys are always extractable.
        self.extractable = extractable || self.kind == KeyType::Public;
        self.listed = listed.clone();
        Ok(self)
    }

    pub(crate) fn secret_bytes(&self) -> Option<&[u8]> {
        match &self.material {
            Material::Secret(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// The usages a key of this algorithm and type may have.
pub(crate) fn allowed_usages(algorithm: Algorithm, kind: KeyType) -> Usages {
    use Algorithm::*;
    match (algorithm, kind) {
        (RsassaPkcs1V15 | RsaPss | Ecdsa | Ed25519, KeyType::Private) => Usages::SIGN,
        (RsassaPkcs1V15 | RsaPss | Ecdsa | Ed25519, KeyType::Public) => Usages::VERIFY,
        (RsaOaep, KeyType::Private) => Usages::DECRYPT | Usages::UNWRAP_KEY,
        (RsaOaep, KeyType::Public) => Usages::ENCRYPT | Usages::WRAP_KEY,
        (Ecdh | X25519, KeyType::Private) => Usages::DERIVE_KEY | Usages::DERIVE_BITS,
        (AesCtr | AesCbc | AesGcm, KeyType::Secret) => {
            Usages::ENCRYPT | Usages::DECRYPT | Usages::WRAP_KEY | Usages::UNWRAP_KEY
        }
        (AesKw, KeyType::Secret) => Usages::WRAP_KEY | Usages::UNWRAP_KEY,
        (Hmac, KeyType::Secret) => Usages::SIGN | Usages::VERIFY,
        (Hkdf | Pbkdf2, KeyType::Secret) => Usages::DERIVE_KEY | Usages::DERIVE_BITS,
        _ => Usages::default(),
    }
}
