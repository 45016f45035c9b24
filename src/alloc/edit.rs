//! Plans of stores: how an operation is checked whole before it writes anything (D1).
//!
//! An [`Editor`] reads the arena through an overlay of the stores it has planned so far and
//! records each store instead of making it; every address it will store to is
//! bounds-checked when the store is planned. Only when the whole operation has been planned
//! without an error does [`Arena::apply`] make the stores, in the planned order (the order
//! is what makes each operation crash-safe, A3), each through the one counted store path
//! (D2). So an operation on a corrupt heap fails with nothing written.

use std::mem::MaybeUninit;

use super::{corrupt, Arena, Result};
use crate::fault::CrashPoint;
use crate::format::block::{self, Header};
use crate::format::{HEADER_SIZE, STATE_OFFSET, STATE_SIZE};
use crate::mutant::{active, Mutant};

/// The most stores one operation plans (an aligned allocation that splits twice and logs
/// itself plans about 40).
const MAX_STORES: usize = 64;
const _: () = assert!(
    MAX_STORES <= u16::MAX as usize,
    "a store's index fits a u16"
);
/// The most named crash points one plan carries.
const MAX_MARKS: usize = 4;
/// The most lists one operation changes the head of (at most three today: a free that
/// merges both neighbours plans two unlinks and a link, an aligned allocation that splits
/// twice an unlink and two links).
const MAX_LISTS: usize = 8;

/// Stores planned over an arena, not yet made (into a [`Plan`] the caller owns, so that
/// the kilobyte of it is never moved).
pub struct Editor<'p, 'a> {
    arena: &'p Arena<'a>,
    plan: &'p mut Plan,
    /// The end of the words the plan may touch: the mapping's length, or for a dry run of
    /// a growth the capacity it grows to (words past the mapping may then be planned, but
    /// only planned words are read there).
    limit: u64,
    /// Changes to the four counters (used bytes, used blocks, free bytes, free blocks, in
    /// state order), stored once by [`Editor::clear_intent`]: while the intent record is
    /// set a death leaves them to the repair, which rebuilds them, so where they fall
    /// among the operation's stores does not matter as long as it is before the clear.
    deltas: [u64; 4],
    /// The lists whose head this plan changed (`State::heads` indices, `nl` of them): their
    /// bitmap bits are planned once, from the heads the plan leaves, by
    /// [`Editor::flush_lists`] (so a list emptied and refilled by one operation, as the
    /// split of a block that stays in its class does, changes no bitmap at all). Like the
    /// counters, the bitmaps are rebuilt from the chain by the repair of any death while
    /// the intent record is set, so where their stores fall before the clear is free.
    lists: [Touched; MAX_LISTS],
    nl: usize,
}

/// A list whose head a plan changed.
#[derive(Clone, Copy, Default)]
struct Touched {
    /// Its index in `State::heads`.
    idx: u16,
    /// The plan's store to its head (the only one: later changes overwrite it), an index
    /// below `MAX_STORES` (narrow, so that a new editor's table of lists is small to clear).
    store: u16,
    /// Whether its head in the file is 0 (so its bit is clear in a sound heap).
    was_empty: bool,
    /// Whether the head the plan leaves is 0.
    empty: bool,
}

/// A finished plan: the stores, in order, and the named crash points between them.
pub struct Plan {
    /// `stores[..n]` are initialised (left uninitialised beyond: a plan is made per
    /// operation, and zeroing a kilobyte each time would cost more than the operation).
    stores: [MaybeUninit<(u64, u64)>; MAX_STORES],
    n: usize,
    /// (How many stores come before it, the point.)
    marks: [(u16, CrashPoint); MAX_MARKS],
    nm: usize,
    /// The capacity the plan leaves (it changes only by growth).
    capacity: u64,
    /// Bit `(at / 8) % 64` is set for every planned address `at`: a load whose bit is clear
    /// needs no scan of the stores.
    seen: u64,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Plan {
        Plan {
            stores: [const { MaybeUninit::uninit() }; MAX_STORES],
            n: 0,
            marks: [(0, CrashPoint::LockAcquired); MAX_MARKS],
            nm: 0,
            capacity: 0,
            seen: 0,
        }
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan::new()
    }
}

impl<'p, 'a> Editor<'p, 'a> {
    /// An editor over `arena` that plans into `plan` (emptied first).
    pub fn new(arena: &'p Arena<'a>, plan: &'p mut Plan) -> Self {
        plan.n = 0;
        plan.nm = 0;
        plan.seen = 0;
        plan.capacity = arena.state().capacity;
        Editor {
            arena,
            plan,
            limit: arena.map_len(),
            deltas: [0; 4],
            lists: [Touched::default(); MAX_LISTS],
            nl: 0,
        }
    }

    /// Reads the file's word at `at` (checked by the caller).
    #[inline]
    fn file_word(&self, at: u64) -> u64 {
        self.arena
            .cell_unchecked(at)
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An editor for a plan that is never applied: it checks an operation whole before its
    /// preconditions exist (a growth, before the file is extended and mapped), admitting
    /// stores up to `limit` and refusing to read an unplanned word past the mapping.
    pub(super) fn dry(arena: &'p Arena<'a>, plan: &'p mut Plan, limit: u64) -> Self {
        Editor {
            limit,
            ..Editor::new(arena, plan)
        }
    }

    /// The end of the words the plan may touch (see [`Editor::dry`]).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The arena being edited (for reads that no planned store can have changed).
    pub fn arena(&self) -> &'p Arena<'a> {
        self.arena
    }

    #[inline]
    fn pending(&self, at: u64) -> Option<u64> {
        if self.plan.seen & (1 << ((at >> 3) & 63)) == 0 {
            return None;
        }
        self.plan
            .stores()
            .iter()
            .rev()
            .find(|(a, _)| *a == at)
            .map(|&(_, v)| v)
    }

    #[inline]
    fn check_arena(&self, at: u64) -> Result<()> {
        let end = self.plan.capacity.min(self.limit);
        if at < HEADER_SIZE || !at.is_multiple_of(8) || at.checked_add(8).is_none_or(|e| e > end) {
            return corrupt(at, "word outside the arena");
        }
        Ok(())
    }

    /// The arena word at `at` as the plan leaves it. Addresses read from the file are
    /// checked against the arena only: never a state word.
    #[inline]
    pub fn load(&self, at: u64) -> Result<u64> {
        self.check_arena(at)?;
        Ok(match self.pending(at) {
            Some(v) => v,
            None if at + 8 > self.arena.map_len() => {
                return corrupt(at, "word not yet mapped (a dry run of a growth)")
            }
            None => self.file_word(at),
        })
    }

    /// Plans a store to the arena word at `at`.
    #[inline]
    pub fn put(&mut self, at: u64, value: u64) -> Result<()> {
        self.check_arena(at)?;
        self.push(at, value)
    }

    #[inline]
    fn push(&mut self, at: u64, value: u64) -> Result<()> {
        if self.plan.n == MAX_STORES {
            return corrupt(at, "operation plans too many stores");
        }
        self.plan.stores[self.plan.n].write((at, value));
        self.plan.seen |= 1 << ((at >> 3) & 63);
        self.plan.n += 1;
        Ok(())
    }

    /// The state word at file offset `at` (from `st!`) as the plan leaves it.
    #[inline]
    pub fn st(&self, at: u64) -> u64 {
        debug_assert!(is_state_word(at), "{at:#x} is not a state word");
        match self.pending(at) {
            Some(v) => v,
            None => self.file_word(at),
        }
    }

    /// Plans a store to the state word at `at` (from `st!`).
    #[inline]
    pub fn set_st(&mut self, at: u64, value: u64) -> Result<()> {
        debug_assert!(is_state_word(at), "{at:#x} is not a state word");
        if at == super::st!(capacity) {
            self.plan.capacity = value;
        }
        self.push(at, value)
    }

    /// Plans a store to a list's head word, in place of an earlier store to the same head
    /// in this plan if there is one: heads, like the bitmaps, are rebuilt from the chain by
    /// the repair of any death while the intent record is set, so only their final values
    /// matter, and an unlink and a link of one list make one store, not two.
    pub(super) fn set_head(&mut self, idx: usize, value: u64) -> Result<()> {
        let at = super::lists::head_at(idx);
        let k = match self.lists[..self.nl]
            .iter()
            .position(|t| t.idx as usize == idx)
        {
            Some(k) => {
                // Planned before: that store takes the new value.
                self.plan.stores_mut()[usize::from(self.lists[k].store)].1 = value;
                k
            }
            None => {
                if self.nl == MAX_LISTS {
                    return corrupt(at, "operation changes too many lists");
                }
                let was_empty = self.file_word(at) == 0;
                self.push(at, value)?;
                self.lists[self.nl] = Touched {
                    idx: idx as u16,
                    store: (self.plan.n - 1) as u16,
                    was_empty,
                    empty: was_empty,
                };
                self.nl += 1;
                self.nl - 1
            }
        };
        self.lists[k].empty = value == 0;
        Ok(())
    }

    /// Plans the bitmap bits of every list this plan emptied or filled: a list's bit is
    /// set exactly when its head is not 0, a class's first-level bit exactly when one of
    /// its lists' bits is (A5). A list that was not empty and is not now (or was empty and
    /// is again) keeps its bits, so the common operation plans no bitmap store.
    #[inline]
    pub(super) fn flush_lists(&mut self) -> Result<()> {
        if self.nl == 0 {
            return Ok(());
        }
        self.flush_touched()
    }

    /// [`Editor::flush_lists`] when some list's head was planned.
    #[inline(never)]
    fn flush_touched(&mut self) -> Result<()> {
        for k in 0..self.nl {
            let t = self.lists[k];
            if t.was_empty == t.empty
                || (t.empty && active(Mutant::KeepEmptyListBit))
                || (!t.empty && active(Mutant::FillWithoutListBit))
            {
                continue;
            }
            let idx = t.idx as usize;
            let at = super::lists::list_bit_word(idx);
            // (The first-level bitmap is another word: read before the store or after, the
            // same value.)
            let fl_map = self.st(super::st!(fl_bitmap));
            let (nw, nf) = super::lists::list_bits(idx, t.empty, self.st(at), fl_map);
            self.set_st(at, nw)?;
            if nf != fl_map {
                self.set_st(super::st!(fl_bitmap), nf)?;
            }
        }
        self.nl = 0;
        Ok(())
    }

    /// Which of the four counters (used bytes, used blocks, free bytes, free blocks) the
    /// state word at `at` is.
    pub(super) fn counter(at: u64) -> Option<usize> {
        let first = super::st!(used_bytes);
        (first..first + 32)
            .contains(&at)
            .then(|| ((at - first) / 8) as usize)
    }

    /// Adds `delta` (wrapping: counters come from the file) to a state counter.
    #[inline]
    pub fn add_st(&mut self, at: u64, delta: u64) -> Result<()> {
        if let Some(i) = Self::counter(at) {
            self.deltas[i] = self.deltas[i].wrapping_add(delta);
            return Ok(());
        }
        let v = self.st(at).wrapping_add(delta);
        self.set_st(at, v)
    }

    /// Subtracts `delta` (wrapping) from a state counter.
    #[inline]
    pub fn sub_st(&mut self, at: u64, delta: u64) -> Result<()> {
        self.add_st(at, delta.wrapping_neg())
    }

    /// Plans the stores of the counters' changes (see `deltas`).
    pub(super) fn flush_counters(&mut self) -> Result<()> {
        let first = super::st!(used_bytes);
        for i in 0..4 {
            if self.deltas[i] != 0 {
                let at = first + 8 * i as u64;
                // No plan stores a counter but this one, so the file holds its value.
                let v = self.file_word(at).wrapping_add(self.deltas[i]);
                self.deltas[i] = 0;
                self.set_st(at, v)?;
            }
        }
        Ok(())
    }

    /// Whether every counter and list bitmap change has been planned.
    pub(super) fn counters_flushed(&self) -> bool {
        self.deltas == [0; 4] && self.nl == 0
    }

    /// The capacity as the plan leaves it.
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.plan.capacity
    }

    /// Where the sentinel is, as the plan leaves it.
    #[inline]
    pub fn sentinel(&self) -> u64 {
        self.plan.capacity.wrapping_sub(8)
    }

    /// The header at `at`, if its tag matches.
    #[inline]
    pub fn header(&self, at: u64) -> Result<Header> {
        let w = self.load(at)?;
        block::decode(at, w).ok_or(super::AllocError::Corrupt {
            offset: at,
            what: "block header tag mismatch",
        })
    }

    /// Plans a header store.
    #[inline]
    pub fn set_header(&mut self, at: u64, size: u64, flags: u64) -> Result<()> {
        self.put(at, block::encode(at, size, flags))
    }

    /// A named crash point after the stores planned so far (nothing without the `mutants`
    /// feature, where a crash point is an empty function and `apply` does not look).
    #[inline]
    pub fn mark(&mut self, point: CrashPoint) {
        if cfg!(feature = "mutants") && self.plan.nm < MAX_MARKS {
            self.plan.marks[self.plan.nm] = (self.plan.n as u16, point);
            self.plan.nm += 1;
        }
    }
}

fn is_state_word(at: u64) -> bool {
    at.is_multiple_of(8) && (STATE_OFFSET as u64..(STATE_OFFSET + STATE_SIZE) as u64).contains(&at)
}

impl Plan {
    fn stores_mut(&mut self) -> &mut [(u64, u64)] {
        // SAFETY: as in `stores`; `&mut self` makes the slice the only access.
        unsafe { std::slice::from_raw_parts_mut(self.stores.as_mut_ptr().cast(), self.n) }
    }

    fn stores(&self) -> &[(u64, u64)] {
        // SAFETY: `stores[..n]` were each written by `push` before `n` was raised past
        // them, and MaybeUninit<T> has T's layout.
        unsafe { std::slice::from_raw_parts(self.stores.as_ptr().cast(), self.n) }
    }

    /// The planned stores, in order (for tests of what a plan holds).
    #[cfg(test)]
    pub(super) fn planned(&self) -> &[(u64, u64)] {
        self.stores()
    }
}

impl Arena<'_> {
    /// Plans an operation with `f` and, if the whole of it could be planned, makes its
    /// stores (D1); on an error nothing is written.
    #[inline]
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut Editor<'_, '_>) -> Result<R>) -> Result<R> {
        let mut plan = Plan::new();
        let r = {
            let mut e = Editor::new(self, &mut plan);
            let r = f(&mut e).and_then(|r| e.flush_lists().map(|()| r));
            debug_assert!(
                r.is_err() || e.counters_flushed(),
                "counters changed, never stored"
            );
            r
        };
        if r.is_ok() || active(Mutant::WriteBeforeCheck) {
            // (The mutant writes what it planned before the check that failed.)
            self.apply(&plan);
        }
        r
    }

    /// Makes the stores of `plan`, in order, through the counted store path. Every address
    /// was bounds-checked when it was planned, against the capacity the plan had reached
    /// by then, and the stores reach that capacity in the same order; so no store here
    /// can fail, and none is made unless the whole operation was planned.
    pub fn apply(&mut self, plan: &Plan) {
        if !cfg!(feature = "mutants") || plan.nm == 0 {
            // Without the `mutants` feature a named crash point is an empty function: the
            // loop need not look for them.
            for &(at, value) in plan.stores() {
                self.cell_unchecked(at)
                    .store(value, std::sync::atomic::Ordering::Release);
                crate::fault::stored();
            }
            return;
        }
        let mut marks = plan.marks[..plan.nm].iter().peekable();
        for (i, &(at, value)) in plan.stores().iter().enumerate() {
            while let Some(&(_, p)) = marks.next_if(|(k, _)| usize::from(*k) == i) {
                crate::fault::hit(p);
            }
            self.cell_unchecked(at)
                .store(value, std::sync::atomic::Ordering::Release);
            crate::fault::stored();
        }
        for &(_, p) in marks {
            crate::fault::hit(p);
        }
    }

    /// Stores to a state word (from `st!`), through the counted store path.
    pub fn store_state(&mut self, at: u64, value: u64) -> Result<()> {
        if !is_state_word(at) {
            return corrupt(at, "not a state word");
        }
        self.cell_unchecked(at)
            .store(value, std::sync::atomic::Ordering::Release);
        crate::fault::stored();
        Ok(())
    }
}

impl Arena<'_> {
    /// Whether `[at, at + n)` is a range of whole words that a bulk copy may touch: inside
    /// the arena's capacity and the mapping, or inside the root table.
    fn range_ok(&self, at: u64, n: u64) -> bool {
        let Some(end) = at.checked_add(n) else {
            return false;
        };
        let roots = super::st!(roots)..super::st!(roots) + 64 * crate::format::ROOT_COUNT as u64;
        let arena = HEADER_SIZE..self.state().capacity.min(self.map_len);
        at.is_multiple_of(8)
            && n.is_multiple_of(8)
            && ((roots.start <= at && end <= roots.end) || (arena.start <= at && end <= arena.end))
    }

    /// Writes a log entry at `at`: its two header words `head`, then, for `n > 0`, the `n`
    /// bytes (whole words) at `head[1]`: the same three counted stores (D2) as two
    /// [`Arena::store`]s and a [`Arena::copy_words`], with one bounds check per range. An
    /// image of a few words (the common write) is copied word by word, not by a `memmove`
    /// call.
    #[inline]
    pub fn put_entry(&mut self, at: u64, head: [u64; 2], n: u64) -> Result<()> {
        let src = head[1];
        if at < HEADER_SIZE || !self.range_ok(at, 16 + n) || (n != 0 && !self.range_ok(src, n)) {
            return corrupt(at, "log entry outside the arena");
        }
        for (i, w) in head.into_iter().enumerate() {
            self.cell_unchecked(at + 8 * i as u64)
                .store(w, std::sync::atomic::Ordering::Release);
            crate::fault::stored();
        }
        if n == 0 {
            return Ok(());
        }
        let dst = at + 16;
        if n <= 64 && dst.abs_diff(src) >= n {
            let mut k = 0;
            while k < n {
                let w = self
                    .cell_unchecked(src + k)
                    .load(std::sync::atomic::Ordering::Relaxed);
                self.cell_unchecked(dst + k)
                    .store(w, std::sync::atomic::Ordering::Relaxed);
                k += 8;
            }
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            crate::fault::stored();
            Ok(())
        } else {
            self.copy_words(dst, src, n)
        }
    }

    /// Copies `n` bytes (whole words) from `src` to `dst`, both checked ranges of the arena
    /// or the root table: one counted store (D2). The bytes it writes are either not yet
    /// taken in by anything (a log entry before the length store that commits it) or a
    /// before-image put back, so a death inside the copy is a death before or after it.
    pub fn copy_words(&mut self, dst: u64, src: u64, n: u64) -> Result<()> {
        if !self.range_ok(dst, n) || !self.range_ok(src, n) {
            return corrupt(dst, "copy outside the arena");
        }
        // SAFETY: both ranges lie inside the mapping (checked just above, against the
        // capacity and `map_len`); we hold the lock and no reference into the heap is alive
        // while a `&mut self` method runs, so nothing else reads or writes these bytes;
        // `copy` allows the ranges to overlap.
        unsafe {
            std::ptr::copy(
                self.base.add(src as usize),
                self.base.add(dst as usize),
                n as usize,
            );
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        crate::fault::stored();
        Ok(())
    }
}
