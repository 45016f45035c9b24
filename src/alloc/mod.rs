//! The allocator over a mapped arena: TLSF with immediate coalescing, all links as offsets.
//!
//! Invariants kept here (docs/invariants.md):
//! * A2 the physical chain of block headers tiles `[HEADER_SIZE, capacity - 8)` exactly and
//!   ends with the size-0 sentinel at `capacity - 8`; it is the source of truth.
//! * A3 every structural change commits with one 8-byte header store (see `format::block`),
//!   after the intent record names the operation, so a process killed at any instruction
//!   leaves a walkable chain and [`Arena::repair`] can finish or undo the operation and
//!   rebuild the free lists and bitmaps from the chain.
//! * A4 no two physically adjacent blocks are free (immediate coalescing).
//! * A5 every free block is in exactly the list of its size class; bitmaps say which lists
//!   are non-empty; links are symmetric.
//!
//! Memory safety does not depend on the file: every word is read through [`Arena::word`],
//! which checks alignment and bounds against the mapping, and a header whose tag does not
//! match is reported as corruption.

pub mod tlsf;

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fault::{hit, CrashPoint};
use crate::format::block::{self, Header, FREE, PREV_FREE};
use crate::format::{
    Intent, State, ALIGN, BLOCK_HEADER, FL_COUNT, HEADER_SIZE, INTENT_ALLOC, INTENT_FREE,
    INTENT_GROW, INTENT_NONE, MAX_CAPACITY, MIN_BLOCK, SL_COUNT, STATE_OFFSET,
};
use crate::mutant::{active, Mutant};
use tlsf::{mapping_insert, mapping_search};

/// Errors of the allocator layer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocError {
    /// No free block can hold the request.
    #[error(
        "out of space: {requested} bytes (alignment {align}) requested, heap capacity {capacity}"
    )]
    OutOfSpace {
        /// Requested payload bytes.
        requested: u64,
        /// Requested alignment.
        align: u64,
        /// Current capacity.
        capacity: u64,
    },
    /// Alignment not a power of two or above the page size.
    #[error("alignment {align} is not a power of two no larger than the page size {page}")]
    BadAlign {
        /// Requested alignment.
        align: u64,
        /// Page size.
        page: u64,
    },
    /// An offset that does not name an allocated block's payload.
    #[error("offset {offset:#x} is invalid: {reason}")]
    InvalidOffset {
        /// The offset.
        offset: u64,
        /// Why.
        reason: &'static str,
    },
    /// `free` of a block that is already free.
    #[error("double free of offset {offset:#x}")]
    DoubleFree {
        /// The payload offset.
        offset: u64,
    },
    /// The heap's structure is broken at `offset`; run `mapheap check`.
    #[error("heap corrupted at {offset:#x}: {what}")]
    Corrupt {
        /// Where.
        offset: u64,
        /// What was found.
        what: &'static str,
    },
}

type Result<T> = std::result::Result<T, AllocError>;

fn corrupt<T>(offset: u64, what: &'static str) -> Result<T> {
    Err(AllocError::Corrupt { offset, what })
}

/// What [`Arena::repair`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    /// The intent record found (operation code, see `format::INTENT_*`).
    pub intent_op: u64,
    /// A block the dead owner was allocating or freeing, freed by the repair.
    pub freed_block: Option<u64>,
    /// Whether an interrupted growth was completed.
    pub completed_growth: bool,
    /// Pairs of adjacent free blocks merged.
    pub merged: u64,
    /// Free blocks after the rebuild.
    pub free_blocks: u64,
}

/// The mapped arena and its allocator state, seen by the lock's owner.
pub struct Arena<'a> {
    base: *mut u8,
    /// Bytes mapped at `base`: the hard bound of every access.
    map_len: u64,
    page_size: u64,
    state: NonNull<State>,
    _lock: PhantomData<&'a mut State>,
}

/// A block seen while walking the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Offset of the header.
    pub offset: u64,
    /// Decoded header.
    pub header: Header,
}

impl<'a> Arena<'a> {
    /// The arena of a mapping of `map_len` bytes at `base`, with its state.
    ///
    /// # Safety
    /// `base` must be the page-aligned start of a live mapping of `map_len` bytes (at least
    /// `HEADER_SIZE`) that stays mapped for `'a`, holding a heap whose `State` sits at
    /// `STATE_OFFSET`; the caller must hold the heap's lock for `'a`, so no other process
    /// touches the arena or the state meanwhile; no Rust reference to the `State` may be
    /// alive elsewhere, and none into the arena while a `&mut self` method runs.
    pub unsafe fn new(base: *mut u8, map_len: u64, page_size: u64) -> Self {
        // SAFETY: STATE_OFFSET + size_of::<State>() <= HEADER_SIZE <= map_len (contract), and
        // base is page-aligned, so the pointer is in bounds, aligned and non-null.
        let state = unsafe { NonNull::new_unchecked(base.add(STATE_OFFSET).cast::<State>()) };
        Arena {
            base,
            map_len,
            page_size,
            state,
            _lock: PhantomData,
        }
    }

    /// The allocator state.
    pub fn state(&self) -> &State {
        // SAFETY: `new`'s contract: we hold the lock, so nobody else writes the state, and
        // no other reference to it exists; the borrow is tied to `self`.
        unsafe { self.state.as_ref() }
    }

    /// The allocator state, mutably (roots, flags).
    pub fn state_mut(&mut self) -> &mut State {
        // SAFETY: as in `state`, and `&mut self` makes this the only borrow.
        unsafe { self.state.as_mut() }
    }

    /// Where the sentinel must be.
    pub fn sentinel(&self) -> u64 {
        self.state().capacity - BLOCK_HEADER
    }

    fn cell(&self, offset: u64) -> Result<&AtomicU64> {
        let limit = self.state().capacity.min(self.map_len);
        if !offset.is_multiple_of(8)
            || offset < HEADER_SIZE
            || offset.checked_add(8).is_none_or(|e| e > limit)
        {
            return corrupt(offset, "word outside the arena");
        }
        // SAFETY: offset is 8-aligned and [offset, offset + 8) lies inside the mapping
        // (checked above against `map_len`), which `new`'s contract keeps alive for 'a; we
        // hold the lock, and no reference into the arena exists, so atomic access is sound.
        Ok(unsafe { AtomicU64::from_ptr(self.base.add(offset as usize).cast()) })
    }

    /// Reads the word at `offset` (bounds- and alignment-checked).
    pub fn word(&self, offset: u64) -> Result<u64> {
        Ok(self.cell(offset)?.load(Ordering::Relaxed))
    }

    /// Writes the word at `offset`. `Release` keeps earlier stores before it, so each commit
    /// store is ordered after the preparation it commits, for the compiler and the CPU.
    fn set_word(&mut self, offset: u64, value: u64) -> Result<()> {
        self.cell(offset)?.store(value, Ordering::Release);
        Ok(())
    }

    /// The header at `offset`, if its tag matches.
    pub fn header(&self, offset: u64) -> Result<Header> {
        let w = self.word(offset)?;
        block::decode(offset, w).ok_or(AllocError::Corrupt {
            offset,
            what: "block header tag mismatch",
        })
    }

    fn set_header(&mut self, offset: u64, size: u64, flags: u64) -> Result<()> {
        self.set_word(offset, block::encode(offset, size, flags))
    }

    fn set_intent(&mut self, intent: Intent) {
        self.state_mut().intent = intent;
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    }

    // ---- free lists -------------------------------------------------------------------

    fn list_index(fl: usize, sl: usize) -> usize {
        fl * SL_COUNT + sl
    }

    /// The index of list `(fl, sl)` for a free block of `size` bytes at `b`; an error, never
    /// an index out of bounds, if the size (read from the file) overruns the arena or lies
    /// beyond every class.
    fn checked_list(&self, b: u64, size: u64, fl: usize, sl: usize) -> Result<usize> {
        if fl >= FL_COUNT
            || size < MIN_BLOCK
            || b.checked_add(size).is_none_or(|end| end > self.sentinel())
        {
            return corrupt(b, "free block size out of range");
        }
        Ok(Self::list_index(fl, sl))
    }

    fn insert_free(&mut self, b: u64, size: u64) -> Result<()> {
        let (fl, sl) = if active(Mutant::WrongClass) {
            mapping_search(size)
        } else {
            mapping_insert(size)
        };
        let idx = self.checked_list(b, size, fl, sl)?;
        let head = self.state_mut().heads[idx];
        self.set_word(b + 8, head)?;
        self.set_word(b + 16, 0)?;
        if head != 0 {
            // Links come from the file: wrap rather than overflow; `cell` rejects the result.
            self.set_word(head.wrapping_add(16), b)?;
        }
        self.state_mut().heads[idx] = b;
        self.state_mut().sl_bitmap[fl] |= 1 << sl;
        self.state_mut().fl_bitmap |= 1 << fl;
        Ok(())
    }

    fn remove_free(&mut self, b: u64, size: u64) -> Result<()> {
        let next = self.word(b + 8)?;
        let prev = self.word(b + 16)?;
        let (fl, sl) = mapping_insert(size);
        let idx = self.checked_list(b, size, fl, sl)?;
        // Both neighbours must point back before anything is written, so a corrupt list
        // is refused whole instead of half-unlinked.
        let linked = if prev != 0 {
            self.word(prev.wrapping_add(8))? == b
        } else {
            self.state().heads[idx] == b
        };
        if !linked || (next != 0 && self.word(next.wrapping_add(16))? != b) {
            return corrupt(b, "free-list links not symmetric");
        }
        if prev != 0 {
            self.set_word(prev.wrapping_add(8), next)?;
        } else {
            self.state_mut().heads[idx] = next;
            if next == 0 && !active(Mutant::KeepEmptyListBit) {
                self.state_mut().sl_bitmap[fl] &= !(1 << sl);
                if self.state_mut().sl_bitmap[fl] == 0 {
                    self.state_mut().fl_bitmap &= !(1 << fl);
                }
            }
        }
        if next != 0 {
            self.set_word(next.wrapping_add(16), prev)?;
        }
        Ok(())
    }

    fn find_suitable(&self, size: u64) -> Option<u64> {
        let st = self.state();
        let (fl, sl) = mapping_search(size);
        if fl >= FL_COUNT {
            return None;
        }
        let mut fl = fl;
        let mut sl_map = st.sl_bitmap[fl] & (u32::MAX << sl);
        if sl_map == 0 {
            let fl_map = st
                .fl_bitmap
                .checked_shl(fl as u32 + 1)
                .map_or(0, |_| st.fl_bitmap & (u64::MAX << (fl + 1)));
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
        let head = st.heads[Self::list_index(fl, sl_map.trailing_zeros() as usize)];
        (head != 0).then_some(head)
    }

    // ---- allocation -------------------------------------------------------------------

    /// Allocates a block whose payload holds `size` bytes aligned to `align`; returns the
    /// payload's offset.
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<u64> {
        if !align.is_power_of_two() || align > self.page_size {
            return Err(AllocError::BadAlign {
                align,
                page: self.page_size,
            });
        }
        let align = align.max(ALIGN);
        let out = AllocError::OutOfSpace {
            requested: size,
            align,
            capacity: self.state_mut().capacity,
        };
        let payload = size.max(MIN_BLOCK - BLOCK_HEADER);
        let need = match payload.checked_add(BLOCK_HEADER + ALIGN - 1) {
            Some(n) if n < MAX_CAPACITY => n & !(ALIGN - 1),
            _ => return Err(out),
        };
        let search = if align > ALIGN {
            need + align + MIN_BLOCK
        } else {
            need
        };
        let Some(mut b) = self.find_suitable(search) else {
            return Err(out);
        };
        self.set_intent(Intent {
            op: INTENT_ALLOC,
            block: 0,
            arg: size,
            arg2: align,
        });
        let h = self.header(b)?;
        if !h.is_free() || h.size < search {
            return corrupt(b, "free list holds a block that is used or too small");
        }
        self.remove_free(b, h.size)?;
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
                // shrinking store that commits.
                let r = b + gap;
                self.set_header(r, bsize - gap, FREE | PREV_FREE)?;
                self.set_word(b + bsize - 8, bsize - gap)?;
                self.set_header(b, gap, FREE | bflags)?;
                hit(CrashPoint::AlignGapSplit);
                self.set_word(r - 8, gap)?;
                self.insert_free(b, gap)?;
                self.state_mut().free_blocks = self.state().free_blocks.wrapping_add(1);
                b = r;
                bsize -= gap;
                bflags = PREV_FREE;
            }
        }
        self.state_mut().intent.block = b;
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        let next = b + bsize;
        if bsize - need >= MIN_BLOCK {
            let t = b + need;
            let misplaced = if active(Mutant::SplitTailMisplaced) {
                8
            } else {
                0
            };
            self.set_header(t + misplaced, bsize - need, FREE)?;
            self.set_word(next - 8, bsize - need)?;
            hit(CrashPoint::SplitTailWritten);
            self.set_header(b, need, bflags)?;
            self.insert_free(t, bsize - need)?;
            self.state_mut().free_bytes = self.state().free_bytes.wrapping_sub(need);
            self.state_mut().used_bytes = self.state().used_bytes.wrapping_add(need);
        } else {
            self.set_header(b, bsize, bflags)?;
            let nh = self.header(next)?;
            self.set_header(next, nh.size, nh.flags & !PREV_FREE)?;
            self.state_mut().free_blocks = self.state().free_blocks.wrapping_sub(1);
            self.state_mut().free_bytes = self.state().free_bytes.wrapping_sub(bsize);
            self.state_mut().used_bytes = self.state().used_bytes.wrapping_add(bsize);
        }
        hit(CrashPoint::AllocCommitted);
        if !active(Mutant::CounterDrift) {
            self.state_mut().used_blocks = self.state().used_blocks.wrapping_add(1);
        }
        self.set_intent(Intent::default_none());
        Ok(b + BLOCK_HEADER)
    }

    /// The block whose payload starts at `payload`, if it is allocated.
    pub fn used_block(&self, payload: u64) -> Result<Block> {
        let bad = |reason| AllocError::InvalidOffset {
            offset: payload,
            reason,
        };
        if !payload.is_multiple_of(ALIGN) {
            return Err(bad("not 8-aligned"));
        }
        let o = payload.wrapping_sub(BLOCK_HEADER);
        if payload < HEADER_SIZE + BLOCK_HEADER || o >= self.sentinel() {
            return Err(bad("outside the arena"));
        }
        let header = self
            .header(o)
            .map_err(|_| bad("not the start of a block"))?;
        if header.size < MIN_BLOCK || o + header.size > self.sentinel() {
            return Err(bad("not the start of a block"));
        }
        if header.is_free() {
            return Err(AllocError::DoubleFree { offset: payload });
        }
        Ok(Block { offset: o, header })
    }

    /// Usable payload bytes of the allocated block at `payload`.
    pub fn usable_size(&self, payload: u64) -> Result<u64> {
        Ok(self.used_block(payload)?.header.size - BLOCK_HEADER)
    }

    /// Frees the block whose payload starts at `payload`, merging free neighbours.
    pub fn free(&mut self, payload: u64) -> Result<()> {
        let Block { offset, header } = self.used_block(payload)?;
        self.set_intent(Intent {
            op: INTENT_FREE,
            block: offset,
            arg: 0,
            arg2: 0,
        });
        self.free_block(offset, header)?;
        self.set_intent(Intent::default_none());
        Ok(())
    }

    fn free_block(&mut self, offset: u64, header: Header) -> Result<()> {
        let mut o = offset;
        let mut size = header.size;
        let flags = header.flags & PREV_FREE;
        self.state_mut().used_blocks = self.state().used_blocks.wrapping_sub(1);
        self.state_mut().used_bytes = self.state().used_bytes.wrapping_sub(size);
        let coalesce = !active(Mutant::FreeWithoutCoalesce);
        let nh = self.header(o + size)?;
        if nh.is_free() && coalesce {
            self.remove_free(o + size, nh.size)?;
            // Commit: the used block grows over its free neighbour.
            size += nh.size;
            self.set_header(o, size, flags)?;
            self.state_mut().free_blocks = self.state().free_blocks.wrapping_sub(1);
            self.state_mut().free_bytes = self.state().free_bytes.wrapping_sub(nh.size);
            hit(CrashPoint::FreeMergedNext);
        }
        self.set_header(o, size, FREE | flags)?;
        self.state_mut().free_blocks = self.state().free_blocks.wrapping_add(1);
        self.state_mut().free_bytes = self.state().free_bytes.wrapping_add(size);
        if flags & PREV_FREE != 0 && coalesce {
            let psize = self.word(o - 8)?;
            let p = o.saturating_sub(psize);
            let ph = self.header(p)?;
            if !ph.is_free() || ph.size != psize {
                return corrupt(o, "PREV_FREE set but the footer names no free block");
            }
            self.remove_free(p, psize)?;
            // Commit: the free predecessor grows over this block.
            self.set_header(p, psize + size, FREE | (ph.flags & PREV_FREE))?;
            self.state_mut().free_blocks = self.state().free_blocks.wrapping_sub(1);
            o = p;
            size += psize;
        }
        if !active(Mutant::NoFooter) {
            self.set_word(o + size - 8, size)?;
        }
        let nh = self.header(o + size)?;
        self.set_header(o + size, nh.size, nh.flags | PREV_FREE)?;
        self.insert_free(o, size)
    }

    // ---- growth -----------------------------------------------------------------------

    /// Extends the arena to `new_capacity`; the mapping must already cover it and the file
    /// be at least that long. The new space joins the last block if that one is free.
    pub fn extend(&mut self, new_capacity: u64) -> Result<()> {
        let old = self.state_mut().capacity;
        if new_capacity <= old
            || new_capacity > self.map_len
            || new_capacity > MAX_CAPACITY
            || !new_capacity.is_multiple_of(ALIGN)
            || new_capacity - old < MIN_BLOCK
        {
            return corrupt(new_capacity, "growth to an invalid capacity");
        }
        let s = old - BLOCK_HEADER;
        let sh = self.header(s)?;
        if sh.size != 0 {
            return corrupt(s, "sentinel missing at the end of the arena");
        }
        self.set_intent(Intent {
            op: INTENT_GROW,
            block: s,
            arg: old,
            arg2: new_capacity,
        });
        self.state_mut().capacity = new_capacity;
        // Compared for equality only; a corrupt file may hold any value.
        let g = self.state_mut().generation;
        self.state_mut().generation = g.wrapping_add(1);
        self.finish_growth(s, old, new_capacity, sh.flags)?;
        self.set_intent(Intent::default_none());
        Ok(())
    }

    /// Writes the new sentinel, commits the old one into a used block, and frees it.
    fn finish_growth(&mut self, s: u64, old: u64, new: u64, sflags: u64) -> Result<()> {
        self.set_header(new - BLOCK_HEADER, 0, 0)?;
        hit(CrashPoint::GrowSentinelWritten);
        self.set_header(s, new - old, sflags & PREV_FREE)?;
        self.state_mut().used_blocks = self.state().used_blocks.wrapping_add(1);
        self.state_mut().used_bytes = self.state().used_bytes.wrapping_add(new - old);
        let h = self.header(s)?;
        self.free_block(s, h)
    }

    // ---- walking and repair -----------------------------------------------------------

    /// Walks the physical chain, calling `f` on each block before the sentinel. Stops at the
    /// first header that is unreadable or does not fit; returns where the walk ended (the
    /// sentinel's offset if the chain is whole).
    pub fn walk(&self, mut f: impl FnMut(Block)) -> Result<u64> {
        let end = self.sentinel();
        let mut o = HEADER_SIZE;
        while o < end {
            let header = self.header(o)?;
            if header.size < MIN_BLOCK || header.size > end - o {
                if header.size == 0 {
                    return corrupt(o, "sentinel before the end of the arena");
                }
                return corrupt(o, "block size out of range");
            }
            f(Block { offset: o, header });
            o += header.size;
        }
        if o != end {
            return corrupt(o, "chain overruns the sentinel");
        }
        let sh = self.header(end)?;
        if sh.size != 0 {
            return corrupt(end, "no sentinel at the end of the arena");
        }
        Ok(end)
    }

    fn on_chain_used(&self, b: u64) -> bool {
        let mut found = false;
        let _ = self.walk(|blk| {
            if blk.offset == b && !blk.header.is_free() {
                found = true;
            }
        });
        found
    }

    /// Repairs the heap after its lock owner died (or a guard was dropped by a panic): finish
    /// or undo the operation in the intent record, merge adjacent free blocks, and rebuild
    /// footers, PREV_FREE bits, free lists, bitmaps and counters from the chain.
    pub fn repair(&mut self) -> Result<RepairReport> {
        let intent = self.state().intent;
        let mut report = RepairReport {
            intent_op: intent.op,
            ..RepairReport::default()
        };
        let mut pending = None;
        match intent.op {
            INTENT_ALLOC | INTENT_FREE
                if intent.block != 0
                // The dead owner never got (or no longer wants) this block.
                && self.on_chain_used(intent.block) =>
            {
                pending = Some(intent.block);
            }
            INTENT_GROW if self.state_mut().capacity == intent.arg2 && intent.arg < intent.arg2 => {
                let s = intent.block;
                if Some(s) == intent.arg.checked_sub(BLOCK_HEADER) {
                    if let Ok(h) = self.header(s) {
                        if h.size == 0 {
                            self.set_header(intent.arg2 - BLOCK_HEADER, 0, 0)?;
                            // Flags left 0: pass 2 below recomputes every PREV_FREE bit.
                            self.set_header(s, intent.arg2 - intent.arg, 0)?;
                            report.completed_growth = true;
                            pending = Some(s);
                        } else if h.size == intent.arg2 - intent.arg && !h.is_free() {
                            report.completed_growth = true;
                            pending = Some(s);
                        }
                    }
                }
            }
            _ => {}
        }
        // Pass 1: merge runs of free blocks (each merge commits by growing the first).
        let mut blocks = Vec::new();
        self.walk(|b| blocks.push(b))?;
        let mut merged = Vec::with_capacity(blocks.len());
        for b in blocks {
            match merged.last_mut() {
                Some(Block { offset, header }) if header.is_free() && b.header.is_free() => {
                    header.size += b.header.size;
                    let (o, h) = (*offset, *header);
                    self.set_header(o, h.size, FREE | (h.flags & PREV_FREE))?;
                    report.merged += 1;
                }
                _ => merged.push(b),
            }
        }
        // Pass 2: rebuild everything derived from the chain.
        self.state_mut().fl_bitmap = 0;
        self.state_mut().sl_bitmap = [0; FL_COUNT];
        self.state_mut().heads = [0; FL_COUNT * SL_COUNT];
        self.state_mut().used_bytes = 0;
        self.state_mut().used_blocks = 0;
        self.state_mut().free_bytes = 0;
        self.state_mut().free_blocks = 0;
        let mut prev_free = false;
        for b in &merged {
            let pf = if prev_free { PREV_FREE } else { 0 };
            let free = b.header.is_free();
            self.set_header(b.offset, b.header.size, pf | if free { FREE } else { 0 })?;
            if free {
                self.set_word(b.offset + b.header.size - 8, b.header.size)?;
                self.insert_free(b.offset, b.header.size)?;
                self.state_mut().free_bytes = self.state().free_bytes.wrapping_add(b.header.size);
                self.state_mut().free_blocks = self.state().free_blocks.wrapping_add(1);
            } else {
                self.state_mut().used_bytes = self.state().used_bytes.wrapping_add(b.header.size);
                self.state_mut().used_blocks = self.state().used_blocks.wrapping_add(1);
            }
            prev_free = free;
        }
        let s = self.sentinel();
        self.set_header(s, 0, if prev_free { PREV_FREE } else { 0 })?;
        self.set_intent(Intent::default_none());
        if let Some(b) = pending {
            self.free(b + BLOCK_HEADER)?;
            report.freed_block = Some(b);
        }
        report.free_blocks = self.state_mut().free_blocks;
        Ok(report)
    }

    /// Lays out a fresh arena in `[HEADER_SIZE, capacity)`: one free block and the sentinel.
    pub fn format(&mut self) -> Result<()> {
        let cap = self.state_mut().capacity;
        let size = cap - BLOCK_HEADER - HEADER_SIZE;
        self.set_header(HEADER_SIZE, size, FREE)?;
        self.set_word(HEADER_SIZE + size - 8, size)?;
        self.set_header(cap - BLOCK_HEADER, 0, PREV_FREE)?;
        self.insert_free(HEADER_SIZE, size)?;
        self.state_mut().free_blocks = 1;
        self.state_mut().free_bytes = size;
        Ok(())
    }
}

impl Intent {
    /// The empty intent record.
    pub fn default_none() -> Intent {
        Intent {
            op: INTENT_NONE,
            block: 0,
            arg: 0,
            arg2: 0,
        }
    }
}

#[cfg(test)]
mod tests;
