//! Uncontended lock + unlock of the real platform (`mapheap::sync::Futex` over a word in a
//! `MAP_SHARED` file mapping, with an attachment table and a claimed slot), next to
//! `std::sync::Mutex` for reference.
//!
//! `cargo bench --bench lock`. Bench targets get the crate's `mutants` feature through its
//! dev-dependency on itself, so the mapheap figure includes the mutant switches' thread-local
//! reads (a few per lock/unlock); a normal build compiles them away.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::os::fd::AsFd;
use std::sync::atomic::AtomicU32;
use std::sync::Mutex;

use criterion::{criterion_group, criterion_main, Criterion};
use memmap2::MmapOptions;

use mapheap::sync::{lock, unlock, Futex, SlotRecord, Slots, Table, DEFAULT_PROBE_INTERVAL};

const LEN: usize = 4096;
const SLOTS_AT: usize = 64;
const NSLOTS: u32 = 8;
const LOCK_BASE: u64 = 2048;

fn lock_unlock(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("lock.bench");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create the bench file");
    file.set_len(LEN as u64).expect("size the bench file");
    // SAFETY: the file is private to this bench and never shrinks while mapped.
    let mut map = unsafe { MmapOptions::new().len(LEN).map_mut(&file) }.expect("map");
    let base = map.as_mut_ptr();
    // SAFETY: offset 0 is 4-aligned inside the live mapping; only accessed atomically.
    let word = unsafe { AtomicU32::from_ptr(base.cast()) };
    // SAFETY: NSLOTS 8-byte records at SLOTS_AT lie inside the mapping, are 4-aligned, live
    // as long as `map`, and are only accessed atomically.
    let slots = unsafe {
        Slots::new(
            base.add(SLOTS_AT).cast::<SlotRecord>(),
            NSLOTS,
            file.as_fd(),
            LOCK_BASE,
        )
    };
    let me = slots.claim(std::process::id()).expect("claim a slot");
    let table = Table {
        slots,
        probe: DEFAULT_PROBE_INTERVAL,
    };
    let fx = Futex::new(word, &table);

    let mut g = c.benchmark_group("uncontended_lock_unlock");
    g.bench_function("mapheap_futex_shared_mapping", |b| {
        b.iter(|| {
            black_box(lock(&fx, me));
            unlock(&fx, me);
        })
    });
    let m = Mutex::new(0u64);
    g.bench_function("std_mutex", |b| {
        b.iter(|| {
            *black_box(&m).lock().unwrap() += 1;
        })
    });
    g.finish();
    drop(map);
}

criterion_group!(benches, lock_unlock);
criterion_main!(benches);
