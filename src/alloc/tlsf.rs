//! Size classes of the two-level segregated fit (Masmano et al., 2004).
//!
//! Invariant A1: a free block of size `s` lives in list `mapping_insert(s)`; every block in
//! the list found by `mapping_search(n)` (or any later non-empty list) has size `>= n`, so
//! the first block of that list fits without walking the list: O(1) alloc.

use crate::format::{FL_SHIFT, SL_COUNT, SL_LOG2, SMALL_BLOCK};

/// The list `(fl, sl)` a free block of `size` bytes belongs to.
pub fn mapping_insert(size: u64) -> (usize, usize) {
    if size < SMALL_BLOCK {
        (0, (size / (SMALL_BLOCK / SL_COUNT as u64)) as usize)
    } else {
        let fl = 63 - size.leading_zeros();
        let sl = (size >> (fl - SL_LOG2)) ^ (1 << SL_LOG2);
        ((fl - (FL_SHIFT - 1)) as usize, sl as usize)
    }
}

/// The first list whose every block holds at least `size` bytes. `size` is a multiple of
/// `ALIGN`, as every block size and request is: below `SMALL_BLOCK` each class then holds
/// exactly one size, and the insert mapping is already exact.
pub fn mapping_search(size: u64) -> (usize, usize) {
    if size < SMALL_BLOCK {
        return mapping_insert(size);
    }
    let fl = 63 - size.leading_zeros();
    mapping_insert(size.saturating_add((1u64 << (fl - SL_LOG2)) - 1))
}

/// The smallest size that maps to list `(fl, sl)`.
pub fn class_min(fl: usize, sl: usize) -> u64 {
    if fl == 0 {
        sl as u64 * (SMALL_BLOCK / SL_COUNT as u64)
    } else {
        let shift = fl as u32 + FL_SHIFT - 1;
        (1u64 << shift) + ((sl as u64) << (shift - SL_LOG2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{FL_COUNT, MAX_CAPACITY, MIN_BLOCK};

    #[test]
    fn insert_is_monotone_and_matches_class_min() {
        let mut last = (0, 0);
        let mut size = MIN_BLOCK;
        while size < MAX_CAPACITY {
            let c = mapping_insert(size);
            assert!(c >= last, "{size}");
            assert!(c.0 < FL_COUNT && c.1 < SL_COUNT);
            assert!(class_min(c.0, c.1) <= size, "{size} {c:?}");
            last = c;
            size += 8 + size / 37 / 8 * 8;
        }
    }

    #[test]
    fn search_finds_a_class_whose_every_block_fits() {
        for size in (MIN_BLOCK..100_000).step_by(8) {
            let (fl, sl) = mapping_search(size);
            assert!(class_min(fl, sl) >= size, "{size} -> {fl},{sl}");
            assert!(mapping_insert(size) <= (fl, sl));
        }
    }
}
