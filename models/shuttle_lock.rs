//! Shuttle models of the lock protocol: the generic code of `src/sync/protocol.rs` on a
//! shuttle platform, over configurations too large for loom: 4 to 7 threads, many rounds,
//! threads that die at every crash point of the protocol, newcomers that claim a dead
//! thread's slot, and spurious returns from `wait` drawn from shuttle's replayable
//! randomness. Shuttle runs every atomic as SeqCst, so ordering bugs are loom's job.
//!
//! Iterations: `MAPHEAP_SHUTTLE_ITERS` (default 2000 per scheduler and configuration).
//! A failure prints the failing schedule; replay it with
//!
//! ```text
//! MAPHEAP_SHUTTLE_REPLAY='<schedule>' MAPHEAP_SHUTTLE_SCENARIO='<name>' \
//!     [MAPHEAP_MUTANT=<Mutant>] cargo test --test shuttle_lock replay -- --nocapture
//! ```
//!
//! (which calls `shuttle::replay`). See docs/lock-protocol.md.

#[path = "common/world.rs"]
mod world;

// The configurations of both checkers: this binary runs the shuttle ones.
#[allow(dead_code)]
#[path = "common/scenarios.rs"]
mod scenarios;

// The seeded bugs, one table for both checkers: each row runs through `check` below.
#[path = "common/mutants.rs"]
mod mutants;

// The transaction model: the same world, with a real heap for data.
#[path = "shuttle_txn/mod.rs"]
mod shuttle_txn;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mapheap::mutant::{self, Mutant};
use shuttle::scheduler::{
    PctScheduler, RandomScheduler, ReplayScheduler, Schedule, Scheduler, Task, TaskId,
};
use shuttle::{Config, Runner};

use mutants::{message, Outcome, Row};
use scenarios::{contended, contended_strict, deaths, deaths_strict};
use world::{Scenario, Stats};

/// The shuttle flavour of what `world.rs` needs.
mod backend {
    use std::sync::atomic::Ordering::SeqCst;

    pub use shuttle::sync::atomic::{AtomicBool, AtomicU32};
    pub use shuttle::sync::{Condvar, Mutex};
    pub use shuttle::thread::{spawn, yield_now};

    /// The protocol's spin bound under shuttle: a few looks before sleeping, so schedules
    /// where the holder unlocks during the spin are explored.
    pub const SPIN_LIMIT: u32 = 3;

    /// The data the lock protects: read, yield, write. Two threads inside at once lose an
    /// update (and trip the occupancy check first).
    pub struct Payload(shuttle::sync::atomic::AtomicU64);

    impl Payload {
        pub fn new() -> Payload {
            Payload(shuttle::sync::atomic::AtomicU64::new(0))
        }

        pub fn bump(&self) {
            let v = self.0.load(SeqCst);
            shuttle::thread::yield_now();
            self.0.store(v + 1, SeqCst);
        }

        pub fn get(&self) -> u64 {
            self.0.load(SeqCst)
        }
    }

    /// A coin that comes up 1 time in `n`, from shuttle's RNG: part of the schedule, so a
    /// replay makes the same choices.
    pub fn chance(n: u32) -> bool {
        use shuttle::rand::Rng;
        shuttle::rand::thread_rng().gen_range(0..n) == 0
    }
}

/// `MAPHEAP_SHUTTLE_ITERS`, or `default`.
fn iterations(default: usize) -> usize {
    std::env::var("MAPHEAP_SHUTTLE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

const DEFAULT_ITERS: usize = 2000;
const PCT_DEPTH: usize = 3;

// ---- running -------------------------------------------------------------------------------

/// Runs `s` under `scheduler` and sums up what its executions did.
fn explore(s: &Scenario, scheduler: impl Scheduler + 'static) -> Stats {
    let total = Arc::new(Mutex::new(Stats::default()));
    let t = Arc::clone(&total);
    let s2 = s.clone();
    Runner::new(scheduler, quiet()).run(move || {
        let st = world::run(&s2);
        t.lock().unwrap().add(&st);
    });
    let st = *total.lock().unwrap();
    st
}

/// The default configuration without the warning that shuttle treats every ordering as
/// SeqCst (documented in docs/lock-protocol.md; loom covers orderings).
fn quiet() -> Config {
    let mut c = Config::default();
    c.silence_warnings = true;
    c
}

fn passes(s: Scenario) {
    let n = iterations(DEFAULT_ITERS);
    let mut total = Stats::default();
    for (name, st, took) in [
        {
            let start = Instant::now();
            (
                "random",
                explore(&s, RandomScheduler::new(n)),
                start.elapsed(),
            )
        },
        {
            let start = Instant::now();
            let st = explore(&s, PctScheduler::new(PCT_DEPTH, n));
            ("pct", st, start.elapsed())
        },
    ] {
        println!(
            "shuttle [{}] {name}: {} executions, {took:.2?}; {st:?}",
            s.name, st.executions
        );
        total.add(&st);
    }
    // Over both schedulers together: PCT alone, which runs one thread at a time by
    // priority, may e.g. start every newcomer before anybody dies.
    world::assert_reached(&s, &total);
}

/// The failure itself: the first line of the panic's message (shuttle 0.9 passes a task's
/// panic through unchanged, and reports a deadlock as a panic of its own).
fn reason(msg: &str) -> &str {
    msg.lines().next().unwrap_or("")
}

/// A scheduler that keeps the schedule of the execution it is running, so that a failing
/// execution can be replayed with `ReplayScheduler::new_from_schedule`. Shuttle 0.9 prints
/// the failing schedule to stderr from its panic hook and no longer puts it into the panic,
/// so a test cannot read it back; it records each decision exactly as shuttle's own
/// `CurrentSchedule` does (every task chosen, every random value drawn, from the seed that
/// `new_execution` hands out).
struct Recording<S> {
    inner: S,
    current: Arc<Mutex<Schedule>>,
}

impl<S: Scheduler> Scheduler for Recording<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        let schedule = self.inner.new_execution()?;
        *self.current.lock().unwrap() = schedule.clone();
        Some(schedule)
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        let next = self.inner.next_task(runnable, current, is_yielding)?;
        self.current.lock().unwrap().push_task(next);
        Some(next)
    }

    fn next_u64(&mut self) -> u64 {
        self.current.lock().unwrap().push_random();
        self.inner.next_u64()
    }
}

/// Which scheduler a mutant test uses. Seeds are fixed so that the number of executions
/// to the failure is the same on every run (and in docs/lock-protocol.md).
#[derive(Clone, Copy, Debug)]
enum Sched {
    Random,
    Pct,
}

const SEED: u64 = 0x6d61_7068_6561_7021;
const MUTANT_BUDGET: usize = 20_000;

/// Runs `s` with `m` switched on under both schedulers; each must catch it.
fn catches(m: Mutant, s: Scenario, expect: &[&str]) {
    for sched in [Sched::Random, Sched::Pct] {
        catches_with(m, &s, sched, expect);
    }
}

/// Runs `s` with `m` switched on until shuttle fails it (at most `MUTANT_BUDGET`
/// executions), asserts the reason contains one of `expect`, then replays the failing
/// execution's schedule with shuttle's `ReplayScheduler` and asserts the same failure.
fn catches_with(m: Mutant, s: &Scenario, sched: Sched, expect: &[&str]) -> (usize, Duration) {
    let s2 = s.clone();
    catches_in(m, s.name, sched, expect, move || {
        world::run(&s2);
    })
}

/// [`catches_with`] for any execution `body` (one execution of a model named `name`).
fn catches_in(
    m: Mutant,
    name: &str,
    sched: Sched,
    expect: &[&str],
    body: impl Fn() + Clone + Send + Sync + 'static,
) -> (usize, Duration) {
    let start = Instant::now();
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let run = body.clone();
    let last = Arc::new(Mutex::new(Schedule::new(0)));
    let current = Arc::clone(&last);
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        mutant::with(m, || {
            let body = move || {
                c.fetch_add(1, Relaxed);
                run();
            };
            match sched {
                Sched::Random => Runner::new(
                    Recording {
                        inner: RandomScheduler::new_from_seed(SEED, MUTANT_BUDGET),
                        current,
                    },
                    quiet(),
                )
                .run(body),
                Sched::Pct => Runner::new(
                    Recording {
                        inner: PctScheduler::new_from_seed(SEED, PCT_DEPTH, MUTANT_BUDGET),
                        current,
                    },
                    quiet(),
                )
                .run(body),
            }
        })
    }));
    let took = start.elapsed();
    let n = count.load(Relaxed);
    let e = match r {
        Ok(_) => panic!("mutant {m:?} survived shuttle {sched:?} [{name}] ({n} executions)"),
        Err(e) => e,
    };
    let msg = message(&*e);
    assert!(
        expect.iter().any(|x| reason(&msg).contains(x)),
        "mutant {m:?} failed shuttle [{name}] for an unexpected reason: {msg}"
    );
    println!(
        "mutant {m:?}: caught by shuttle {sched:?} [{name}] at execution {n}, {took:.2?}: {}",
        reason(&msg)
    );

    // The failing execution's schedule reproduces the failure.
    let schedule = last.lock().unwrap().clone();
    let replayed = panic::catch_unwind(AssertUnwindSafe(|| {
        mutant::with(m, || {
            Runner::new(ReplayScheduler::new_from_schedule(schedule), quiet()).run(body)
        })
    }));
    let again = message(&*replayed.expect_err("the replayed schedule fails again"));
    assert_eq!(
        reason(&again),
        reason(&msg),
        "the replay fails the same way"
    );
    (n, took)
}

/// Shuttle's part of a row of the mutant table (models/common/mutants.rs).
fn check(row: Row) {
    let scenario = (row.shuttle.scenario)();
    match row.shuttle.outcome {
        Outcome::Caught(reasons) => catches(row.mutant, scenario, reasons),
        Outcome::Survives => mutant::with(row.mutant, || passes(scenario)),
    }
}

// ---- the protocol passes -------------------------------------------------------------------

#[test]
fn four_threads_contended_random_and_pct() {
    passes(contended());
}

#[test]
fn four_threads_contended_without_spurious_returns() {
    passes(contended_strict());
}

#[test]
fn deaths_at_every_crash_point_with_newcomers() {
    passes(deaths());
}

#[test]
fn deaths_without_spurious_returns() {
    passes(deaths_strict());
}

/// `mutant::with` is thread-local; shuttle runs every task as a continuation on the calling
/// OS thread, so the switch must reach them all.
#[test]
fn mutant_switch_reaches_shuttle_threads() {
    let seen = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&seen);
    mutant::with(Mutant::RecoveryDropsWaiters, || {
        shuttle::check_random(
            move || {
                let s2 = Arc::clone(&s);
                let t = shuttle::thread::spawn(move || {
                    assert!(mutant::active(Mutant::RecoveryDropsWaiters));
                    s2.fetch_add(1, Relaxed);
                });
                assert!(mutant::active(Mutant::RecoveryDropsWaiters));
                t.join().unwrap();
            },
            5,
        )
    });
    assert_eq!(seen.load(Relaxed), 5);
    assert!(!mutant::active(Mutant::RecoveryDropsWaiters));
}

/// Replays a schedule printed by a failing run: set `MAPHEAP_SHUTTLE_REPLAY` to the
/// schedule, `MAPHEAP_SHUTTLE_SCENARIO` to the configuration's name, and `MAPHEAP_MUTANT` if
/// the failure was a mutant's. Does nothing without them.
#[test]
fn replay() {
    let (Ok(schedule), Ok(name)) = (
        std::env::var("MAPHEAP_SHUTTLE_REPLAY"),
        std::env::var("MAPHEAP_SHUTTLE_SCENARIO"),
    ) else {
        return;
    };
    let m = std::env::var("MAPHEAP_MUTANT")
        .ok()
        .map(|n| Mutant::parse(&n).unwrap_or_else(|| panic!("no mutant named {n:?}")));
    let run: Box<dyn FnOnce()> = match shuttle_txn::replay_body(&name) {
        Some(body) => Box::new(move || shuttle::replay(body, &schedule)),
        None => {
            let s = scenarios::all()
                .into_iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no configuration named {name:?}"));
            Box::new(move || {
                shuttle::replay(
                    move || {
                        world::run(&s);
                    },
                    &schedule,
                )
            })
        }
    };
    match m {
        Some(m) => mutant::with(m, run),
        None => run(),
    }
}
