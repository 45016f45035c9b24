//! The model configurations, shared by the loom and shuttle models so that a mutant row of
//! `mutants.rs` can name each checker's scenario by the same function in both binaries.
//! Each binary runs its own subset as clean tests: loom the small ones (up to 3 threads,
//! explored exhaustively or within a preemption bound), shuttle the large ones (4 to 6
//! threads, deaths at every crash point, newcomers, spurious returns).
//!
//! Invariant: a scenario a mutant row names for a checker is one that checker's clean tests
//! pass (or the row itself asserts it passes, for `Survives`), so a mutant's failure is the
//! mutant's, not the scenario's.

use mapheap::sync::CrashPoint;

use crate::world::{Actor, Fate, Scenario};

/// Spurious returns in the shuttle scenarios: each `wait` returns early as Woken 1 time in
/// 8, as TimedOut 1 in 8.
pub const SPURIOUS: u32 = 8;

// ---- loom: small, explored exhaustively or within a preemption bound ---------------------

pub fn two() -> Scenario {
    Scenario::new("2 threads x 1 round", &[Actor::rounds(1), Actor::rounds(1)])
}

pub fn two_twice() -> Scenario {
    Scenario::new(
        "2 threads x 2 rounds",
        &[Actor::rounds(2), Actor::rounds(1)],
    )
}

pub fn three() -> Scenario {
    Scenario::new(
        "3 threads x 1 round",
        &[Actor::rounds(1), Actor::rounds(1), Actor::rounds(1)],
    )
}

pub fn dies_holding() -> Scenario {
    Scenario::new(
        "owner dies holding, 2 waiters",
        &[
            Actor::rounds(1).fate(Fate::DieHolding { round: 0 }),
            Actor::rounds(1),
            Actor::rounds(1),
        ],
    )
}

pub fn dies_at_lock_acquired() -> Scenario {
    Scenario::new(
        "dies at LockAcquired",
        &[
            Actor::rounds(1).fate(Fate::DieAt(CrashPoint::LockAcquired, 1)),
            Actor::rounds(1),
        ],
    )
}

pub fn dies_after_release() -> Scenario {
    Scenario::new(
        "dies at UnlockReleased (before the wake)",
        &[
            Actor::rounds(1).fate(Fate::DieAt(CrashPoint::UnlockReleased, 1)),
            Actor::rounds(1),
        ],
    )
}

pub fn dies_after_release_three() -> Scenario {
    Scenario::new(
        "dies at UnlockReleased, 2 others",
        &[
            Actor::rounds(1).fate(Fate::DieAt(CrashPoint::UnlockReleased, 1)),
            Actor::rounds(1),
            Actor::rounds(1),
        ],
    )
}

pub fn recoverer_dies() -> Scenario {
    Scenario::new(
        "owner dies holding, recoverer dies at TakeoverDone",
        &[
            Actor::rounds(1).fate(Fate::DieHolding { round: 0 }),
            Actor::rounds(1).fate(Fate::DieAt(CrashPoint::TakeoverDone, 1)),
            Actor::rounds(1),
        ],
    )
}

// ---- shuttle: larger, sampled by random and PCT schedules ---------------------------------

pub fn contended() -> Scenario {
    Scenario::new(
        "4 threads x 4 rounds",
        &[
            Actor::rounds(4),
            Actor::rounds(4),
            Actor::rounds(4),
            Actor::rounds(4),
        ],
    )
    .spurious(SPURIOUS)
}

pub fn contended_strict() -> Scenario {
    Scenario::new(
        "4 threads x 3 rounds, no spurious returns",
        &[
            Actor::rounds(3),
            Actor::rounds(3),
            Actor::rounds(3),
            Actor::rounds(3),
        ],
    )
}

pub fn deaths() -> Scenario {
    Scenario::new(
        "deaths at every crash point, newcomers",
        &[
            Actor::rounds(3).fate(Fate::DieAt(CrashPoint::LockAcquired, 2)),
            Actor::rounds(3).fate(Fate::DieAt(CrashPoint::TakeoverDone, 1)),
            Actor::rounds(3).fate(Fate::DieAt(CrashPoint::UnlockReleased, 2)),
            Actor::rounds(3),
            Actor::rounds(3).newcomer(),
            Actor::rounds(3)
                .newcomer()
                .fate(Fate::DieHolding { round: 1 }),
        ],
    )
    .spurious(SPURIOUS)
}

pub fn deaths_strict() -> Scenario {
    Scenario::new(
        "deaths, no spurious returns",
        &[
            Actor::rounds(2).fate(Fate::DieHolding { round: 0 }),
            Actor::rounds(2).fate(Fate::DieAt(CrashPoint::TakeoverDone, 1)),
            Actor::rounds(2).fate(Fate::DieAt(CrashPoint::UnlockReleased, 1)),
            Actor::rounds(2),
            Actor::rounds(2).newcomer(),
        ],
    )
}

/// Every scenario, for looking one up by name (the shuttle `replay` test).
pub fn all() -> Vec<Scenario> {
    vec![
        two(),
        two_twice(),
        three(),
        dies_holding(),
        dies_at_lock_acquired(),
        dies_after_release(),
        dies_after_release_three(),
        recoverer_dies(),
        contended(),
        contended_strict(),
        deaths(),
        deaths_strict(),
    ]
}
