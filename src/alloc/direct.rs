//! The common logged allocation, made directly: the same stores as the planned one
//! ([`Editor::plan_alloc`](super::Editor::plan_alloc) with the transaction log's record of
//! the block), in the same order, without the plan.
//!
//! Invariant: it takes only the case it can check whole from the file before its first
//! store (D1): a word-aligned request served by the head of a list, split or whole (on a
//! sound heap, every word-aligned request the plan serves without growing). Everything
//! else, every anomaly included, it declines with nothing written, and the planned path
//! then allocates or refuses with its error. Where the plan reads a word after one of its
//! own stores, it reads the value that store leaves, or declines. Its store order is the planned path's (A3), so the repair of
//! a death between any two of its stores is the one the plan path's needs; the marks of
//! the crash points fall where the plan's do. Its tests (`direct/tests.rs`) hold the two
//! paths to the same bytes after every prefix of their stores, on random arenas.

use std::sync::atomic::Ordering;

use super::lists::{head_at, list_bit_word, list_bits, list_index};
use super::tlsf::mapping_insert;
use super::{st, Arena};
use crate::fault::CrashPoint;
use crate::format::block::{self, FREE, PREV_FREE};
use crate::format::MIN_BLOCK;
use crate::format::{ALIGN, BLOCK_HEADER, FL_COUNT, INTENT_ALLOC, INTENT_NONE};
use crate::mutant::{active, others_active, Mutant};

impl Arena<'_> {
    /// Allocates `size` bytes aligned to `align` and records the block in the log entry at
    /// `entry` (two words: `head`, then the payload; then the state's `log.len` becomes
    /// `log_len`), if the request is the common case (see the module); `None`, with
    /// nothing written, if it is not.
    #[inline]
    pub fn alloc_logged_direct(
        &mut self,
        size: u64,
        align: u64,
        entry: u64,
        head: u64,
        log_len: u64,
    ) -> Option<u64> {
        // A seeded bug elsewhere in the allocator is in the planned path only: its test
        // must meet it there.
        if !align.is_power_of_two() || align > ALIGN || others_active(Mutant::DirectCommitFirst) {
            return None;
        }
        // Word-aligned: the block searched for is the block taken (`search == need`).
        let (need, _) = super::block_sizes(size, ALIGN)?;
        let b = self.find_suitable(need)?;
        let st = self.state();
        let sentinel = self.sentinel();
        // A word it will store to: checked as every arena read is (`Arena::word`).
        let ok = |at: u64| self.word(at).is_ok();
        let h = block::decode(b, self.word(b).ok()?)?;
        let bsize = h.size;
        // The block's last word checked too: every store into the block (a split's tail
        // header, links and footer) lies at or below it, inside the mapping.
        if !h.is_free() || bsize < need || b.checked_add(bsize)? > sentinel || !ok(b + bsize - 8) {
            return None;
        }
        if !ok(entry) || !ok(entry + 8) {
            return None;
        }
        let (fl, sl) = mapping_insert(bsize);
        if fl >= FL_COUNT {
            return None;
        }
        let idx = list_index(fl, sl);
        // The block is its list's head, with no predecessor, and its successor points back.
        let next = self.word(b + 8).ok()?;
        if self.word(b + 16).ok()? != 0 || st.heads[idx] != b {
            return None;
        }
        if next != 0 && self.word(next.wrapping_add(16)).ok()? != b {
            return None;
        }
        let split = bsize - need >= MIN_BLOCK;
        let t = b + need;
        // Split: the tail goes to this list (its head becomes the tail: one store) or to
        // another. Whole: the next block's header is sound. A list emptied or filled gets
        // its bitmap bits after the log's record, where the plan's bitmap step stores them.
        let (tidx, thead, nh) = if split {
            let (tfl, tsl) = mapping_insert(bsize - need);
            if tfl >= FL_COUNT {
                return None;
            }
            let tidx = list_index(tfl, tsl);
            let thead = if tidx == idx { next } else { st.heads[tidx] };
            if thead != 0 {
                // The head the tail goes before must be a free block with no predecessor,
                // read as `Editor::link` reads it, after the split's stores: a head on one
                // of those words (only a corrupt list has one) is declined; its back-link
                // is 0 if it is the successor's (the unlink stored it), else the file's.
                let back_at = thead.wrapping_add(16);
                let pending = [t, b + bsize - 8, b];
                if pending.contains(&thead)
                    || pending.contains(&back_at)
                    || (next != 0 && thead == next.wrapping_add(16))
                {
                    return None;
                }
                let th = block::decode(thead, self.word(thead).ok()?)?;
                let back = if thead == next {
                    0
                } else {
                    self.word(back_at).ok()?
                };
                if !th.is_free() || back != 0 {
                    return None;
                }
            }
            (tidx, thead, None)
        } else {
            let nb = b + bsize;
            // The plan reads the next block's header after the unlink's store to the
            // successor's back-link; a successor placed so that the two are one word (only
            // a corrupt list does that) would be read as the plan does not: declined.
            if next != 0 && next.wrapping_add(16) == nb {
                return None;
            }
            (idx, 0, Some(block::decode(nb, self.word(nb).ok()?)?))
        };
        let taken = if split { need } else { bsize };
        let counters = [st.used_bytes, st.used_blocks, st.free_bytes, st.free_blocks];
        let bflags = h.flags & PREV_FREE;
        // The head this block's list is left with.
        let new_head = if split && tidx == idx { t } else { next };
        // Checked whole: from here on every store is made, in the plan's order.
        self.put(st!(intent.block), b);
        self.put(st!(intent.op), INTENT_ALLOC);
        self.put(head_at(idx), new_head);
        if next != 0 {
            self.put(next + 16, 0);
        }
        if let Some(nh) = nh {
            self.put(b, block::encode(b, bsize, bflags));
            let nb = b + bsize;
            self.put(nb, block::encode(nb, nh.size, nh.flags & !PREV_FREE));
        } else {
            if active(Mutant::DirectCommitFirst) {
                self.put(b, block::encode(b, need, bflags));
            }
            self.put(t, block::encode(t, bsize - need, FREE));
            self.put(b + bsize - 8, bsize - need);
            crate::fault::hit(CrashPoint::SplitTailWritten);
            self.put(b, block::encode(b, need, bflags));
            self.put(t + 8, thead);
            self.put(t + 16, 0);
            if thead != 0 {
                self.put(thead + 16, t);
            }
            if tidx != idx {
                self.put(head_at(tidx), t);
            }
        }
        crate::fault::hit(CrashPoint::AllocCommitted);
        self.put(entry, head);
        self.put(entry + 8, b + BLOCK_HEADER);
        self.put(st!(log.len), log_len);
        // The bitmaps of the lists emptied or filled, as `Editor::flush_lists` plans them
        // (in the order the lists were first touched: this one, then the tail's).
        if new_head == 0 {
            self.put_list_bit(idx, true);
        }
        if split && tidx != idx && thead == 0 {
            self.put_list_bit(tidx, false);
        }
        self.put(st!(used_bytes), counters[0].wrapping_add(taken));
        self.put(st!(used_blocks), counters[1].wrapping_add(1));
        self.put(st!(free_bytes), counters[2].wrapping_sub(taken));
        if !split {
            self.put(st!(free_blocks), counters[3].wrapping_sub(1));
        }
        self.put(st!(intent.op), INTENT_NONE);
        Some(b + BLOCK_HEADER)
    }

    /// Stores list `idx`'s bitmap bit (clear if `empty`) and its class's, as
    /// `Editor::flush_lists` plans them for a list the operation emptied or filled: each
    /// word as the stores so far leave it (they are made: the file holds the plan's
    /// overlay), and the first-level word only if it changes.
    #[inline(never)]
    pub(super) fn put_list_bit(&mut self, idx: usize, empty: bool) {
        let at = list_bit_word(idx);
        let fl_map = self.state().fl_bitmap;
        let w = self.cell_unchecked(at).load(Ordering::Relaxed);
        let (nw, nf) = list_bits(idx, empty, w, fl_map);
        self.put(at, nw);
        if nf != fl_map {
            self.put(st!(fl_bitmap), nf);
        }
    }

    /// A store through the counted path (D2) to a word the direct path checked (or a
    /// state word): the direct allocation's and the direct free's.
    #[inline]
    pub(super) fn put(&mut self, at: u64, value: u64) {
        self.cell_unchecked(at).store(value, Ordering::Release);
        crate::fault::stored();
    }
}

#[cfg(test)]
mod tests;
