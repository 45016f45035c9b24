//! The seeded bugs of the lock protocol and what each model checker makes of them: one
//! table, compiled into both model binaries, so that each mutant shape (which bug, and for
//! each checker which scenario and which outcome) is written once.
//!
//! Each row is a `#[test]` that hands a [`Row`] to the including binary's `crate::check`,
//! which runs that binary's own [`Case`]: `loom_lock` explores the scenario within its
//! bound, `shuttle_lock` runs it under the random and then the PCT scheduler, with fixed
//! seeds, and replays the failing schedule. So every test name below exists in both
//! binaries and asserts the same claim in each, and a bug that one checker cannot see is a
//! row that says so (`Survives`), not a test missing from one file.
//!
//! Invariant: a `Caught` case asserts that its checker fails the scenario with the mutant
//! switched on, and fails it for one of the listed reasons (a failure for another reason
//! fails the test too); a `Survives` case asserts that the scenario passes with the mutant
//! on, with every end-of-execution check and every state it is meant to reach. Every
//! scenario a `Caught` case names passes a clean test of the same binary, so the failure
//! is the mutant's.

use mapheap::mutant::Mutant;

use crate::check;
use crate::scenarios::{
    contended, contended_strict, deaths, deaths_strict, dies_after_release_three, dies_holding,
    three, two,
};
use crate::world::Scenario;

/// What a checker must make of a mutant in a scenario.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    /// The checker fails the scenario, and the failure's message contains one of these.
    Caught(&'static [&'static str]),
    /// The scenario passes with the mutant on, reaching every state it is meant to test.
    Survives,
}

/// One checker's part of a row.
#[derive(Clone, Copy)]
pub struct Case {
    /// The configuration the checker runs.
    pub scenario: fn() -> Scenario,
    /// What must come of it.
    pub outcome: Outcome,
}

/// One mutant shape, for both checkers. Each binary reads its own checker's field only.
#[allow(dead_code)]
#[derive(Clone, Copy)]
pub struct Row {
    /// The seeded bug switched on.
    pub mutant: Mutant,
    /// What loom must make of it.
    pub loom: Case,
    /// What shuttle must make of it.
    pub shuttle: Case,
}

const fn caught(scenario: fn() -> Scenario, reasons: &'static [&'static str]) -> Case {
    Case {
        scenario,
        outcome: Outcome::Caught(reasons),
    }
}

const fn survives(scenario: fn() -> Scenario) -> Case {
    Case {
        scenario,
        outcome: Outcome::Survives,
    }
}

/// The text of a model's failure (a panic payload).
pub fn message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic>".into())
}

// ---- why a checker may fail a scenario ------------------------------------------------------

/// A sleeper nobody wakes: the world's quiescence check, or the checker's own deadlock
/// detection.
const LOST_WAKEUP: &[&str] = &["lost wake-up", "deadlock"];
/// Two critical sections not ordered by happens-before (loom's cell).
const RACE: &[&str] = &["Causality violation"];
/// A waiter that spins for ever: loom stops at its branch limit, shuttle at its step bound.
const SPIN_LOOM: &[&str] = &["maximum number of branches"];
const SPIN_SHUTTLE: &[&str] = &["exceeded max_steps bound"];
/// Two threads inside at once: loom's cell, the occupancy check, an unlock by a
/// non-owner (the protocol's `debug_assert`), or a lost update on the counter.
const BROKEN_EXCLUSION: &[&str] = &[
    "Causality violation",
    "mutual exclusion violated",
    "does not own the lock",
    "lost update",
];
/// Shuttle's exclusion failures (it has no cell race to report), or a takeover that
/// "recovered" a lock whose owner had released it.
const BROKEN_EXCLUSION_OR_FALSE_RECOVERY: &[&str] = &[
    "mutual exclusion violated",
    "does not own the lock",
    "lost update",
    "recovered",
];
/// Any failure of a takeover by store under loom: loom's store-vs-RMW weakness (loom issue
/// 254) cannot make the mutant pass, only fail in another way; shuttle is the checker of
/// record for this mutant.
const STORE_RACE_UNDER_LOOM: &[&str] = &[
    "Causality violation",
    "mutual exclusion violated",
    "does not own the lock",
    "recovered",
    "deadlock",
];

// ---- the table ------------------------------------------------------------------------------

#[test]
fn mutant_unlock_without_wake_is_caught() {
    check(Row {
        mutant: Mutant::UnlockWithoutWake,
        loom: caught(two, LOST_WAKEUP),
        shuttle: caught(contended_strict, LOST_WAKEUP),
    });
}

#[test]
fn mutant_wake_before_release_is_caught() {
    check(Row {
        mutant: Mutant::WakeBeforeRelease,
        loom: caught(two, LOST_WAKEUP),
        shuttle: caught(contended_strict, LOST_WAKEUP),
    });
}

/// Needs a second sleeper that the woken thread forgets about.
#[test]
fn mutant_woken_takes_without_waiters_is_caught() {
    check(Row {
        mutant: Mutant::WokenTakesWithoutWaiters,
        loom: caught(three, LOST_WAKEUP),
        shuttle: caught(contended_strict, LOST_WAKEUP),
    });
}

/// With one sleeper there is nobody to forget: the bug needs 3 threads, as documented.
#[test]
fn mutant_woken_takes_without_waiters_survives_two_threads() {
    check(Row {
        mutant: Mutant::WokenTakesWithoutWaiters,
        loom: survives(two),
        shuttle: survives(two),
    });
}

/// Shuttle runs every atomic as SeqCst: a missing Acquire is invisible to it.
#[test]
fn mutant_relaxed_acquire_is_caught_by_loom_only() {
    check(Row {
        mutant: Mutant::RelaxedAcquire,
        loom: caught(two, RACE),
        shuttle: survives(contended_strict),
    });
}

/// Shuttle runs every atomic as SeqCst: a missing Release is invisible to it.
#[test]
fn mutant_relaxed_release_is_caught_by_loom_only() {
    check(Row {
        mutant: Mutant::RelaxedRelease,
        loom: caught(two, RACE),
        shuttle: survives(contended_strict),
    });
}

#[test]
fn mutant_wait_means_ownership_is_caught() {
    check(Row {
        mutant: Mutant::WaitMeansOwnership,
        loom: caught(two, BROKEN_EXCLUSION),
        shuttle: caught(contended, BROKEN_EXCLUSION_OR_FALSE_RECOVERY),
    });
}

#[test]
fn mutant_stale_word_after_wait_is_caught() {
    // The woken waiter keeps sleeping on the word it saw before, which has moved on (L6).
    check(Row {
        mutant: Mutant::StaleWordAfterWait,
        loom: caught(two, SPIN_LOOM),
        shuttle: caught(contended, SPIN_SHUTTLE),
    });
}

#[test]
fn mutant_unbounded_spin_is_caught() {
    // A locker spins on the word of an owner that died holding it, for ever: it never
    // sleeps, so it never times out and probes (L7).
    check(Row {
        mutant: Mutant::UnboundedSpin,
        loom: caught(dies_holding, SPIN_LOOM),
        shuttle: caught(deaths, SPIN_SHUTTLE),
    });
}

#[test]
fn mutant_recovery_drops_waiters_is_caught() {
    check(Row {
        mutant: Mutant::RecoveryDropsWaiters,
        loom: caught(dies_holding, LOST_WAKEUP),
        shuttle: caught(deaths_strict, LOST_WAKEUP),
    });
}

/// The owner dies between its release and its wake; the sleeper's takeover store lands on a
/// free (or newly taken) word.
#[test]
fn mutant_takeover_by_store_is_caught() {
    check(Row {
        mutant: Mutant::TakeoverByStore,
        loom: caught(dies_after_release_three, STORE_RACE_UNDER_LOOM),
        shuttle: caught(deaths, BROKEN_EXCLUSION_OR_FALSE_RECOVERY),
    });
}
