//! A free made directly: the stores of the planned one ([`Editor::plan_free`]), in the same
//! order, computed from the file without the plan's store buffer.
//!
//! Invariant: it is the plan, or nothing (D1). [`Arena::free_steps`] reads every word the
//! plan reads, as the plan's overlay leaves it (a small record of the arena stores so far,
//! and the lists' heads with one store per head where the plan first stores it, holding
//! its last value, as `Editor::set_head` does), and checks it as the plan does, before the
//! first store. Any anomaly it declines with nothing written; the planned path then refuses
//! with its error. [`Arena::free_direct`] then makes the plan's stores in its order (A3): a
//! death between any two is the death the plan's repair expects, and the crash-point mark
//! falls where the plan's does. Its tests (`direct_free/tests.rs`) hold the two paths to the
//! same bytes after every prefix of their stores, on random arenas, sound and corrupt, and
//! show that on a sound heap it takes every free of an allocated block.
//!
//! [`Editor::plan_free`]: super::Editor::plan_free

use std::sync::atomic::Ordering;

use super::lists::{head_at, list_index};
use super::tlsf::mapping_insert;
use super::{st, Arena};
use crate::fault::CrashPoint;
use crate::format::block::{self, FREE, PREV_FREE};
use crate::format::{BLOCK_HEADER, FL_COUNT, HEADER_SIZE, INTENT_FREE, INTENT_NONE, MIN_BLOCK};
use crate::mutant::{active, others_active, Mutant};

/// A free block taken out of its list: its neighbours in the list, and the list.
#[derive(Clone, Copy)]
struct Unlink {
    next: u64,
    prev: u64,
    idx: usize,
}

/// Where a list's head is first stored: by the next block's unlink, the previous block's,
/// or the link.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Next,
    Prev,
    Link,
}

/// A list whose head the free changes.
#[derive(Clone, Copy)]
struct Head {
    idx: usize,
    at: At,
    /// The head the free leaves.
    value: u64,
    /// Whether the file's head is 0.
    was_empty: bool,
}

/// The most words of the file a free's checks read: two headers, two unlinks (three
/// words and a head's or a link's each), a footer, a header, the link's head, its header
/// and back-link, and three heads' first values (19).
const MAX_READS: usize = 20;

/// A free checked whole: everything its stores need, and every word of the file its
/// checks read (so that it can be kept from its check to its commit, `kept.rs`).
pub struct FreeSteps {
    /// The block freed, its size, and its PREV_FREE flag.
    o: u64,
    size: u64,
    flags: u64,
    /// The free next block it merges with, and its size.
    next: Option<(Unlink, u64)>,
    /// The free previous block that merges with it: its unlink and its PREV_FREE flag.
    prev: Option<(Unlink, u64)>,
    /// The merged block: where it starts, and its size.
    start: u64,
    total: u64,
    /// The header word after the merged block, and the head the link finds.
    end_header: u64,
    link_head: u64,
    heads: [Head; 3],
    nh: usize,
    /// `(offset, value)` of each word read, the capacity and the mapping's length.
    reads: [(u64, u64); MAX_READS],
    nr: usize,
    capacity: u64,
    map_len: u64,
}

impl Default for FreeSteps {
    fn default() -> Self {
        FreeSteps {
            o: 0,
            size: 0,
            flags: 0,
            next: None,
            prev: None,
            start: 0,
            total: 0,
            end_header: 0,
            link_head: 0,
            heads: [Head {
                idx: 0,
                at: At::Link,
                value: 0,
                was_empty: false,
            }; 3],
            nh: 0,
            reads: [(0, 0); MAX_READS],
            nr: 0,
            capacity: 0,
            map_len: 0,
        }
    }
}

/// The arena stores the free has planned so far, `(address, value)` in order: the overlay
/// the plan reads through (a list's neighbours may be each other's: the unlink of the next
/// block can store to a link that the previous block's unlink reads). At most the two
/// unlinks' four link stores and four headers and footers.
#[derive(Default)]
struct Stored([(u64, u64); 8], usize);

impl Stored {
    #[inline]
    fn add(&mut self, at: u64, value: u64) {
        self.0[self.1] = (at, value);
        self.1 += 1;
    }

    /// The value the stores so far leave at `at`, if they store to it.
    #[inline]
    fn get(&self, at: u64) -> Option<u64> {
        self.0[..self.1]
            .iter()
            .rev()
            .find(|s| s.0 == at)
            .map(|s| s.1)
    }
}

impl FreeSteps {
    /// Whether `a` holds every word these steps read as they were read, with the same
    /// capacity and mapping: the steps are then exactly those checking again would give
    /// (they are a function of what they read).
    pub(super) fn unchanged(&self, a: &Arena<'_>) -> bool {
        if a.state().capacity != self.capacity || a.map_len() != self.map_len {
            return false;
        }
        if active(Mutant::KeptPlanUnchecked) {
            return true;
        }
        self.reads[..self.nr].iter().all(|&(at, value)| {
            // Every word was read inside this mapping, whose length is unchanged.
            a.cell_unchecked(at).load(Ordering::Relaxed) == value
        })
    }

    /// Notes that the word at `at` was read as `value`; `None` past `MAX_READS` (never on
    /// the free's longest path, 19 reads).
    #[inline]
    fn note(&mut self, at: u64, value: u64) -> Option<u64> {
        *self.reads.get_mut(self.nr)? = (at, value);
        self.nr += 1;
        Some(value)
    }

    /// The words read, for tests.
    #[cfg(test)]
    pub(super) fn reads_for_test(&self) -> &[(u64, u64)] {
        &self.reads[..self.nr]
    }

    /// The head of list `idx` as the free leaves it so far, if it changed it.
    #[inline]
    fn head(&self, idx: usize) -> Option<u64> {
        self.heads[..self.nh]
            .iter()
            .find(|h| h.idx == idx)
            .map(|h| h.value)
    }

    /// Whether the head store at `at` is the first store to its list's head.
    #[inline]
    fn first(&self, idx: usize, at: At) -> bool {
        self.heads[..self.nh]
            .iter()
            .any(|h| h.idx == idx && h.at == at)
    }
}

impl Arena<'_> {
    /// Frees the allocated block whose payload starts at `payload` if the free can be made
    /// directly (see the module); `false`, with nothing written, if not.
    #[inline]
    pub fn free_direct(&mut self, payload: u64) -> bool {
        let mut f = FreeSteps::default();
        if !self.free_steps(payload, &mut f) {
            return false;
        }
        self.apply_steps(&f);
        true
    }

    /// Makes the stores of `f`, checked by [`Arena::free_steps`] over the arena as it is.
    pub(super) fn apply_steps(&mut self, f: &FreeSteps) {
        self.put(st!(intent.block), f.o);
        self.put(st!(intent.op), INTENT_FREE);
        // The freed block's size once the next block is merged into it.
        let size = f.size + f.next.map_or(0, |(_, s)| s);
        if let Some((u, _)) = f.next {
            let merged = block::encode(f.o, size, f.flags);
            if active(Mutant::DirectFreeCommitFirst) {
                // The seeded bug: the freed block grows over its neighbour before the
                // neighbour leaves its list (the same stores, the commit first).
                self.put(f.o, merged);
            }
            self.unlink_stores(f, u, At::Next);
            if !active(Mutant::DirectFreeCommitFirst) {
                self.put(f.o, merged);
            }
            crate::fault::hit(CrashPoint::FreeMergedNext);
        }
        self.put(f.o, block::encode(f.o, size, FREE | f.flags));
        if let Some((u, pflags)) = f.prev {
            self.unlink_stores(f, u, At::Prev);
            self.put(f.start, block::encode(f.start, f.total, FREE | pflags));
        }
        let end = f.start + f.total;
        self.put(end - 8, f.total);
        self.put(end, f.end_header);
        self.put(f.start + 8, f.link_head);
        self.put(f.start + 16, 0);
        if f.link_head != 0 {
            self.put(f.link_head.wrapping_add(16), f.start);
        }
        for h in &f.heads[..f.nh] {
            if h.at == At::Link {
                self.put(head_at(h.idx), h.value);
            }
        }
        // The bitmaps of the lists emptied or filled, as `Editor::flush_lists` plans them.
        for h in &f.heads[..f.nh] {
            if h.was_empty != (h.value == 0) {
                self.put_list_bit(h.idx, h.value == 0);
            }
        }
        // The counters, as `Editor::flush_counters` stores them (a change of 0 is not).
        let merges = u64::from(f.next.is_some()) + u64::from(f.prev.is_some());
        let st = self.state();
        let counters = [
            st.used_bytes.wrapping_sub(f.size),
            st.used_blocks.wrapping_sub(1),
            st.free_bytes.wrapping_add(f.size),
        ];
        let free_blocks = st.free_blocks.wrapping_add(1).wrapping_sub(merges);
        for (i, v) in counters.into_iter().enumerate() {
            self.put(st!(used_bytes) + 8 * i as u64, v);
        }
        if merges != 1 {
            self.put(st!(free_blocks), free_blocks);
        }
        self.put(st!(intent.op), INTENT_NONE);
    }

    /// The stores of one unlink, at its place in the plan (`at`).
    #[inline]
    fn unlink_stores(&mut self, f: &FreeSteps, u: Unlink, at: At) {
        if u.prev != 0 {
            self.put(u.prev.wrapping_add(8), u.next);
        } else if f.first(u.idx, at) {
            let v = f.head(u.idx).unwrap_or(u.next);
            self.put(head_at(u.idx), v);
        }
        if u.next != 0 {
            self.put(u.next.wrapping_add(16), u.prev);
        }
    }

    /// Whether [`Arena::free_direct`] would free `payload` now (then the planned free
    /// would too, with the same stores); nothing is written either way.
    #[inline]
    pub fn free_direct_ok(&self, payload: u64) -> bool {
        self.free_steps(payload, &mut FreeSteps::default())
    }

    /// The file's word at `at`, checked as `Arena::word` checks it (inside the arena, below
    /// the capacity and the mapping, `f.capacity.min(f.map_len)`), and noted in `f`.
    #[inline]
    fn read(&self, f: &mut FreeSteps, at: u64) -> Option<u64> {
        let end = f.capacity.min(f.map_len);
        if at < HEADER_SIZE || !at.is_multiple_of(8) || at.checked_add(8)? > end {
            return None;
        }
        f.note(at, self.cell_unchecked(at).load(Ordering::Relaxed))
    }

    /// The file's head of list `idx`, noted in `f`.
    #[inline]
    fn file_head(&self, f: &mut FreeSteps, idx: usize) -> Option<u64> {
        let at = head_at(idx);
        f.note(at, self.cell_unchecked(at).load(Ordering::Relaxed))
    }

    /// The head of list `idx` as the free's stores so far leave it.
    #[inline]
    fn head_now(&self, f: &mut FreeSteps, idx: usize) -> Option<u64> {
        match f.head(idx) {
            Some(v) => Some(v),
            None => self.file_head(f, idx),
        }
    }

    /// A word as the free's stores so far (`stored`) leave it, checked as the plan's
    /// `Editor::load` checks it.
    #[inline]
    fn word_after(&self, f: &mut FreeSteps, stored: &Stored, at: u64) -> Option<u64> {
        let w = self.read(f, at)?;
        Some(stored.get(at).unwrap_or(w))
    }

    /// The list a free block of `size` bytes at `b` is filed in, checked as
    /// `Editor::checked_list` checks it.
    #[inline]
    fn list_of(f: &FreeSteps, b: u64, size: u64) -> Option<usize> {
        let (fl, sl) = mapping_insert(size);
        let end = b.checked_add(size)?;
        let sentinel = f.capacity.wrapping_sub(BLOCK_HEADER);
        (fl < FL_COUNT && size >= MIN_BLOCK && end <= sentinel).then(|| list_index(fl, sl))
    }

    /// The plan's `set_head`: a list's first head store stays where it is and takes the
    /// new value.
    #[inline]
    fn set_head(&self, f: &mut FreeSteps, idx: usize, at: At, value: u64) -> Option<()> {
        match f.heads[..f.nh].iter_mut().find(|h| h.idx == idx) {
            Some(h) => h.value = value,
            None => {
                let was_empty = self.file_head(f, idx)? == 0;
                *f.heads.get_mut(f.nh)? = Head {
                    idx,
                    at,
                    value,
                    was_empty,
                };
                f.nh += 1;
            }
        }
        Some(())
    }

    /// The checks of the plan's `unlink` of the free block `b` of `size` bytes, with the
    /// stores it adds to `stored`.
    #[inline]
    fn unlink_steps(
        &self,
        f: &mut FreeSteps,
        stored: &mut Stored,
        b: u64,
        size: u64,
        at: At,
    ) -> Option<Unlink> {
        let next = self.word_after(f, stored, b + 8)?;
        let prev = self.word_after(f, stored, b + 16)?;
        let idx = Self::list_of(f, b, size)?;
        let linked = if prev != 0 {
            self.word_after(f, stored, prev.wrapping_add(8))? == b
        } else {
            self.head_now(f, idx)? == b
        };
        if !linked || (next != 0 && self.word_after(f, stored, next.wrapping_add(16))? != b) {
            return None;
        }
        if prev != 0 {
            stored.add(prev.wrapping_add(8), next);
        } else {
            self.set_head(f, idx, at, next)?;
        }
        if next != 0 {
            stored.add(next.wrapping_add(16), prev);
        }
        Some(Unlink { next, prev, idx })
    }

    /// Checks the free of `payload` whole from the file (see the module) into `f`; `false`
    /// if it declines.
    pub(super) fn free_steps(&self, payload: u64, f: &mut FreeSteps) -> bool {
        self.free_steps_opt(payload, f).is_some()
    }

    #[inline]
    fn free_steps_opt(&self, payload: u64, f: &mut FreeSteps) -> Option<()> {
        // A seeded bug elsewhere in the allocator is in the planned path only: its test
        // must meet it there.
        if others_active(Mutant::DirectFreeCommitFirst) {
            return None;
        }
        f.nr = 0;
        f.nh = 0;
        f.next = None;
        f.prev = None;
        f.capacity = self.state().capacity;
        f.map_len = self.map_len();
        let sentinel = f.capacity.wrapping_sub(BLOCK_HEADER);
        // The block: `used_block`'s checks (its header's read refuses a payload that is
        // not 8-aligned or lies below the arena).
        let o = payload.checked_sub(BLOCK_HEADER)?;
        let h = block::decode(o, self.read(f, o)?)?;
        if o >= sentinel || h.is_free() || h.size < MIN_BLOCK || o.checked_add(h.size)? > sentinel {
            return None;
        }
        (f.o, f.size, f.flags) = (o, h.size, h.flags & PREV_FREE);
        (f.start, f.total) = (o, h.size);
        let mut stored = Stored::default();
        // The next block: merged if free.
        let n = o + h.size;
        let nh = block::decode(n, self.read(f, n)?)?;
        if nh.is_free() {
            if nh.size < MIN_BLOCK {
                return None;
            }
            let u = self.unlink_steps(f, &mut stored, n, nh.size, At::Next)?;
            f.next = Some((u, nh.size));
            f.total += nh.size;
        }
        stored.add(o, block::encode(o, f.total, FREE | f.flags));
        // The previous block: merged if PREV_FREE says it is free.
        if f.flags != 0 {
            let psize = self.word_after(f, &stored, o.checked_sub(8)?)?;
            let p = o.saturating_sub(psize);
            let ph = block::decode(p, self.word_after(f, &stored, p)?)?;
            if !ph.is_free() || ph.size != psize {
                return None;
            }
            let u = self.unlink_steps(f, &mut stored, p, psize, At::Prev)?;
            f.prev = Some((u, ph.flags & PREV_FREE));
            f.start = p;
            f.total += psize;
            stored.add(p, block::encode(p, f.total, FREE | (ph.flags & PREV_FREE)));
        }
        // The footer, and the header after the merged block (its read checks the footer's
        // word too: both lie below the sentinel's end).
        let end = f.start + f.total;
        stored.add(end - 8, f.total);
        let eh = block::decode(end, self.word_after(f, &stored, end)?)?;
        f.end_header = block::encode(end, eh.size, eh.flags | PREV_FREE);
        stored.add(end, f.end_header);
        // The link, at the head of its list (the block's own two words lie below the header
        // read just above): the head it goes before must be a free block with no
        // predecessor, read as the stores so far leave it, as `Editor::link` reads it.
        let idx = Self::list_of(f, f.start, f.total)?;
        let head = self.head_now(f, idx)?;
        if head != 0 {
            let hh = block::decode(head, self.word_after(f, &stored, head)?)?;
            if !hh.is_free() || self.word_after(f, &stored, head.wrapping_add(16))? != 0 {
                return None;
            }
        }
        f.link_head = head;
        let start = f.start;
        self.set_head(f, idx, At::Link, start)
    }
}

#[cfg(test)]
mod tests;
