//! `HeapGuard`: the lock held, the heap usable, and every change one transaction.
//!
//! Invariant G1: every Rust reference into the mapping that a guard hands out borrows the
//! guard, so it dies before the lock is released and before any remap (which needs
//! `&mut self` or a new guard). Invariant H4: before a guard is returned, a dead owner's
//! (or a failed guard's) leftovers are repaired: the allocator first, then the transaction
//! in the undo log is rolled back or finished. Invariant T6: a guard dropped normally
//! commits; dropped by a panic, or by `abort`, it rolls back; a death leaves the log to the
//! next owner.
//!
//! The guard's methods live in `access.rs` (resolution, reads and logged writes),
//! `space.rs` (allocation, free, growth) and `inspect.rs` (check, stats).

use super::{format_err, io_err, Heap, Local};
use crate::alloc::{Arena, RepairReport};
use crate::error::Result;
use crate::format::{self, FLAG_NEEDS_REPAIR};
use crate::map::Mapping;
use crate::mutant::{active, Mutant};
use crate::sync::{self, Acquired, OwnerId};
use crate::txn::{self, Undo, Undone};

/// What happened when the lock was taken over from a dead owner (or a guard before this
/// one failed to end its transaction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The owner that died holding the lock (`None` if the repair was asked for by a guard
    /// that could not end its transaction, or by an operation left in flight).
    pub dead: Option<OwnerId>,
    /// What the allocator's repair did.
    pub repair: RepairReport,
    /// What was done to the transaction the log held, if it held one.
    pub undone: Option<Undone>,
}

/// Usage figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Bytes of the file in use by the heap.
    pub capacity: u64,
    /// Growth count.
    pub generation: u64,
    /// Bytes in allocated blocks, headers included.
    pub used_bytes: u64,
    /// Allocated blocks.
    pub used_blocks: u64,
    /// Bytes in free blocks.
    pub free_bytes: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// The largest free block (what one allocation can get, minus its 8-byte header).
    pub largest_free: u64,
    /// Free blocks by size: entry `i` counts sizes in `[2^i, 2^(i+1))`.
    pub free_histogram: Vec<u64>,
    /// The payload offset of the undo log's block: a used block that belongs to the heap
    /// (counted in `used_blocks` and `used_bytes`, never handed out).
    pub log_block: u64,
    /// Bytes the undo log can hold.
    pub log_capacity: u64,
}

/// One block of the arena, for `dump`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BlockInfo {
    /// Offset of the header.
    pub offset: u64,
    /// Size including the header.
    pub size: u64,
    /// Whether it is free.
    pub free: bool,
}

/// The heap, locked. Dropping it releases the lock.
///
/// References into the heap borrow the guard, so none outlives the lock (invariant G1).
/// This compiles:
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let heap = mapheap::Heap::create(dir.path().join("h"), 1 << 20).unwrap();
/// let v: u64 = {
///     let mut g = heap.lock().unwrap();
///     let o = g.alloc(1u64).unwrap();
///     *g.get(o).unwrap()
/// };
/// assert_eq!(v, 1);
/// ```
///
/// and this, which would keep a reference past the unlock, does not:
///
/// ```compile_fail
/// # let dir = tempfile::tempdir().unwrap();
/// let heap = mapheap::Heap::create(dir.path().join("h"), 1 << 20).unwrap();
/// let r: &u64 = {
///     let mut g = heap.lock().unwrap();
///     let o = g.alloc(1u64).unwrap();
///     g.get(o).unwrap()
/// };
/// assert_eq!(*r, 1);
/// ```
///
/// nor does holding a shared reference across an allocation (which may move nothing, but
/// may write the free lists the reference's neighbours live in):
///
/// ```compile_fail
/// # let dir = tempfile::tempdir().unwrap();
/// let heap = mapheap::Heap::create(dir.path().join("h"), 1 << 20).unwrap();
/// let mut g = heap.lock().unwrap();
/// let o = g.alloc(1u64).unwrap();
/// let r = g.get(o).unwrap();
/// g.alloc(2u64).unwrap();
/// assert_eq!(*r, 1);
/// ```
pub struct HeapGuard<'h> {
    pub(super) heap: &'h Heap,
    /// Holds, in `recovery`, what this guard's lock recovered, if it did (a recovery is
    /// rare: a guard of two pointers, with nothing to free, is returned in registers and
    /// moved without a copy through memory, which a third field, even a flag, costs).
    pub(super) local: &'h mut Local,
}

/// The arena of a mapping (a free function, so that callers can borrow the mapping and the
/// transaction state of `Local` apart).
///
/// # Safety
/// The caller holds the heap's lock for as long as the arena lives, `map` covers the
/// heap's capacity, and no reference into the heap is alive while a `&mut` method of the
/// arena runs.
pub(super) unsafe fn arena_of(map: &Mapping, page: u32) -> Arena<'_> {
    // SAFETY: forwarded to the caller; the mapping is page-aligned and at least the header
    // long, and lives as long as the borrow.
    unsafe { Arena::new(map.base(), map.len(), u64::from(page)) }
}

impl<'h> HeapGuard<'h> {
    #[inline]
    pub(super) fn new(
        heap: &'h Heap,
        local: &'h mut Local,
        acquired: Acquired,
        first: bool,
    ) -> Result<HeapGuard<'h>> {
        let g = HeapGuard { heap, local };
        // The common lock, inlined into the caller: taken cleanly, the mapping current,
        // nothing left in flight. Everything else (a first lock, a growth seen, a repair)
        // goes through `settle`, out of line.
        if !first && acquired == Acquired::Clean && g.current() && !super::leftovers(&g.arena()) {
            return Ok(g);
        }
        g.settle(acquired, first)
    }

    /// [`HeapGuard::new`] past its common case: validates or remaps the mapping, and
    /// recovers if the lock was taken over or anything was left in flight.
    #[inline(never)]
    fn settle(mut self, acquired: Acquired, first: bool) -> Result<HeapGuard<'h>> {
        if first && !active(Mutant::TrustCapacityAtOpen) {
            let (capacity, generation) = self.seen();
            self.remap(capacity, generation)?;
        } else {
            self.refresh()?;
        }
        let dead = match acquired {
            Acquired::Recovered { dead } => Some(dead),
            Acquired::Clean => None,
        };
        if dead.is_some() || super::leftovers(&self.arena()) {
            self.recover(dead)?;
        }
        Ok(self)
    }

    /// Repairs the allocator, then ends the logged transaction (rolls it back, or finishes
    /// it if it had committed); checks all of it before the first store (D1). The sequence
    /// is `heap::recover_arena`, which the models run on a bare arena too.
    #[cold]
    fn recover(&mut self, dead: Option<OwnerId>) -> Result<()> {
        self.local.tx.reset();
        let mut a = self.arena_mut();
        let r = super::recover_arena(&mut a, dead)?;
        self.local.recovery = Some(r);
        Ok(())
    }

    /// Remaps if another process grew the heap; validates the capacity against the file.
    /// The fast path is two compares: the generation this handle mapped, and a capacity the
    /// mapping covers (which the file does too: it never shrinks, M3), so no access can
    /// fault (F3); the rest of the capacity's checks run when either moved.
    #[inline]
    fn refresh(&mut self) -> Result<()> {
        if self.current() {
            return Ok(());
        }
        let (capacity, generation) = self.seen();
        if active(Mutant::StaleMapping) {
            return Ok(());
        }
        self.remap(capacity, generation)
    }

    /// Whether the mapping is the one the state asks for: the generation this handle
    /// mapped, and a capacity the mapping covers.
    #[inline]
    fn current(&self) -> bool {
        let (capacity, generation) = self.seen();
        capacity <= self.local.map.len() && generation == self.local.generation
    }

    /// The capacity and generation the state holds now.
    #[inline]
    fn seen(&self) -> (u64, u64) {
        let a = self.arena();
        (a.state().capacity, a.state().generation)
    }

    /// Validates `capacity` against the file and maps it if the mapping is short.
    #[cold]
    fn remap(&mut self, capacity: u64, generation: u64) -> Result<()> {
        let path = &self.heap.path;
        let file_len = self
            .heap
            .file
            .metadata()
            .map_err(io_err("stat", path))?
            .len();
        format::validate_capacity(capacity, file_len).map_err(format_err(path))?;
        if capacity > self.local.map.len() {
            self.local.map =
                Mapping::new(&self.heap.file, file_len, None).map_err(io_err("remap", path))?;
        }
        self.local.generation = generation;
        Ok(())
    }

    pub(super) fn arena(&self) -> Arena<'_> {
        // SAFETY: we hold the heap's lock for as long as `self` lives; the mapping covers
        // the capacity (checked by `refresh`); the returned arena borrows `self`, so only
        // shared references into the arena (from `get`) can coexist with it, and the
        // arena's `&self` methods only read.
        unsafe { arena_of(&self.local.map, self.heap.page_size) }
    }

    /// The arena for changes: `&mut self` guarantees no reference handed out by this guard
    /// is alive. (`arena` is for reading; only this one may be used to change the heap.)
    pub(super) fn arena_mut(&mut self) -> Arena<'_> {
        self.arena()
    }

    /// The arena and the transaction, borrowed apart, for a logged change.
    pub(super) fn tx_parts(&mut self) -> (Arena<'_>, &mut txn::Tx) {
        let Local { map, tx, .. } = &mut *self.local;
        // SAFETY: as in `arena`; `&mut self` guarantees no reference handed out by this
        // guard is alive.
        (unsafe { arena_of(map, self.heap.page_size) }, tx)
    }

    /// `Some` if the previous owner died holding the lock (or left a change unfinished)
    /// and the heap was repaired.
    pub fn recovered(&self) -> Option<&Recovery> {
        self.local.recovery.as_ref()
    }

    /// Where this process has the heap mapped now (changes when the heap grows).
    pub fn base_address(&self) -> usize {
        self.local.map.base() as usize
    }

    /// Ends the transaction now, keeping its changes (what dropping the guard does, but with
    /// the error, if finishing the deferred frees fails, returned instead of left to the
    /// next owner's repair).
    pub fn commit(mut self) -> Result<()> {
        let (mut a, tx) = self.tx_parts();
        tx.commit(&mut a)?;
        Ok(())
    }

    /// Commits the transaction so far and goes on with a new one, keeping the lock: the
    /// frees made so far take effect and the log is empty again (for long runs of changes
    /// under one lock, which one log could not hold).
    pub fn checkpoint(&mut self) -> Result<()> {
        let (mut a, tx) = self.tx_parts();
        tx.commit(&mut a)?;
        Ok(())
    }

    /// Ends the transaction now, undoing every change made through this guard: the
    /// before-images are written back newest-first, the blocks it allocated are freed, its
    /// frees are cancelled, its root changes undone. Says what it undid.
    pub fn abort(mut self) -> Result<Undo> {
        let (mut a, tx) = self.tx_parts();
        Ok(tx.rollback(&mut a)?)
    }

    /// Bytes of undo log the transaction uses so far, and the log's capacity.
    pub fn log_usage(&self) -> (u64, u64) {
        (self.local.tx.log_len(), self.arena().state().log.cap)
    }
}

impl HeapGuard<'_> {
    /// Ends the transaction of a guard being dropped: commits it, or rolls it back if the
    /// drop comes from a panic (out of line: a guard that wrote nothing skips it).
    #[inline(never)]
    fn end_on_drop(&mut self) {
        let roll_back = std::thread::panicking() && !active(Mutant::PanicCommits);
        let (mut a, tx) = self.tx_parts();
        let ended = if roll_back {
            tx.rollback(&mut a).map(drop).map_err(drop)
        } else {
            tx.commit(&mut a).map(drop).map_err(drop)
        };
        if ended.is_err() {
            // The log is still in the file: the next guard ends the transaction.
            let flags = a.state().flags;
            let _ = a.set_flags(flags | FLAG_NEEDS_REPAIR);
            tx.reset();
        }
    }
}

impl Drop for HeapGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.local.recovery.is_some() {
            // Only this guard's recovery is reported by it (`recovered`).
            self.local.recovery = None;
        }
        if crate::fault::dying() {
            // A simulated death (tests): leave the lock and the file as a SIGKILL would.
            return;
        }
        // A transaction whose commit or rollback failed half-way keeps its length, so it is
        // still active here, and both calls in `end_on_drop` refuse it (`TxnError::Ended`).
        if self.local.tx.active() {
            self.end_on_drop();
        }
        sync::unlock(&self.heap.futex(), self.heap.owner);
    }
}
