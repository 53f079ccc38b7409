//! Binary Merkle roots in the style of RFC 6962: leaves and inner nodes are
//! hashed under different one-byte prefixes (so a leaf can never pose as a
//! node), and an odd node at the end of a level is carried up unchanged.

use phalanx_primitives::{Hash, sha256, sha256_parts};

const LEAF_PREFIX: &[u8] = &[0x00];
const NODE_PREFIX: &[u8] = &[0x01];

/// The root of no leaves.
pub fn empty_root() -> Hash {
    sha256(b"")
}

/// Hashes one leaf made of a key and a value (length-framed, so the split
/// between key and value is unambiguous).
pub fn leaf_hash(key: &[u8], value: &[u8]) -> Hash {
    let key_len = (key.len() as u32).to_le_bytes();
    sha256_parts(&[LEAF_PREFIX, &key_len, key, value])
}

/// Hashes one leaf that is already a digest (transactions, events).
pub fn digest_leaf(digest: &Hash) -> Hash {
    sha256_parts(&[LEAF_PREFIX, digest.as_bytes()])
}

/// The root over leaf hashes, in order.
pub fn root(leaves: impl IntoIterator<Item = Hash>) -> Hash {
    let mut level: Vec<Hash> = leaves.into_iter().collect();
    if level.is_empty() {
        return empty_root();
    }
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            next.push(match pair {
                [left, right] => sha256_parts(&[NODE_PREFIX, left.as_bytes(), right.as_bytes()]),
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two items"),
            });
        }
        level = next;
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_roots() {
        let a = leaf_hash(b"a", b"1");
        let b = leaf_hash(b"b", b"2");
        let c = leaf_hash(b"c", b"3");
        assert_eq!(root([]), empty_root());
        assert_eq!(root([a]), a);
        let ab = sha256_parts(&[NODE_PREFIX, a.as_bytes(), b.as_bytes()]);
        assert_eq!(root([a, b]), ab);
        assert_eq!(root([a, b, c]), sha256_parts(&[NODE_PREFIX, ab.as_bytes(), c.as_bytes()]));
        assert_ne!(root([b, a]), root([a, b]));
        // Key/value framing: moving a byte from key to value changes the leaf.
        assert_ne!(leaf_hash(b"ab", b"c"), leaf_hash(b"a", b"bc"));
    }
}
