//! A free planned when it is asked for and made, from the same plan, at the commit.
//!
//! A transaction checks each free when it is asked for (D1: planned whole, nothing
//! written) and makes it after its commit store. Planning a free is most of its cost, so
//! the plan of a transaction's first free is kept, with every word of the file it was made
//! from ([`ReadSet`]). At the commit the plan is made as it is only if each of those words,
//! the capacity and the mapping's length are as they were: a plan is a function of what
//! it read, so it is then exactly the plan that planning again would make (the same
//! stores, in the same order, with the same crash points). If anything changed (another
//! allocation or free of the transaction, a growth, a log extension), the free is planned
//! again, as it would be without a kept plan.

use std::cell::Cell;

use super::edit::Plan;
use super::{Arena, Result};
use crate::mutant::{active, Mutant};

/// The most words a kept plan may have read (a free reads about 20); a plan that reads
/// more is never made from the kept copy.
const MAX_READS: usize = 64;

/// The words of the file a plan was made from: `(offset, value)` in the order read, the
/// capacity and the mapping's length. Cells, because an [`Editor`] reads through `&self`.
pub struct ReadSet {
    words: [Cell<(u64, u64)>; MAX_READS],
    n: Cell<usize>,
    /// More words were read than `words` holds.
    full: Cell<bool>,
    capacity: Cell<u64>,
    map_len: Cell<u64>,
}

impl Default for ReadSet {
    fn default() -> Self {
        ReadSet {
            words: [const { Cell::new((0, 0)) }; MAX_READS],
            n: Cell::new(0),
            full: Cell::new(false),
            capacity: Cell::new(0),
            map_len: Cell::new(0),
        }
    }
}

impl ReadSet {
    /// Empties it for a plan over an arena of `capacity` mapped to `map_len`.
    pub(super) fn start(&self, capacity: u64, map_len: u64) {
        self.n.set(0);
        self.full.set(false);
        self.capacity.set(capacity);
        self.map_len.set(map_len);
    }

    /// Notes that the word at `at` was read as `value`.
    #[inline]
    pub(super) fn note(&self, at: u64, value: u64) {
        let n = self.n.get();
        match self.words.get(n) {
            Some(w) => {
                w.set((at, value));
                self.n.set(n + 1);
            }
            None => self.full.set(true),
        }
    }

    /// Whether the arena holds every noted word as it was read (and has the same capacity
    /// and mapping), so that a plan made from them is still the plan.
    pub(super) fn unchanged(&self, a: &Arena<'_>) -> bool {
        if self.full.get()
            || a.state().capacity != self.capacity.get()
            || a.map_len() != self.map_len.get()
        {
            return false;
        }
        if active(Mutant::KeptPlanUnchecked) {
            return true;
        }
        self.words[..self.n.get()].iter().all(|w| {
            let (at, value) = w.get();
            // Every noted word was read inside this mapping, whose length is unchanged.
            a.cell_unchecked(at)
                .load(std::sync::atomic::Ordering::Relaxed)
                == value
        })
    }
}

/// A transaction's kept free: the payload, its plan, and the words the plan read.
#[derive(Default)]
pub struct KeptFree {
    payload: u64,
    plan: Plan,
    reads: ReadSet,
}

impl KeptFree {
    /// Forgets the kept plan.
    pub fn clear(&mut self) {
        self.payload = 0;
    }

    /// The payload whose free is kept (0: none).
    pub fn payload(&self) -> u64 {
        self.payload
    }
}

impl Arena<'_> {
    /// [`Arena::check_free`], keeping the plan in `kept` if the free could be planned.
    pub fn check_free_keeping(&mut self, payload: u64, kept: &mut KeptFree) -> Result<()> {
        kept.payload = 0;
        let r = self.check_free_into(payload, &mut kept.plan, Some(&kept.reads));
        if r.is_ok() {
            kept.payload = payload;
        }
        r
    }

    /// Frees `payload` from the plan kept for it if nothing it read has changed since;
    /// `false` (nothing written) if there is no such plan or it is stale.
    pub fn free_kept(&mut self, payload: u64, kept: &mut KeptFree) -> bool {
        let fresh = payload != 0 && kept.payload == payload && kept.reads.unchanged(self);
        kept.payload = 0;
        if fresh {
            self.apply(&kept.plan);
        }
        fresh
    }
}
