//! Allocation and free: each planned whole (D1), then applied store by store in an order
//! that a death between any two stores leaves repairable (A3).
//!
//! The intent record is written before the first store of an operation and cleared after
//! the last: `block` first, `op` last, so `op` commits the record; clearing stores `op`
//! alone, and `block` means nothing while `op` is 0.

use super::{corrupt, st, AllocError, Arena, Block, Editor, Result};
use crate::fault::CrashPoint;
use crate::format::block::{FREE, PREV_FREE};
use crate::format::{
    ALIGN, BLOCK_HEADER, HEADER_SIZE, INTENT_ALLOC, INTENT_FREE, INTENT_NONE, MAX_CAPACITY,
    MIN_BLOCK,
};
use crate::mutant::{active, Mutant};

impl Editor<'_, '_> {
    /// Plans the intent record `op` on `block`.
    pub fn set_intent(&mut self, op: u64, block: u64) -> Result<()> {
        self.set_st(st!(intent.block), block)?;
        self.set_st(st!(intent.op), op)
    }

    /// Plans clearing the intent record, after the counters' changes (which must land
    /// while the record is still set).
    pub fn clear_intent(&mut self) -> Result<()> {
        self.flush_lists()?;
        self.flush_counters()?;
        self.set_st(st!(intent.op), INTENT_NONE)
    }

    /// The block whose payload starts at `payload`, if it is allocated (as the plan
    /// leaves the arena).
    pub fn used_block(&self, payload: u64) -> Result<Block> {
        used_block(payload, self.sentinel(), |o| self.header(o))
    }

    /// Plans an allocation of `size` payload bytes aligned to `align`; `then` plans more
    /// stores (the transaction log's record of the block) after the commit store and before
    /// the intent is cleared, so that a death between them is repaired by the intent.
    /// Returns the payload offset.
    pub fn plan_alloc(
        &mut self,
        size: u64,
        align: u64,
        then: impl FnOnce(&mut Self, u64) -> Result<()>,
    ) -> Result<u64> {
        let a = self.arena();
        if !align.is_power_of_two() || align > a.page_size() {
            return Err(AllocError::BadAlign {
                align,
                page: a.page_size(),
            });
        }
        let align = align.max(ALIGN);
        let out = AllocError::OutOfSpace {
            requested: size,
            align,
            capacity: self.capacity(),
        };
        let Some((need, search)) = block_sizes(size, align) else {
            return Err(out);
        };
        let Some(mut b) = a.find_suitable(search) else {
            return Err(out);
        };
        let h = self.header(b)?;
        if !h.is_free() || h.size < search {
            return corrupt(b, "free list holds a block that is used or too small");
        }
        // The intent names the block from its first store: until the commit store marks
        // it used, a repair finds it free and has nothing to undo.
        self.set_intent(INTENT_ALLOC, b)?;
        self.unlink(b, h.size)?;
        let mut bsize = h.size;
        let mut bflags = h.flags & PREV_FREE;
        if align > ALIGN && !active(Mutant::NoAlignRounding) {
            let mut p = (b + BLOCK_HEADER).next_multiple_of(align);
            while p - BLOCK_HEADER - b != 0 && p - BLOCK_HEADER - b < MIN_BLOCK {
                p += align;
            }
            let gap = p - BLOCK_HEADER - b;
            if gap != 0 {
                // Split the front gap off as a free block: the tail's header first, then the
                // shrinking store that commits. (The tail gets no footer: it is taken by this
                // allocation, whose split writes the footer of what is left, at the same word,
                // or which takes it whole and clears the next block's PREV_FREE; a death
                // before that is repaired from the chain, which rebuilds every footer.)
                let r = b + gap;
                self.set_header(r, bsize - gap, FREE | PREV_FREE)?;
                self.set_header(b, gap, FREE | bflags)?;
                self.mark(CrashPoint::AlignGapSplit);
                self.put(r - 8, gap)?;
                self.link(b, gap)?;
                self.add_st(st!(free_blocks), 1)?;
                b = r;
                bsize -= gap;
                bflags = PREV_FREE;
                self.set_st(st!(intent.block), b)?;
            }
        }
        let next = b + bsize;
        if bsize - need >= MIN_BLOCK {
            let t = b + need;
            let misplaced = if active(Mutant::SplitTailMisplaced) {
                8
            } else {
                0
            };
            if active(Mutant::SplitCommitFirst) {
                // The shrinking store before the tail exists: the same end state, but a
                // death between the two leaves a chain that ends in the middle of a block.
                self.set_header(b, need, bflags)?;
            }
            self.set_header(t + misplaced, bsize - need, FREE)?;
            self.put(next - 8, bsize - need)?;
            self.mark(CrashPoint::SplitTailWritten);
            self.set_header(b, need, bflags)?;
            self.link(t, bsize - need)?;
            self.sub_st(st!(free_bytes), need)?;
            self.add_st(st!(used_bytes), need)?;
        } else {
            let nh = self.header(next)?;
            self.set_header(b, bsize, bflags)?;
            self.set_header(next, nh.size, nh.flags & !PREV_FREE)?;
            self.sub_st(st!(free_blocks), 1)?;
            self.sub_st(st!(free_bytes), bsize)?;
            self.add_st(st!(used_bytes), bsize)?;
        }
        self.mark(CrashPoint::AllocCommitted);
        if !active(Mutant::CounterDrift) {
            self.add_st(st!(used_blocks), 1)?;
        }
        then(self, b + BLOCK_HEADER)?;
        self.clear_intent()?;
        Ok(b + BLOCK_HEADER)
    }

    /// Plans freeing the allocated block whose payload starts at `payload`.
    pub fn plan_free(&mut self, payload: u64) -> Result<()> {
        let Block { offset, header } = self.used_block(payload)?;
        self.set_intent(INTENT_FREE, offset)?;
        self.free_block(offset, header.size, header.flags & PREV_FREE)?;
        self.clear_intent()
    }

    /// Plans turning the used block at `o` of `size` bytes into a free one, merged with
    /// its free neighbours.
    pub(super) fn free_block(&mut self, offset: u64, size: u64, flags: u64) -> Result<()> {
        let mut o = offset;
        let mut size = size;
        self.sub_st(st!(used_blocks), 1)?;
        self.sub_st(st!(used_bytes), size)?;
        let coalesce = !active(Mutant::FreeWithoutCoalesce);
        let nh = self.header(o + size)?;
        if nh.is_free() && nh.size < MIN_BLOCK {
            return corrupt(
                o + size,
                "a free block (or the sentinel marked free) of no size",
            );
        }
        if nh.is_free() && coalesce {
            self.unlink(o + size, nh.size)?;
            // Commit: the used block grows over its free neighbour.
            size += nh.size;
            self.set_header(o, size, flags)?;
            self.sub_st(st!(free_blocks), 1)?;
            self.sub_st(st!(free_bytes), nh.size)?;
            self.mark(CrashPoint::FreeMergedNext);
        }
        self.set_header(o, size, FREE | flags)?;
        self.add_st(st!(free_blocks), 1)?;
        self.add_st(st!(free_bytes), size)?;
        if flags & PREV_FREE != 0 && coalesce {
            let psize = self.load(o.wrapping_sub(8))?;
            let p = o.saturating_sub(psize);
            let ph = self.header(p)?;
            if !ph.is_free() || ph.size != psize {
                return corrupt(o, "PREV_FREE set but the footer names no free block");
            }
            self.unlink(p, psize)?;
            // Commit: the free predecessor grows over this block.
            self.set_header(p, psize + size, FREE | (ph.flags & PREV_FREE))?;
            self.sub_st(st!(free_blocks), 1)?;
            o = p;
            size += psize;
        }
        if !active(Mutant::NoFooter) {
            self.put(o + size - 8, size)?;
        }
        let nh = self.header(o + size)?;
        self.set_header(o + size, nh.size, nh.flags | PREV_FREE)?;
        self.link(o, size)
    }
}

/// The size of the block an allocation of `len` bytes takes, and the size of the free
/// block it searches for when aligned to `align` (at least [`ALIGN`]: room for a gap of at
/// least a block in front); `None` if no heap could hold it. The one rule of both, for the
/// allocator and for the growth that must make a request fit (H5).
#[inline]
pub fn block_sizes(len: u64, align: u64) -> Option<(u64, u64)> {
    let payload = len.max(MIN_BLOCK - BLOCK_HEADER);
    let need = payload.checked_add(BLOCK_HEADER + ALIGN - 1)? & !(ALIGN - 1);
    if need >= MAX_CAPACITY {
        return None;
    }
    let search = if align > ALIGN {
        need.checked_add(align)?.checked_add(MIN_BLOCK)?
    } else {
        need
    };
    Some((need, search))
}

/// The allocated block whose payload starts at `payload`, given where the sentinel is and
/// how to read a header: the one rule of G2 and of `free`'s argument check.
#[inline]
fn used_block(
    payload: u64,
    sentinel: u64,
    header: impl Fn(u64) -> Result<crate::format::block::Header>,
) -> Result<Block> {
    let bad = |reason| AllocError::InvalidOffset {
        offset: payload,
        reason,
    };
    if !payload.is_multiple_of(ALIGN) {
        return Err(bad("not 8-aligned"));
    }
    let o = payload.wrapping_sub(BLOCK_HEADER);
    if payload < HEADER_SIZE + BLOCK_HEADER || o >= sentinel {
        return Err(bad("outside the arena"));
    }
    let header = header(o).map_err(|_| bad("not the start of a block"))?;
    if header.size < MIN_BLOCK || o + header.size > sentinel {
        return Err(bad("not the start of a block"));
    }
    if header.is_free() {
        return Err(AllocError::DoubleFree { offset: payload });
    }
    Ok(Block { offset: o, header })
}

impl Arena<'_> {
    /// Allocates a block whose payload holds `size` bytes aligned to `align`; returns the
    /// payload's offset.
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<u64> {
        self.alloc_with(size, align, |_, _| Ok(()))
    }

    /// [`Arena::alloc`], with `then` planning more stores after the commit (see
    /// [`Editor::plan_alloc`]).
    pub fn alloc_with(
        &mut self,
        size: u64,
        align: u64,
        then: impl FnOnce(&mut Editor<'_, '_>, u64) -> Result<()>,
    ) -> Result<u64> {
        self.edit(|e| e.plan_alloc(size, align, then))
    }

    /// The block whose payload starts at `payload`, if it is allocated.
    #[inline]
    pub fn used_block(&self, payload: u64) -> Result<Block> {
        used_block(payload, self.sentinel(), |o| self.header(o))
    }

    /// Usable payload bytes of the allocated block at `payload`.
    #[inline]
    pub fn usable_size(&self, payload: u64) -> Result<u64> {
        Ok(self.used_block(payload)?.header.size - BLOCK_HEADER)
    }

    /// Frees the block whose payload starts at `payload`, merging free neighbours.
    pub fn free(&mut self, payload: u64) -> Result<()> {
        self.edit(|e| e.plan_free(payload))
    }

    /// Whether freeing `payload` now would succeed: the free is planned whole and the plan
    /// thrown away. A transaction defers its frees to its commit and checks each one here
    /// when it is asked for, so that a free the heap cannot make (a corrupt neighbour, a
    /// broken list) is refused before anything is logged (D1), not after the commit store.
    /// (`&mut self`: under the seeded bug `WriteBeforeCheck` the check writes too.)
    pub fn check_free(&mut self, payload: u64) -> Result<()> {
        let mut plan = super::Plan::new();
        let r = Editor::new(self, &mut plan).plan_free(payload);
        if r.is_err() && active(Mutant::WriteBeforeCheck) {
            // The seeded bug: a free that writes as it goes, so a fault it meets half-way
            // leaves the stores planned before it made.
            self.apply(&plan);
        }
        r
    }
}
