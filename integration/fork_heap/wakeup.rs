//! No lost wake-up across processes (L2): with a 30 s probe interval, a waiter whose
//! wake-up is lost sleeps far past the test's limit; `FutexPrivate` and `UnlockWithoutWake`
//! show the check can fail.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use mapheap::mutant::{self, Mutant};
use mapheap::stress::procs::{spin, Exit};
use mapheap::Heap;

use crate::ensure;
use crate::fork_support::*;

#[repr(C)]
struct StormBoard {
    go: AtomicU32,
}

struct Storm {
    exits: Vec<Exit>,
    elapsed: Duration,
    counter: Option<u64>,
}

/// `n` processes take the lock `iters` times each with a 30 s probe interval: a waiter
/// whose wake-up is lost sleeps 30 s, far past `limit`.
fn storm(mutant: Option<Mutant>, n: u64, iters: u64, limit: Duration) -> Result<Storm, String> {
    let (_dir, path) = fresh_heap(1 << 20)?;
    {
        let heap = Heap::open(&path).ctx("open")?;
        init_ctl(&mut heap.lock().ctx("lock")?, 1, 1).ctx("init")?;
    }
    // SAFETY: StormBoard is atomics only; all-zero is its initial state.
    let board: Shared<StormBoard> = unsafe { Shared::zeroed() }.ctx("shm")?;
    let mut pids = Vec::new();
    for c in 0..n {
        let (b, p) = (&*board, &path);
        pids.push(
            fork_child(|| {
                mutant::set_process(mutant);
                child(|| {
                    let heap = attach(p, 30_000);
                    let mut rng = Rng::new(seeded(500 + c));
                    while b.go.load(SeqCst) == 0 {
                        std::hint::spin_loop();
                    }
                    for _ in 0..iters {
                        let mut g = heap.lock().ctx("lock")?;
                        let (off, c) = ctl(&g)?;
                        let v = c.counters[0];
                        spin(rng.below(200) as u32);
                        g.get_mut(off).ctx("ctl")?.counters[0] = v + 1;
                    }
                    Ok(())
                })
            })
            .ctx("fork")?,
        );
    }
    let t0 = Instant::now();
    board.go.store(1, SeqCst);
    let exits = reap_all(&pids, t0 + limit).ctx("reap")?;
    let elapsed = t0.elapsed();
    let counter = if exits.iter().all(|e| e.ok()) {
        let heap = Heap::open(&path).ctx("open")?;
        let g = heap.lock().ctx("lock")?;
        Some(ctl(&g)?.1.counters[0])
    } else {
        None
    };
    Ok(Storm {
        exits,
        elapsed,
        counter,
    })
}

const STORM_N: u64 = 4;
const STORM_ITERS: u64 = 4000;

pub fn no_lost_wakeup() -> TestResult {
    let s = storm(None, STORM_N, STORM_ITERS, Duration::from_secs(25))?;
    expect_all_ok("storm child", &s.exits)?;
    ensure!(
        s.counter == Some(STORM_N * STORM_ITERS),
        "counter {:?}, wanted {}",
        s.counter,
        STORM_N * STORM_ITERS
    );
    note(format!(
        "{} processes x {STORM_ITERS} locks with a 30 s probe: {:.2} s",
        STORM_N,
        s.elapsed.as_secs_f64()
    ));
    Ok(())
}

/// A lost cross-process wake-up leaves a waiter asleep for the whole 30 s probe interval:
/// the run cannot finish within 5 s (the correct code does it in well under a second).
pub fn mutant_storm(m: Mutant) -> TestResult {
    let limit = Duration::from_secs(5);
    let s = storm(Some(m), STORM_N, STORM_ITERS, limit)?;
    let stalled = s.exits.iter().filter(|e| **e == Exit::TimedOut).count();
    ensure!(
        stalled > 0,
        "{m:?} not caught: every process finished in {:.2} s ({:?})",
        s.elapsed.as_secs_f64(),
        s.exits
    );
    note(format!(
        "caught: {stalled} of {STORM_N} processes still asleep after {:.1} s",
        limit.as_secs_f64()
    ));
    Ok(())
}
