//! Every crash state, not a sample (in the style of the "DirtyReboot" checks of AWS
//! ShardStore, SOSP 2021): for each transaction proptest generates (writes, some of them
//! overlapping or extending earlier ones, allocations, frees, root changes, a growth; ended
//! by a commit, an abort or a panic), the transaction is first run whole to count its
//! stores and find its commit store; then, for every k, a copy of the same starting file
//! runs it again and dies right after store k (in-process: `fault::arm_store_unwind`; the
//! guard leaves the lock and the file as a SIGKILL would), a fresh handle takes the lock
//! over and recovers, and the heap must equal exactly the model: the committed state before
//! the transaction, or, once the commit store has been made, the state after it. Every
//! block's bytes, the set of allocated blocks (so a leak is a difference) and the roots are
//! compared, and `check` must be clean.
//!
//! For transactions of at most [`DOUBLE_MAX`] stores, every first death is followed by a
//! second one at every store of the recovery itself (inside `open`), then a third handle
//! recovers: the same state must come out (rollback and the finishing of a commit are
//! idempotent, T3, T4).
//!
//! Each case prints nothing; the total of crash states checked is printed by the property
//! test (`crash states checked: N`). See docs/transactions.md.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{assert_caught, assert_property, run_property};
use mapheap::fault;
use mapheap::{CreateOptions, Heap, HeapGuard, Offset, OpenOptions};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptests/regressions/txn_crash.txt"
);
/// Transactions of at most this many stores also get every second death.
const DOUBLE_MAX: u64 = 40;
const PAGE: u64 = 4096;

/// The starting heap: committed blocks and roots.
#[derive(Clone, Debug)]
struct Setup {
    blocks: Vec<(u16, bool)>,
    roots: Vec<Index>,
    pages: u8,
}

/// One step of the transaction. Block indices pick among the blocks that exist when the
/// step runs (the setup's, then the transaction's own).
#[derive(Clone, Debug)]
enum Step {
    /// Write `len` bytes (a prefix of the block) with a fresh pattern.
    Write(Index, u16, u8),
    Alloc(u16, bool),
    Free(Index),
    SetRoot(u8, Index),
    RemoveRoot(u8),
    Grow(u8),
}

/// How the transaction ends.
#[derive(Clone, Copy, Debug)]
enum End {
    Commit,
    Abort,
    Panic,
}

#[derive(Clone, Debug)]
struct Case {
    setup: Setup,
    steps: Vec<Step>,
    end: End,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop::collection::vec((8u16..700, any::<bool>()), 1..7),
        prop::collection::vec(any::<Index>(), 0..3),
        4u8..10,
    )
        .prop_map(|(blocks, roots, pages)| Setup {
            blocks,
            roots,
            pages,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (any::<Index>(), 1u16..600, any::<u8>()).prop_map(|(i, n, s)| Step::Write(i, n, s)),
        3 => (8u16..500, any::<bool>()).prop_map(|(n, a)| Step::Alloc(n, a)),
        2 => any::<Index>().prop_map(Step::Free),
        2 => (0u8..3, any::<Index>()).prop_map(|(r, i)| Step::SetRoot(r, i)),
        1 => (0u8..3).prop_map(Step::RemoveRoot),
        1 => (1u8..3).prop_map(Step::Grow),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        setup(),
        prop::collection::vec(step(), 1..7),
        prop_oneof![6 => Just(End::Commit), 1 => Just(End::Abort), 1 => Just(End::Panic)],
    )
        .prop_map(|(setup, steps, end)| Case { setup, steps, end })
}

fn opts() -> OpenOptions {
    OpenOptions {
        probe_interval: Duration::from_millis(1),
        ..OpenOptions::default()
    }
}

fn fail(m: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(m.to_string())
}

fn align(a: bool) -> u64 {
    if a {
        64
    } else {
        8
    }
}

/// Builds the starting heap at `path` (committed).
fn build(s: &Setup, path: &Path) -> Result<(), TestCaseError> {
    let heap = Heap::create_with(
        path,
        &CreateOptions {
            open: opts(),
            ..CreateOptions::new(u64::from(s.pages) * PAGE + 16384)
        },
    )
    .map_err(fail)?;
    let mut g = heap.lock().map_err(fail)?;
    let mut offs = Vec::new();
    for (k, &(n, a)) in s.blocks.iter().enumerate() {
        let Ok(o) = g.alloc_bytes(u64::from(n), align(a)) else {
            break;
        };
        g.bytes_mut(o, u64::from(n))
            .map_err(fail)?
            .copy_from_slice(&common::pattern(k as u64 + 100, usize::from(n)));
        offs.push(o);
    }
    for (k, i) in s.roots.iter().enumerate() {
        if offs.is_empty() {
            break;
        }
        g.set_root(&format!("r{k}"), offs[i.index(offs.len())].cast::<u64>())
            .map_err(fail)?;
    }
    Ok(())
}

/// The committed state a fresh handle sees: every allocated block's bytes (the heap's own
/// blocks left out) and every root.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    blocks: BTreeMap<u64, Vec<u8>>,
    roots: Vec<(String, u64)>,
}

fn observe(g: &HeapGuard<'_>) -> Result<Seen, TestCaseError> {
    let report = g.check();
    ensure!(report.is_clean(), "check: {:?}", report.violations);
    let own = g.own_blocks();
    let mut blocks = BTreeMap::new();
    for b in g.blocks() {
        let p = b.offset + 8;
        if b.free || own.contains(&p) {
            continue;
        }
        let bytes = g.bytes(Offset::from_raw(p), b.size - 8).map_err(fail)?;
        blocks.insert(p, bytes.to_vec());
    }
    let mut roots: Vec<(String, u64)> = g.roots().into_iter().map(|r| (r.name, r.offset)).collect();
    roots.sort();
    Ok(Seen { blocks, roots })
}

/// Runs the transaction on `heap`; the guard ends as `c.end` says. The panic is caught
/// here (a test panic, not a death); a death unwinds through.
fn transact(heap: &Heap, c: &Case) -> Result<(), TestCaseError> {
    let mut g = heap.lock().map_err(fail)?;
    let mut offs: Vec<Offset<u8>> = g
        .blocks()
        .iter()
        .filter(|b| !b.free && !g.own_blocks().contains(&(b.offset + 8)))
        .map(|b| Offset::from_raw(b.offset + 8))
        .collect();
    for (k, st) in c.steps.iter().enumerate() {
        match st {
            Step::Write(i, n, seed) => {
                if offs.is_empty() {
                    continue;
                }
                let o = offs[i.index(offs.len())];
                let Ok(room) = g.usable_size(o) else { continue };
                let n = u64::from(*n).min(room);
                if let Ok(b) = g.bytes_mut(o, n) {
                    b.copy_from_slice(&common::pattern(
                        u64::from(*seed) + 7 * k as u64,
                        n as usize,
                    ));
                }
            }
            Step::Alloc(n, a) => {
                if let Ok(o) = g.alloc_bytes(u64::from(*n), align(*a)) {
                    let n = u64::from(*n);
                    g.bytes_mut(o, n)
                        .map_err(fail)?
                        .copy_from_slice(&common::pattern(1000 + k as u64, n as usize));
                    offs.push(o);
                }
            }
            Step::Free(i) => {
                // A rooted block stays (freeing it would leave a dangling root: the
                // user's bug, which `check` reports, not a crash state).
                let rooted: Vec<u64> = g.roots().iter().map(|r| r.offset).collect();
                let free: Vec<usize> = (0..offs.len())
                    .filter(|&j| !rooted.contains(&offs[j].raw()))
                    .collect();
                if !free.is_empty() {
                    let o = offs.remove(free[i.index(free.len())]);
                    g.free(o).map_err(fail)?;
                }
            }
            Step::SetRoot(r, i) => {
                if !offs.is_empty() {
                    // (Only blocks still in `offs`: not freed by this transaction.)
                    let o = offs[i.index(offs.len())];
                    g.set_root(&format!("r{r}"), o.cast::<u64>())
                        .map_err(fail)?;
                }
            }
            Step::RemoveRoot(r) => {
                g.remove_root(&format!("r{r}")).map_err(fail)?;
            }
            Step::Grow(p) => {
                let cap = g.capacity();
                g.grow(cap + u64::from(*p) * PAGE).map_err(fail)?;
            }
        }
    }
    match c.end {
        End::Commit => drop(g),
        End::Abort => {
            g.abort().map_err(fail)?;
        }
        End::Panic => {
            PANIC_AT.with(|p| p.set(fault::stores()));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _g = g;
                // resume_unwind: a panic that skips the hook (nothing printed).
                std::panic::resume_unwind(Box::new("the transaction panics"));
            }));
            if let Err(p) = r {
                if p.downcast_ref::<fault::Crashed>().is_some() {
                    std::panic::resume_unwind(p);
                }
            }
        }
    }
    Ok(())
}

/// A copy of the starting file, under a new name.
fn fresh_copy(template: &[u8], dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, template).unwrap();
    p
}

/// Runs `f` on a handle of `path` with a death armed after `k` stores (of this thread,
/// from now); returns whether it died. The dying handle is dropped either way.
fn die(
    path: &Path,
    k: u64,
    f: impl FnOnce(&Heap) -> Result<(), TestCaseError>,
) -> Result<bool, TestCaseError> {
    let heap = Heap::open_with(path, &opts()).map_err(fail)?;
    fault::arm_store_unwind(Some(k));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&heap)));
    fault::arm_store_unwind(None);
    drop(heap);
    match r {
        Ok(r) => r.map(|()| false),
        Err(p) if p.downcast_ref::<fault::Crashed>().is_some() => Ok(true),
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Opens `path` (its lock held by a dead handle), with a second death armed after `k`
/// stores of the recovery inside `open`, if given. Returns whether it died.
fn reopen_dying(path: &Path, k: u64) -> Result<bool, TestCaseError> {
    fault::arm_store_unwind(Some(k));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Heap::open_with(path, &opts())
    }));
    fault::arm_store_unwind(None);
    match r {
        Ok(h) => {
            h.map_err(fail)?;
            Ok(false)
        }
        Err(p) if p.downcast_ref::<fault::Crashed>().is_some() => Ok(true),
        Err(p) => std::panic::resume_unwind(p),
    }
}

fn seen_of(path: &Path) -> Result<Seen, TestCaseError> {
    let heap = Heap::open_with(path, &opts()).map_err(fail)?;
    let g = heap.lock().map_err(fail)?;
    observe(&g)
}

thread_local! {
    static STATES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Stores made before the transaction's panic began (a panicking thread cannot die by
    /// unwinding again; its rollback's stores are the abort's, which other cases cover).
    static PANIC_AT: std::cell::Cell<u64> = const { std::cell::Cell::new(u64::MAX) };
}

/// The whole enumeration for one case (second deaths too, if `double`).
fn crash_case(c: &Case, double: bool) -> Result<(), TestCaseError> {
    let dir = common::tempdir();
    let base = dir.path().join("base.heap");
    build(&c.setup, &base)?;
    let template = std::fs::read(&base).map_err(fail)?;
    let before = seen_of(&fresh_copy(&template, dir.path(), "before.heap"))?;

    // The whole run: its stores, its commit store, the state after it.
    let whole = fresh_copy(&template, dir.path(), "whole.heap");
    PANIC_AT.with(|p| p.set(u64::MAX));
    let (total, commit_at) = {
        let heap = Heap::open_with(&whole, &opts()).map_err(fail)?;
        fault::count_stores();
        transact(&heap, c)?;
        let commit = fault::marks()
            .iter()
            .find(|(p, _)| *p == fault::CrashPoint::TxCommitted)
            .map(|&(_, n)| n);
        (fault::stores().min(PANIC_AT.with(|p| p.get())), commit)
    };
    let after = seen_of(&whole)?;
    if matches!(c.end, End::Abort | End::Panic) {
        ensure!(after == before, "an aborted transaction changed the heap");
    }
    // Deaths after store k >= commit_at come after the commit store (it is store number
    // commit_at, counted from 1).
    let committed = |k: u64| commit_at.is_some_and(|c| k >= c);
    for k in 1..=total {
        let path = fresh_copy(&template, dir.path(), "crash.heap");
        let died = die(&path, k, |h| transact(h, c))?;
        ensure!(died, "store {k} of {total} was never reached");
        let want = if committed(k) { &after } else { &before };
        let got = seen_of(&path)?;
        ensure!(
            &got == want,
            "death after store {k} of {total} (commit store {commit_at:?}): recovered {}, \
             wanted the state {} the transaction; blocks {:x?} vs {:x?}, roots {:?} vs {:?}",
            "a state that is neither",
            if committed(k) { "after" } else { "before" },
            got.blocks.keys().collect::<Vec<_>>(),
            want.blocks.keys().collect::<Vec<_>>(),
            got.roots,
            want.roots
        );
        STATES.with(|s| s.set(s.get() + 1));
        if !double || total > DOUBLE_MAX {
            continue;
        }
        // The recovery's own stores, then a death at each of them.
        let path = fresh_copy(&template, dir.path(), "count.heap");
        die(&path, k, |h| transact(h, c))?;
        fault::count_stores();
        drop(Heap::open_with(&path, &opts()).map_err(fail)?);
        let recovery = fault::stores();
        for k2 in 1..=recovery {
            let path = fresh_copy(&template, dir.path(), "twice.heap");
            die(&path, k, |h| transact(h, c))?;
            let died = reopen_dying(&path, k2)?;
            ensure!(died, "recovery store {k2} of {recovery} was never reached");
            let got = seen_of(&path)?;
            ensure!(
                &got == want,
                "death after store {k} of {total}, then after store {k2} of the recovery's \
                 {recovery}: the next recovery did not reach the same state"
            );
            STATES.with(|s| s.set(s.get() + 1));
        }
    }
    Ok(())
}

const CASES: u32 = 24;

/// Cases of the enumeration: `MAPHEAP_TXN_CRASH_CASES`, else a twentieth of
/// `PROPTEST_CASES` (each case is a whole enumeration, about 1 s), else 24.
fn cases() -> u32 {
    std::env::var("MAPHEAP_TXN_CRASH_CASES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            if std::env::var("PROPTEST_CASES").is_ok() {
                (common::cases(CASES) / 20).max(1)
            } else {
                CASES
            }
        })
}

#[test]
fn every_crash_state_recovers_to_before_or_after_the_transaction() {
    let _watchdog = mapheap::watchdog!(60 + u64::from(cases()) * 5);
    STATES.with(|s| s.set(0));
    let config = proptest::test_runner::Config {
        cases: cases(),
        ..common::config(CASES, REGRESSIONS)
    };
    assert_property("txn_crash", config, &case(), |c| crash_case(&c, true));
    let n = STATES.with(|s| s.get());
    eprintln!("txn_crash: crash states checked: {n}");
    assert!(n > 0, "no crash state was checked");
}

/// A mutant run: a fixed seed, no shrinking (each shrink step is a whole enumeration, and
/// the first failing case says enough), second deaths only where the bug needs them.
fn caught_by_enumeration(m: &str, seed: u64, cases: u32, double: bool) {
    let config = || proptest::test_runner::Config {
        max_shrink_iters: 0,
        ..common::mutant_config(cases, seed)
    };
    let mutant = mapheap::mutant::Mutant::parse(m).unwrap();
    let out = run_property(config(), &case(), |c| {
        mapheap::mutant::with(mutant, || crash_case(&c, double))
    });
    assert_caught(m, "txn_crash", &out);
    let control = run_property(config(), &case(), |c| crash_case(&c, double));
    assert!(
        control.result.is_ok(),
        "the same run without the mutant must pass: {:?}",
        control.result
    );
}

#[test]
fn mutant_commit_before_log_is_caught_by_crash_enumeration() {
    let _watchdog = mapheap::watchdog!(300);
    caught_by_enumeration("CommitBeforeLog", 0x7c01, 8, false);
}

#[test]
fn mutant_clear_log_first_is_caught_by_crash_enumeration() {
    let _watchdog = mapheap::watchdog!(300);
    caught_by_enumeration("ClearLogFirst", 0x7c02, 8, true);
}

#[test]
fn mutant_rollback_keeps_allocs_is_caught_by_crash_enumeration() {
    let _watchdog = mapheap::watchdog!(300);
    caught_by_enumeration("RollbackKeepsAllocs", 0x7c03, 8, false);
}

#[test]
fn mutant_free_before_commit_is_caught_by_crash_enumeration() {
    let _watchdog = mapheap::watchdog!(300);
    caught_by_enumeration("FreeBeforeCommit", 0x7c04, 16, false);
}

#[test]
fn mutant_split_commit_first_is_caught_by_crash_enumeration() {
    let _watchdog = mapheap::watchdog!(300);
    caught_by_enumeration("SplitCommitFirst", 0x7c05, 8, false);
}

/// Not left to the random cases: a committed free whose block merges into the free block
/// before it, with a death after every store of the guard (the free's entry, the commit,
/// the merge, the count of frees done, the clearing). After a death past the merge, the
/// block's header is a stale one inside its free neighbour, and recovery must see that the
/// free was made (not refuse the log, not free again): every death recovers to a clean
/// heap holding exactly the blocks after the free.
#[test]
fn a_committed_free_merged_into_its_free_neighbour_recovers_after_every_store() {
    let _watchdog = mapheap::watchdog!(120);
    let dir = common::tempdir();
    let base = dir.path().join("base.heap");
    let (x, y) = {
        let heap = Heap::create_with(&base, &CreateOptions::new(96 << 10)).unwrap();
        let mut g = heap.lock().unwrap();
        let a = g.alloc_bytes(200, 8).unwrap();
        let x = g.alloc_bytes(200, 8).unwrap();
        let y = g.alloc_bytes(200, 8).unwrap();
        g.commit().unwrap();
        let mut g = heap.lock().unwrap();
        g.free(a).unwrap();
        (x, y)
    };
    let template = std::fs::read(&base).unwrap();
    let mut deaths = 0;
    for k in 1.. {
        let path = fresh_copy(&template, dir.path(), "crash.heap");
        let died = die(&path, k, |h| {
            h.lock().map_err(fail)?.free(x).map_err(fail)?;
            Ok(())
        })
        .unwrap();
        let heap = Heap::open_with(&path, &opts())
            .unwrap_or_else(|e| panic!("recovery after store {k} of the free's guard: {e}"));
        let g = heap.lock().unwrap();
        let report = g.check();
        assert!(report.is_clean(), "after store {k}: {report:?}");
        // Committed or not, y stands; x is gone once the commit store was made.
        assert!(g.usable_size(y).is_ok(), "after store {k}: y was lost");
        if !died {
            assert!(g.usable_size(x).is_err(), "the free of x never took effect");
            break;
        }
        deaths += 1;
    }
    assert!(deaths >= 10, "only {deaths} stores in the free's guard");
}
