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
    deserialize_at_most(deserializer, HEX_BYTES_MAX)
}

/// Whole blocks (`#[serde(with = "phalanx_primitives::hex_serde::large")]`):
/// at most [`large::HEX_LARGE_BYTES_MAX`] bytes, above the largest block.
pub mod large {
    use serde::{Deserializer, Serializer};

    /// Largest byte string accepted from hex here, in bytes.
    pub const HEX_LARGE_BYTES_MAX: usize = 8 << 20;

    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(bytes: &T, serializer: S) -> Result<S::Ok, S::Error> {
        super::serialize(bytes, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<Vec<u8>>>(deserializer: D) -> Result<T, D::Error> {
        super::deserialize_at_most(deserializer, HEX_LARGE_BYTES_MAX)
    }
}

/// Optional byte strings up to [`large::HEX_LARGE_BYTES_MAX`]
/// (`#[serde(with = "phalanx_primitives::hex_serde::option_large")]`): `null` is `None`.
pub mod option_large {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(bytes: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => super::serialize(bytes, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<Vec<u8>>>(deserializer: D) -> Result<Option<T>, D::Error> {
        #[derive(Deserialize)]
        struct Large<T: TryFrom<Vec<u8>>>(#[serde(with = "super::large")] T);
        Ok(Option::<Large<T>>::deserialize(deserializer)?.map(|Large(bytes)| bytes))
    }
}

fn deserialize_at_most<'de, D: Deserializer<'de>, T: TryFrom<Vec<u8>>>(
    deserializer: D,
    max: usize,
) -> Result<T, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
    let digits = text.strip_prefix("0x").unwrap_or(&text);
    if digits.len() > 2 * max {
        return Err(serde::de::Error::custom(format!("hex string longer than {max} bytes")));
    }
    let bytes = hex::decode(digits).map_err(serde::de::Error::custom)?;
    let len = bytes.len();
    T::try_from(bytes).map_err(|_| serde::de::Error::custom(format!("{len} bytes is not a valid length here")))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Small(#[serde(with = "super")] Vec<u8>);
    #[derive(serde::Deserialize)]
    struct Large(#[serde(with = "super::large")] Vec<u8>);
    #[derive(serde::Deserialize, serde::Serialize, PartialEq, Debug)]
    struct Maybe(#[serde(with = "super::option_large")] Option<Vec<u8>>);

    #[test]
    fn the_limits_bound_each_field() {
        let hex = |n: usize| format!("\"0x{}\"", "ab".repeat(n));
        assert_eq!(serde_json::from_str::<Small>(&hex(super::HEX_BYTES_MAX)).unwrap().0.len(), super::HEX_BYTES_MAX);
        assert!(serde_json::from_str::<Small>(&hex(super::HEX_BYTES_MAX + 1)).is_err());
        // A block of a few MiB fits the large form.
        assert_eq!(serde_json::from_str::<Large>(&hex(3 << 20)).unwrap().0.len(), 3 << 20);
        assert!(serde_json::from_str::<Large>(&hex(super::large::HEX_LARGE_BYTES_MAX + 1)).is_err());
        // Optional fields: null, or bytes within the large bound.
        for maybe in [Maybe(None), Maybe(Some(vec![1, 2]))] {
            assert_eq!(serde_json::from_str::<Maybe>(&serde_json::to_string(&maybe).unwrap()).unwrap(), maybe);
        }
        assert!(serde_json::from_str::<Maybe>(&hex(super::large::HEX_LARGE_BYTES_MAX + 1)).is_err());
    }
}
