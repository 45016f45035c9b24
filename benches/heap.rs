//! Criterion benchmarks of the public heap path: guard lock+unlock, alloc+free pairs of a
//! few sizes under one guard, and the anchors' seeded workload with a lock per operation.
//! `mapheap bench` runs the same workloads beside ../shared/anchors; this file is for
//! tracking changes between commits.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use mapheap::bench::splitmix64;
use mapheap::{CreateOptions, Heap, Offset};

fn heap(size: u64) -> (tempfile::TempDir, Heap) {
    let dir = tempfile::tempdir().unwrap();
    let mut o = CreateOptions::new(size);
    o.overwrite = true;
    let h = Heap::create_with(dir.path().join("bench.heap"), &o).unwrap();
    (dir, h)
}

fn guard(c: &mut Criterion) {
    let (_d, h) = heap(1 << 20);
    c.bench_function("guard_lock_unlock", |b| {
        b.iter(|| drop(black_box(h.lock().unwrap())))
    });
}

fn alloc_free(c: &mut Criterion) {
    let (_d, h) = heap(64 << 20);
    let mut g = h.lock().unwrap();
    // Some live blocks so the free lists are not trivially empty.
    let keep: Vec<_> = (0..1000)
        .map(|i| g.alloc_bytes(16 + i % 1000, 8).unwrap())
        .collect();
    // Size classes (src/alloc/tlsf.rs): 16 is in the linear small classes (blocks under
    // 256 bytes), 256 and 4000 in the first logarithmic ones, 64 KiB and 1 MiB large.
    for size in [16u64, 256, 4000, 65536, 1 << 20] {
        c.bench_function(&format!("alloc_free_{size}"), |b| {
            b.iter(|| {
                let o = g.alloc_bytes(black_box(size), 8).unwrap();
                g.free(o).unwrap();
            })
        });
    }
    c.bench_function("alloc_free_4096_aligned", |b| {
        b.iter(|| {
            let o = g.alloc_bytes(black_box(100), 4096).unwrap();
            g.free(o).unwrap();
        })
    });
    for o in keep {
        g.free(o).unwrap();
    }
}

fn workload(c: &mut Criterion) {
    c.bench_function("anchors_workload_100k_ops_lock_per_op", |b| {
        b.iter_batched(
            || heap(64 << 20),
            |(_d, h)| {
                let mut live: Vec<Offset<u8>> = Vec::with_capacity(10_000);
                let mut s = 42u64;
                for _ in 0..100_000 {
                    let mut g = h.lock().unwrap();
                    if live.len() < 10_000 {
                        let sz = 16 + splitmix64(&mut s) % 1009;
                        live.push(g.alloc_bytes(sz, 8).unwrap());
                    } else {
                        let j = (splitmix64(&mut s) % live.len() as u64) as usize;
                        g.free(live.swap_remove(j)).unwrap();
                    }
                }
            },
            BatchSize::PerIteration,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = guard, alloc_free, workload
}
criterion_main!(benches);
