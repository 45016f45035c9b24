//! The allocator over a mapped arena: TLSF with immediate coalescing, all links as offsets.
//!
//! Invariants kept here (docs/invariants.md):
//! * A2 the physical chain of block headers tiles `[HEADER_SIZE, capacity - 8)` exactly and
//!   ends with the size-0 sentinel at `capacity - 8`, which is never free; it is the source
//!   of truth.
//! * A3 every structural change commits with one 8-byte header store (see `format::block`),
//!   after the intent record names the operation, so a process killed between any two
//!   stores leaves a walkable chain, and a repair ([`Arena::plan_repair`], then
//!   [`Arena::apply_repair`]) can finish or undo the operation and rebuild the free lists
//!   and bitmaps from the chain.
//! * A4 no two physically adjacent blocks are free (immediate coalescing).
//! * A5 every free block is in exactly the list of its size class; bitmaps say which lists
//!   are non-empty; links are symmetric.
//! * D1 refusal before damage: an operation reads and checks everything it will touch
//!   first ([`Editor`], a plan of stores over an overlay), and stores only once the whole
//!   plan is known to be valid. A corrupt heap makes it fail with nothing written. The two
//!   exceptions to the plan, the common logged allocation (`direct.rs`) and the free
//!   (`direct_free.rs`), check the same words from the file (as the plan's overlay leaves
//!   them) before their first store and make the plan's stores in its order.
//! * D2 every store to the file goes through [`Arena::store`] (or a plan applied by it):
//!   bounds-checked, `Release`-ordered and counted as a crash point, so the crash
//!   enumeration (`fault::arm_store_unwind`) covers a new store as soon as it exists.
//!
//! Memory safety does not depend on the file: every word is read through a bounds- and
//! alignment-checked accessor, and a header whose tag does not match is reported as
//! corruption.

mod direct;
mod direct_free;
mod edit;
mod grow;
mod kept;
mod lists;
mod ops;
mod repair;
pub mod tlsf;

pub use edit::{Editor, Plan};
pub use kept::KeptFree;
pub use ops::block_sizes;
pub use repair::{ChainBreak, ChainFault, RepairPlan, RepairReport};

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::block::{self, Header};
use crate::format::{State, BLOCK_HEADER, HEADER_SIZE, STATE_OFFSET, STATE_SIZE};

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

/// The file offset of a `State` field: `st!(used_bytes)`, `st!(log.len)`.
macro_rules! st {
    ($($f:tt)+) => {
        (crate::format::STATE_OFFSET + std::mem::offset_of!(crate::format::State, $($f)+)) as u64
    };
}
pub(crate) use st;

/// The mapped arena and its allocator state, seen by the lock's owner.
pub struct Arena<'a> {
    base: *mut u8,
    /// Bytes mapped at `base`: the hard bound of every access.
    map_len: u64,
    page_size: u64,
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
        debug_assert!(map_len >= HEADER_SIZE);
        Arena {
            base,
            map_len,
            page_size,
            _lock: PhantomData,
        }
    }

    /// The allocator state, for reading. Every change goes through [`Arena::store`].
    #[inline]
    pub fn state(&self) -> &State {
        // SAFETY: in bounds and aligned (STATE_OFFSET + size_of::<State>() <= HEADER_SIZE <=
        // map_len by `new`'s contract, base page-aligned); under the lock no other process
        // writes it, and our own atomic stores run only while no borrow from here lives.
        unsafe { &*self.base.add(STATE_OFFSET).cast::<State>() }
    }

    /// Bytes mapped (the bound of every access).
    pub fn map_len(&self) -> u64 {
        self.map_len
    }

    /// The page size alignment is promised up to.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Where the sentinel must be.
    #[inline]
    pub fn sentinel(&self) -> u64 {
        self.state().capacity.wrapping_sub(BLOCK_HEADER)
    }

    /// Whether `[at, at + 8)` is a word the allocator may touch when the capacity is
    /// `capacity`: a state word, or an arena word below the capacity and the mapping.
    #[inline]
    fn in_bounds(&self, at: u64, capacity: u64) -> bool {
        let state = STATE_OFFSET as u64..(STATE_OFFSET + STATE_SIZE) as u64;
        at.is_multiple_of(8)
            && (state.contains(&at)
                || (at >= HEADER_SIZE
                    && at
                        .checked_add(8)
                        .is_some_and(|e| e <= capacity.min(self.map_len))))
    }

    #[inline]
    fn cell_unchecked(&self, at: u64) -> &AtomicU64 {
        debug_assert!(at.is_multiple_of(8) && at + 8 <= self.map_len);
        // SAFETY: callers checked `in_bounds` (8-aligned, inside the mapping, which `new`'s
        // contract keeps alive for 'a); we hold the lock, and no reference into the words
        // the allocator touches is alive while it runs, so atomic access is sound.
        unsafe { AtomicU64::from_ptr(self.base.add(at as usize).cast()) }
    }

    #[inline]
    fn cell(&self, at: u64) -> Result<&AtomicU64> {
        if !self.in_bounds(at, self.state().capacity) {
            return corrupt(at, "word outside the arena");
        }
        Ok(self.cell_unchecked(at))
    }

    /// Reads the arena word at `at` (bounds- and alignment-checked).
    #[inline]
    pub fn word(&self, at: u64) -> Result<u64> {
        if at < HEADER_SIZE {
            return corrupt(at, "word outside the arena");
        }
        Ok(self.cell(at)?.load(Ordering::Relaxed))
    }

    /// Reads any 8-aligned word of the header (for `check`: identity, padding, state).
    /// The lock word and the attachment table change under other processes' feet; they
    /// are read atomically like everything else, and `check` does not judge them.
    pub fn header_word(&self, at: u64) -> Option<u64> {
        (at.is_multiple_of(8) && at < HEADER_SIZE)
            .then(|| self.cell_unchecked(at).load(Ordering::Relaxed))
    }

    /// The single store path for arena words (D2; state words: [`Arena::store_state`]):
    /// writes the word at `at` (inside the capacity), `Release`, so that every store is ordered after the stores
    /// before it for the compiler and the CPU; then passes the store crash point.
    pub fn store(&mut self, at: u64, value: u64) -> Result<()> {
        if at < HEADER_SIZE {
            return corrupt(at, "word outside the arena");
        }
        self.cell(at)?.store(value, Ordering::Release);
        crate::fault::stored();
        Ok(())
    }

    /// The header at `offset`, if its tag matches.
    #[inline]
    pub fn header(&self, offset: u64) -> Result<Header> {
        let w = self.word(offset)?;
        block::decode(offset, w).ok_or(AllocError::Corrupt {
            offset,
            what: "block header tag mismatch",
        })
    }

    /// Sets the state's flags word (a state word: through [`Arena::store_state`], as
    /// [`Arena::store`] refuses every word below the arena).
    pub fn set_flags(&mut self, flags: u64) -> Result<()> {
        self.store_state(st!(flags), flags)
    }
}

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
