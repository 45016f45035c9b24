//! Fork tests of owner death: a process SIGKILLed while it holds the heap's lock, at chosen
//! instructions (crash points, through `fault::arm`) and at random moments (the parent's
//! `kill`), reaped at once or left a zombie. A waiter must take the lock over within a
//! bounded time (`HeapGuard::recovered()` names the dead owner), the heap must repair
//! itself (`check()` clean, the repair report exactly what the crash point implies), and
//! every block a surviving process was told it owns must be intact.
//!
//! `harness = false` with libtest's protocol (`harness/`): one test at a time on the main
//! thread, which never starts another; each test states a bound (seconds at
//! `MAPHEAP_FORK_SCALE=1`, times the scale) past which a watchdog ends the process with a
//! message. Children attach afresh and `_exit`, every child is reaped with a deadline.
//! `MAPHEAP_FORK_SCALE=N` runs more rounds and kills. See docs/fork-tests.md.

#[path = "../fork_support/mod.rs"]
mod fork_support;
#[path = "../harness/mod.rs"]
mod harness;

mod crash_points;
mod death_mutants;
mod kills;
mod stress;
mod workload;

use std::process::ExitCode;

use fork_support::{bound as b, case, header};
use harness::Case;
use mapheap::fault::CrashPoint;
use mapheap::format::{INTENT_ALLOC, INTENT_FREE, INTENT_GROW, INTENT_NONE};
use workload::{expect, Expect};

/// Death at `point` on its `nth` pass, then on later passes (more blocks, splits and
/// growths behind it), with the repair `want`.
fn at(name: &'static str, point: CrashPoint, nth: u32, want: Expect) -> Case {
    case(name, b(240), move || {
        crash_points::repeated(point, nth, want)
    })
}

fn main() -> ExitCode {
    harness::run(
        "fork_death",
        Some(header()),
        vec![
            at(
                "owner_death_at_lock_acquired",
                CrashPoint::LockAcquired,
                4,
                expect(1, INTENT_NONE, false, false),
            ),
            at(
                "owner_death_at_split_tail_written",
                CrashPoint::SplitTailWritten,
                3,
                expect(1, INTENT_ALLOC, false, false),
            ),
            at(
                "owner_death_at_alloc_committed",
                CrashPoint::AllocCommitted,
                3,
                expect(1, INTENT_ALLOC, true, false),
            ),
            at(
                "owner_death_at_free_merged_next",
                CrashPoint::FreeMergedNext,
                2,
                expect(1, INTENT_FREE, true, false),
            ),
            at(
                "owner_death_at_grow_extended_before_commit",
                CrashPoint::GrowExtended,
                1,
                expect(1, INTENT_NONE, false, false),
            ),
            at(
                "owner_death_at_grow_sentinel_written",
                CrashPoint::GrowSentinelWritten,
                1,
                expect(1, INTENT_GROW, true, true),
            ),
            at(
                "owner_death_at_unlock_released",
                CrashPoint::UnlockReleased,
                4,
                expect(0, INTENT_NONE, false, false),
            ),
            case(
                "owner_death_during_takeover",
                b(120),
                crash_points::death_during_takeover,
            ),
            case("owner_death_at_random_moments", b(240), kills::random_kills),
            case(
                "zombie_owner_at_lock_acquired_is_recovered_before_reaping",
                b(120),
                crash_points::zombie_at_lock_acquired,
            ),
            case(
                "zombie_owner_killed_at_random_is_recovered_before_reaping",
                b(240),
                kills::zombie_random,
            ),
            case("stress_short_run_is_clean", b(60), stress::stress_short_run),
            case(
                "mutant_skip_repair_is_caught_by_stress",
                b(90),
                stress::mutant_skip_repair_stress,
            ),
            case(
                "mutant_wait_means_ownership_is_caught_by_stress",
                b(90),
                stress::mutant_wait_means_ownership_stress,
            ),
            case(
                "mutant_probe_by_kill_is_caught_by_a_zombie_owner",
                b(240),
                death_mutants::mutant_probe_by_kill,
            ),
            case(
                "mutant_skip_repair_is_caught_by_check_after_a_split_crash",
                b(120),
                death_mutants::mutant_skip_repair,
            ),
        ],
    )
}
