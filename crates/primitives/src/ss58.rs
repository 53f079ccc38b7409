//! SS58 addresses (Substrate's format), so Polkadot-ecosystem users recognise
//! phalanx accounts. Phala's prefix, 30, is used for display.
//!
//! Format: base58(prefix ‖ public key ‖ checksum), where the checksum is the
//! first two bytes of BLAKE2b-512(`"SS58PRE"` ‖ prefix ‖ public key).

use blake2::{Blake2b512, Digest};

/// The SS58 prefix phalanx prints addresses with (Phala's).
pub const SS58_PREFIX: u16 = 30;

/// Why text is not an address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("address is not valid base58")]
    Base58,
    #[error("address has the wrong length for a 32-byte account")]
    Length,
    #[error("address checksum does not match (a typo?)")]
    Checksum,
    #[error("hex account must be 32 bytes written as 0x followed by 64 hex digits")]
    Hex,
}

fn checksum(payload: &[u8]) -> [u8; 2] {
    let digest = Blake2b512::new().chain_update(b"SS58PRE").chain_update(payload).finalize();
    [digest[0], digest[1]]
}

fn prefix_bytes(prefix: u16) -> Vec<u8> {
    assert!(prefix < 16384, "SS58 prefixes are 14-bit");
    if prefix < 64 {
        vec![prefix as u8]
    } else {
        // Two-byte form, as defined by the SS58 specification.
        let first = ((prefix & 0b1111_1100) as u8 >> 2) | 0b0100_0000;
        let second = ((prefix >> 8) as u8) | ((prefix & 0b11) as u8) << 6;
        vec![first, second]
    }
}

/// Encodes a 32-byte public key under `prefix`.
pub fn encode(public: &[u8; 32], prefix: u16) -> String {
    let mut payload = prefix_bytes(prefix);
    payload.extend_from_slice(public);
    let check = checksum(&payload);
    payload.extend_from_slice(&check);
    bs58::encode(payload).into_string()
}

/// Decodes an address with any prefix; returns the key and the prefix.
pub fn decode(text: &str) -> Result<([u8; 32], u16), AddressError> {
    if text.len() > 64 {
        return Err(AddressError::Length);
    }
    let bytes = bs58::decode(text).into_vec().map_err(|_| AddressError::Base58)?;
    let (prefix, prefix_len) = match bytes.first() {
        Some(&b) if b < 64 => (b as u16, 1),
        Some(&b) if b < 128 && bytes.len() > 1 => {
            let lower = ((b << 2) | (bytes[1] >> 6)) as u16;
            let upper = (bytes[1] & 0b0011_1111) as u16;
            (lower | (upper << 8), 2)
        }
        _ => return Err(AddressError::Base58),
    };
    if bytes.len() != prefix_len + 32 + 2 {
        return Err(AddressError::Length);
    }
    let (payload, check) = bytes.split_at(prefix_len + 32);
    if checksum(payload) != check {
        return Err(AddressError::Checksum);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&payload[prefix_len..]);
    Ok((key, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substrate_vector() {
        // Alice's well-known sr25519 public key and its generic-prefix (42) address.
        let alice: [u8; 32] = hex::decode("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(encode(&alice, 42), "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
        assert_eq!(decode("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"), Ok((alice, 42)));
    }

    #[test]
    fn roundtrip_prefixes_and_errors() {
        let key = [9u8; 32];
        for prefix in [0, 30, 42, 63, 64, 1284, 16383] {
            assert_eq!(decode(&encode(&key, prefix)), Ok((key, prefix)));
        }
        let mut text = encode(&key, 30).into_bytes();
        let last = text.len() - 1;
        text[last] = if text[last] == b'2' { b'3' } else { b'2' };
        assert!(decode(std::str::from_utf8(&text).unwrap()).is_err());
        assert_eq!(decode("0OIl"), Err(AddressError::Base58));
        assert_eq!(decode("1111"), Err(AddressError::Length));
    }
}
