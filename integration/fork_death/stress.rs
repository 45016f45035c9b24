//! `mapheap stress` itself (the code the command line runs), briefly, and the seeded bugs
//! it must report (S1-S3 through `Graph::verify`, H4, L1).

use mapheap::mutant::{self, Mutant};

use crate::ensure;
use crate::fork_support::*;

fn stress_args(secs: f64, kill_rate: f64) -> mapheap::stress::StressArgs {
    mapheap::stress::StressArgs {
        path: None,
        overwrite: false,
        duration: secs,
        workers: Some(4),
        kill_rate,
        size: 256 << 10,
        seed: Some(seeded(900)),
        probe_ms: 3,
        nodes: 256,
        max_payload: 2048,
    }
}

/// `mapheap stress` itself (the code the CLI runs), briefly: kills happen, takeovers happen,
/// nothing committed is lost.
pub fn stress_short_run() -> TestResult {
    let s = mapheap::stress::run_summary(&stress_args(3.0 * scale() as f64, 40.0)).ctx("stress")?;
    ensure!(s.violations.is_empty(), "violations: {:?}", s.violations);
    ensure!(s.kills > 10, "only {} kills", s.kills);
    let recoveries = s.tally.recoveries + s.tally.recoveries_at_open + s.final_recoveries;
    ensure!(recoveries > 0, "no takeover in {} kills", s.kills);
    note(format!(
        "{} kills, {recoveries} takeovers, {} committed nodes verified, {} leaked blocks",
        s.kills, s.graph.1, s.leaked.0
    ));
    Ok(())
}

/// With SkipRepair in every worker, some kill lands inside an allocator operation and the
/// next owner goes on over a broken heap: stress must report violations.
pub fn mutant_skip_repair_stress() -> TestResult {
    stress_catches(Mutant::SkipRepair, 100.0)
}

/// With WaitMeansOwnership, a woken waiter enters the critical section beside the owner:
/// stress must report violations (lost directory stores, broken nodes or a broken heap).
pub fn mutant_wait_means_ownership_stress() -> TestResult {
    stress_catches(Mutant::WaitMeansOwnership, 0.0)
}

/// Whether a kill lands inside the window a mutant opens is chance, and on a loaded
/// machine most kills land outside it: up to three runs, caught if any run reports.
fn stress_catches(m: Mutant, kill_rate: f64) -> TestResult {
    let mut kills = Vec::new();
    for attempt in 1..=3 {
        mutant::set_process(Some(m));
        let r = mapheap::stress::run_summary(&stress_args(4.0, kill_rate));
        mutant::set_process(None);
        let s = match r {
            Ok(s) => s,
            // The final open (with the mutant already off) may refuse a heap this broken.
            Err(e) => {
                note(format!(
                    "caught in run {attempt}: stress failed outright: {e}"
                ));
                return Ok(());
            }
        };
        if let Some(v) = s.violations.first() {
            note(format!(
                "caught in run {attempt}: {} violations in {} kills, e.g. {v}",
                s.violations.len(),
                s.kills
            ));
            return Ok(());
        }
        kills.push(s.kills);
    }
    Err(format!(
        "{m:?} not caught by stress: no violation in 3 runs ({kills:?} kills)"
    ))
}
