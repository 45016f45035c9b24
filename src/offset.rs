//! `Offset<T>`: a pointer that survives remapping.
//!
//! Invariant O1: an `Offset` is a distance in bytes from the start of the heap file, never
//! an address, so storing one in the heap and mapping the file elsewhere keeps it valid.
//! It carries no lifetime and grants nothing by itself: it is resolved only through a
//! `HeapGuard`, which checks bounds, alignment and that it names the payload of an
//! allocated block large enough for `T` (see `heap::guard`).

use std::fmt;
use std::marker::PhantomData;

use bytemuck::{Pod, Zeroable};

/// A typed offset from the heap's base; 0 is null.
#[repr(transparent)]
pub struct Offset<T> {
    raw: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> Offset<T> {
    /// The null offset.
    pub const NULL: Offset<T> = Offset::from_raw(0);

    /// An offset from its raw value. Any value is safe: resolution validates it.
    pub const fn from_raw(raw: u64) -> Offset<T> {
        Offset {
            raw,
            _type: PhantomData,
        }
    }

    /// The raw distance from the heap's base.
    pub const fn raw(self) -> u64 {
        self.raw
    }

    /// Whether this is the null offset.
    pub const fn is_null(self) -> bool {
        self.raw == 0
    }

    /// The same offset, seen as pointing to a `U`.
    pub const fn cast<U>(self) -> Offset<U> {
        Offset::from_raw(self.raw)
    }
}

impl<T> Clone for Offset<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Offset<T> {}
impl<T> PartialEq for Offset<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl<T> Eq for Offset<T> {}
impl<T> std::hash::Hash for Offset<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state)
    }
}
impl<T> Default for Offset<T> {
    fn default() -> Self {
        Self::NULL
    }
}
impl<T> fmt::Debug for Offset<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_null() {
            write!(f, "Offset(null)")
        } else {
            write!(f, "Offset({:#x})", self.raw)
        }
    }
}

// SAFETY: `Offset<T>` is `repr(transparent)` over a `u64` (the PhantomData is a ZST that
// holds no `T`), so every bit pattern, all-zero included, is a valid value with no padding.
unsafe impl<T: 'static> Zeroable for Offset<T> {}
// SAFETY: as above; it is also `Copy` for every `T` and has no interior mutability.
unsafe impl<T: 'static> Pod for Offset<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_is_just_eight_bytes_of_distance() {
        assert_eq!(std::mem::size_of::<Offset<[u64; 100]>>(), 8);
        let o: Offset<u32> = Offset::from_raw(0x4010);
        assert_eq!(bytemuck::bytes_of(&o), &0x4010u64.to_ne_bytes());
        assert!(Offset::<u8>::NULL.is_null());
        assert_eq!(o.cast::<u8>().raw(), 0x4010);
    }

    /// Two offsets are equal exactly when their distances are (a list walked until it meets
    /// its head, or `NULL`, stops where it should), and hash alike when equal.
    #[test]
    fn offsets_are_equal_exactly_when_their_distances_are() {
        use std::collections::HashSet;
        let (a, b) = (
            Offset::<u64>::from_raw(0x4010),
            Offset::<u64>::from_raw(0x4018),
        );
        assert_eq!(a, Offset::from_raw(0x4010));
        assert_ne!(a, b);
        assert_ne!(a, Offset::NULL);
        assert_eq!(Offset::<u64>::default(), Offset::NULL);
        let set: HashSet<_> = [a, b, Offset::from_raw(0x4010)].into_iter().collect();
        assert_eq!(set.len(), 2);
    }

    /// What a failed assertion or a log line shows of an offset: its distance in hex, or
    /// that it is null.
    #[test]
    fn an_offset_shows_its_distance_or_that_it_is_null() {
        assert_eq!(
            format!("{:?}", Offset::<u32>::from_raw(0x4010)),
            "Offset(0x4010)"
        );
        assert_eq!(format!("{:?}", Offset::<u32>::NULL), "Offset(null)");
    }
}
