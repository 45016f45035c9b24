//! `mapheap bench`: the workloads of ../shared/anchors, run on mapheap, printed as
//! `key<TAB>value<TAB>unit` lines that `summarize.awk` aggregates beside the anchors' own.
//!
//! Figures (same protocols as the anchors; see docs/performance.md):
//! * `lock.uncontended.mapheap_raw`: the bare protocol on the real platform (CAS + swap on a
//!   word in a shared file mapping), 10k warm-up then `lock_iters` lock+unlock.
//! * `lock.uncontended.mapheap_guard`: `Heap::lock` + drop, the full public path (local
//!   mutex, lock word, capacity check).
//! * `lock.contended{N}p.mapheap_guard`: N forked processes, each opening the heap itself,
//!   `cont_iters` x (lock; counter += 1; owner-change count; unlock); the counter must be
//!   exact.
//! * `alloc.1p.mapheap`: the anchors' seeded allocator workload, one lock per operation
//!   (as Boost.Interprocess takes its internal mutex per call).
//! * `alloc.1p.mapheap_onelock`: the same under a single guard (as `boost_mmf_nolock`).
//! * `alloc.{N}p.mapheap`: N forked processes on one heap, seeds 43, 44, ...

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::heap::{CreateOptions, Heap};
use crate::offset::Offset;
use crate::stress::procs::{self, mono_ns};
use crate::stress::shm::Shared;

/// Options of `mapheap bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Directory for the heap files (the anchors use /tmp).
    #[arg(long, default_value = "/tmp")]
    pub dir: PathBuf,
    /// Run index, printed nowhere but kept for parity with the anchors' command lines.
    #[arg(long, default_value_t = 1)]
    pub run: u32,
    /// Repetitions of every figure.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Uncontended lock+unlock iterations.
    #[arg(long, default_value_t = 10_000_000)]
    pub lock_iters: u64,
    /// Contended iterations per process.
    #[arg(long, default_value_t = 5_000_000)]
    pub lock_cont_iters: u64,
    /// Allocator workload operations.
    #[arg(long, default_value_t = 2_000_000)]
    pub alloc_ops: u64,
    /// Allocator workload live-block target.
    #[arg(long, default_value_t = 10_000)]
    pub alloc_live: usize,
    /// Processes for the multi-process figures.
    #[arg(long, default_value_t = 2)]
    pub nproc: usize,
    /// Only these figure groups (lock, alloc); all if empty.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

fn emit(key: &str, v: f64, unit: &str) {
    println!("{key}\t{v:.9}\t{unit}");
}

/// The anchors' generator: splitmix64.
pub fn splitmix64(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Results shared by forked children through an anonymous shared page.
#[repr(C)]
struct Ctl {
    ready: AtomicU32,
    t0: [AtomicU64; 16],
    t1: [AtomicU64; 16],
}

fn barrier(ctl: &Ctl, n: u32) {
    ctl.ready.fetch_add(1, Ordering::AcqRel);
    while ctl.ready.load(Ordering::Acquire) < n {
        std::thread::yield_now();
    }
}

/// Forks `n` children running `f(i)`, waits for all, and returns the aggregate interval
/// (latest end - earliest start) and the overlap fraction.
fn fork_all(n: usize, f: impl Fn(usize, &Ctl)) -> Result<(u64, f64)> {
    let io = |what: &'static str| {
        move |source| Error::Io {
            what,
            path: "(bench children)".into(),
            source,
        }
    };
    // SAFETY: `Ctl` holds only atomics, for which all-zero is valid, shared across the
    // fork as intended.
    let ctl = unsafe { Shared::<Ctl>::zeroed() }.map_err(io("map the control page"))?;
    let pids = (0..n)
        .map(|i| {
            procs::fork_child(|| {
                f(i, &ctl);
                0
            })
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io("fork"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    let exits = procs::reap_all(&pids, deadline).map_err(io("reap"))?;
    assert!(
        exits.iter().all(|e| e.ok()),
        "a bench child failed: {exits:?}"
    );
    let t0: Vec<u64> = (0..n).map(|i| ctl.t0[i].load(Ordering::Acquire)).collect();
    let t1: Vec<u64> = (0..n).map(|i| ctl.t1[i].load(Ordering::Acquire)).collect();
    let span = t1.iter().max().unwrap() - t0.iter().min().unwrap();
    let common = t1
        .iter()
        .min()
        .unwrap()
        .saturating_sub(*t0.iter().max().unwrap());
    Ok((span, common as f64 / span.max(1) as f64))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Counter {
    count: u64,
    handoffs: u64,
    last_owner: u64,
}

fn bench_lock(args: &BenchArgs, path: &std::path::Path) -> Result<()> {
    let mut o = CreateOptions::new(1 << 20);
    o.overwrite = true;
    let heap = Heap::create_with(path, &o)?;
    // The bare protocol on the real platform, through the heap's own word and slot.
    {
        let g = heap.lock()?;
        drop(g);
    }
    let raw = crate::heap::raw_lock_bench(&heap, args.lock_iters);
    emit("lock.uncontended.mapheap_raw", raw, "ns/op");
    for _ in 0..10_000 {
        drop(heap.lock()?);
    }
    let t0 = mono_ns();
    for _ in 0..args.lock_iters {
        drop(heap.lock()?);
    }
    let guard_ns = (mono_ns() - t0) as f64 / args.lock_iters as f64;
    emit("lock.uncontended.mapheap_guard", guard_ns, "ns/op");

    let counter = heap.lock()?.find_or_init("bench.counter", || Counter {
        count: 0,
        handoffs: 0,
        last_owner: 0,
    })?;
    let n = args.lock_cont_iters;
    let nproc = args.nproc.clamp(1, 16);
    let (span, overlap) = fork_all(nproc, |i, ctl| {
        let h = Heap::open(path).expect("child open");
        barrier(ctl, nproc as u32);
        ctl.t0[i].store(mono_ns(), Ordering::Release);
        let me = i as u64 + 1;
        for _ in 0..n {
            let mut g = h.lock().expect("child lock");
            let c = g.get_mut(counter).expect("counter");
            c.count += 1;
            if c.last_owner != me {
                c.last_owner = me;
                c.handoffs += 1;
            }
        }
        ctl.t1[i].store(mono_ns(), Ordering::Release);
    })?;
    let c = heap.lock()?.read(counter)?;
    assert_eq!(c.count, n * nproc as u64, "contended counter is not exact");
    let ops = (n * nproc as u64) as f64;
    let variant = format!("contended{nproc}p");
    emit(
        &format!("lock.{variant}.mapheap_guard"),
        ops / (span as f64 / 1e9),
        "ops/s",
    );
    emit(
        &format!("lock.{variant}.mapheap_guard.handoffs_per_kop"),
        c.handoffs as f64 * 1000.0 / ops,
        "per_kop",
    );
    emit(&format!("lock.{variant}.mapheap.overlap"), overlap, "frac");
    drop(heap);
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// The anchors' allocator workload; `per_op` takes the lock for every operation.
fn alloc_workload(heap: &Heap, seed: u64, nops: u64, target: usize, per_op: bool) -> (u64, u64) {
    let mut live: Vec<(Offset<u8>, u64)> = Vec::with_capacity(target);
    let mut s = seed;
    let mut one = if per_op {
        None
    } else {
        Some(heap.lock().expect("lock"))
    };
    let t0 = mono_ns();
    for i in 0..nops {
        let mut fresh;
        let g = match one.as_mut() {
            Some(g) => g,
            None => {
                fresh = heap.lock().expect("lock");
                &mut fresh
            }
        };
        if live.len() < target {
            let sz = 16 + splitmix64(&mut s) % 1009;
            let p = g
                .alloc_bytes(sz, 8)
                .unwrap_or_else(|e| panic!("allocation of {sz} bytes failed at op {i}: {e}"));
            let tag = i ^ seed;
            *g.get_mut(p.cast::<u64>()).expect("tag") = tag;
            live.push((p, tag));
        } else {
            let j = (splitmix64(&mut s) % live.len() as u64) as usize;
            let (p, tag) = live.swap_remove(j);
            assert_eq!(
                g.read(p.cast::<u64>()).expect("tag"),
                tag,
                "block corrupted at op {i}"
            );
            g.free(p).expect("free");
        }
    }
    let t1 = mono_ns();
    let mut g = match one.take() {
        Some(g) => g,
        None => heap.lock().expect("lock"),
    };
    for (p, _) in live {
        g.free(p).expect("free");
    }
    (t0, t1)
}

fn bench_alloc(args: &BenchArgs, path: &std::path::Path) -> Result<()> {
    let seg = 64 << 20;
    let mut o = CreateOptions::new(seg);
    o.overwrite = true;
    let (nops, target) = (args.alloc_ops, args.alloc_live);
    for (key, per_op) in [
        ("alloc.1p.mapheap", true),
        ("alloc.1p.mapheap_onelock", false),
    ] {
        let heap = Heap::create_with(path, &o)?;
        let free0 = heap.lock()?.stats().free_bytes;
        let (t0, t1) = alloc_workload(&heap, 42, nops, target, per_op);
        emit(key, nops as f64 / ((t1 - t0) as f64 / 1e9), "ops/s");
        let g = heap.lock()?;
        assert_eq!(g.stats().free_bytes, free0, "leak after the workload");
        assert!(g.check().is_clean(), "heap not clean after the workload");
    }
    let nproc = args.nproc.clamp(1, 16);
    Heap::create_with(path, &o)?;
    let (span, overlap) = fork_all(nproc, |i, ctl| {
        let h = Heap::open(path).expect("child open");
        barrier(ctl, nproc as u32);
        let (t0, t1) = alloc_workload(&h, 43 + i as u64, nops, target, true);
        ctl.t0[i].store(t0, Ordering::Release);
        ctl.t1[i].store(t1, Ordering::Release);
    })?;
    emit(
        &format!("alloc.{nproc}p.mapheap"),
        (nops * nproc as u64) as f64 / (span as f64 / 1e9),
        "ops/s",
    );
    emit(&format!("alloc.{nproc}p.mapheap.overlap"), overlap, "frac");
    let heap = Heap::open(path)?;
    assert!(
        heap.check()?.is_clean(),
        "heap not clean after the {nproc}p workload"
    );
    drop(heap);
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Runs the figures `args.runs` times, interleaved like the anchors' run.sh.
pub fn run(args: &BenchArgs) -> Result<()> {
    let want = |g: &str| args.only.is_empty() || args.only.iter().any(|o| o == g);
    let pid = std::process::id();
    for _ in 0..args.runs.max(1) {
        if want("lock") {
            bench_lock(args, &args.dir.join(format!("mapheap_lock_{pid}.heap")))?;
        }
        if want("alloc") {
            bench_alloc(args, &args.dir.join(format!("mapheap_alloc_{pid}.heap")))?;
        }
    }
    Ok(())
}
