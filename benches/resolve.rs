//! Offset resolution under a held guard: `HeapGuard::get` / `read` of a live `u64`, in a heap
//! holding N live objects. A resolution checks null, alignment and the block's header (one
//! 8-byte load just below the payload), so its cost should not depend on N:
//!
//! * `get_hot/N`, `read_hot/N`: the same object every time (its header and payload stay in
//!   L1): the cost of the checks themselves.
//! * `read_random/N`: every live object in a fixed shuffled order: the same checks plus a
//!   cache miss (header and payload) once the objects outgrow the caches, so this one grows
//!   with N through the memory hierarchy, not through any work per object in mapheap.
//!
//! `cargo bench --bench resolve`. Every heap has the same 64 MiB capacity; only the number
//! of live objects changes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mapheap::bench::splitmix64;
use mapheap::{CreateOptions, Heap, Offset};

const CAPACITY: u64 = 64 << 20;

fn heap() -> (tempfile::TempDir, Heap) {
    let dir = tempfile::tempdir().unwrap();
    let mut o = CreateOptions::new(CAPACITY);
    o.overwrite = true;
    let h = Heap::create_with(dir.path().join("resolve.heap"), &o).unwrap();
    (dir, h)
}

fn resolve(c: &mut Criterion) {
    let mut group = c.benchmark_group("resolve");
    for n in [1u64, 10_000, 1_000_000] {
        let (_d, h) = heap();
        let mut g = h.lock().unwrap();
        let offs: Vec<Offset<u64>> = (0..n).map(|i| g.alloc(i).unwrap()).collect();
        assert_eq!(g.stats().used_blocks, n, "live objects after setup");
        let mid = (n / 2) as usize;
        let hot = offs[mid];
        assert_eq!(*g.get(hot).unwrap(), mid as u64);

        group.bench_function(BenchmarkId::new("get_hot", n), |b| {
            b.iter(|| *g.get(black_box(hot)).unwrap())
        });
        group.bench_function(BenchmarkId::new("read_hot", n), |b| {
            b.iter(|| g.read(black_box(hot)).unwrap())
        });

        // A fixed shuffle (Fisher-Yates with splitmix64) of (index, offset) pairs.
        let mut order: Vec<(u64, Offset<u64>)> = (0..n).zip(offs.iter().copied()).collect();
        let mut s = 7u64;
        for i in (1..order.len()).rev() {
            let j = (splitmix64(&mut s) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut at = 0usize;
        group.bench_function(BenchmarkId::new("read_random", n), |b| {
            b.iter(|| {
                let (want, off) = order[at];
                at = if at + 1 == order.len() { 0 } else { at + 1 };
                let v = g.read(black_box(off)).unwrap();
                // The object resolved must be the one that was stored there.
                assert_eq!(v, want);
                v
            })
        });

        assert!(g.check().is_clean());
        drop(g);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = resolve
}
criterion_main!(benches);
