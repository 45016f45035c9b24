//! Owner-death takeover latency: a forked child attaches, takes the heap's lock and is
//! SIGKILLed while holding it; the parent's `lock()` must return a guard whose `recovered()`
//! names the dead child. Timed (`iter_custom`): from just before the `kill` to the guard in
//! the parent's hand. The fork, the child's attach and lock, the check of the repaired heap
//! and the reaping are not timed.
//!
//! The parent calls `lock()` right after the kill, so it always sleeps one whole probe
//! interval (`OpenOptions::probe_interval`) before it asks whether the owner lives: the
//! figure is bounded below by the probe interval, and is the worst case of a waiter (one
//! that was already asleep when the owner died waits between 0 and one interval). Above the
//! interval: the futex timeout's slack, the liveness probe, the takeover CAS, and the repair,
//! which walks the block chain (here 1,000 live blocks, the same for both intervals).
//!
//! `cargo bench --bench takeover` (sample size 10; well under a minute).

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mapheap::stress::procs::{fork_child, kill9, reap, try_reap};
use mapheap::stress::shm::Shared;
use mapheap::{CreateOptions, Heap, OpenOptions};

const LIVE_BLOCKS: u64 = 1_000;

/// What the child tells the parent, outside the heap.
#[repr(C)]
struct Ctl {
    /// The child's owner id (`OwnerId::raw`) once it holds the lock; 0 before.
    holder: AtomicU32,
}

/// Forks a child that attaches to `path`, locks, publishes its owner id and sleeps holding
/// the lock until it is killed. Returns its pid and owner id.
fn child_holding_lock(path: &Path, ctl: &Ctl) -> (libc::pid_t, u32) {
    ctl.holder.store(0, SeqCst);
    let pid = fork_child(|| {
        let h = Heap::open(path).expect("child: open");
        let _g = h.lock().expect("child: lock");
        ctl.holder.store(h.owner().raw(), SeqCst);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    })
    .expect("fork");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let id = ctl.holder.load(SeqCst);
        if id != 0 {
            return (pid, id);
        }
        if let Some(exit) = try_reap(pid).expect("waitpid") {
            panic!("the child ended before it held the lock: {exit:?}");
        }
        assert!(Instant::now() < deadline, "the child never took the lock");
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn takeover(c: &mut Criterion) {
    // SAFETY: `Ctl` is one atomic: all-zero is valid, and it is sound to share across
    // processes through `&Ctl`.
    let ctl = unsafe { Shared::<Ctl>::zeroed() }.expect("shared control page");
    let mut group = c.benchmark_group("takeover");
    for probe_ms in [10u64, 1] {
        let probe = Duration::from_millis(probe_ms);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("takeover.heap");
        let mut o = CreateOptions::new(1 << 20);
        o.open = OpenOptions {
            probe_interval: probe,
            ..OpenOptions::default()
        };
        let h = Heap::create_with(&path, &o).unwrap();
        {
            let mut g = h.lock().unwrap();
            for i in 0..LIVE_BLOCKS {
                g.alloc(i).unwrap();
            }
            assert_eq!(g.stats().used_blocks, LIVE_BLOCKS);
        }
        let name = if probe == mapheap::sync::DEFAULT_PROBE_INTERVAL {
            format!("probe_{probe_ms}ms_default")
        } else {
            format!("probe_{probe_ms}ms")
        };
        group.bench_function(BenchmarkId::new("kill_to_guard", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (pid, holder) = child_holding_lock(&path, &ctl);
                    let t = Instant::now();
                    kill9(pid);
                    let g = h.lock().unwrap();
                    let took = t.elapsed();
                    total += took;
                    let rec = g
                        .recovered()
                        .expect("the lock was taken over from the dead child");
                    assert_eq!(rec.dead.map(|d| d.raw()), Some(holder));
                    assert!(
                        took >= probe,
                        "took over in {took:?}, before one probe interval"
                    );
                    let report = g.check();
                    assert!(report.is_clean(), "{:?}", report.violations);
                    assert_eq!(g.stats().used_blocks, LIVE_BLOCKS);
                    drop(g);
                    let exit = reap(pid, Instant::now() + Duration::from_secs(10)).unwrap();
                    assert!(exit.killed(), "child ended with {exit:?}");
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = takeover
}
criterion_main!(benches);
