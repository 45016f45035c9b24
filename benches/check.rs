//! `HeapGuard::check` (the invariant walker) over a heap of N blocks, half allocated and half
//! free, alternating so that no two free blocks merge: the walk of the chain, the footer of
//! every free block, every free list and bitmap, and the counters. Criterion reports the
//! throughput in blocks per second (`Throughput::Elements` = the blocks the report counted).
//!
//! `cargo bench --bench check`. Every heap has the same 32 MiB capacity; only the number of
//! blocks changes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mapheap::bench::splitmix64;
use mapheap::{CreateOptions, Heap};

const CAPACITY: u64 = 32 << 20;

fn check(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    for n in [1_000u64, 10_000, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let mut o = CreateOptions::new(CAPACITY);
        o.overwrite = true;
        let h = Heap::create_with(dir.path().join("check.heap"), &o).unwrap();
        let mut g = h.lock().unwrap();
        // Payloads of 16..=136 bytes (blocks of 32..=144), then every even one freed: the
        // chain alternates free/allocated, with the free rest of the arena at the end.
        let mut s = 11u64;
        let offs: Vec<_> = (0..n)
            .map(|_| {
                g.alloc_bytes(16 + (splitmix64(&mut s) % 16) * 8, 8)
                    .unwrap()
            })
            .collect();
        for o in offs.iter().step_by(2) {
            g.free(*o).unwrap();
        }
        let report = g.check();
        assert!(report.is_clean(), "{:?}", report.violations);
        // n blocks plus the free tail (n is even, so the last block is allocated).
        assert_eq!(report.blocks, n + 1, "blocks after setup");
        assert_eq!(report.free_blocks, n / 2 + 1, "free blocks after setup");
        let blocks = report.blocks;

        group.throughput(Throughput::Elements(blocks));
        group.bench_function(BenchmarkId::new("mixed_blocks", n), |b| {
            b.iter(|| {
                let r = g.check();
                // A walk that stopped early or found something would not be the work we
                // mean to time.
                assert!(r.is_clean() && r.blocks == blocks);
                black_box(r)
            })
        });
        drop(g);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = check
}
criterion_main!(benches);
