//! Property: transactions against a reference model of the committed heap
//! (proptest-state-machine).
//!
//! The model is the committed state of a heap: its blocks with every usable byte, and the
//! root table slot by slot; an open transaction has its own view of it (what the guard
//! shows), the blocks it frees at commit, the ranges it saved, and the undo log it must
//! have written (entries, PADs, extension segments). Random sequences of transactions run
//! against a real heap: writes (through `write`, `get_mut` and `bytes_mut`; to blocks older
//! than the transaction and to its own; overlapping and extending earlier writes),
//! allocations (one of them nearly the whole largest free block), deferred frees, double
//! frees, root changes, checkpoints; each transaction ends by a commit (drop or `commit`),
//! `abort` (its `Undo` counts compared with the model), a panic under the guard, or a death
//! after a random store of it (its commit included, and optionally a second death inside
//! the next opener's recovery). Heaps are made with small logs (256 or 512 bytes) and
//! nearly full, so logging fails with `LogFull`. Checked:
//!
//! * after every step inside a transaction, the step's outcome is the model's (a `LogFull`
//!   exactly where the log has no room and no extension can be allocated, naming the
//!   entry's size and the log's capacity; `DoubleFree`, `BadOffset` where due), and the
//!   guard shows the transaction's view: every block's bytes, the allocated blocks (the
//!   heap's own aside, the blocks being freed included but not resolving), the roots, the
//!   log's usage and segments; `check()` clean;
//! * after a commit the heap is the transaction's view, after an abort or a panic the
//!   committed state before it; after a death, the one or the other as the death came
//!   before or after the transaction's commit store (T2, T3, T4, T6), through a fresh
//!   guard that recovers nothing; the heap's own blocks are its log alone; `check()` clean.
//!
//! See docs/properties.md.

#[macro_use]
mod common;

#[path = "txn_model/case.rs"]
mod case;
#[path = "txn_model/model.rs"]
mod model;
#[path = "txn_model/reference.rs"]
mod reference;
#[path = "txn_model/roots.rs"]
mod roots;
#[path = "txn_model/steps.rs"]
mod steps;
#[path = "txn_model/verify.rs"]
mod verify;
#[path = "txn_model/writes.rs"]
mod writes;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{assert_caught, assert_property, run_property};
use mapheap::mutant::{self, Mutant};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use proptest_state_machine::ReferenceStateMachine;
use reference::{Op, RefState, TxnMachine};

const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptests/regressions/txn_model.txt"
);

/// Cases of the default run.
const CASES: u32 = 1024;

/// What the runs exercised, printed after the default run (so a generator that stopped
/// reaching a case shows). Counted per thread: the mutant tests run beside the property.
mod tally {
    use std::cell::Cell;

    pub struct Counter(usize);
    pub const STEPS: Counter = Counter(0);
    pub const WRITES: Counter = Counter(1);
    pub const IMAGES: Counter = Counter(2);
    pub const ALLOCS: Counter = Counter(3);
    pub const OUT_OF_SPACE: Counter = Counter(4);
    pub const FREES: Counter = Counter(5);
    pub const ROOTS: Counter = Counter(6);
    pub const LOG_FULL: Counter = Counter(7);
    pub const CHECKPOINTS: Counter = Counter(8);
    pub const COMMITS: Counter = Counter(9);
    pub const ABORTS: Counter = Counter(10);
    pub const PANICS: Counter = Counter(11);
    pub const CRASH_UNDONE: Counter = Counter(12);
    pub const CRASH_COMMITTED: Counter = Counter(13);
    pub const CRASH_NO_STORE: Counter = Counter(14);
    pub const SECOND_DEATHS: Counter = Counter(15);
    const N: usize = 16;
    thread_local! {
        static COUNTS: [Cell<u64>; N] = const { [const { Cell::new(0) }; N] };
    }
    pub fn add(c: &Counter) {
        COUNTS.with(|a| a[c.0].set(a[c.0].get() + 1));
    }
    pub fn report() -> String {
        let g = |c: Counter| COUNTS.with(|a| a[c.0].get());
        format!(
            "{} steps: {} writes ({} saved a before-image), {} allocations ({} out of space), \
             {} frees, {} root changes, {} refused with LogFull, {} checkpoints; ends: {} \
             commits, {} aborts, {} panics, {} deaths before the commit store and {} after \
             ({} with a second death in the recovery); {} transactions to kill made no store",
            g(STEPS),
            g(WRITES),
            g(IMAGES),
            g(ALLOCS),
            g(OUT_OF_SPACE),
            g(FREES),
            g(ROOTS),
            g(LOG_FULL),
            g(CHECKPOINTS),
            g(COMMITS),
            g(ABORTS),
            g(PANICS),
            g(CRASH_UNDONE),
            g(CRASH_COMMITTED),
            g(SECOND_DEATHS),
            g(CRASH_NO_STORE),
        )
    }
}

/// Runs a generated sequence: the steps are cut into transactions (a `Begin` or a step
/// that ends one closes the open one; an open one at the end is committed by dropping its
/// guard), each run and checked by `case::Case::segment`.
fn run_sequence(
    init: RefState,
    ops: &[Op],
    seen: Option<Arc<AtomicUsize>>,
) -> Result<(), TestCaseError> {
    // A death armed by a case that failed half-way must not fire in this one.
    mapheap::fault::arm_store_unwind(None);
    let mut case = case::Case::new(&init.init)?;
    let mut body: Vec<(usize, Op)> = Vec::new();
    let mut open = false;
    for (i, op) in ops.iter().enumerate() {
        // Seen once dispatched: the sequential strategy keeps the steps seen (by position)
        // when it starts shrinking, and a transaction's steps matter up to its end even
        // when a death cut its run short.
        if let Some(s) = &seen {
            s.fetch_add(1, Ordering::SeqCst);
        }
        match op {
            Op::Begin => {
                if open {
                    case.segment(&body, None)?;
                    body.clear();
                }
                open = true;
            }
            op if op.ends() => {
                case.segment(&body, Some((i, op)))?;
                body.clear();
                open = false;
            }
            op => {
                body.push((i, op.clone()));
                open = true;
            }
        }
    }
    if open {
        case.segment(&body, None)?;
    }
    Ok(())
}

type Seq = (RefState, Vec<Op>, Option<Arc<AtomicUsize>>);

fn strategy() -> impl Strategy<Value = Seq> {
    TxnMachine::sequential_strategy(1..48)
}

#[test]
fn txn_model_property_transactions_agree_with_the_model() {
    let _watchdog = mapheap::watchdog!(common::bound_secs(CASES, 100));
    assert_property(
        "txn_model",
        common::config(CASES, REGRESSIONS),
        &strategy(),
        |(s, ops, seen)| run_sequence(s, &ops, seen),
    );
    eprintln!("txn_model exercised: {}", tally::report());
}

const MUTANT_CASES: u32 = 64;

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

/// `write` stores the value before it saves the before-image: a rollback (abort, panic,
/// death) writes the new bytes back. Reached through `HeapGuard::write` (`Via::Write`).
#[test]
fn mutant_image_after_write_is_caught_by_txn_model() {
    let _watchdog = mapheap::watchdog!(180);
    let out = mutant_run(Mutant::ImageAfterWrite, 0x7a11_0001);
    assert_caught("ImageAfterWrite", "txn_model", &out);
    control_run(0x7a11_0001);
}

#[test]
fn mutant_rollback_keeps_allocs_is_caught_by_txn_model() {
    let _watchdog = mapheap::watchdog!(180);
    let out = mutant_run(Mutant::RollbackKeepsAllocs, 0x7a11_0002);
    assert_caught("RollbackKeepsAllocs", "txn_model", &out);
    control_run(0x7a11_0002);
}

#[test]
fn mutant_free_before_commit_is_caught_by_txn_model() {
    let _watchdog = mapheap::watchdog!(180);
    let out = mutant_run(Mutant::FreeBeforeCommit, 0x7a11_0003);
    assert_caught("FreeBeforeCommit", "txn_model", &out);
    control_run(0x7a11_0003);
}

#[test]
fn mutant_panic_commits_is_caught_by_txn_model() {
    let _watchdog = mapheap::watchdog!(180);
    let out = mutant_run(Mutant::PanicCommits, 0x7a11_0004);
    assert_caught("PanicCommits", "txn_model", &out);
    control_run(0x7a11_0004);
}

#[test]
fn mutant_overflow_skips_log_is_caught_by_txn_model() {
    let _watchdog = mapheap::watchdog!(180);
    let out = mutant_run(Mutant::OverflowSkipsLog, 0x7a11_0005);
    assert_caught("OverflowSkipsLog", "txn_model", &out);
    control_run(0x7a11_0005);
}

#[test]
fn mutant_commit_before_log_is_caught_by_txn_model() {
    let _watchdog = mapheap::watchdog!(180);
    let out = mutant_run(Mutant::CommitBeforeLog, 0x7a11_0006);
    assert_caught("CommitBeforeLog", "txn_model", &out);
    control_run(0x7a11_0006);
}

/// A rollback that clears the log first loses the rest of the undo when the recoverer
/// dies too: reached by the second death (`Op::Crash { second: Some(_) }`).
#[test]
fn mutant_clear_log_first_is_caught_by_txn_model() {
    let _watchdog = mapheap::watchdog!(180);
    let out = mutant_run(Mutant::ClearLogFirst, 0x7a11_0007);
    assert_caught("ClearLogFirst", "txn_model", &out);
    control_run(0x7a11_0007);
}

/// Regression for the bug this property found first (minimal case in
/// proptests/regressions/txn_model.txt): a death while the log lists an extension segment
/// that is no longer an allocated block (between the extension's allocation and the
/// clearing of its intent, whose repair frees it; or between the free of an extension and
/// the store that delists it, in a commit or a rollback) made every later open fail with
/// "undo log corrupted: an extension segment is not an allocated block". Dies after every
/// store of a transaction whose before-image needs an extension, ended by a commit or by
/// `abort`: every reopen must recover, to the old bytes before the commit store and to
/// the new ones after it, with `check` clean.
#[test]
fn a_death_at_any_store_of_a_transaction_with_a_log_extension_is_recovered() {
    use mapheap::{fault, CreateOptions, Heap};
    let _watchdog = mapheap::watchdog!(60);
    for abort in [false, true] {
        let mut k = 1;
        loop {
            let dir = common::tempdir();
            let path = dir.path().join("ext.heap");
            let opts = CreateOptions {
                log_capacity: Some(256),
                open: case::opts(),
                ..CreateOptions::new(14 * 4096)
            };
            let heap = Heap::create_with(&path, &opts).expect("create");
            let b = heap
                .lock()
                .expect("lock")
                .alloc_bytes(320, 8)
                .expect("alloc");
            heap.lock()
                .expect("lock")
                .bytes_mut(b, 320)
                .expect("view")
                .fill(1);
            let mut commit_store = u64::MAX;
            fault::arm_store_unwind(Some(k));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut g = heap.lock().expect("lock");
                // 336 bytes of entry: more than the 256-byte log, so an extension.
                g.bytes_mut(b, 320).expect("logged view").fill(2);
                assert_eq!(g.own_blocks().len(), 2, "the write took an extension");
                commit_store = fault::stores() + 1;
                if abort {
                    g.abort().expect("abort");
                }
            }));
            fault::arm_store_unwind(None);
            if r.is_ok() {
                assert!(k > 20, "only {k} stores: no extension was made and freed");
                break;
            }
            drop(heap);
            let heap = Heap::open_with(&path, &case::opts())
                .unwrap_or_else(|e| panic!("abort {abort}, death after store {k}: open: {e}"));
            let g = heap.lock().expect("lock");
            let want = if !abort && k >= commit_store { 2 } else { 1 };
            let got = g.bytes(b, 320).expect("block");
            assert!(
                got.iter().all(|&x| x == want),
                "abort {abort}, death after store {k}: the block does not hold {want}s"
            );
            assert_eq!(g.own_blocks(), [g.stats().log_block], "store {k}");
            let report = g.check();
            assert!(report.is_clean(), "abort {abort}, store {k}: {report:?}");
            k += 1;
        }
    }
}
