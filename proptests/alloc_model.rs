//! Property: the allocator against a reference model (proptest-state-machine).
//!
//! The model is the set of live blocks as intervals `[payload - 8, payload + usable)` and
//! the capacity; its free space is the complement inside the arena
//! `[16384, capacity - 8)`. Random sequences of alloc (sizes at size-class boundaries,
//! exact fits of the model's gaps, sizes right around the largest gap, small, large),
//! free (the i-th live block, physical neighbours in both orders), frees of stale and
//! interior offsets, bad alignments, growth and reopening (with the old handle still
//! attached, so the new mapping is elsewhere) run against a real heap. After every step:
//!
//! * the outcome is the model's: an allocation fails with `OutOfSpace` exactly when the
//!   largest free gap is below the TLSF bound (`common::tlsf_guaranteed`), and succeeds
//!   exactly when it is not; other errors exactly where the model expects them;
//! * no two live blocks overlap, every block is aligned, lies inside the arena, holds what
//!   was asked for with less than one minimum block of slack;
//! * every block still holds the pattern written into it;
//! * the accessors refuse any view past the end of a block, and any offset inside one;
//! * `stats()` and `blocks()` agree with the model (used blocks and bytes, free bytes,
//!   number of free blocks and the largest: free space is fully coalesced);
//! * `check()` reports nothing.
//!
//! See docs/properties.md for the bound and its derivation.

#[macro_use]
mod common;

// The steps and the generation side of the model.
#[path = "alloc_model/reference.rs"]
mod reference;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    assert_caught, assert_property, pattern, run_property, tlsf_guaranteed, tlsf_search,
    BLOCK_HEADER, HEADER_SIZE, MIN_BLOCK,
};
use mapheap::alloc::AllocError;
use mapheap::mutant::{self, Mutant};
use mapheap::{CreateOptions, Error, Heap, HeapGuard, Offset, OpenOptions};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use proptest_state_machine::ReferenceStateMachine;
use reference::{AllocMachine, Op, RefState};

const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptests/regressions/alloc_model.txt"
);
const PAGE: u64 = 4096;

/// What the runs exercised, printed after the default run (so a generator that stopped
/// reaching a case shows).
mod tally {
    use std::sync::atomic::{AtomicU64, Ordering};
    pub static STEPS: AtomicU64 = AtomicU64::new(0);
    pub static ALLOC_OK: AtomicU64 = AtomicU64::new(0);
    pub static ALLOC_FULL: AtomicU64 = AtomicU64::new(0);
    pub static ALLOC_BORDER: AtomicU64 = AtomicU64::new(0);
    pub static ALIGNED: AtomicU64 = AtomicU64::new(0);
    pub static FREES: AtomicU64 = AtomicU64::new(0);
    pub static DOUBLE_FREES: AtomicU64 = AtomicU64::new(0);
    pub static GROWS: AtomicU64 = AtomicU64::new(0);
    pub static REOPENS: AtomicU64 = AtomicU64::new(0);
    pub fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub fn report() -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} steps: {} allocations ({} aligned > 8), {} out of space, {} within 64 bytes \
             of the bound; {} frees, {} double frees refused, {} growths, {} reopens",
            g(&STEPS),
            g(&ALLOC_OK),
            g(&ALIGNED),
            g(&ALLOC_FULL),
            g(&ALLOC_BORDER),
            g(&FREES),
            g(&DOUBLE_FREES),
            g(&GROWS),
            g(&REOPENS)
        )
    }
}
/// Growth stops here, to keep the per-step content checks cheap.
const MAX_CAP: u64 = 1 << 20;

// ---- the system under test and the concrete model -------------------------------------

#[derive(Clone, Debug)]
struct Live {
    payload: u64,
    usable: u64,
    align: u64,
    data: Vec<u8>,
}

impl Live {
    fn start(&self) -> u64 {
        self.payload - BLOCK_HEADER
    }
    fn end(&self) -> u64 {
        self.payload + self.usable
    }
}

struct Sut {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    heap: Heap,
    /// Live blocks in allocation order.
    live: Vec<Live>,
    /// Payload offsets freed so far.
    stale: Vec<u64>,
    /// The heap's own block (the undo log), made by `create`: (start, size).
    log: (u64, u64),
    capacity: u64,
    seed: u64,
}

fn opts() -> OpenOptions {
    OpenOptions {
        probe_interval: Duration::from_millis(1),
        ..OpenOptions::default()
    }
}

fn f(msg: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(msg.to_string())
}

impl Sut {
    fn new(pages: u8) -> Result<Sut, TestCaseError> {
        let dir = common::tempdir();
        let path = dir.path().join("alloc.heap");
        let cap = u64::from(pages) * PAGE;
        let heap = Heap::create_with(
            &path,
            &CreateOptions {
                open: opts(),
                ..CreateOptions::new(cap)
            },
        )
        .map_err(|e| f(format!("create: {e}")))?;
        let (capacity, log) = {
            let g = heap.lock().map_err(f)?;
            let st = g.stats();
            let b = st.log_block;
            let size = g.usable_size(Offset::<u8>::from_raw(b)).map_err(f)? + BLOCK_HEADER;
            (g.capacity(), (b - BLOCK_HEADER, size))
        };
        ensure!(capacity == cap, "created {capacity} bytes, asked for {cap}");
        Ok(Sut {
            _dir: dir,
            path,
            heap,
            live: Vec::new(),
            stale: Vec::new(),
            log,
            capacity,
            seed: 1,
        })
    }

    fn lock(&self) -> Result<HeapGuard<'_>, TestCaseError> {
        self.heap.lock().map_err(|e| f(format!("lock: {e}")))
    }

    /// Free gaps of the model, in address order: the arena minus the live extents.
    fn gaps(&self) -> Vec<(u64, u64)> {
        let mut ext: Vec<(u64, u64)> = self.live.iter().map(|l| (l.start(), l.end())).collect();
        ext.push((self.log.0, self.log.0 + self.log.1));
        ext.sort_unstable();
        let mut gaps = Vec::new();
        let mut at = HEADER_SIZE;
        for (s, e) in ext {
            if s > at {
                gaps.push((at, s - at));
            }
            at = at.max(e);
        }
        let end = self.capacity - BLOCK_HEADER;
        if end > at {
            gaps.push((at, end - at));
        }
        gaps
    }

    fn largest_gap(&self) -> u64 {
        self.gaps().iter().map(|g| g.1).max().unwrap_or(0)
    }

    /// Allocates and checks the outcome against the model.
    fn alloc(&mut self, size: u64, align: u64) -> Result<(), TestCaseError> {
        let largest = self.largest_gap();
        let search = tlsf_search(size, align);
        let bound = search.map(tlsf_guaranteed);
        // One guard: the block is filled in the transaction that allocated it (a block
        // this transaction allocated needs no before-image).
        let mut g = self.heap.lock().map_err(|e| f(format!("lock: {e}")))?;
        let result = g.alloc_bytes(size, align);
        let fits = bound.is_some_and(|b| largest >= b);
        if bound.is_some_and(|b| largest.abs_diff(b) <= 64) {
            tally::add(&tally::ALLOC_BORDER);
        }
        match result {
            Ok(o) => {
                ensure!(
                    fits,
                    "alloc({size}, {align}) succeeded at {o:?}, but the largest free gap is \
                     {largest} bytes, below the TLSF bound {bound:?} (search {search:?})"
                );
                self.seed += 1;
                let seed = self.seed;
                let capacity = self.capacity;
                let usable = g.usable_size(o).map_err(f)?;
                let payload = o.raw();
                let need = (size.max(MIN_BLOCK - BLOCK_HEADER) + BLOCK_HEADER + 7) & !7;
                ensure!(
                    usable >= size,
                    "alloc({size}, {align}) gave {usable} usable bytes"
                );
                ensure!(
                    usable + BLOCK_HEADER < need + MIN_BLOCK,
                    "alloc({size}, {align}) gave a {}-byte block for a {need}-byte need \
                     (a remainder of a minimum block or more must be split off)",
                    usable + BLOCK_HEADER
                );
                ensure!(
                    payload % align.max(8) == 0,
                    "alloc({size}, {align}) returned {payload:#x}, not aligned to {align}"
                );
                let start = payload - BLOCK_HEADER;
                ensure!(
                    start >= HEADER_SIZE && payload + usable <= capacity - BLOCK_HEADER,
                    "block [{start:#x}, {:#x}) outside the arena [{HEADER_SIZE:#x}, {:#x})",
                    payload + usable,
                    capacity - BLOCK_HEADER
                );
                for l in &self.live {
                    ensure!(
                        payload + usable <= l.start() || l.end() <= start,
                        "new block [{start:#x}, {:#x}) overlaps live block [{:#x}, {:#x})",
                        payload + usable,
                        l.start(),
                        l.end()
                    );
                }
                let data = pattern(seed, usable as usize);
                g.bytes_mut(o, usable).map_err(f)?.copy_from_slice(&data);
                drop(g);
                tally::add(&tally::ALLOC_OK);
                if align > 8 {
                    tally::add(&tally::ALIGNED);
                }
                self.live.push(Live {
                    payload,
                    usable,
                    align,
                    data,
                });
            }
            Err(Error::Alloc(AllocError::OutOfSpace { .. })) => {
                tally::add(&tally::ALLOC_FULL);
                ensure!(
                    !fits,
                    "alloc({size}, {align}) ran out of space, but the largest free gap \
                     ({largest} bytes) reaches the TLSF bound {bound:?} (search {search:?})"
                );
            }
            Err(e) => return Err(f(format!("alloc({size}, {align}): unexpected {e}"))),
        }
        Ok(())
    }

    fn free_at(&mut self, i: usize) -> Result<(), TestCaseError> {
        let l = self.live.remove(i);
        self.lock()?
            .free(Offset::<u8>::from_raw(l.payload))
            .map_err(|e| f(format!("free of live block {:#x}: {e}", l.payload)))?;
        self.stale.push(l.payload);
        tally::add(&tally::FREES);
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Alloc { size, align } => self.alloc(*size, *align)?,
            Op::ExactFit { gap } => {
                let gaps = self.gaps();
                if let Some(&(_, len)) = gaps.get(gap.index(gaps.len().max(1))) {
                    self.alloc(len.saturating_sub(BLOCK_HEADER), 8)?;
                }
            }
            Op::NearLargest { delta, align } => {
                let slack = if *align > 8 { align + MIN_BLOCK } else { 0 };
                let size = (self.largest_gap() as i64 - BLOCK_HEADER as i64 - slack as i64
                    + i64::from(*delta))
                .max(0) as u64;
                self.alloc(size, *align)?;
            }
            Op::Free { which } => {
                if !self.live.is_empty() {
                    self.free_at(which.index(self.live.len()))?;
                }
            }
            Op::FreeNeighbours { which, forward } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let mut by_addr: Vec<usize> = (0..self.live.len()).collect();
                by_addr.sort_by_key(|&i| self.live[i].payload);
                let k = which.index(by_addr.len());
                let a = self.live[by_addr[k]].payload;
                let b = by_addr
                    .get(k + 1)
                    .map(|&j| &self.live[j])
                    .filter(|n| n.start() == self.live[by_addr[k]].end())
                    .map(|n| n.payload);
                let mut order = vec![a];
                order.extend(b);
                if !forward {
                    order.reverse();
                }
                for p in order {
                    let i = self.live.iter().position(|l| l.payload == p).expect("live");
                    self.free_at(i)?;
                }
            }
            Op::FreeStale { which } => {
                if self.stale.is_empty() {
                    return Ok(());
                }
                let s = self.stale[which.index(self.stale.len())];
                if self.live.iter().any(|l| l.payload == s) {
                    return Ok(()); // the block came back: not stale
                }
                let mut g = self.lock()?;
                let is_free_block = g.blocks().iter().any(|b| b.free && b.offset == s - 8);
                if !is_free_block {
                    return Ok(()); // inside another block or a free gap: not decidable
                }
                match g.free(Offset::<u8>::from_raw(s)) {
                    Err(Error::Alloc(AllocError::DoubleFree { .. })) => {
                        tally::add(&tally::DOUBLE_FREES)
                    }
                    other => {
                        return Err(f(format!(
                        "free of the already free block at {s:#x}: {other:?}, expected DoubleFree"
                    )))
                    }
                }
            }
            Op::FreeInterior { which, word } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let l = &self.live[which.index(self.live.len())];
                let words = l.usable / 8;
                if words < 2 {
                    return Ok(());
                }
                let p = l.payload + 8 * (1 + word.index(words as usize - 1) as u64);
                match self.lock()?.free(Offset::<u8>::from_raw(p)) {
                    Err(Error::Alloc(AllocError::InvalidOffset { .. })) => {}
                    other => {
                        return Err(f(format!(
                            "free of {p:#x}, inside the block at {:#x}: {other:?}, expected InvalidOffset",
                            l.payload
                        )))
                    }
                }
            }
            Op::BadAlign { align } => match self.lock()?.alloc_bytes(64, *align) {
                Err(Error::Alloc(AllocError::BadAlign { .. })) => {}
                other => {
                    return Err(f(format!(
                        "alloc_bytes(64, {align}): {other:?}, expected BadAlign"
                    )))
                }
            },
            Op::Grow { pages } => {
                if self.capacity >= MAX_CAP {
                    return Ok(());
                }
                let by = u64::from(*pages) * PAGE;
                let cap = {
                    let mut g = self.lock()?;
                    g.grow_by(by)
                        .map_err(|e| f(format!("grow_by({by}): {e}")))?;
                    g.capacity()
                };
                ensure!(
                    cap == self.capacity + by,
                    "grew {} by {by} to {cap}",
                    self.capacity
                );
                self.capacity = cap;
                tally::add(&tally::GROWS);
            }
            Op::Reopen { keep_old } => {
                tally::add(&tally::REOPENS);
                let old_base = self.lock()?.base_address();
                let new =
                    Heap::open_with(&self.path, &opts()).map_err(|e| f(format!("reopen: {e}")))?;
                if *keep_old {
                    let base = new.lock().map_err(f)?.base_address();
                    ensure!(
                        base != old_base,
                        "two live mappings at the same address {base:#x}"
                    );
                }
                self.heap = new; // drops the old handle
                let cap = self.lock()?.capacity();
                ensure!(
                    cap == self.capacity,
                    "reopened with capacity {cap}, was {}",
                    self.capacity
                );
            }
        }
        Ok(())
    }

    /// Every invariant of the module doc, after a step.
    fn invariants(&self) -> Result<(), TestCaseError> {
        let g = self.lock()?;
        let mut sorted: Vec<&Live> = self.live.iter().collect();
        sorted.sort_by_key(|l| l.payload);
        for w in sorted.windows(2) {
            ensure!(
                w[0].end() <= w[1].start(),
                "live blocks [{:#x}, {:#x}) and [{:#x}, {:#x}) overlap",
                w[0].start(),
                w[0].end(),
                w[1].start(),
                w[1].end()
            );
        }
        for l in &self.live {
            let o = Offset::<u8>::from_raw(l.payload);
            ensure!(
                l.payload % l.align.max(8) == 0,
                "block {:#x} not aligned to {}",
                l.payload,
                l.align
            );
            ensure!(
                l.start() >= HEADER_SIZE && l.end() <= self.capacity - BLOCK_HEADER,
                "block {:#x} outside the arena",
                l.payload
            );
            let usable = g.usable_size(o).map_err(f)?;
            ensure!(
                usable == l.usable,
                "block {:#x}: usable size {usable}, was {}",
                l.payload,
                l.usable
            );
            let got = g.bytes(o, l.usable).map_err(f)?;
            if got != &l.data[..] {
                let at = got
                    .iter()
                    .zip(&l.data)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                return Err(f(format!(
                    "block {:#x} ({} bytes) changed at byte {at}",
                    l.payload, l.usable
                )));
            }
            ensure!(
                g.bytes(o, l.usable + 1).is_err(),
                "a view of {} bytes of the {}-byte block {:#x} was allowed",
                l.usable + 1,
                l.usable,
                l.payload
            );
            ensure!(
                g.get(Offset::<[u8; 8]>::from_raw(l.payload + 8)).is_err(),
                "an offset inside the block {:#x} resolved",
                l.payload
            );
        }
        let gaps = self.gaps();
        let st = g.stats();
        let used_bytes: u64 = self
            .live
            .iter()
            .map(|l| l.usable + BLOCK_HEADER)
            .sum::<u64>()
            + self.log.1;
        let want = (
            st.capacity,
            st.used_blocks,
            st.used_bytes,
            st.free_bytes,
            st.free_blocks,
            st.largest_free,
        );
        let model = (
            self.capacity,
            self.live.len() as u64 + 1,
            used_bytes,
            gaps.iter().map(|g| g.1).sum::<u64>(),
            gaps.len() as u64,
            gaps.iter().map(|g| g.1).max().unwrap_or(0),
        );
        ensure!(
            want == model,
            "stats (capacity, used blocks, used bytes, free bytes, free blocks, largest free) \
             = {want:?}, model {model:?}"
        );
        let blocks = g.blocks();
        let used: Vec<(u64, u64)> = blocks
            .iter()
            .filter(|b| !b.free)
            .map(|b| (b.offset, b.size))
            .collect();
        let mut model_used: Vec<(u64, u64)> = self
            .live
            .iter()
            .map(|l| (l.start(), l.usable + BLOCK_HEADER))
            .collect();
        model_used.push(self.log);
        model_used.sort_unstable();
        ensure!(
            used == model_used,
            "the chain's used blocks {used:x?} differ from the model's {model_used:x?}"
        );
        let report = g.check();
        ensure!(report.is_clean(), "check: {:?}", report.violations);
        Ok(())
    }
}

/// Runs a generated sequence. `seen` counts the steps applied, which the sequential
/// strategy needs before its first shrink (it drops the steps a failing run never reached).
fn run_sequence(
    init: RefState,
    ops: &[Op],
    seen: Option<Arc<AtomicUsize>>,
) -> Result<(), TestCaseError> {
    let mut sut = Sut::new(init.pages)?;
    sut.invariants()?;
    for (i, op) in ops.iter().enumerate() {
        if let Some(seen) = &seen {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        tally::add(&tally::STEPS);
        sut.step(op)
            .and_then(|()| sut.invariants())
            .map_err(|e| f(format!("step {i} {op:?}: {e}")))?;
    }
    Ok(())
}

type Seq = (RefState, Vec<Op>, Option<Arc<AtomicUsize>>);

fn strategy() -> impl Strategy<Value = Seq> {
    AllocMachine::sequential_strategy(1..60)
}

#[test]
fn alloc_model_property_allocator_agrees_with_the_model() {
    let _watchdog = mapheap::watchdog!(common::bound_secs(2048, 20));
    assert_property(
        "alloc_model",
        common::config(2048, REGRESSIONS),
        &strategy(),
        |(s, ops, seen)| run_sequence(s, &ops, seen),
    );
    eprintln!("alloc_model exercised: {}", tally::report());
}

/// The model's bound is computed independently of the allocator's code; this pins it to
/// the allocator's size classes: for every size up to 1 MiB, the bound is exactly the
/// smallest size of the class `mapping_search` picks, and that class is the first whose
/// every size fits.
#[test]
fn the_model_bound_is_the_start_of_the_searched_class() {
    use mapheap::alloc::tlsf::{class_min, mapping_insert, mapping_search};
    for s in (MIN_BLOCK..(1 << 20)).step_by(8) {
        let (fl, sl) = mapping_search(s);
        assert_eq!(class_min(fl, sl), tlsf_guaranteed(s), "search {s}");
        let below = tlsf_guaranteed(s) - 8;
        if below >= s {
            assert!(
                mapping_insert(below) < (fl, sl),
                "search {s}: {below} is searched"
            );
        }
    }
}

const MUTANT_CASES: u32 = 32;

fn mutant_run(m: Mutant, seed: u64) -> common::Outcome {
    mutant::with(m, || {
        run_property(
            common::mutant_config(MUTANT_CASES, seed),
            &strategy(),
            |(s, ops, seen)| run_sequence(s, &ops, seen),
        )
    })
}

fn control_run(seed: u64) {
    let out = run_property(
        common::mutant_config(MUTANT_CASES, seed),
        &strategy(),
        |(s, ops, seen)| run_sequence(s, &ops, seen),
    );
    assert!(
        out.result.is_ok(),
        "the same run without the mutant must pass: {:?}",
        out.result
    );
}

#[test]
fn mutant_free_without_coalesce_is_caught_by_alloc_model() {
    let _watchdog = mapheap::watchdog!(180);
    let out = mutant_run(Mutant::FreeWithoutCoalesce, 0x5eed_0003);
    assert_caught("FreeWithoutCoalesce", "alloc_model", &out);
    control_run(0x5eed_0003);
}

#[test]
fn mutant_bounds_off_by_one_is_caught_by_alloc_model() {
    let _watchdog = mapheap::watchdog!(180);
    let out = mutant_run(Mutant::BoundsOffByOne, 0x5eed_0005);
    assert_caught("BoundsOffByOne", "alloc_model", &out);
    control_run(0x5eed_0005);
}

#[test]
fn mutant_no_align_rounding_is_caught_by_alloc_model() {
    let _watchdog = mapheap::watchdog!(180);
    let out = mutant_run(Mutant::NoAlignRounding, 0x5eed_0006);
    assert_caught("NoAlignRounding", "alloc_model", &out);
    control_run(0x5eed_0006);
}
