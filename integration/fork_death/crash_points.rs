//! Deaths at chosen instructions: an owner SIGKILLed at a crash point (reaped at once, or
//! left a zombie), and an owner that dies during its own takeover of a dead owner's lock.
//! A waiter takes over within a bounded time and the repair is exactly what the point
//! implies (H4, A3, L4).

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use mapheap::fault::{self, CrashPoint};
use mapheap::format::{INTENT_ALLOC, INTENT_NONE};
use mapheap::stress::procs;
use mapheap::Heap;

use crate::ensure;
use crate::fork_support::*;
use crate::workload::*;

/// Death at `point` on its `nth` pass, then again (in a fresh heap) later: on passes
/// `nth + 7 k^2` for `k < 3 * scale`.
pub fn repeated(point: CrashPoint, nth: u32, want: Expect) -> TestResult {
    let mut seen = Vec::new();
    for k in 0..3 * scale() as u32 {
        seen.push(crash_point(point, nth + k * k * 7, want, false)?);
    }
    if want.recoveries > 0 {
        note(format!(
            "takeovers seen {seen:.1?} ms after the parent saw each death"
        ));
    }
    Ok(())
}

/// The owner dies at `LockAcquired` and stays a zombie until the takeover was checked.
pub fn zombie_at_lock_acquired() -> TestResult {
    let ms = crash_point(
        CrashPoint::LockAcquired,
        3,
        expect(1, INTENT_NONE, false, false),
        true,
    )?;
    note(format!(
        "takeover seen {ms:.1} ms after the death; the owner was still a zombie"
    ));
    Ok(())
}

/// Returns how long after the parent saw the death the takeover was seen, in ms.
pub fn crash_point(point: CrashPoint, nth: u32, want: Expect, zombie: bool) -> Result<f64, String> {
    let s = setup(4)?;
    let surv = survivors(&s, 3, 10)?;
    let victim = spawn(
        &s,
        Role {
            row: 3,
            survivor: false,
            grow: matches!(
                point,
                CrashPoint::GrowExtended | CrashPoint::GrowSentinelWritten
            ),
            hold_spin: 0,
            arm: Some((point, nth)),
            seed: seeded(20),
        },
    )?;
    let victim_id = || s.board.victim_owner[3].load(SeqCst);
    if zombie {
        ensure!(
            wait_until(Duration::from_secs(30), || procs::exited_unreaped(victim)
                .unwrap_or(false)),
            "the victim did not die at {point:?}"
        );
        ensure!(procs::is_zombie(victim), "the dead victim is not a zombie");
    } else {
        let e = reap(victim, deadline(30)).ctx("reap victim")?;
        ensure!(
            e.killed(),
            "the victim ended with {e:?}, not SIGKILL at {point:?}"
        );
    }
    let t_dead = Instant::now();
    let recovered = wait_until(Duration::from_secs(10), || {
        s.board.recoveries.load(SeqCst) >= want.recoveries
    });
    ensure!(
        recovered,
        "no takeover within 10 s of the owner's death (recoveries {})",
        s.board.recoveries.load(SeqCst)
    );
    let waited = t_dead.elapsed();
    ensure!(
        progress(&s.board, 200, Duration::from_secs(10)),
        "the survivors made no progress after the death"
    );
    if zombie {
        ensure!(
            procs::is_zombie(victim),
            "the owner was reaped before the takeover was checked"
        );
        let e = reap(victim, deadline(5)).ctx("reap victim")?;
        ensure!(e.killed(), "the victim ended with {e:?}");
    }
    stop(&s, &surv)?;
    let b = &s.board;
    ensure!(
        b.recoveries.load(SeqCst) == want.recoveries,
        "{} takeovers, wanted {}",
        b.recoveries.load(SeqCst),
        want.recoveries
    );
    ensure!(
        b.dirty_check.load(SeqCst) == 0,
        "a check after a takeover was not clean"
    );
    if want.recoveries == 1 {
        ensure!(
            b.dead[0].load(SeqCst) == victim_id(),
            "the takeover names owner {:#x}, the victim was {:#x}",
            b.dead[0].load(SeqCst),
            victim_id()
        );
        let got = (
            b.intent_op[0].load(SeqCst),
            b.freed[0].load(SeqCst) != 0,
            b.grew[0].load(SeqCst) != 0,
        );
        ensure!(
            got == (want.intent_op, want.freed, want.grew),
            "repair saw (intent, freed a block, finished growth) = {got:?}, wanted {:?}",
            (want.intent_op, want.freed, want.grew)
        );
    }
    let (leaked, cap) = final_check(&s)?;
    ensure!(
        leaked == (0, 0),
        "leaked {leaked:?} at a crash point the repair must undo"
    );
    // The victim grows on every fourth step: growths before the fatal one completed; one
    // killed at GrowSentinelWritten is completed by the repair, one at GrowExtended is not.
    let grown = match point {
        CrashPoint::GrowExtended => u64::from(nth - 1),
        CrashPoint::GrowSentinelWritten => u64::from(nth),
        _ => 0,
    };
    let want_cap = s.initial + grown * GROW_STEP;
    ensure!(cap == want_cap, "capacity {cap}, wanted {want_cap}");
    Ok(waited.as_secs_f64() * 1e3)
}

// ---- death during a takeover ------------------------------------------------------------

pub fn death_during_takeover() -> TestResult {
    let s = setup(4)?;
    // The first owner dies mid-split, holding the lock.
    let v1 = spawn(
        &s,
        Role {
            row: 1,
            survivor: false,
            grow: false,
            hold_spin: 0,
            arm: Some((CrashPoint::SplitTailWritten, 2)),
            seed: seeded(30),
        },
    )?;
    let e = reap(v1, deadline(30)).ctx("reap")?;
    ensure!(e.killed(), "first victim ended with {e:?}");
    // The second takes its lock over inside `open`, and dies right after the takeover CAS,
    // before repairing anything.
    let (b, p) = (&*s.board, &s.path);
    let v2 = fork_child(|| {
        fault::arm(Some(CrashPoint::TakeoverDone), 1);
        let _ = Heap::open_with(p, &probe(PROBE_MS));
        let _ = b;
        0
    })
    .ctx("fork")?;
    let e = reap(v2, deadline(30)).ctx("reap")?;
    ensure!(
        e.killed(),
        "second victim ended with {e:?}, not SIGKILL at TakeoverDone"
    );
    // A third process must take over from the second and repair the first one's split.
    let surv = survivors(&s, 1, 40)?;
    ensure!(
        wait_until(Duration::from_secs(10), || s.board.recoveries.load(SeqCst)
            >= 1),
        "nobody took over from the owner that died during its takeover"
    );
    ensure!(
        progress(&s.board, 100, Duration::from_secs(10)),
        "no progress"
    );
    stop(&s, &surv)?;
    let bd = &s.board;
    ensure!(
        bd.recoveries.load(SeqCst) == 1,
        "{} takeovers",
        bd.recoveries.load(SeqCst)
    );
    ensure!(
        bd.dead[0].load(SeqCst) != bd.victim_owner[1].load(SeqCst),
        "the takeover names the first victim: the second one's takeover was lost"
    );
    ensure!(
        bd.intent_op[0].load(SeqCst) == INTENT_ALLOC,
        "the repair saw intent {}, wanted the first victim's allocation",
        bd.intent_op[0].load(SeqCst)
    );
    let (leaked, _) = final_check(&s)?;
    ensure!(leaked == (0, 0), "leaked {leaked:?}");
    Ok(())
}
