//! `mapheap bench`: the workloads of ../shared/anchors, run on mapheap, printed as
//! `key<TAB>value<TAB>unit` lines that `summarize.awk` aggregates beside the anchors' own.
//!
//! Figures (same protocols as the anchors; see docs/performance.md):
//! * `lock.uncontended.mapheap`: the bare protocol on the real platform (CAS + swap on the
//!   heap's own word, owner id from its attachment slot), 10k warm-up then `lock_iters`
//!   lock+unlock: the lock itself, as the anchors measure theirs.
//! * `lock.uncontended.mapheap_guard`: `Heap::lock` + drop, the full public path (fork
//!   check, lock word, mapping and repair checks).
//! * `lock.contended{N}p.mapheap` and `.mapheap_guard`: N forked processes, each opening the
//!   heap itself, `cont_iters` x (lock; counter += 1; owner-change count; unlock), with
//!   handoffs per 1000 ops and overlap; the counter must be exact. The bare figure reaches
//!   the counter through a pointer resolved once, the guard figure resolves it every time.
//! * `alloc.1p.mapheap`: the anchors' seeded allocator workload, one lock per operation
//!   (as Boost.Interprocess takes its internal mutex per call).
//! * `alloc.1p.mapheap_onelock`: the same under a single lock (as `boost_mmf_nolock`),
//!   committing every [`ONELOCK_CHECKPOINT`] operations (`HeapGuard::checkpoint`).
//! * `alloc.{N}p.mapheap`: N forked processes on one heap, seeds 43, 44, ...
//! * `map64M.{label}.remap.mapheap_{N}obj`: a remap after growth elsewhere, with 0 and N
//!   live objects, beside the anchors' `remap_munmap_mmap`.
//!
//! Invariants P1 and P2 (docs/invariants.md): the allocator figures run exactly the
//! anchors' sequence (checked against `bench_alloc --describe`), and every figure checks
//! its own result before it is printed.
//!
//! Besides the figures, lines starting with `#` say what each figure ran (rounds, the
//! contended counter read back from the heap, the allocations and frees the loop made, the
//! remaps averaged); `summarize.awk` skips them. A progress bar shows on standard error
//! when it is a terminal.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use indicatif::ProgressBar;

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
    /// Live objects in the second remap figure (the first has none).
    #[arg(long, default_value_t = 100_000)]
    pub remap_objects: u64,
    /// Remaps averaged per remap figure.
    #[arg(long, default_value_t = 20)]
    pub remap_cycles: u64,
    /// Label of `--dir` in the remap keys, as the anchors' REMAP_DIRS labels it.
    #[arg(long, default_value = "tmp")]
    pub remap_label: String,
    /// Only these figure groups (lock, alloc, remap); all if empty.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// Standard output, kept clear of the progress bar.
struct Out {
    pb: ProgressBar,
}

impl Out {
    /// A figure: `key<TAB>value<TAB>unit`.
    fn emit(&self, key: &str, v: f64, unit: &str) {
        self.pb.suspend(|| println!("{key}\t{v:.9}\t{unit}"));
    }

    /// What a figure ran, as a `#` line.
    fn note(&self, text: &str) {
        self.pb.suspend(|| println!("# {text}"));
    }
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

/// Runs `n` contended rounds per process in `nproc` forked children, each opening the heap
/// itself; `raw` runs the bare protocol with a counter reached through a pointer resolved
/// once (as the anchors' mutexes do), otherwise the public guard path resolves the counter
/// every round. Emits ops/s, handoffs per 1000 ops and overlap under `lock.{variant}.{name}`.
fn contended(
    out: &Out,
    path: &Path,
    counter: Offset<Counter>,
    n: u64,
    nproc: usize,
    raw: bool,
) -> Result<()> {
    let (span, overlap) = fork_all(nproc, |i, ctl| {
        let h = Heap::open(path).expect("child open");
        let me = i as u64 + 1;
        let step = |c: &mut Counter| {
            c.count += 1;
            if c.last_owner != me {
                c.last_owner = me;
                c.handoffs += 1;
            }
        };
        let p: *mut Counter = h
            .lock()
            .and_then(|mut g| g.get_mut(counter).map(|c| c as *mut Counter))
            .expect("counter");
        barrier(ctl, nproc as u32);
        ctl.t0[i].store(mono_ns(), Ordering::Release);
        if raw {
            crate::heap::raw_lock_rounds(&h, n, || {
                // SAFETY: `p` was resolved under a guard of this handle and stays valid:
                // nobody grows the heap during the bench, so the mapping is never
                // replaced; the raw lock is held while `body` runs, so no other process
                // touches the counter, and no other reference to it is alive.
                step(unsafe { &mut *p })
            })
            .map(|recoveries| assert_eq!(recoveries, 0, "an owner died during the figure"))
            .expect("raw rounds");
        } else {
            for _ in 0..n {
                let mut g = h.lock().expect("child lock");
                step(g.get_mut(counter).expect("counter"));
            }
        }
        ctl.t1[i].store(mono_ns(), Ordering::Release);
    })?;
    let heap = Heap::open(path)?;
    // Read the figures and reset the counter for the next variant, under one guard.
    let c = {
        let mut g = heap.lock()?;
        let c = g.read(counter)?;
        g.write(counter, bytemuck::Zeroable::zeroed())?;
        c
    };
    assert_eq!(c.count, n * nproc as u64, "contended counter is not exact");
    let ops = (n * nproc as u64) as f64;
    let key = format!(
        "lock.contended{nproc}p.{}",
        if raw { "mapheap" } else { "mapheap_guard" }
    );
    out.emit(&key, ops / (span as f64 / 1e9), "ops/s");
    out.emit(
        &format!("{key}.handoffs_per_kop"),
        c.handoffs as f64 * 1000.0 / ops,
        "per_kop",
    );
    out.emit(&format!("{key}.overlap"), overlap, "frac");
    out.note(&format!(
        "{key}: counter {} after {nproc} processes x {n} rounds",
        c.count
    ));
    Ok(())
}

fn bench_lock(out: &Out, args: &BenchArgs, path: &Path) -> Result<()> {
    let mut o = CreateOptions::new(1 << 20);
    o.overwrite = true;
    let heap = Heap::create_with(path, &o)?;
    // The bare protocol on the real platform, through the heap's own word and slot.
    let mut recoveries = crate::heap::raw_lock_rounds(&heap, 10_000, || ())?;
    let t0 = mono_ns();
    recoveries += crate::heap::raw_lock_rounds(&heap, args.lock_iters, || ())?;
    let raw = (mono_ns() - t0) as f64 / args.lock_iters.max(1) as f64;
    assert_eq!(recoveries, 0, "an owner died during the uncontended figure");
    out.emit("lock.uncontended.mapheap", raw, "ns/op");
    for _ in 0..10_000 {
        drop(heap.lock()?);
    }
    let t0 = mono_ns();
    for _ in 0..args.lock_iters {
        drop(heap.lock()?);
    }
    let guard_ns = (mono_ns() - t0) as f64 / args.lock_iters.max(1) as f64;
    out.emit("lock.uncontended.mapheap_guard", guard_ns, "ns/op");
    out.note(&format!(
        "lock.uncontended: {} timed rounds of each variant after 10000 warm-up rounds",
        args.lock_iters
    ));

    let counter = heap
        .lock()?
        .find_or_init("bench.counter", bytemuck::Zeroable::zeroed)?;
    drop(heap);
    let nproc = args.nproc.clamp(1, 16);
    // Alternate the order with the run index, as the anchors rotate theirs.
    let order = if args.run.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    };
    for raw in order {
        contended(out, path, counter, args.lock_cont_iters, nproc, raw)?;
    }
    assert!(
        Heap::open(path)?.check()?.is_clean(),
        "heap not clean after the lock figures"
    );
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// What one run of the seeded workload did: the figures `bench_alloc --describe` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// Allocations made.
    pub allocs: u64,
    /// Blocks freed inside the loop.
    pub frees: u64,
    /// Bytes requested by the allocations.
    pub bytes: u64,
    /// XOR of every draw of the generator.
    pub rng_xor: u64,
}

/// The anchors' workload as `bench_alloc --describe` computes it, without allocating.
pub fn describe(seed: u64, nops: u64, target: usize) -> Workload {
    let (mut s, mut w, mut live) = (seed, Workload::default(), 0usize);
    for _ in 0..nops {
        let r = splitmix64(&mut s);
        w.rng_xor ^= r;
        if live < target {
            w.bytes += 16 + r % 1009;
            w.allocs += 1;
            live += 1;
        } else {
            w.frees += 1;
            live -= 1;
        }
    }
    w
}

/// `bench_alloc --describe` for the anchors' defaults (seed 42, 2M ops, 10000 live), as it
/// printed on this machine: a port that runs another sequence is not comparable.
pub const ANCHORS_DEFAULT_WORKLOAD: Workload = Workload {
    allocs: 1_005_000,
    frees: 995_000,
    bytes: 523_028_445,
    rng_xor: 0x6ce8_9f4b_d5ce_6e32,
};

/// Operations per transaction of the single-lock workload (it commits and goes on,
/// keeping the lock, every this many).
pub const ONELOCK_CHECKPOINT: u64 = 256;

/// The anchors' allocator workload; `per_op` takes the lock for every operation. Returns
/// the timed interval and what the loop did.
fn alloc_workload(
    heap: &Heap,
    seed: u64,
    nops: u64,
    target: usize,
    per_op: bool,
) -> (u64, u64, Workload) {
    let mut live: Vec<(Offset<u8>, u64)> = Vec::with_capacity(target);
    let mut w = Workload::default();
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
        if !per_op && i % ONELOCK_CHECKPOINT == 0 {
            // One lock, but not one transaction: a transaction's frees wait for its commit
            // and its log grows with every operation.
            g.checkpoint().expect("checkpoint");
        }
        let r = splitmix64(&mut s);
        w.rng_xor ^= r;
        if live.len() < target {
            let sz = 16 + r % 1009;
            let p = g
                .alloc_bytes(sz, 8)
                .unwrap_or_else(|e| panic!("allocation of {sz} bytes failed at op {i}: {e}"));
            let tag = i ^ seed;
            *g.get_mut(p.cast::<u64>()).expect("tag") = tag;
            live.push((p, tag));
            w.allocs += 1;
            w.bytes += sz;
        } else {
            let j = (r % live.len() as u64) as usize;
            let (p, tag) = live.swap_remove(j);
            assert_eq!(
                g.read(p.cast::<u64>()).expect("tag"),
                tag,
                "block corrupted at op {i}"
            );
            g.free(p).expect("free");
            w.frees += 1;
        }
    }
    let t1 = mono_ns();
    let mut g = match one.take() {
        Some(g) => g,
        None => heap.lock().expect("lock"),
    };
    for (p, tag) in live {
        assert_eq!(
            g.read(p.cast::<u64>()).expect("tag"),
            tag,
            "block corrupted"
        );
        g.free(p).expect("free");
    }
    (t0, t1, w)
}

/// Checks that a loop ran the anchors' sequence: the same counts and generator checksum as
/// `describe`, and for the anchors' defaults the figures `bench_alloc --describe` printed.
fn check_workload(seed: u64, nops: u64, target: usize, ran: Workload) {
    let want = describe(seed, nops, target);
    assert_eq!(ran, want, "the loop did not run the seeded workload");
    if (seed, nops, target) == (42, 2_000_000, 10_000) {
        assert_eq!(
            ran, ANCHORS_DEFAULT_WORKLOAD,
            "workload differs from the anchors'"
        );
    }
}

/// The heap the allocator workload needs with `nproc` processes, each holding up to
/// `live` blocks of at most 1024 bytes: every process's live set at its largest block
/// size (1024 + header, rounded to its TLSF class), twice over for fragmentation and the
/// deferred frees of the single-lock figure, plus the header, the log and slack. At least
/// the anchors' 64 MiB, so the figures compare with the same segment.
pub fn alloc_heap_size(nproc: u64, live: u64) -> u64 {
    let per_block = 1024 + 64;
    let need = nproc
        .saturating_mul(live)
        .saturating_mul(per_block)
        .saturating_mul(2)
        .saturating_add(8 << 20);
    need.max(64 << 20)
}

fn bench_alloc(out: &Out, args: &BenchArgs, path: &std::path::Path) -> Result<()> {
    let (nops, target) = (args.alloc_ops, args.alloc_live);
    let nproc_all = args.nproc.clamp(1, 16);
    let seg = alloc_heap_size(nproc_all as u64, target as u64);
    if seg > crate::format::MAX_CAPACITY {
        return Err(crate::Error::BadSize {
            size: seg,
            why: "the allocator workload needs a heap larger than the 64 TiB a heap can address (lower --nproc or --alloc-live)",
        });
    }
    let mut o = CreateOptions::new(seg);
    o.overwrite = true;
    for (key, per_op) in [
        ("alloc.1p.mapheap", true),
        ("alloc.1p.mapheap_onelock", false),
    ] {
        let heap = Heap::create_with(path, &o)?;
        let free0 = heap.lock()?.stats().free_bytes;
        let (t0, t1, ran) = alloc_workload(&heap, 42, nops, target, per_op);
        check_workload(42, nops, target, ran);
        out.emit(key, nops as f64 / ((t1 - t0) as f64 / 1e9), "ops/s");
        out.note(&format!(
            "{key}: {} allocations, {} frees, {} bytes requested in {nops} operations (live target {target})",
            ran.allocs, ran.frees, ran.bytes
        ));
        let g = heap.lock()?;
        assert_eq!(g.stats().free_bytes, free0, "leak after the workload");
        assert!(g.check().is_clean(), "heap not clean after the workload");
    }
    let nproc = nproc_all;
    // Made (and so its size reserved on disk: a full disk is an error here, with the size)
    // before any process forks.
    Heap::create_with(path, &o)?;
    let (span, overlap) = fork_all(nproc, |i, ctl| {
        let h = Heap::open(path).expect("child open");
        barrier(ctl, nproc as u32);
        let seed = 43 + i as u64;
        let (t0, t1, ran) = alloc_workload(&h, seed, nops, target, true);
        check_workload(seed, nops, target, ran);
        ctl.t0[i].store(t0, Ordering::Release);
        ctl.t1[i].store(t1, Ordering::Release);
    })?;
    out.emit(
        &format!("alloc.{nproc}p.mapheap"),
        (nops * nproc as u64) as f64 / (span as f64 / 1e9),
        "ops/s",
    );
    out.emit(&format!("alloc.{nproc}p.mapheap.overlap"), overlap, "frac");
    out.note(&format!(
        "alloc.{nproc}p.mapheap: {nproc} processes x {nops} operations (live target {target}), each checked against the seeded workload"
    ));
    let heap = Heap::open(path)?;
    assert!(
        heap.check()?.is_clean(),
        "heap not clean after the {nproc}p workload"
    );
    drop(heap);
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Reads one byte of every page of `len` bytes at `off` through `g`, so the pages are in
/// this process's page tables (the anchors remap a fully populated mapping).
fn touch(g: &crate::heap::HeapGuard<'_>, off: Offset<u8>, len: u64) -> Result<()> {
    let b = g.bytes(off, len)?;
    let mut sum = 0u8;
    for i in (0..b.len()).step_by(crate::format::page_size() as usize) {
        sum = sum.wrapping_add(b[i]);
    }
    std::hint::black_box(sum);
    Ok(())
}

/// `map64M.{label}.remap.mapheap_{N}obj`: with N live objects in a 64 MiB heap whose every
/// page this handle has touched, another handle grows the heap by one page and this
/// handle's next `lock` remaps (munmap of the populated mapping, mmap of the file, capacity
/// check): the mean of `cycles` such locks, in µs, beside the anchors'
/// `remap_munmap_mmap`. Offsets make the cost independent of N: nothing in the heap is
/// rewritten on a remap.
fn bench_remap(out: &Out, args: &BenchArgs, path: &Path) -> Result<()> {
    let seg = 64u64 << 20;
    let mut o = CreateOptions::new(seg);
    o.overwrite = true;
    let cycles = args.remap_cycles.max(1);
    for objs in [0, args.remap_objects] {
        let grower = Heap::create_with(path, &o)?;
        let reader = Heap::open(path)?;
        let (nodes, fill) = {
            let mut g = grower.lock()?;
            let mut nodes = Vec::with_capacity(objs as usize);
            for i in 0..objs {
                let n = g.alloc(i)?;
                nodes.push(n);
            }
            // Fill the rest with chunks, so every page of the heap is a payload to touch.
            let mut fill = Vec::new();
            for len in [256 << 10, 4 << 10, 64] {
                while let Ok(c) = g.alloc_bytes(len, 8) {
                    fill.push((c, len));
                }
            }
            (nodes, fill)
        };
        let mut total = 0u64;
        let mut remaps = 0u64;
        for _ in 0..cycles {
            {
                let g = reader.lock()?;
                for &(c, len) in &fill {
                    touch(&g, c, len)?;
                }
                for (i, n) in nodes.iter().enumerate() {
                    assert_eq!(g.read(*n)?, i as u64, "object {i} changed");
                }
            }
            let grown = {
                let mut g = grower.lock()?;
                g.grow_by(4096)?;
                g.capacity()
            };
            let t0 = mono_ns();
            let g = reader.lock()?;
            total += mono_ns() - t0;
            assert_eq!(g.capacity(), grown, "the reader did not remap");
            remaps += 1;
        }
        assert!(
            reader.check()?.is_clean(),
            "heap not clean after the remaps"
        );
        let key = format!("map64M.{}.remap.mapheap_{objs}obj", args.remap_label);
        out.emit(&key, total as f64 / cycles as f64 / 1e3, "us");
        out.note(&format!(
            "{key}: mean of {remaps} remaps, {} objects verified before each",
            nodes.len()
        ));
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Runs the figures `args.runs` times, interleaved like the anchors' run.sh.
pub fn run(args: &BenchArgs) -> Result<()> {
    let groups: Vec<&str> = ["lock", "alloc", "remap"]
        .into_iter()
        .filter(|g| args.only.is_empty() || args.only.iter().any(|o| o == g))
        .collect();
    let runs = args.runs.max(1);
    let out = Out {
        pb: crate::progress::bar(
            u64::from(runs) * groups.len() as u64,
            "{elapsed_precise} [{bar:30}] {pos}/{len} figure groups, {msg}",
        ),
    };
    let pid = std::process::id();
    for r in 1..=runs {
        for &g in &groups {
            out.pb.set_message(format!("run {r}/{runs}: {g}"));
            let path = args.dir.join(format!("mapheap_{g}_{pid}.heap"));
            match g {
                "lock" => bench_lock(&out, args, &path)?,
                "alloc" => bench_alloc(&out, args, &path)?,
                _ => bench_remap(&out, args, &path)?,
            }
            out.pb.inc(1);
        }
    }
    out.pb.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The heap holds every process's live set at its largest blocks, twice over, so 16
    /// processes of the anchors' workload never run out (the bug: every child panicked
    /// with a fixed 64 MiB heap); a size no heap can have is refused before any fork.
    #[test]
    fn the_alloc_heap_grows_with_the_processes_and_an_impossible_one_is_refused() {
        let one = alloc_heap_size(1, 10_000);
        let sixteen = alloc_heap_size(16, 10_000);
        assert!(one >= 64 << 20);
        assert!(sixteen >= 16 * 10_000 * 1032 * 2, "{sixteen}");
        assert!(sixteen > one);
        let dir = tempfile::tempdir().unwrap();
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchArgs,
        }
        let args = <Cli as clap::Parser>::parse_from([
            "bench",
            "--nproc",
            "16",
            "--alloc-live",
            "4000000000000",
            "--alloc-ops",
            "10",
        ])
        .args;
        let out = Out {
            pb: ProgressBar::hidden(),
        };
        let err = bench_alloc(&out, &args, &dir.path().join("b.heap")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("64 TiB") && msg.contains("--nproc"), "{msg}");
    }

    /// The port runs the anchors' sequence: `bench_alloc --describe` printed these figures.
    #[test]
    fn describe_matches_the_anchors_reference() {
        assert_eq!(describe(42, 2_000_000, 10_000), ANCHORS_DEFAULT_WORKLOAD);
    }

    /// The conformance check rejects a loop that drew, allocated or freed differently.
    #[test]
    fn check_workload_catches_a_different_sequence() {
        let want = describe(43, 20_000, 1_000);
        check_workload(43, 20_000, 1_000, want);
        for bad in [
            Workload {
                allocs: want.allocs + 1,
                ..want
            },
            Workload {
                bytes: want.bytes - 1,
                ..want
            },
            Workload {
                rng_xor: want.rng_xor ^ 1,
                ..want
            },
        ] {
            let r = std::panic::catch_unwind(|| check_workload(43, 20_000, 1_000, bad));
            assert!(r.is_err(), "{bad:?} was accepted");
        }
    }
}
