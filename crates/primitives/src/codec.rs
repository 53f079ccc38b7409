//! Canonical binary encoding (borsh) and bounded decoding of untrusted bytes.
//!
//! Every decode of bytes that came from outside the process goes through
//! [`decode_bounded`]: the input length is checked against a caller-chosen
//! maximum *before* parsing, the whole input must be consumed (no trailing
//! bytes, so each value has exactly one encoding), and borsh itself never
//! pre-allocates more than the input could hold.

use borsh::{BorshDeserialize, BorshSerialize};

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("input is {len} bytes, more than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// Encodes a value in its canonical form.
pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("borsh encoding into a Vec cannot fail")
}

/// Decodes a value from at most `max_bytes` bytes, rejecting trailing bytes.
pub fn decode_bounded<T: BorshDeserialize>(bytes: &[u8], max_bytes: usize) -> Result<T, DecodeError> {
    if bytes.len() > max_bytes {
        return Err(DecodeError::TooLarge { len: bytes.len(), max: max_bytes });
    }
    borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_oversized_and_trailing() {
        let bytes = encode(&(7u32, vec![1u8, 2, 3]));
        let ok: (u32, Vec<u8>) = decode_bounded(&bytes, 64).unwrap();
        assert_eq!(ok, (7, vec![1, 2, 3]));
        assert!(matches!(decode_bounded::<(u32, Vec<u8>)>(&bytes, 4), Err(DecodeError::TooLarge { .. })));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(decode_bounded::<(u32, Vec<u8>)>(&trailing, 64), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A vector claiming 2^32-1 elements in an 8-byte input must fail fast.
        let bytes = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(decode_bounded::<Vec<u64>>(&bytes, 64).is_err());
    }
}
