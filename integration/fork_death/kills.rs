//! Deaths at random moments: owners SIGKILLed by the parent while they hold the lock for
//! long, reaped at once or left zombies while the others must go on (L4, L5).

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use mapheap::stress::procs::{self, Exit};

use crate::ensure;
use crate::fork_support::*;
use crate::workload::*;

pub fn random_kills() -> TestResult {
    let rounds = (60 * scale()).min(1000);
    let nsurv = 3;
    let s = setup(nsurv + rounds)?;
    let surv = survivors(&s, nsurv, 50)?;
    let mut rng = Rng::new(seeded(60));
    let mut max_latency = Duration::ZERO;
    for r in 0..rounds {
        let row = nsurv + r;
        let pid = spawn(
            &s,
            Role {
                row,
                survivor: false,
                grow: rng.one_in(4),
                hold_spin: 20_000,
                arm: None,
                seed: seeded(70 + r),
            },
        )?;
        // Mostly once it works, sometimes while it is still attaching.
        if !rng.one_in(4) {
            wait_until(Duration::from_secs(5), || {
                s.board.victim_owner[row as usize].load(SeqCst) != 0
            });
        }
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        s.board.kill_ns[row as usize].store(procs::mono_ns(), SeqCst);
        procs::kill9(pid);
        let e = reap(pid, deadline(10)).ctx("reap victim")?;
        ensure!(e.killed(), "victim {r} ended with {e:?} before the kill");
    }
    ensure!(
        progress(&s.board, 200, Duration::from_secs(10)),
        "no progress after the kills"
    );
    stop(&s, &surv)?;
    let b = &s.board;
    let n = b.recoveries.load(SeqCst);
    ensure!(n >= 1 && n <= rounds, "{n} takeovers after {rounds} kills");
    ensure!(
        b.dirty_check.load(SeqCst) == 0,
        "a check after a takeover was not clean"
    );
    let unregistered = (0..rounds)
        .filter(|r| b.victim_owner[(nsurv + r) as usize].load(SeqCst) == 0)
        .count();
    let mut unknown = 0;
    for i in 0..(n as usize).min(MAXREC) {
        let dead = b.dead[i].load(SeqCst);
        match (0..rounds).find(|r| b.victim_owner[(nsurv + r) as usize].load(SeqCst) == dead) {
            Some(r) => {
                let row = (nsurv + r) as usize;
                let lat = b.at_ns[i]
                    .load(SeqCst)
                    .saturating_sub(b.kill_ns[row].load(SeqCst));
                max_latency = max_latency.max(Duration::from_nanos(lat));
            }
            None => unknown += 1,
        }
        ensure!(
            (0..nsurv).all(|row| b.victim_owner[row as usize].load(SeqCst) != dead),
            "a takeover named a survivor ({dead:#x}), which never died"
        );
    }
    ensure!(
        unknown <= unregistered,
        "{unknown} takeovers name no victim (only {unregistered} died before registering)"
    );
    ensure!(
        max_latency < Duration::from_secs(2),
        "a takeover took {max_latency:?} after the kill (probe interval {PROBE_MS} ms)"
    );
    let (leaked, _) = final_check(&s)?;
    ensure!(
        leaked.0 <= rounds,
        "{} leaked blocks after {rounds} kills: a kill can leak at most the one block in flight",
        leaked.0
    );
    note(format!(
        "{rounds} kills, {n} takeovers, max kill->takeover {:.1} ms, leaked {} blocks ({} bytes)",
        max_latency.as_secs_f64() * 1e3,
        leaked.0,
        leaked.1
    ));
    Ok(())
}

// ---- zombie owner killed at a random moment ---------------------------------------------

pub fn zombie_random() -> TestResult {
    let rounds = (12 * scale()).min(1000);
    let s = setup(2 + rounds)?;
    let surv = survivors(&s, 2, 80)?;
    let mut rng = Rng::new(seeded(90));
    for r in 0..rounds {
        let row = 2 + r;
        let pid = spawn(
            &s,
            Role {
                row,
                survivor: false,
                grow: false,
                hold_spin: 50_000,
                arm: None,
                seed: seeded(100 + r),
            },
        )?;
        wait_until(Duration::from_secs(5), || {
            s.board.victim_owner[row as usize].load(SeqCst) != 0
        });
        std::thread::sleep(Duration::from_micros(rng.below(10_000)));
        procs::kill9(pid);
        ensure!(
            wait_until(Duration::from_secs(5), || procs::exited_unreaped(pid)
                .unwrap_or(false)),
            "victim {r} did not die"
        );
        // Not reaped: whether or not it held the lock, the others must go on.
        ensure!(
            progress(&s.board, 100, Duration::from_secs(10)),
            "no progress while the killed owner is a zombie (round {r})"
        );
        ensure!(procs::is_zombie(pid), "victim {r} is not a zombie");
        let e = reap(pid, deadline(5)).ctx("reap")?;
        ensure!(e == Exit::Signaled(libc::SIGKILL), "victim {r}: {e:?}");
    }
    stop(&s, &surv)?;
    ensure!(
        s.board.dirty_check.load(SeqCst) == 0,
        "a check after a takeover was not clean"
    );
    let (leaked, _) = final_check(&s)?;
    ensure!(
        leaked.0 <= rounds,
        "{} leaked blocks after {rounds} kills",
        leaked.0
    );
    note(format!(
        "{rounds} zombie owners, {} takeovers",
        s.board.recoveries.load(SeqCst)
    ));
    Ok(())
}
