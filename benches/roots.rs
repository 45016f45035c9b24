//! Root lookups under a held guard: `HeapGuard::root` by name among N named roots (N = 1
//! and N = 32, the table's size). A lookup that finds its name checks that one entry's
//! checksum; a lookup that finds none checks every entry, so that a damaged name cannot pass
//! for "no such root" (invariant R2):
//!
//! * `hit/N`: the last name set, found among N.
//! * `miss/N`: a name that is not there, among N.
//!
//! `cargo bench --bench roots`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mapheap::{CreateOptions, Heap, Offset};

fn roots(c: &mut Criterion) {
    let mut group = c.benchmark_group("roots");
    for n in [1usize, 32] {
        let dir = tempfile::tempdir().unwrap();
        let mut o = CreateOptions::new(1 << 20);
        o.overwrite = true;
        let h = Heap::create_with(dir.path().join("roots.heap"), &o).unwrap();
        let mut g = h.lock().unwrap();
        let mut last = (String::new(), Offset::<u64>::from_raw(0));
        for i in 0..n {
            let name = format!("root-{i:02}");
            let off = g.alloc(i as u64).unwrap();
            g.set_root(&name, off).unwrap();
            last = (name, off);
        }
        g.checkpoint().unwrap();
        let (name, want) = last;
        assert_eq!(
            g.root::<u64>(&name).unwrap(),
            Some(want),
            "the root just set"
        );
        assert_eq!(g.root::<u64>("absent").unwrap(), None, "a name never set");
        group.bench_function(BenchmarkId::new("hit", n), |b| {
            b.iter(|| g.root::<u64>(black_box(&name)).unwrap())
        });
        group.bench_function(BenchmarkId::new("miss", n), |b| {
            b.iter(|| g.root::<u64>(black_box("absent")).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, roots);
criterion_main!(benches);
