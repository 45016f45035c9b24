//! Block headers: one 8-byte word in front of every block.
//!
//! ```text
//!  63 ........ 48  47 ............ 3   2    1          0
//! +--------------+-------------------+---+----------+------+
//! |  tag (16)    |  size (bytes, /8) | 0 |PREV_FREE | FREE |
//! +--------------+-------------------+---+----------+------+
//! ```
//!
//! * `size` is the whole block, header included, a multiple of 8; the sentinel that ends
//!   the chain has size 0.
//! * `tag` is a 16-bit hash of the block's offset and size. A word that is not the header
//!   of a block at that offset (user bytes, a stale header, an offset into a payload) fails
//!   the tag with probability 65535/65536, so a bad offset is an error, not a corruption.
//! * A free block repeats its size in its last 8 bytes (the footer) and keeps its free-list
//!   links at +8 (next) and +16 (prev), so a free block is at least 32 bytes.
//!
//! Invariant B1: because size, flags and tag share one word, every change of a block's
//! extent or state is a single 8-byte store: the commit point of splits and merges.

/// The block is free.
pub const FREE: u64 = 1;
/// The physically previous block is free (its footer is valid).
pub const PREV_FREE: u64 = 2;
const FLAGS: u64 = 7;
const SIZE_MASK: u64 = ((1 << 48) - 1) & !FLAGS;

/// The tag of a block at `offset` of `size` bytes.
#[inline]
pub fn tag(offset: u64, size: u64) -> u64 {
    // The top 16 bits of the product. (The formula was first written `(x ^ (x >> 31)) >> 48`,
    // the same value: the xor cannot reach bits 48..63.)
    (offset ^ size.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48
}

/// Encodes a header.
pub fn encode(offset: u64, size: u64, flags: u64) -> u64 {
    debug_assert_eq!(size & !SIZE_MASK, 0, "size {size:#x} not encodable");
    debug_assert_eq!(flags & !(FREE | PREV_FREE), 0);
    (tag(offset, size) << 48) | (size & SIZE_MASK) | flags
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Block size in bytes (0 for the sentinel).
    pub size: u64,
    /// `FREE | PREV_FREE` bits.
    pub flags: u64,
}

impl Header {
    /// Whether the block is free.
    pub fn is_free(self) -> bool {
        self.flags & FREE != 0
    }
    /// Whether the previous block is marked free.
    pub fn prev_free(self) -> bool {
        self.flags & PREV_FREE != 0
    }
}

/// Decodes the word found at `offset`; `None` if the tag or reserved bit is wrong.
#[inline]
pub fn decode(offset: u64, word: u64) -> Option<Header> {
    let size = word & SIZE_MASK;
    let tag_ok = word >> 48 == tag(offset, size)
        || crate::mutant::active(crate::mutant::Mutant::SkipHeaderTag);
    if word & 4 != 0 || !tag_ok {
        return None;
    }
    Some(Header {
        size,
        flags: word & (FREE | PREV_FREE),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (off, size, flags) in [(16384, 32, FREE), (16416, 4096, PREV_FREE), (1 << 40, 0, 0)] {
            let h = decode(off, encode(off, size, flags)).unwrap();
            assert_eq!((h.size, h.flags), (size, flags));
        }
    }

    const V1_TAGS: [u64; 4] = [0xd8c2, 0xdb98, 0x0144, 0x4a7c];

    /// The tag is part of the on-disk format (version 1): a file written by one build must
    /// decode in every other, so these values may never change without a version bump.
    #[test]
    fn tags_are_the_format_v1_values() {
        let got: Vec<u64> = [(16384, 64), (16384, 32), (16448, 4096), (1 << 40, 0)]
            .iter()
            .map(|&(o, s)| tag(o, s))
            .collect();
        assert_eq!(got, V1_TAGS);
    }

    #[test]
    fn a_header_read_at_the_wrong_offset_is_rejected() {
        let w = encode(16384, 64, 0);
        let wrong = (0..1000u64)
            .filter(|i| decode(16384 + 8 * (i + 1), w).is_some())
            .count();
        assert!(wrong <= 1, "{wrong} of 1000 wrong offsets accepted");
        assert!(decode(16384, w | 4).is_none());
    }
}
