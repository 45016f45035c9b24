//! Growth of the arena into space the file already has (M2 reserved it, H3 mapped it).
//!
//! Commit order (A3): the intent names the old and new capacity and the old sentinel; the
//! capacity and generation are stored; the new sentinel is written at the new end; then
//! one store turns the old sentinel into a used block spanning the new space, which is
//! freed like any other block (merging with a free last block). Repair finishes a growth
//! that reached its capacity store.

use super::{corrupt, st, Arena, Editor, Plan, Result};
use crate::fault::CrashPoint;
use crate::format::{ALIGN, BLOCK_HEADER, INTENT_GROW, MAX_CAPACITY, MIN_BLOCK};

impl Arena<'_> {
    /// Whether a growth to `new_capacity` can be made from this heap: the whole growth is
    /// planned (as [`Arena::extend`] will plan it) and thrown away. The caller checks this
    /// before it extends the file, so a corrupt heap is refused before anything changes
    /// (D1): not only a missing sentinel, but a free last block the growth would merge
    /// with whose footer, header or links are broken.
    pub fn check_growth(&self, new_capacity: u64) -> Result<()> {
        let mut plan = Plan::new();
        let mut e = Editor::dry(self, &mut plan, new_capacity);
        plan_extend(&mut e, new_capacity)
    }

    /// Extends the arena to `new_capacity`; the mapping must already cover it and the file
    /// be at least that long. The new space joins the last block if that one is free.
    pub fn extend(&mut self, new_capacity: u64) -> Result<()> {
        self.edit(|e| plan_extend(e, new_capacity))
    }
}

fn plan_extend(e: &mut Editor<'_, '_>, new_capacity: u64) -> Result<()> {
    let old = e.capacity();
    if new_capacity <= old
        || new_capacity > e.limit()
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
}
