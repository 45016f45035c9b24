//! The reference model: a heap's committed state (`View`: blocks with their bytes, and the
//! root table), and what one open transaction has done to it (`Txn`), with the undo log
//! the transaction must have written (`Log`).
//!
//! Invariant: the model decides every outcome from its own state and the heap's largest
//! free block (read before the step: where blocks land is the allocator's choice, and
//! `alloc_model` pins when an allocation fails to that figure). The log's layout is
//! restated from the module doc of src/txn/mod.rs and docs, not imported: a 16-byte
//! header per entry, an IMAGE's data rounded up to 8, a PAD to fill a segment that cannot
//! hold the next entry, at most 8 extension segments of at least twice the last one.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::{tlsf_guaranteed, tlsf_search};

/// Bytes of an entry's header.
pub const ENTRY: u64 = 16;
/// Most extension segments a log may have.
pub const EXTENSIONS: usize = 8;
/// Root table entries.
pub const ROOTS: usize = 32;
/// Bytes a root entry's before-image takes.
pub const ROOT_ENTRY: u64 = 64;

/// Whether the allocator certainly finds a block for `size` bytes aligned to `align` when
/// its largest free block is `largest` bytes (the TLSF bound of `alloc_model`).
pub fn fits(size: u64, align: u64, largest: u64) -> bool {
    tlsf_search(size, align)
        .map(tlsf_guaranteed)
        .is_some_and(|b| largest >= b)
}

/// The largest request of alignment 8 that fits a largest free block of `room` bytes.
pub fn max_fit(room: u64) -> Option<u64> {
    if !fits(1, 8, room) {
        return None;
    }
    let (mut lo, mut hi) = (1, room);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid, 8, room) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// What the heap shows: blocks (payload offset → every usable byte) and the root table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub blocks: BTreeMap<u64, Vec<u8>>,
    /// Slot by slot: name and payload offset.
    pub roots: Vec<Option<(String, u64)>>,
}

impl View {
    pub fn new() -> View {
        View {
            blocks: BTreeMap::new(),
            roots: vec![None; ROOTS],
        }
    }

    /// The slot holding `name`, or else the first free one (what `set_root` takes).
    pub fn slot_for(&self, name: &str) -> Option<usize> {
        self.slot_of(name)
            .or_else(|| self.roots.iter().position(Option::is_none))
    }

    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.roots
            .iter()
            .position(|r| r.as_ref().is_some_and(|(n, _)| n == name))
    }

    pub fn rooted(&self, payload: u64) -> bool {
        self.roots.iter().flatten().any(|(_, o)| *o == payload)
    }

    /// The roots as `HeapGuard::roots` lists them: used slots in table order.
    pub fn root_list(&self) -> Vec<(String, u64)> {
        self.roots.iter().flatten().cloned().collect()
    }
}

/// The undo log of the open transaction, as the model predicts it.
#[derive(Clone, Debug)]
pub struct Log {
    /// Segments: (first position, bytes). The first is the log's own block; an
    /// extension's size is learned from the heap after the step that made it.
    pub segs: Vec<(u64, u64)>,
    /// Bytes of log used (`HeapGuard::log_usage().0`).
    pub len: u64,
    /// Entries made, PADs included (what `Undo::entries` counts).
    pub entries: u64,
    /// Bytes of before-images (`Undo::bytes_restored`).
    pub images: u64,
    /// Allocations logged (`Undo::blocks_freed`).
    pub allocs: u64,
}

/// A log with no room for an entry: what `TxnError::LogFull` must say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    pub needed: u64,
    pub cap: u64,
}

impl Log {
    pub fn new(cap: u64) -> Log {
        Log {
            segs: vec![(0, cap)],
            len: 0,
            entries: 0,
            images: 0,
            allocs: 0,
        }
    }

    pub fn total(&self) -> u64 {
        self.segs.iter().map(|s| s.1).sum()
    }

    /// Makes room for an entry of `size` bytes, as the transaction does before it writes
    /// one: if the segment in use cannot hold it, a PAD fills the segment's rest (when 16
    /// bytes or more are left) and the entry goes to a new extension segment, which needs
    /// an allocation of at least twice the last segment (`largest`: the heap's largest
    /// free block). `Ok(true)` if an extension was made. A refusal keeps what it did
    /// before the allocation (the PAD, the move to the segment's end).
    pub fn room(&mut self, size: u64, largest: u64) -> Result<bool, Full> {
        let (base, cap) = *self.segs.last().expect("a log has a segment");
        let end = base + cap;
        let rem = end.saturating_sub(self.len);
        if size <= rem {
            return Ok(false);
        }
        if rem >= ENTRY {
            self.entries += 1;
        }
        self.len = end;
        let full = Full {
            needed: size,
            cap: self.total(),
        };
        if self.segs.len() > EXTENSIONS {
            return Err(full);
        }
        let want = size.max(2 * cap).next_multiple_of(8);
        if !fits(want, 8, largest) {
            return Err(full);
        }
        self.segs.push((end, want));
        Ok(true)
    }

    /// Takes in an entry of `size` bytes (after `room`).
    pub fn push(&mut self, size: u64) {
        self.len += size;
        self.entries += 1;
    }
}

/// One open transaction: its view, and what it has logged.
#[derive(Clone, Debug)]
pub struct Txn {
    /// What the guard shows (and what a commit makes the committed state).
    pub p: View,
    /// Blocks it frees at commit (still allocated, no longer resolving).
    pub freeing: BTreeSet<u64>,
    /// Blocks it allocated (written without before-images).
    pub fresh: BTreeSet<u64>,
    /// Per block that existed before it: bytes from the start saved in the log.
    pub imaged: BTreeMap<u64, u64>,
    /// Per block: the longest write it made (what `Len::Extend`/`Within` refer to).
    pub written: BTreeMap<u64, u64>,
    /// Root slots whose entry it saved.
    pub roots_imaged: BTreeSet<usize>,
    pub log: Log,
}

impl Txn {
    pub fn new(c: &View, log_cap: u64) -> Txn {
        Txn {
            p: c.clone(),
            freeing: BTreeSet::new(),
            fresh: BTreeSet::new(),
            imaged: BTreeMap::new(),
            written: BTreeMap::new(),
            roots_imaged: BTreeSet::new(),
            log: Log::new(log_cap),
        }
    }

    /// What `abort` must report: (bytes restored, blocks freed, entries).
    pub fn undo(&self) -> (u64, u64, u64) {
        (self.log.images, self.log.allocs, self.log.entries)
    }
}
