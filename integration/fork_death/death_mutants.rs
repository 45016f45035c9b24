//! Seeded bugs that only a death shows: `ProbeByKill` (a zombie owner looks alive, L5)
//! and `SkipRepair` (a takeover that does not repair, H4) after a real SIGKILL.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use mapheap::fault::CrashPoint;
use mapheap::mutant::{self, Mutant};
use mapheap::stress::procs;
use mapheap::Heap;

use crate::ensure;
use crate::fork_support::*;
use crate::workload::*;

/// A process dies holding the lock and is left a zombie; two others, with `m` switched on,
/// wait for the lock. Returns whether they took it over while the owner was a zombie, and
/// whether they did once it was reaped.
fn zombie_owner_under(m: Option<Mutant>) -> Result<(bool, bool), String> {
    let s = setup(3)?;
    let mut surv = Vec::new();
    for row in 0..2 {
        let (b, p) = (&*s.board, &s.path);
        let role = Role {
            row,
            survivor: true,
            grow: false,
            hold_spin: 0,
            arm: None,
            seed: seeded(700 + row),
        };
        surv.push(
            fork_child(|| {
                mutant::set_process(m);
                child(|| workload(b, p, role))
            })
            .ctx("fork")?,
        );
    }
    // Both waiters must be attached before the owner dies: one that opened the heap after
    // the death would be a newcomer, which may claim the dead owner's slot and so see it
    // dead by its incarnation, whatever the probe (L5); that is right, but not this test.
    ensure!(
        wait_until(Duration::from_secs(30), || (0..2).all(|r| s
            .board
            .victim_owner[r]
            .load(SeqCst)
            != 0)),
        "the waiters did not attach"
    );
    let victim = spawn(
        &s,
        Role {
            row: 2,
            survivor: false,
            grow: false,
            hold_spin: 0,
            arm: Some((CrashPoint::LockAcquired, 5)),
            seed: seeded(710),
        },
    )?;
    ensure!(
        wait_until(Duration::from_secs(30), || procs::exited_unreaped(victim)
            .unwrap_or(false)),
        "the victim did not die"
    );
    ensure!(procs::is_zombie(victim), "the dead victim is not a zombie");
    let while_zombie = wait_until(Duration::from_secs(3), || {
        s.board.recoveries.load(SeqCst) >= 1
    });
    ensure!(
        procs::is_zombie(victim),
        "the zombie went away during the wait"
    );
    let e = reap(victim, deadline(5)).ctx("reap victim")?;
    ensure!(e.killed(), "victim: {e:?}");
    let after_reap = wait_until(Duration::from_secs(3), || {
        s.board.recoveries.load(SeqCst) >= 1
    });
    stop(&s, &surv)?;
    final_check(&s)?;
    Ok((while_zombie, after_reap))
}

pub fn mutant_probe_by_kill() -> TestResult {
    let (zombie, reaped) = zombie_owner_under(None)?;
    ensure!(zombie && reaped, "control: no takeover from a zombie owner");
    let (zombie, reaped) = zombie_owner_under(Some(Mutant::ProbeByKill))?;
    ensure!(
        !zombie,
        "ProbeByKill not caught: the lock of a zombie owner was taken over"
    );
    ensure!(
        reaped,
        "with ProbeByKill, no takeover even after the owner was reaped"
    );
    note("caught: no takeover in 3 s while the dead owner was a zombie (kill(pid, 0) says alive); one right after it was reaped".to_string());
    Ok(())
}

/// A process dies between the two stores of a split; another, with `m` switched on, takes
/// the lock over (inside `open`) and checks the heap itself, still with `m` on (a later
/// lock without it would see the intent record and repair). Returns whether it took over
/// and whether its check was clean.
fn split_crash_under(m: Option<Mutant>) -> Result<(bool, bool), String> {
    let s = setup(2)?;
    let victim = spawn(
        &s,
        Role {
            row: 0,
            survivor: false,
            grow: false,
            hold_spin: 0,
            arm: Some((CrashPoint::SplitTailWritten, 2)),
            seed: seeded(800),
        },
    )?;
    let e = reap(victim, deadline(30)).ctx("reap")?;
    ensure!(
        e.killed(),
        "the victim ended with {e:?}, not at SplitTailWritten"
    );
    let p = &s.path;
    let recoverer = fork_child(|| {
        mutant::set_process(m);
        match Heap::open_with(p, &probe(PROBE_MS)) {
            Ok(h) if h.recovered_at_open().is_some() => match h.check() {
                Ok(r) if r.is_clean() => 0,
                Ok(_) => 1,
                Err(_) => 4,
            },
            Ok(_) => 2,
            Err(_) => 3,
        }
    })
    .ctx("fork")?;
    let e = reap(recoverer, deadline(30)).ctx("reap")?;
    let code = match e {
        procs::Exit::Code(c) => c,
        other => return Err(format!("the recoverer ended with {other:?}")),
    };
    ensure!(
        code <= 1,
        "the recoverer ended with {code} (2: no takeover, 3: open failed, 4: lock failed)"
    );
    Ok((true, code == 0))
}

pub fn mutant_skip_repair() -> TestResult {
    let (recovered, clean) = split_crash_under(None)?;
    ensure!(recovered, "control: no takeover");
    ensure!(clean, "control: the recoverer's check is not clean");
    let (recovered, clean) = split_crash_under(Some(Mutant::SkipRepair))?;
    ensure!(recovered, "with SkipRepair: no takeover");
    ensure!(
        !clean,
        "SkipRepair not caught: check is clean after an unrepaired split crash"
    );
    note("caught: the recoverer's own check reports the unrepaired split".to_string());
    Ok(())
}
