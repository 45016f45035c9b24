//! Growth of the arena into space the file already has (M2 reserved it, H3 mapped it).
//!
//! Commit order (A3): the intent names the old and new capacity and the old sentinel; the
//! capacity and generation are stored; the new sentinel is written at the new end; then
//! one store turns the old sentinel into a used block spanning the new space, which is
//! freed like any other block (merging with a free last block). Repair finishes a growth
//! that reached its capacity store.

use super::{corrupt, st, Arena, Result};
use crate::fault::CrashPoint;
use crate::format::{ALIGN, BLOCK_HEADER, INTENT_GROW, MAX_CAPACITY, MIN_BLOCK};

impl Arena<'_> {
    /// Whether a growth can start from this heap: its sentinel sits at `capacity - 8`. The
    /// caller checks this before it extends the file, so a corrupt heap is refused before
    /// anything changes (D1).
    pub fn check_growth_start(&self) -> Result<()> {
        let s = self.sentinel();
        match self.header(s) {
            Ok(h) if h.size == 0 && !h.is_free() => Ok(()),
            _ => corrupt(s, "sentinel missing at the end of the arena"),
        }
    }

    /// Extends the arena to `new_capacity`; the mapping must already cover it and the file
    /// be at least that long. The new space joins the last block if that one is free.
    pub fn extend(&mut self, new_capacity: u64) -> Result<()> {
        let old = self.state().capacity;
        let map_len = self.map_len;
        self.edit(|e| {
            if new_capacity <= old
                || new_capacity > map_len
                || new_capacity > MAX_CAPACITY
                || !new_capacity.is_multiple_of(ALIGN)
                || new_capacity - old < MIN_BLOCK
            {
                return corrupt(new_capacity, "growth to an invalid capacity");
            }
            let s = old - BLOCK_HEADER;
            let sh = e.header(s)?;
            if sh.size != 0 || sh.is_free() {
                return corrupt(s, "sentinel missing at the end of the arena");
            }
            e.set_intent(INTENT_GROW, s)?;
            e.set_st(st!(capacity), new_capacity)?;
            // Compared for equality only; a corrupt file may hold any value.
            e.add_st(st!(generation), 1)?;
            e.set_header(new_capacity - BLOCK_HEADER, 0, 0)?;
            e.mark(CrashPoint::GrowSentinelWritten);
            let flags = sh.flags & crate::format::block::PREV_FREE;
            e.set_header(s, new_capacity - old, flags)?;
            e.add_st(st!(used_blocks), 1)?;
            e.add_st(st!(used_bytes), new_capacity - old)?;
            e.free_block(s, new_capacity - old, flags)?;
            e.clear_intent()
        })
    }
}
