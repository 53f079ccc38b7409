//! BIP-39 mnemonics and the dev accounts, derived as Substrate derives ed25519
//! keys, so a phrase restores the same account in Polkadot-ecosystem wallets.
//!
//! Seed: PBKDF2-HMAC-SHA512(password = BIP-39 entropy, salt = "mnemonic",
//! 2048 rounds), first 32 bytes. A hard junction `//name` replaces the seed
//! with BLAKE2b-256(SCALE("Ed25519HDKD") ‖ seed ‖ chain code).

use crate::Keypair;
use blake2::{Blake2b, Digest, digest::consts::U32};
use zeroize::Zeroizing;

/// Substrate's well-known development phrase. Never use it for real funds.
pub const DEV_PHRASE: &str = "bottom drive obey lake curtain smoke basket hold race lonely fit walk";

/// Names of the prefunded development accounts, derived as `DEV_PHRASE//Name`.
pub const DEV_ACCOUNTS: [&str; 4] = ["alice", "bob", "charlie", "dave"];

/// Why a secret phrase could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MnemonicError {
    #[error("not a valid BIP-39 English mnemonic (check the words and their count)")]
    InvalidPhrase,
    #[error("only hard derivation (`//name`) is supported for ed25519 keys")]
    SoftJunction,
}

/// A freshly generated 12-word mnemonic and the account it controls.
pub fn generate() -> (Zeroizing<String>, Keypair) {
    let mut entropy = Zeroizing::new([0u8; 16]);
    getrandom::fill(entropy.as_mut()).expect("the operating system must provide randomness");
    let mnemonic = bip39::Mnemonic::from_entropy(entropy.as_ref()).expect("16 bytes is a valid entropy length");
    let phrase = Zeroizing::new(mnemonic.to_string());
    let keypair = from_secret_uri(&phrase).expect("a generated phrase is valid");
    (phrase, keypair)
}

/// Restores a key from a Substrate-style secret URI: `PHRASE` optionally
/// followed by hard junctions such as `//Alice`.
pub fn from_secret_uri(uri: &str) -> Result<Keypair, MnemonicError> {
    let (phrase, path) = match uri.find('/') {
        Some(index) => (&uri[..index], &uri[index..]),
        None => (uri, ""),
    };
    let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, phrase.trim())
        .map_err(|_| MnemonicError::InvalidPhrase)?;
    let entropy = Zeroizing::new(mnemonic.to_entropy());
    let mut seed64 = Zeroizing::new([0u8; 64]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(&entropy, b"mnemonic", 2048, seed64.as_mut());
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&seed64[..32]);
    if !path.is_empty() {
        for junction in path.strip_prefix("//").ok_or(MnemonicError::SoftJunction)?.split("//") {
            if junction.contains('/') {
                return Err(MnemonicError::SoftJunction);
            }
            *seed = derive_hard(&seed, &chain_code(junction));
        }
    }
    Ok(Keypair::from_seed(&seed))
}

/// The key of a development account (`alice`, `bob`, …; any case).
pub fn dev_keypair(name: &str) -> Option<Keypair> {
    let name = name.to_ascii_lowercase();
    if !DEV_ACCOUNTS.contains(&name.as_str()) {
        return None;
    }
    let mut capitalized = name;
    capitalized[..1].make_ascii_uppercase();
    Some(from_secret_uri(&format!("{DEV_PHRASE}//{capitalized}")).expect("the dev phrase is valid"))
}

/// A junction's chain code: a number as little-endian u64, otherwise the
/// SCALE-encoded string, hashed if longer than 32 bytes, else zero-padded.
fn chain_code(junction: &str) -> [u8; 32] {
    let encoded = match junction.parse::<u64>() {
        Ok(number) => number.to_le_bytes().to_vec(),
        Err(_) => {
            let mut encoded = scale_compact_len(junction.len());
            encoded.extend_from_slice(junction.as_bytes());
            encoded
        }
    };
    let mut code = [0u8; 32];
    if encoded.len() > 32 {
        code.copy_from_slice(&Blake2b::<U32>::digest(&encoded));
    } else {
        code[..encoded.len()].copy_from_slice(&encoded);
    }
    code
}

fn scale_compact_len(len: usize) -> Vec<u8> {
    match len {
        0..=63 => vec![(len as u8) << 2],
        64..=16383 => (((len as u16) << 2) | 0b01).to_le_bytes().to_vec(),
        _ => (((len as u32) << 2) | 0b10).to_le_bytes().to_vec(),
    }
}

fn derive_hard(seed: &[u8; 32], chain_code: &[u8; 32]) -> [u8; 32] {
    let label = b"Ed25519HDKD";
    let mut hasher = Blake2b::<U32>::new();
    hasher.update(scale_compact_len(label.len()));
    hasher.update(label);
    hasher.update(seed);
    hasher.update(chain_code);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ss58;

    #[test]
    fn dev_accounts_match_substrate() {
        // `subkey inspect --scheme ed25519 //Alice` prints this generic-prefix address.
        let alice = dev_keypair("alice").unwrap().public();
        assert_eq!(ss58::encode(&alice.0, 42), "5FA9nQDVg267DEd8m1ZypXLBnvN7SFxYwV7ndqSYGiN9TTpu");
        assert_eq!(dev_keypair("Alice").unwrap().public(), alice);
        assert!(dev_keypair("eve").is_none());
        let names: std::collections::BTreeSet<_> =
            DEV_ACCOUNTS.iter().map(|n| dev_keypair(n).unwrap().public()).collect();
        assert_eq!(names.len(), 4);
    }

    #[test]
    fn generated_phrase_restores_same_key() {
        let (phrase, key) = generate();
        assert_eq!(phrase.split_whitespace().count(), 12);
        assert_eq!(from_secret_uri(&phrase).unwrap().public(), key.public());
        assert_eq!(from_secret_uri("not a phrase").unwrap_err(), MnemonicError::InvalidPhrase);
        assert_eq!(from_secret_uri(&format!("{DEV_PHRASE}/soft")).unwrap_err(), MnemonicError::SoftJunction);
    }
}
