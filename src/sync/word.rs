//! The lock word, bit by bit.
//!
//! ```text
//!  31      30 ............ 8   7 ........ 0
//! +-------+------------------+-------------+
//! |WAITERS|  incarnation (23)|  slot+1 (8) |
//! +-------+------------------+-------------+
//! ```
//!
//! * `0`: free. No owner id is 0, because the slot field holds the slot index plus one.
//! * `id`: held by the attachment `id`, nobody asleep on the word.
//! * `id | WAITERS`: held, and somebody may be asleep on it; the unlocker must wake one.
//!
//! Invariant: the owner part of a non-zero word names exactly one attachment ever made on
//! this file, up to the wrap of the 23-bit incarnation of its slot (8,388,608 reuses of one
//! slot), because every claim of a slot bumps the slot's incarnation first.

use std::fmt;
use std::num::NonZeroU32;

/// Set while a waiter may be asleep on the word.
pub const WAITERS: u32 = 1 << 31;
/// Bits of the slot field.
pub const SLOT_BITS: u32 = 8;
/// Bits of the incarnation field.
pub const INCARNATION_BITS: u32 = 23;
/// Mask of the incarnation after shifting it down.
pub const INCARNATION_MASK: u32 = (1 << INCARNATION_BITS) - 1;
/// The most slots an attachment table can have (the slot field holds index + 1).
pub const MAX_SLOTS: u32 = (1 << SLOT_BITS) - 1;

/// Who holds the lock: an attachment slot and the incarnation of that slot's claim.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnerId(NonZeroU32);

impl OwnerId {
    /// The id of the `incarnation`-th claim of slot `slot` (0-based, below [`MAX_SLOTS`]).
    /// The incarnation is taken modulo 2^23.
    pub fn new(slot: u32, incarnation: u32) -> OwnerId {
        assert!(slot < MAX_SLOTS, "slot {slot} out of range");
        let raw = ((incarnation & INCARNATION_MASK) << SLOT_BITS) | (slot + 1);
        OwnerId(NonZeroU32::new(raw).expect("slot field is never zero"))
    }

    /// The owner named by a lock word, or `None` for a free word.
    pub fn from_word(word: u32) -> Option<OwnerId> {
        NonZeroU32::new(word & !WAITERS).map(OwnerId)
    }

    /// The word value that says "held by me, nobody asleep".
    pub fn raw(self) -> u32 {
        self.0.get()
    }

    /// The 0-based attachment slot. A word from a corrupt file may have a zero slot field
    /// (no attachment ever writes one): that names slot `u32::MAX`, which no table has, so
    /// the owner probes dead.
    pub fn slot(self) -> u32 {
        (self.0.get() & MAX_SLOTS).wrapping_sub(1)
    }

    /// The incarnation of the slot's claim (23 bits).
    pub fn incarnation(self) -> u32 {
        (self.0.get() >> SLOT_BITS) & INCARNATION_MASK
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OwnerId(slot {}, inc {})",
            self.slot(),
            self.incarnation()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_never_touch_waiters() {
        for slot in [0, 1, 17, MAX_SLOTS - 1] {
            for inc in [0, 1, 12345, INCARNATION_MASK, INCARNATION_MASK + 5] {
                let id = OwnerId::new(slot, inc);
                assert_eq!(id.slot(), slot);
                assert_eq!(id.incarnation(), inc & INCARNATION_MASK);
                assert_eq!(id.raw() & WAITERS, 0);
                assert_eq!(OwnerId::from_word(id.raw() | WAITERS), Some(id));
            }
        }
        assert_eq!(OwnerId::from_word(0), None);
        assert_eq!(OwnerId::from_word(WAITERS), None);
    }

    #[test]
    fn a_new_incarnation_is_a_different_owner() {
        assert_ne!(OwnerId::new(3, 7), OwnerId::new(3, 8));
        assert_ne!(OwnerId::new(3, 7), OwnerId::new(4, 7));
    }
}
