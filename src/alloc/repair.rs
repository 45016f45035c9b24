//! Walking the chain, and repair after a death (A2, A3): read and check everything first,
//! then rebuild (D1).
//!
//! Repair is idempotent: the chain is never broken by it (a merge commits by growing the
//! first block; every other store rebuilds something derived from the chain), and the
//! intent record is left as it was until a block it names has been put in a new intent,
//! so a repairer that dies half-way leaves the next owner the same repair to do.

use super::{corrupt, st, AllocError, Arena, Block, Result};
use crate::format::block::{encode, Header, FREE, PREV_FREE};
use crate::format::{
    BLOCK_HEADER, FL_COUNT, HEADER_SIZE, INTENT_ALLOC, INTENT_FREE, INTENT_GROW, INTENT_NONE,
    MIN_BLOCK, SL_COUNT,
};

/// What [`Arena::apply_repair`] did.
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

/// Phase 1 of a repair: the chain as the intent record will leave it, and what to finish.
#[derive(Clone, Debug)]
pub struct RepairPlan {
    intent_op: u64,
    new_sentinel: u64,
    /// An interrupted growth to commit: (old sentinel, span, its PREV_FREE flag).
    grow: Option<(u64, u64, u64)>,
    /// A block to free at the end (an interrupted allocation, free or growth).
    pending: Option<u64>,
    completed_growth: bool,
    /// Every block of the chain, in address order.
    blocks: Vec<Block>,
}

impl RepairPlan {
    /// Every block of the chain the intent record leaves, in address order (before the
    /// repair merges adjacent free blocks).
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The payload ranges `[start, end)` of the blocks that stay allocated after the
    /// repair, in address order.
    pub fn used_payloads(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.blocks
            .iter()
            .filter(|b| !b.header.is_free() && Some(b.offset) != self.pending)
            .map(|b| (b.offset + BLOCK_HEADER, b.offset + b.header.size))
    }
}

/// Why a walk of the chain stopped before the sentinel (each one a rule `check` reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ChainFault {
    /// A word where a header should be fails its tag (or has the reserved bit set).
    TagMismatch,
    /// A header's size is below the minimum block or runs past the sentinel.
    SizeOutOfRange,
    /// A size-0 header before the end of the arena.
    SentinelEarly,
    /// No size-0 header at `capacity - 8`.
    NoSentinel,
    /// The sentinel has its FREE bit set.
    SentinelFree,
    /// A header would lie outside the arena or the mapping.
    OutsideArena,
}

impl ChainFault {
    /// Every fault, for the table of `check`'s rules.
    pub const ALL: &'static [ChainFault] = &[
        ChainFault::TagMismatch,
        ChainFault::SizeOutOfRange,
        ChainFault::SentinelEarly,
        ChainFault::NoSentinel,
        ChainFault::SentinelFree,
        ChainFault::OutsideArena,
    ];

    /// What it means, in words.
    pub fn what(self) -> &'static str {
        match self {
            ChainFault::TagMismatch => "block header tag mismatch",
            ChainFault::SizeOutOfRange => "block size out of range",
            ChainFault::SentinelEarly => "sentinel before the end of the arena",
            ChainFault::NoSentinel => "no sentinel at the end of the arena",
            ChainFault::SentinelFree => "sentinel marked free",
            ChainFault::OutsideArena => "header outside the arena",
        }
    }
}

/// Where and why a walk stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    /// The offset of the header that stopped it.
    pub offset: u64,
    /// Why.
    pub fault: ChainFault,
}

impl From<ChainBreak> for AllocError {
    fn from(b: ChainBreak) -> AllocError {
        AllocError::Corrupt {
            offset: b.offset,
            what: b.fault.what(),
        }
    }
}

impl Arena<'_> {
    /// Walks the chain from the arena's start to a size-0 header at `end`, calling `f` on
    /// each block before it.
    fn chain_to(&self, end: u64, mut f: impl FnMut(Block)) -> std::result::Result<(), ChainBreak> {
        let brk = |offset, fault| Err(ChainBreak { offset, fault });
        let mut o = HEADER_SIZE;
        while o < end {
            let Ok(w) = self.word(o) else {
                return brk(o, ChainFault::OutsideArena);
            };
            let Some(header) = crate::format::block::decode(o, w) else {
                return brk(o, ChainFault::TagMismatch);
            };
            if header.size == 0 {
                return brk(o, ChainFault::SentinelEarly);
            }
            if header.size < MIN_BLOCK || header.size > end - o {
                return brk(o, ChainFault::SizeOutOfRange);
            }
            f(Block { offset: o, header });
            o += header.size;
        }
        let Ok(w) = self.word(end) else {
            return brk(end, ChainFault::OutsideArena);
        };
        match crate::format::block::decode(end, w) {
            None => brk(end, ChainFault::TagMismatch),
            Some(h) if h.size != 0 => brk(end, ChainFault::NoSentinel),
            Some(h) if h.is_free() => brk(end, ChainFault::SentinelFree),
            Some(_) => Ok(()),
        }
    }

    /// Walks the physical chain, calling `f` on each block before the sentinel; stops at
    /// the first header that is unreadable or does not fit, and says where and why.
    /// Returns the sentinel's offset if the chain is whole.
    pub fn walk_chain(&self, f: impl FnMut(Block)) -> std::result::Result<u64, ChainBreak> {
        let end = self.sentinel();
        if end < HEADER_SIZE {
            return Err(ChainBreak {
                offset: end,
                fault: ChainFault::OutsideArena,
            });
        }
        self.chain_to(end, f).map(|()| end)
    }

    /// [`Arena::walk_chain`] with the allocator's error.
    pub fn walk(&self, f: impl FnMut(Block)) -> Result<u64> {
        Ok(self.walk_chain(f)?)
    }

    /// Phase 1 of a repair after the lock owner died (or a guard was dropped by a panic),
    /// reading only: what the intent record asks (finish or undo its operation), and the
    /// chain it leaves (checked whole). Nothing is written unless that whole chain is
    /// sound: the recoverer checks the undo log against this plan too before
    /// [`Arena::apply_repair`] makes its first store (D1).
    pub fn plan_repair(&self) -> Result<RepairPlan> {
        let intent = self.state().intent;
        let cap = self.state().capacity;
        let mut blocks = Vec::new();
        let mut grow = None;
        let s = intent.block;
        // The growth's old capacity is `s + 8`; it reached its capacity store iff the
        // capacity is past that now.
        let old_cap = s.wrapping_add(BLOCK_HEADER);
        let growing =
            intent.op == INTENT_GROW && s >= HEADER_SIZE && s.is_multiple_of(8) && cap > old_cap;
        let old_sentinel = growing
            .then(|| self.header(s).ok())
            .flatten()
            .filter(|h| h.size == 0 && !h.is_free());
        if let Some(h) = old_sentinel {
            // The growth reached its capacity store but not its commit: finish it over a
            // chain that ends at the old sentinel.
            let span = cap - old_cap;
            if span < MIN_BLOCK || !span.is_multiple_of(8) {
                return corrupt(s, "interrupted growth of an impossible size");
            }
            self.chain_to(s, |b| blocks.push(b))?;
            let flags = h.flags & PREV_FREE;
            blocks.push(Block {
                offset: s,
                header: Header { size: span, flags },
            });
            grow = Some((s, span, flags));
        } else {
            self.walk_chain(|b| blocks.push(b))?;
        }
        let used_on_chain = |b: u64| blocks.iter().any(|x| x.offset == b && !x.header.is_free());
        let pending = match intent.op {
            // The dead owner never got (or no longer wants) this block.
            INTENT_ALLOC | INTENT_FREE if s != 0 && used_on_chain(s) => Some(s),
            INTENT_GROW if growing && used_on_chain(s) => Some(s),
            _ => None,
        };
        Ok(RepairPlan {
            intent_op: intent.op,
            new_sentinel: cap.wrapping_sub(BLOCK_HEADER),
            grow,
            pending,
            completed_growth: growing && pending.is_some(),
            blocks,
        })
    }

    /// Phase 2 of a repair (after [`Arena::plan_repair`]): merges adjacent free blocks and
    /// rebuilds footers, PREV_FREE bits, free lists, bitmaps and counters from the chain,
    /// each store to a word of the chain `plan` checked or of the state.
    pub fn apply_repair(&mut self, plan: RepairPlan) -> Result<RepairReport> {
        let mut report = RepairReport {
            intent_op: plan.intent_op,
            completed_growth: plan.completed_growth,
            ..RepairReport::default()
        };
        if let Some((s, span, flags)) = plan.grow {
            let end = plan.new_sentinel;
            self.store(end, encode(end, 0, 0))?;
            self.store(s, encode(s, span, flags))?;
        }
        // Pass 1: merge runs of free blocks (each merge commits by growing the first).
        let mut merged: Vec<Block> = Vec::with_capacity(plan.blocks.len());
        for b in plan.blocks {
            match merged.last_mut() {
                Some(Block { offset, header }) if header.is_free() && b.header.is_free() => {
                    header.size += b.header.size;
                    let (o, h) = (*offset, *header);
                    self.store(o, encode(o, h.size, FREE | (h.flags & PREV_FREE)))?;
                    report.merged += 1;
                }
                _ => merged.push(b),
            }
        }
        // Pass 2: rebuild everything derived from the chain.
        self.store_state(st!(fl_bitmap), 0)?;
        for k in 0..FL_COUNT / 2 {
            self.store_state(st!(sl_bitmap) + 8 * k as u64, 0)?;
        }
        for idx in 0..FL_COUNT * SL_COUNT {
            if self.state().heads[idx] != 0 {
                self.store_state(st!(heads) + 8 * idx as u64, 0)?;
            }
        }
        let mut counts = [0u64; 4]; // used bytes, used blocks, free bytes, free blocks
        let mut prev_free = false;
        for b in &merged {
            let pf = if prev_free { PREV_FREE } else { 0 };
            let free = b.header.is_free();
            let size = b.header.size;
            self.store(
                b.offset,
                encode(b.offset, size, pf | if free { FREE } else { 0 }),
            )?;
            if free {
                self.store(b.offset + size - 8, size)?;
                self.edit(|e| e.link(b.offset, size))?;
                counts[2] += size;
                counts[3] += 1;
            } else {
                counts[0] += size;
                counts[1] += 1;
            }
            prev_free = free;
        }
        let end = self.sentinel();
        self.store(end, encode(end, 0, if prev_free { PREV_FREE } else { 0 }))?;
        self.store_state(st!(used_bytes), counts[0])?;
        self.store_state(st!(used_blocks), counts[1])?;
        self.store_state(st!(free_bytes), counts[2])?;
        self.store_state(st!(free_blocks), counts[3])?;
        if let Some(b) = plan.pending {
            // The free that follows rewrites the intent record (block, then op) before its
            // first change, so there is no moment without an intent naming the block.
            self.free(b + BLOCK_HEADER)?;
            report.freed_block = Some(b);
        } else if plan.intent_op != INTENT_NONE {
            self.store_state(st!(intent.op), INTENT_NONE)?;
        }
        report.free_blocks = self.state().free_blocks;
        Ok(report)
    }

    /// Lays out a fresh arena in `[HEADER_SIZE, capacity)`: one free block and the sentinel.
    pub fn format(&mut self) -> Result<()> {
        let cap = self.state().capacity;
        let size = cap - BLOCK_HEADER - HEADER_SIZE;
        self.store(HEADER_SIZE, encode(HEADER_SIZE, size, FREE))?;
        self.store(HEADER_SIZE + size - 8, size)?;
        self.store(cap - BLOCK_HEADER, encode(cap - BLOCK_HEADER, 0, PREV_FREE))?;
        self.edit(|e| {
            e.link(HEADER_SIZE, size)?;
            e.set_st(st!(free_blocks), 1)?;
            e.set_st(st!(free_bytes), size)
        })
    }
}
