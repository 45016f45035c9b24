//! What a process pays to (re)map a heap holding N live objects (N small blocks of 32
//! bytes, allocated back to back), at the same capacity for every N. Objects are addressed
//! by offset, so neither path should touch them:
//!
//! * `open/N`: `Heap::open` of the existing file: open, stat, map the arena and the header,
//!   validate the identity, claim an attachment slot, lock and unlock once. Timed from the
//!   call to the returned handle; the drop (unmap, release the slot) is not timed.
//! * `lock_after_growth/N`: another handle grows the heap by one page, then this handle's
//!   next `lock()` finds the capacity beyond its mapping and remaps (`HeapGuard::refresh` ->
//!   `remap`: stat, map the whole file anew, unmap the old mapping). Only that `lock()` is
//!   timed; the test that it remapped (new base address, new capacity) follows it. This
//!   handle touches nothing of the arena but its state page, so its old mapping has almost
//!   no pages resident.
//! * `lock_after_growth_resident/N`: the same, but before each growth this handle reads one
//!   live object per page, so every page holding an object is resident in its old mapping.
//!   The timed `lock()` then includes the kernel tearing down those page-table entries when
//!   the old mapping is unmapped: this one grows with the pages the process had touched
//!   (here proportional to N), which is the kernel's cost per resident page, not work of
//!   mapheap per object.
//!
//! The heaps start at 64 MiB and grow one page per iteration; after 16 MiB of growth the
//! fixture is rebuilt (untimed), so every figure comes from capacities of 64..80 MiB.
//!
//! `cargo bench --bench remap`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mapheap::{CreateOptions, Heap, HeapGuard, Offset};

const CAPACITY: u64 = 64 << 20;
const MAX_GROWTH: u64 = 16 << 20;

struct Fixture {
    n: u64,
    /// Grows the heap (it created the heap and allocated the objects).
    grower: Heap,
    /// Remaps when it next locks after a growth.
    remapper: Heap,
    offs: Vec<Offset<[u64; 2]>>,
    /// Objects per page: reading every `per_page`-th object touches every page they fill.
    per_page: usize,
    page: u64,
    grown: u64,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new(n: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remap.heap");
        let mut o = CreateOptions::new(CAPACITY);
        o.overwrite = true;
        let grower = Heap::create_with(&path, &o).unwrap();
        let page = u64::from(mapheap::format::page_size());
        let (offs, per_page) = {
            let mut g = grower.lock().unwrap();
            let offs: Vec<_> = (0..n).map(|i| g.alloc([i, !i]).unwrap()).collect();
            let st = g.stats();
            assert_eq!(st.used_blocks, n, "live objects after setup");
            assert_eq!(st.capacity, CAPACITY);
            let block = offs.first().map_or(32, |&o| g.usable_size(o).unwrap() + 8);
            (offs, (page / block).max(1) as usize)
        };
        let remapper = Heap::open(&path).unwrap();
        Fixture {
            n,
            grower,
            remapper,
            offs,
            per_page,
            page,
            grown: 0,
            path,
            _dir: dir,
        }
    }

    /// Reads one object per page through `g` (a guard of the remapper), checking each.
    fn touch(&self, g: &HeapGuard<'_>) {
        for (i, &o) in self.offs.iter().enumerate().step_by(self.per_page) {
            assert_eq!(g.read(o).unwrap(), [i as u64, !(i as u64)]);
        }
    }
}

/// Times `iters` locks of the remapper, each right after the grower grew the heap by a page.
fn lock_after_growth(fx: &mut Fixture, iters: u64, resident: bool) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        if fx.grown >= MAX_GROWTH {
            *fx = Fixture::new(fx.n);
        }
        let before = {
            let g = fx.remapper.lock().unwrap();
            if resident {
                fx.touch(&g);
            }
            g.base_address()
        };
        let cap = {
            let mut g = fx.grower.lock().unwrap();
            g.grow_by(fx.page).unwrap();
            g.capacity()
        };
        fx.grown += fx.page;
        let t = Instant::now();
        let g = fx.remapper.lock().unwrap();
        total += t.elapsed();
        assert_eq!(g.capacity(), cap, "the remapper sees the new capacity");
        assert_ne!(g.base_address(), before, "the lock after growth remapped");
    }
    total
}

fn remap(c: &mut Criterion) {
    let mut group = c.benchmark_group("remap");
    for n in [0u64, 10_000, 100_000, 1_000_000] {
        let mut fx = Fixture::new(n);

        // Before any growth, so every N opens a 64 MiB file.
        group.bench_function(BenchmarkId::new("open", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let h = Heap::open(&fx.path).unwrap();
                    total += t.elapsed();
                    assert!(h.recovered_at_open().is_none());
                    assert_eq!(h.lock().unwrap().capacity(), CAPACITY);
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new("lock_after_growth", n), |b| {
            b.iter_custom(|iters| lock_after_growth(&mut fx, iters, false))
        });
        group.bench_function(BenchmarkId::new("lock_after_growth_resident", n), |b| {
            b.iter_custom(|iters| lock_after_growth(&mut fx, iters, true))
        });

        // The objects survived every remap.
        let g = fx.remapper.lock().unwrap();
        fx.touch(&g);
        assert_eq!(g.stats().used_blocks, n);
        assert!(g.check().is_clean());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = remap
}
criterion_main!(benches);
