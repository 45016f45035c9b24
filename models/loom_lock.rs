//! Loom models of the lock protocol: the generic code of `src/sync/protocol.rs` on a loom
//! platform (loom atomics for the word, a futex emulated with loom's Mutex and Condvar, a
//! slot table in loom atomics for `owner_alive`), explored exhaustively within a preemption
//! bound. The protected counter is a `loom::cell::UnsafeCell`, so a missing Acquire/Release
//! shows up as a loom causality violation, not just a lost update.
//!
//! Runs in a plain `cargo test` (no `--cfg loom`). Deeper runs:
//!
//! ```text
//! MAPHEAP_LOOM_PREEMPTIONS=4 cargo test --test loom_lock --release -- --nocapture
//! ```
//!
//! See docs/lock-protocol.md for what these models cover and what they do not.

#[path = "common/world.rs"]
mod world;

// The configurations of both checkers: this binary runs the loom ones.
#[allow(dead_code)]
#[path = "common/scenarios.rs"]
mod scenarios;

// The seeded bugs, one table for both checkers: each row runs through `check` below.
#[path = "common/mutants.rs"]
mod mutants;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mapheap::mutant::{self, Mutant};

use mutants::{message, Outcome, Row};
use scenarios::{
    dies_after_release, dies_after_release_three, dies_at_lock_acquired, dies_holding,
    recoverer_dies, three, two, two_twice,
};
use world::{Scenario, Stats};

/// The loom flavour of what `world.rs` needs.
mod backend {
    pub use loom::sync::atomic::{AtomicBool, AtomicU32};
    pub use loom::sync::{Condvar, Mutex};
    pub use loom::thread::spawn;

    /// The protocol's spin bound under loom: one look before sleeping keeps the spin path
    /// in every exploration without multiplying the schedules by the production bound.
    pub const SPIN_LIMIT: u32 = 1;

    /// The pause of a spinning locker. Not `loom::thread::yield_now`: loom takes a yield to
    /// mean "no progress until another thread runs" and would always let the holder unlock
    /// first, hiding every schedule in which the spinner goes to sleep. The spin is bounded,
    /// so it needs no yield to end.
    pub fn yield_now() {}

    /// The data the lock protects: a loom cell, so that two accesses not ordered by
    /// happens-before (a broken exclusion or a missing Acquire/Release) fail the model.
    pub struct Payload(loom::cell::UnsafeCell<u64>);

    // SAFETY: the cell is only touched inside the lock's critical section (or after every
    // thread was joined); loom itself checks that every two accesses are ordered, which is
    // exactly what these models test.
    unsafe impl Sync for Payload {}

    impl Payload {
        pub fn new() -> Payload {
            Payload(loom::cell::UnsafeCell::new(0))
        }

        pub fn bump(&self) {
            // SAFETY: called inside the critical section; loom reports any concurrent access.
            self.0.with_mut(|p| unsafe { *p += 1 })
        }

        pub fn get(&self) -> u64 {
            // SAFETY: called by the main model thread after every other thread was joined.
            self.0.with(|p| unsafe { *p })
        }
    }

    /// Loom models inject no spurious returns (`Scenario::spurious` is 0).
    pub fn chance(_n: u32) -> bool {
        unreachable!("loom scenarios inject no spurious wake-ups")
    }
}

/// The preemption bound of a configuration. Configurations of up to 2 threads (plus the
/// main thread's final lock) are explored without a bound: every interleaving, in seconds.
/// Larger ones use `MAPHEAP_LOOM_PREEMPTIONS` (a number, or `none` for no bound), or 3.
fn preemptions(s: &Scenario) -> Option<usize> {
    if s.actors.len() <= 2 {
        return None;
    }
    match std::env::var("MAPHEAP_LOOM_PREEMPTIONS") {
        Ok(v) if v == "none" => None,
        Ok(v) => Some(
            v.parse()
                .expect("MAPHEAP_LOOM_PREEMPTIONS: a number or `none`"),
        ),
        Err(_) => Some(3),
    }
}

fn builder(s: &Scenario) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = preemptions(s);
    // Several lock rounds, deaths and the futex queue's mutex make for long executions; the
    // default of 1,000 branches is too few for the 3-thread configurations.
    b.max_branches = 20_000;
    b
}

/// Explores `s` and sums up what its executions did.
fn explore(s: &Scenario) -> Stats {
    let total = Arc::new(Mutex::new(Stats::default()));
    let t = Arc::clone(&total);
    let s2 = s.clone();
    builder(s).check(move || {
        let st = world::run(&s2);
        t.lock().unwrap().add(&st);
    });
    let st = *total.lock().unwrap();
    st
}

fn passes(s: Scenario) {
    let start = Instant::now();
    let st = explore(&s);
    println!(
        "loom [{}] preemption bound {:?}: {} executions, {:.2?}; {st:?}",
        s.name,
        preemptions(&s),
        st.executions,
        start.elapsed()
    );
    world::assert_reached(&s, &st);
}

/// Runs `s` with `m` switched on and asserts that loom fails it with a message containing
/// one of `expect`. Returns (executions until the failure, time).
fn catches(m: Mutant, s: Scenario, expect: &[&str]) -> (usize, Duration) {
    let start = Instant::now();
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let s2 = s.clone();
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        mutant::with(m, || {
            builder(&s).check(move || {
                c.fetch_add(1, Relaxed);
                world::run(&s2);
            })
        })
    }));
    let took = start.elapsed();
    let n = count.load(Relaxed);
    let e = match r {
        Ok(()) => panic!("mutant {m:?} survived loom [{}] ({n} executions)", s.name),
        Err(e) => e,
    };
    let msg = message(&*e);
    assert!(
        expect.iter().any(|x| msg.contains(x)),
        "mutant {m:?} failed loom [{}] for an unexpected reason: {msg}",
        s.name
    );
    println!(
        "mutant {m:?}: caught by loom [{}] at execution {n}, {took:.2?}: {}",
        s.name,
        msg.lines().next().unwrap_or("")
    );
    (n, took)
}

/// Loom's part of a row of the mutant table (models/common/mutants.rs).
fn check(row: Row) {
    let scenario = (row.loom.scenario)();
    match row.loom.outcome {
        Outcome::Caught(reasons) => {
            catches(row.mutant, scenario, reasons);
        }
        Outcome::Survives => mutant::with(row.mutant, || passes(scenario)),
    }
}

// ---- the protocol passes -------------------------------------------------------------------

#[test]
fn two_threads_exclude_and_never_lose_a_wakeup() {
    passes(two());
}

#[test]
fn two_threads_two_rounds() {
    passes(two_twice());
}

#[test]
fn three_threads_exclude_and_never_lose_a_wakeup() {
    passes(three());
}

#[test]
fn owner_dies_holding_exactly_one_recoverer() {
    passes(dies_holding());
}

#[test]
fn owner_dies_at_lock_acquired_is_recovered() {
    passes(dies_at_lock_acquired());
}

#[test]
fn owner_dies_between_release_and_wake() {
    passes(dies_after_release());
    passes(dies_after_release_three());
}

#[test]
fn recoverer_dies_right_after_takeover() {
    passes(recoverer_dies());
}

/// `mutant::with` is thread-local; loom runs every model thread as a coroutine on the
/// calling OS thread, so the switch must reach them all (and nothing else).
#[test]
fn mutant_switch_reaches_loom_threads() {
    let seen = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&seen);
    mutant::with(Mutant::UnlockWithoutWake, || {
        loom::model(move || {
            let s2 = Arc::clone(&s);
            let t = loom::thread::spawn(move || {
                assert!(mutant::active(Mutant::UnlockWithoutWake));
                s2.fetch_add(1, Relaxed);
            });
            assert!(mutant::active(Mutant::UnlockWithoutWake));
            t.join().unwrap();
        })
    });
    assert!(seen.load(Relaxed) > 0);
    assert!(!mutant::active(Mutant::UnlockWithoutWake));
}
