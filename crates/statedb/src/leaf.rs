//! How a leaf is keyed and encoded in the store.
//!
//! The store is ordered by key, and its in-memory index keeps the first
//! eight bytes of each key. phalanx's leaf keys share long prefixes (a
//! module byte, then a pool id, then an account), so they are stored under
//! the SHA-256 of the leaf key: uniform, fixed-size, and still a function a
//! light client can compute. The stored value carries the leaf key as well
//! as its value, so the store alone can rebuild the state and a proof names
//! the key it is for.

use commonware_codec::{Copying, Encode, EncodeSize, RangeCfg, Read, Write};
use commonware_cryptography::{Hasher, Sha256, sha256::Digest};

/// Longest leaf key, in bytes.
pub const LEAF_KEY_BYTES_MAX: usize = 256;
/// Largest leaf value, in bytes (agent code is the largest leaf).
pub const LEAF_VALUE_BYTES_MAX: usize = 4 << 20;
/// Largest encoded leaf (key, value and their length prefixes).
pub const STORED_BYTES_MAX: usize = LEAF_KEY_BYTES_MAX + LEAF_VALUE_BYTES_MAX + 16;

/// The key a leaf is stored under: SHA-256 of its leaf key.
pub fn store_key(key: &[u8]) -> Digest {
    Sha256::hash(&[key])
}

/// A leaf as stored: its key and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// The stored form of a leaf (length-prefixed key, then length-prefixed value).
pub fn encode(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len().encode_size() + key.len() + value.len().encode_size() + value.len());
    key.to_vec().write(&mut out);
    value.to_vec().write(&mut out);
    debug_assert_eq!(out, (key.to_vec(), value.to_vec()).encode().to_vec());
    out
}

/// The leaf a stored value holds, with both lengths bounded.
pub fn decode(stored: &[u8]) -> Result<Leaf, commonware_codec::Error> {
    let mut buf = Copying(stored);
    let key = Vec::<u8>::read_cfg(&mut buf, &(RangeCfg::new(..=LEAF_KEY_BYTES_MAX), ()))?;
    let value = Vec::<u8>::read_cfg(&mut buf, &(RangeCfg::new(..=LEAF_VALUE_BYTES_MAX), ()))?;
    let left = buf.0.len();
    if left != 0 {
        return Err(commonware_codec::Error::ExtraData(left));
    }
    Ok(Leaf { key, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_round_trips_and_bounds_hold() {
        let stored = encode(b"\x01\x02key", b"value");
        assert_eq!(decode(&stored).unwrap(), Leaf { key: b"\x01\x02key".to_vec(), value: b"value".to_vec() });
        let mut trailing = stored.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err(), "trailing bytes are refused");
        assert!(decode(&stored[..stored.len() - 1]).is_err(), "a truncated leaf is refused");
        assert!(decode(&encode(&[7; LEAF_KEY_BYTES_MAX + 1], b"")).is_err(), "an oversized key is refused");
        assert_ne!(store_key(b"a"), store_key(b"b"));
    }
}
