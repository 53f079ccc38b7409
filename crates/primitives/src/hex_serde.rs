//! Byte strings in JSON as `0x`-prefixed lowercase hex, for `#[serde(with = "phalanx_primitives::hex_serde")]`.
//!
//! Deserializing accepts at most [`HEX_BYTES_MAX`] bytes, so a hostile JSON
//! document cannot make us allocate more than that per field.

use serde::{Deserialize, Deserializer, Serializer};

/// Largest byte string accepted from hex, in bytes.
pub const HEX_BYTES_MAX: usize = 1 << 20;

pub fn serialize<S: Serializer, T: AsRef<[u8]>>(bytes: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("0x{}", hex::encode(bytes.as_ref())))
}

pub fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<Vec<u8>>>(deserializer: D) -> Result<T, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
    let digits = text.strip_prefix("0x").unwrap_or(&text);
    if digits.len() > 2 * HEX_BYTES_MAX {
        return Err(serde::de::Error::custom(format!("hex string longer than {HEX_BYTES_MAX} bytes")));
    }
    let bytes = hex::decode(digits).map_err(serde::de::Error::custom)?;
    let len = bytes.len();
    T::try_from(bytes).map_err(|_| serde::de::Error::custom(format!("{len} bytes is not a valid length here")))
}
