//! The shuttle transaction model: the lock protocol's world with a real heap for data.
//! Owners die inside their transactions, recoverers die inside the rollback of them,
//! newcomers attach in dead threads' slots; after the last thread, a final recovery, and
//! the heap must equal the committed model (every transaction wholly or not at all), with
//! `check` clean and no leaked block. The heap is the production allocator and
//! transaction code (`alloc::Arena`, `txn::Tx`) in a buffer (`heap.rs`); the recovery is
//! `heap::recover_arena`, the sequence `HeapGuard` runs; the deaths and the reference are
//! in `section.rs`.
//!
//! Iterations: `MAPHEAP_SHUTTLE_ITERS`, else [`DEFAULT_ITERS`], per scheduler. Replay a failure with the `replay` test and
//! `MAPHEAP_SHUTTLE_SCENARIO` set to [`NAME`] (docs/lock-protocol.md).

#[path = "heap.rs"]
mod heap;
#[path = "section.rs"]
mod section;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use mapheap::mutant::Mutant;
use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler};
use shuttle::Runner;

use crate::world::{self, Actor, Scenario, Section};
use crate::{catches_in, quiet, Sched, PCT_DEPTH};
use section::{HeapSection, TxnStats};

/// The configuration's name (for `MAPHEAP_SHUTTLE_SCENARIO`).
pub const NAME: &str = "transactions: deaths in transactions and in rollbacks, newcomers";

/// Executions per scheduler by default: the clean test takes about 5 s in the test
/// profile (an execution, up to 10 transactions and a `check` before each, about 0.25 ms).
pub const DEFAULT_ITERS: usize = 10_000;

/// Three threads from the start and two newcomers, two transactions each (the deaths come
/// from the heap's stores, not from the actors' fates).
pub fn scenario() -> Scenario {
    Scenario::new(
        NAME,
        &[
            Actor::rounds(2),
            Actor::rounds(2),
            Actor::rounds(2),
            Actor::rounds(2).newcomer(),
            Actor::rounds(2).newcomer(),
        ],
    )
}

/// One execution: a fresh heap, the world's threads over it, the final checks.
pub fn execution(s: &Scenario) -> TxnStats {
    let section = Arc::new(HeapSection::new());
    let dyn_section: Arc<dyn Section> = section.clone();
    let w = world::run_with(s, Some(dyn_section));
    let mut st = section.stats();
    st.newcomers = w.slot_reuses;
    st
}

fn explore(s: &Scenario, scheduler: impl Scheduler + 'static) -> TxnStats {
    let total = Arc::new(Mutex::new(TxnStats::default()));
    let t = Arc::clone(&total);
    let s2 = s.clone();
    Runner::new(scheduler, quiet()).run(move || {
        let st = execution(&s2);
        t.lock().unwrap().add(&st);
    });
    let st = *total.lock().unwrap();
    st
}

/// Runs the model under the random and the PCT scheduler; asserts that together they
/// reached every kind of death the model is for.
fn passes(s: &Scenario) -> TxnStats {
    let n = crate::iterations(DEFAULT_ITERS);
    let mut total = TxnStats::default();
    for sched in [Sched::Random, Sched::Pct] {
        let start = Instant::now();
        let st = match sched {
            Sched::Random => explore(s, RandomScheduler::new(n)),
            Sched::Pct => explore(s, PctScheduler::new(PCT_DEPTH, n)),
        };
        println!(
            "shuttle [{}] {sched:?}: {:.2?}; {st:?}",
            s.name,
            start.elapsed()
        );
        total.add(&st);
    }
    let why = |what: &str| format!("[{}] no execution {what}: {total:?}", s.name);
    assert!(total.committed > 0, "{}", why("committed a transaction"));
    assert!(total.died_in_txn > 0, "{}", why("died in a transaction"));
    assert!(
        total.died_after_commit > 0,
        "{}",
        why("died after a commit store")
    );
    assert!(total.died_in_rollback > 0, "{}", why("died in a rollback"));
    assert!(
        total.rolled_back > 0,
        "{}",
        why("rolled a transaction back")
    );
    assert!(total.finished > 0, "{}", why("finished a committed one"));
    assert!(total.extended > 0, "{}", why("chained a log extension"));
    assert!(
        total.newcomers > 0,
        "{}",
        why("reused a dead thread's slot")
    );
    total
}

#[test]
fn transactions_with_deaths_in_them_and_in_rollbacks_random_and_pct() {
    passes(&scenario());
}

/// `m` fails the model under both schedulers (fixed seeds), for one of `expect`, and the
/// failing schedule replays the failure. The clean control is the test above.
fn caught(m: Mutant, expect: &[&str]) {
    for sched in [Sched::Random, Sched::Pct] {
        let s = scenario();
        catches_in(m, NAME, sched, expect, move || {
            execution(&s);
        });
    }
}

/// The heap differs from the committed model, holds a block nobody reaches, or its log is
/// left broken (`check`) or unfinished.
const TORN: &[&str] = &[
    "is not the committed state",
    "leaked or lost block",
    "heap check failed",
    "something in flight",
];

/// A recoverer that clears the log before undoing it and dies in the rollback leaves the
/// rest undone, and the next owner finds nothing to recover.
#[test]
fn mutant_clear_log_first_is_caught_by_shuttle_txn() {
    caught(Mutant::ClearLogFirst, TORN);
}

/// A rolled-back allocation stays allocated: a block nobody reaches.
#[test]
fn mutant_rollback_keeps_allocs_is_caught_by_shuttle_txn() {
    caught(Mutant::RollbackKeepsAllocs, &["leaked or lost block"]);
}

/// Every entry's `log.len` store carries the commit bit: a death before the commit is
/// finished instead of rolled back.
#[test]
fn mutant_commit_before_log_is_caught_by_shuttle_txn() {
    caught(
        Mutant::CommitBeforeLog,
        &["the recovery says committed = true"],
    );
}

/// A free made when it is asked for, not at the commit: rolled back, the list names a
/// free block.
#[test]
fn mutant_free_before_commit_is_caught_by_shuttle_txn() {
    caught(
        Mutant::FreeBeforeCommit,
        &["list node", "leaked or lost block", "heap check failed"],
    );
}

/// The replay test's execution for this model (`None` for another name).
pub fn replay_body(name: &str) -> Option<impl Fn() + Send + Sync + 'static> {
    (name == NAME).then(|| {
        let s = scenario();
        move || {
            execution(&s);
        }
    })
}
