//! The segregated free lists and their bitmaps (A1, A5), planned through an [`Editor`].
//!
//! Every link and head is an offset read from the file, so each one is checked before it
//! is followed: a removal checks that both neighbours point back before anything is
//! planned, and every address a link store goes to is bounds-checked when it is planned.

use super::tlsf::{mapping_insert, mapping_search};
use super::{corrupt, st, Arena, Editor, Result};
use crate::format::{FL_COUNT, MIN_BLOCK, SL_COUNT};
use crate::mutant::{active, Mutant};

/// The index of list `(fl, sl)` in `State::heads`.
pub(super) fn list_index(fl: usize, sl: usize) -> usize {
    fl * SL_COUNT + sl
}

pub(super) fn head_at(idx: usize) -> u64 {
    st!(heads) + 8 * idx as u64
}

/// The state word holding the second-level bitmap of class `fl`, and the bit shift of
/// that class inside it (two u32 bitmaps per 8-byte word, little-endian).
pub(super) fn sl_word(fl: usize) -> (u64, u32) {
    (st!(sl_bitmap) + 8 * (fl as u64 / 2), 32 * (fl as u32 % 2))
}

/// The state word holding list `idx`'s second-level bitmap bit.
pub(super) fn list_bit_word(idx: usize) -> u64 {
    sl_word(idx / SL_COUNT).0
}

/// List `idx`'s bitmap words once an operation has emptied it (`empty`) or filled it, A5:
/// its bit is set exactly when its head is not 0, its class's first-level bit exactly
/// when one of the class's lists' bits is. Given the word at [`list_bit_word`] now (`w`)
/// and the first-level bitmap (`fl_map`), their new values: the one rule of the plan's
/// bitmap step (`Editor::flush_lists`) and the direct paths' (`Arena::put_list_bit`).
pub(super) fn list_bits(idx: usize, empty: bool, w: u64, fl_map: u64) -> (u64, u64) {
    let (fl, sl) = (idx / SL_COUNT, idx % SL_COUNT);
    let shift = sl_word(fl).1;
    let bit = 1u64 << (shift + sl as u32);
    let nw = if empty { w & !bit } else { w | bit };
    let nf = if (nw >> shift) & 0xffff_ffff != 0 {
        fl_map | 1 << fl
    } else {
        fl_map & !(1 << fl)
    };
    (nw, nf)
}

impl Editor<'_, '_> {
    /// The index of list `(fl, sl)` for a free block of `size` bytes at `b`; an error, never
    /// an index out of bounds, if the size (read from the file) overruns the arena or lies
    /// beyond every class.
    pub fn checked_list(&self, b: u64, size: u64, fl: usize, sl: usize) -> Result<usize> {
        if fl >= FL_COUNT
            || size < MIN_BLOCK
            || b.checked_add(size).is_none_or(|end| end > self.sentinel())
        {
            return corrupt(b, "free block size out of range");
        }
        Ok(list_index(fl, sl))
    }

    /// Plans putting the free block `b` of `size` bytes at the head of its list.
    pub fn link(&mut self, b: u64, size: u64) -> Result<()> {
        let (fl, sl) = if active(Mutant::WrongClass) {
            mapping_search(size)
        } else {
            mapping_insert(size)
        };
        let idx = self.checked_list(b, size, fl, sl)?;
        let head = self.st(head_at(idx));
        if head != 0 {
            // The block it goes before must be a free block with no predecessor (A5): a head
            // that points elsewhere (a corrupt file) would have the back-link's store land on
            // a word that an operation checked before this one, in the same transaction,
            // may rely on (a header, a link).
            let h = self.header(head)?;
            if !h.is_free() || self.load(head.wrapping_add(16))? != 0 {
                return corrupt(head, "list head is not a free block without a predecessor");
            }
        }
        self.put(b + 8, head)?;
        self.put(b + 16, 0)?;
        if head != 0 {
            // Links come from the file: wrap rather than overflow; the bounds check refuses
            // the result.
            self.put(head.wrapping_add(16), b)?;
        }
        self.set_head(idx, b)
    }

    /// Plans taking the free block `b` of `size` bytes out of its list.
    pub fn unlink(&mut self, b: u64, size: u64) -> Result<()> {
        let next = self.load(b + 8)?;
        let prev = self.load(b + 16)?;
        let (fl, sl) = mapping_insert(size);
        let idx = self.checked_list(b, size, fl, sl)?;
        // Both neighbours must point back before anything is planned, so a corrupt list is
        // refused whole instead of half-unlinked.
        let linked = if prev != 0 {
            self.load(prev.wrapping_add(8))? == b
        } else {
            self.st(head_at(idx)) == b
        };
        if !linked || (next != 0 && self.load(next.wrapping_add(16))? != b) {
            return corrupt(b, "free-list links not symmetric");
        }
        if prev != 0 {
            self.put(prev.wrapping_add(8), next)?;
        } else {
            self.set_head(idx, next)?;
        }
        if next != 0 {
            self.put(next.wrapping_add(16), prev)?;
        }
        Ok(())
    }
}

const _: () = assert!(FL_COUNT < 64, "the first-level bitmap is one u64");

impl Arena<'_> {
    /// The head of the first non-empty list whose every block holds `size` bytes.
    pub(super) fn find_suitable(&self, size: u64) -> Option<u64> {
        let st = self.state();
        let (fl, sl) = mapping_search(size);
        if fl >= FL_COUNT {
            return None;
        }
        let mut fl = fl;
        let mut sl_map = st.sl_bitmap[fl] & (u32::MAX << sl);
        if sl_map == 0 {
            // fl < FL_COUNT, which is below 64 (asserted above), so the shift stays in range.
            let fl_map = st.fl_bitmap & (u64::MAX << (fl + 1));
            if fl_map == 0 {
                return None;
            }
            fl = fl_map.trailing_zeros() as usize;
            if fl >= FL_COUNT {
                return None;
            }
            sl_map = st.sl_bitmap[fl];
        }
        if sl_map == 0 {
            return None;
        }
        let head = st.heads[list_index(fl, sl_map.trailing_zeros() as usize)];
        (head != 0).then_some(head)
    }
}
