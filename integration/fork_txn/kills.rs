//! The workloads under random SIGKILLs: the plans of the default and deep runs, and the
//! seeded bugs each workload must catch (with the same run, bug off, as the control).

use mapheap::mutant::Mutant;

use crate::fork_support::*;
use crate::run::{must_pass, run, Plan, Workload};

/// Kills per workload: 400 per unit of `MAPHEAP_FORK_SCALE` (1,200 at the deep tier's 3).
pub fn kills() -> u64 {
    400 * scale()
}

/// Three workers, a kill every 0-4 ms; two of them pause between their writes.
pub fn plan(salt: u64, kills: u64, mutant: Option<Mutant>) -> Plan {
    Plan {
        workers: 3,
        kills,
        gap_us: 4_000,
        spin: 2_000,
        unpaused: 1,
        mutant,
        salt,
    }
}

/// The workload under the run's kills: it must pass, and a tenth of the kills at least
/// must have left a transaction for a recoverer to roll back.
pub fn survives<W: Workload>(w: &W, salt: u64) -> TestResult {
    let n = kills();
    let out = must_pass(w, plan(salt, n, None), n / 10)?;
    note(out.line());
    Ok(())
}

/// Kills in one run with a seeded bug on (the run stops at the first failure).
const MUTANT_KILLS: u64 = 150;
/// Kills in the control run (the same workload, the bug off).
const CONTROL_KILLS: u64 = 40;

/// The control run passes; then, with `m` on in every worker, the workload fails. Whether
/// a kill lands in the window a bug opens is chance: up to three runs, caught at the
/// first that fails.
pub fn caught<W: Workload>(w: &W, m: Mutant, salt: u64) -> TestResult {
    caught_with(w, m, salt, |p| p)
}

/// [`caught`] with the mutant runs' plan adjusted by `adjust`.
pub fn caught_with<W: Workload>(
    w: &W,
    m: Mutant,
    salt: u64,
    adjust: impl Fn(Plan) -> Plan,
) -> TestResult {
    let control = must_pass(w, plan(salt, CONTROL_KILLS, None), 1)
        .map_err(|e| format!("the control run (no mutant) failed: {e}"))?;
    let mut missed = Vec::new();
    for attempt in 1..=3 {
        match run(w, adjust(plan(salt + attempt, MUTANT_KILLS, Some(m)))) {
            Err(e) => {
                note(format!("control: {}", control.line()));
                note(format!("{m:?} caught in run {attempt}: {e}"));
                return Ok(());
            }
            Ok(out) => missed.push(out.line()),
        }
    }
    Err(format!("{m:?} was not caught in 3 runs: {missed:?}"))
}
