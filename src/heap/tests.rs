use super::*;
use crate::alloc::AllocError;
use crate::check::Violation;
use crate::offset::Offset;
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
struct Node {
    value: u64,
    next: Offset<Node>,
}

use super::tests_support::fresh;

#[test]
fn a_list_survives_close_and_reopen() {
    let (_d, path, heap) = fresh(1 << 20);
    {
        let mut g = heap.lock().unwrap();
        let mut head = Offset::<Node>::NULL;
        for v in 0..100 {
            head = g
                .alloc(Node {
                    value: v,
                    next: head,
                })
                .unwrap();
        }
        g.set_root("list", head).unwrap();
        assert!(g.check().is_clean(), "{:?}", g.check());
    }
    drop(heap);
    let heap = Heap::open(&path).unwrap();
    let g = heap.lock().unwrap();
    let mut at = g.root::<Node>("list").unwrap().unwrap();
    let mut seen = vec![];
    while !at.is_null() {
        assert!(seen.len() < 100, "the list has a cycle: {seen:?}");
        let n = g.read(at).unwrap();
        seen.push(n.value);
        at = n.next;
    }
    assert_eq!(seen, (0..100).rev().collect::<Vec<_>>());
    assert!(g.recovered().is_none());
}

#[test]
fn free_coalesces_back_to_one_block() {
    let (_d, _p, heap) = fresh(1 << 20);
    let mut g = heap.lock().unwrap();
    let before = g.stats();
    let offs: Vec<_> = (0..50)
        .map(|i| g.alloc_bytes(8 + i * 24, 8).unwrap())
        .collect();
    g.checkpoint().unwrap();
    for (i, o) in offs.iter().enumerate() {
        if i % 2 == 0 {
            g.free(*o).unwrap();
        }
    }
    g.checkpoint().unwrap();
    assert!(g.check().is_clean(), "{:?}", g.check());
    for (i, o) in offs.iter().enumerate() {
        if i % 2 == 1 {
            g.free(*o).unwrap();
        }
    }
    g.checkpoint().unwrap();
    assert!(g.check().is_clean(), "{:?}", g.check());
    assert_eq!(g.stats(), before);
}

#[test]
fn aligned_allocations_are_aligned() {
    let (_d, _p, heap) = fresh(1 << 20);
    let mut g = heap.lock().unwrap();
    for align in [8, 16, 64, 256, 4096] {
        for size in [1, 24, 100, 5000] {
            let o = g.alloc_bytes(size, align).unwrap();
            assert_eq!(o.raw() % align, 0, "size {size} align {align}");
            g.bytes_mut(o, size).unwrap().fill(0xab);
        }
    }
    assert!(g.check().is_clean(), "{:?}", g.check());
    assert!(matches!(
        g.alloc_bytes(8, 3),
        Err(Error::Alloc(AllocError::BadAlign { .. }))
    ));
}

#[test]
fn bad_offsets_are_errors() {
    let (_d, _p, heap) = fresh(1 << 20);
    let mut g = heap.lock().unwrap();
    let o = g
        .alloc(Node {
            value: 1,
            next: Offset::NULL,
        })
        .unwrap();
    for raw in [0, 1, 8, o.raw() + 8, o.raw() + 4, 1 << 40, u64::MAX - 7] {
        assert!(g.get(Offset::<Node>::from_raw(raw)).is_err(), "{raw:#x}");
    }
    // a block too small for the type
    let small = g.alloc_bytes(8, 8).unwrap();
    assert!(g.get(small.cast::<[u64; 8]>()).is_err());
    g.free(o).unwrap();
    assert!(g.get(o).is_err());
    assert!(matches!(
        g.free(o),
        Err(Error::Alloc(AllocError::DoubleFree { .. }))
    ));
}

#[test]
fn exhaustion_then_growth() {
    let (_d, _p, heap) = fresh(64 << 10);
    let mut g = heap.lock().unwrap();
    let mut n = 0;
    while g.alloc_bytes(1000, 8).is_ok() {
        n += 1;
    }
    assert!(n > 40);
    assert!(matches!(
        g.alloc_bytes(1000, 8),
        Err(Error::Alloc(AllocError::OutOfSpace { .. }))
    ));
    g.grow(1 << 20).unwrap();
    assert_eq!(g.capacity(), 1 << 20);
    assert!(g.check().is_clean(), "{:?}", g.check());
    g.alloc_bytes(500_000, 8).unwrap();
    assert!(g.check().is_clean(), "{:?}", g.check());
}

#[test]
fn another_handle_sees_growth_and_remaps() {
    // Two handles in one thread: a guard left held would block the other for ever.
    let _watchdog = crate::watchdog!(20);
    let (_d, path, heap) = fresh(64 << 10);
    let other = Heap::open(&path).unwrap();
    let first_base = heap.lock().unwrap().base_address();
    assert_ne!(other.lock().unwrap().base_address(), first_base);
    {
        let mut g = heap.lock().unwrap();
        let o = g
            .alloc(Node {
                value: 7,
                next: Offset::NULL,
            })
            .unwrap();
        g.set_root("n", o).unwrap();
        g.grow(4 << 20).unwrap();
        let big = g.alloc_bytes(3 << 20, 8).unwrap();
        g.bytes_mut(big, 3 << 20).unwrap().fill(9);
        g.set_root("big", big).unwrap();
    }
    let g = other.lock().unwrap();
    assert_eq!(g.capacity(), 4 << 20);
    let n = g.root::<Node>("n").unwrap().unwrap();
    assert_eq!(g.read(n).unwrap().value, 7);
    let big = g.root::<u8>("big").unwrap().unwrap();
    assert!(g.bytes(big, 3 << 20).unwrap().iter().all(|&b| b == 9));
    assert!(g.check().is_clean());
}

#[test]
fn roots_refuse_another_type() {
    let (_d, _p, heap) = fresh(1 << 20);
    let mut g = heap.lock().unwrap();
    let a = g.find_or_init("cfg", || 5u64).unwrap();
    assert_eq!(g.find_or_init("cfg", || 6u64).unwrap(), a);
    assert_eq!(g.read(a).unwrap(), 5);
    assert!(matches!(g.root::<u32>("cfg"), Err(Error::RootType { .. })));
    assert!(matches!(g.root::<u64>(""), Err(Error::RootName(_))));
    assert!(matches!(
        g.root::<u64>(&"x".repeat(33)),
        Err(Error::RootName(_))
    ));
    assert_eq!(g.remove_root("cfg").unwrap(), Some(a.raw()));
    assert_eq!(g.root::<u64>("cfg").unwrap(), None);
}

#[test]
fn check_reports_a_dangling_root_and_a_broken_chain() {
    let (_d, _p, heap) = fresh(1 << 20);
    let mut g = heap.lock().unwrap();
    let a = g.alloc(1u64).unwrap();
    g.set_root("a", a).unwrap();
    g.free(a).unwrap();
    g.checkpoint().unwrap();
    let r = g.check();
    assert!(
        matches!(r.violations[..], [Violation::Root { .. }]),
        "{r:?}"
    );
    g.remove_root("a").unwrap();
    let b = g.alloc_bytes(64, 8).unwrap();
    // Smash b's header through the mapping, as a stray write would.
    // SAFETY: test-only; the offset is inside the mapping and we hold the lock.
    unsafe { *(g.base_address() as *mut u64).add((b.raw() as usize - 8) / 8) = 12345 };
    let r = g.check();
    // The report names the smashed header and why, so `mapheap check` points at it.
    match &r.violations[0] {
        Violation::Chain { offset, fault } => {
            assert_eq!(*offset, b.raw() - 8, "{r:?}");
            assert_eq!(*fault, crate::alloc::ChainFault::TagMismatch, "{r:?}");
        }
        other => panic!("{other:?} in {r:?}"),
    }
    let shown = r.violations[0].to_string();
    assert!(
        shown.starts_with("A2 ") && shown.contains(&format!("{:#x}", b.raw() - 8)),
        "{shown}"
    );
}

/// A free list whose `next` link leads back into itself: check must report it, not walk
/// it for ever.
#[test]
fn check_reports_a_free_list_cycle() {
    let (_d, _p, heap) = fresh(1 << 20);
    let mut g = heap.lock().unwrap();
    // Two free blocks of one size class, kept apart by used blocks, so one list holds both.
    let blocks: Vec<_> = (0..4).map(|_| g.alloc_bytes(100, 8).unwrap()).collect();
    g.free(blocks[0]).unwrap();
    g.free(blocks[2]).unwrap();
    g.checkpoint().unwrap();
    assert!(g.check().is_clean());
    // The head of that list is the block freed last; point its `next` (+8) at itself.
    let head = blocks[2].raw() - 8;
    // SAFETY: test-only; the word is inside the mapping and we hold the lock.
    unsafe { *(g.base_address() as *mut u64).add((head as usize + 8) / 8) = head };
    let r = g.check();
    assert!(
        r.violations
            .iter()
            .any(|v| matches!(v, Violation::List { .. })),
        "{r:?}"
    );
    // `Heap::check` (what `mapheap check` runs) sees it too.
    drop(g);
    let r2 = heap.check().unwrap();
    assert_eq!(
        (r2.violations.len(), r2.blocks),
        (r.violations.len(), r.blocks)
    );
    assert!(!r2.is_clean());
}

#[test]
fn create_refuses_an_existing_file_and_bad_sizes() {
    let (_d, path, heap) = fresh(1 << 20);
    drop(heap);
    assert!(matches!(
        Heap::create(&path, 1 << 20),
        Err(Error::Exists(_))
    ));
    let mut o = CreateOptions::new(1 << 20);
    o.overwrite = true;
    Heap::create_with(&path, &o).unwrap();
    assert!(matches!(
        Heap::create(path.with_extension("x"), 100),
        Err(Error::BadSize { .. })
    ));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn open_rejects_bad_images() {
    let (_d, path, heap) = fresh(1 << 20);
    drop(heap);
    let good = std::fs::read(&path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("magic", {
            let mut b = good.clone();
            b[0] = b'X';
            b
        }),
        ("version", {
            let mut b = good.clone();
            b[8] = 9;
            b
        }),
        ("checksum", {
            let mut b = good.clone();
            b[40] ^= 1;
            b
        }),
        ("truncated", good[..20000].to_vec()),
        ("tiny", good[..100].to_vec()),
        ("capacity", {
            let mut b = good.clone();
            b[2048 + 3] = 0x10;
            b
        }),
    ];
    for (what, bytes) in cases {
        let p = path.with_extension(what);
        std::fs::write(&p, bytes).unwrap();
        let err = Heap::open(&p)
            .err()
            .unwrap_or_else(|| panic!("{what} accepted"));
        assert!(matches!(err, Error::Format { .. }), "{what}: {err}");
    }
    let link = path.with_extension("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(matches!(Heap::open(&link), Err(Error::Io { .. })));
}

#[test]
fn a_panic_inside_a_guard_rolls_its_transaction_back() {
    // A lock left held by the unwound guard would block the next `lock` for ever.
    let _watchdog = crate::watchdog!(20);
    let (_d, _p, heap) = fresh(1 << 20);
    let (kept, before) = {
        let mut g = heap.lock().unwrap();
        let kept = g.alloc(5u64).unwrap();
        (kept, g.stats())
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut g = heap.lock().unwrap();
        g.alloc(1u64).unwrap();
        g.write(kept, 6).unwrap();
        g.free(kept).unwrap();
        panic!("user code panics");
    }));
    assert!(r.is_err());
    let g = heap.lock().unwrap();
    assert!(
        g.recovered().is_none(),
        "the panicking guard ended its own transaction"
    );
    assert_eq!(
        g.read(kept).unwrap(),
        5,
        "the write was undone, the free cancelled"
    );
    assert_eq!(g.stats(), before, "the allocation was undone");
    assert!(g.check().is_clean());
}

/// The bound of `threads_share_a_handle` (it takes well under a second), which
/// `mutant_stale_word_after_wait_is_caught_by_the_watchdog` checks.
pub(super) const SHARED_HANDLE_BOUND_SECS: u64 = 10;

#[test]
fn threads_share_a_handle() {
    let _watchdog = crate::watchdog!(SHARED_HANDLE_BOUND_SECS);
    let (_d, _p, heap) = fresh(1 << 20);
    let counter = heap.lock().unwrap().find_or_init("c", || 0u64).unwrap();
    // Held while the threads start, so that they find the lock taken and sleep on it.
    let first = heap.lock().unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..500 {
                    let mut g = heap.lock().unwrap();
                    *g.get_mut(counter).unwrap() += 1;
                    let b = g.alloc_bytes(40, 8).unwrap();
                    g.free(b).unwrap();
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(first);
    });
    let g = heap.lock().unwrap();
    assert_eq!(g.read(counter).unwrap(), 2000);
    assert!(g.check().is_clean());
}

/// For every allocator crash point and many crash positions: die at that instruction (the
/// guard leaves everything as a SIGKILL would), drop the handle, and a fresh handle must
/// take over and repair: `check` clean, every block committed before intact. (The store
/// enumeration in `proptests/txn_crash.rs` dies after every store; this one dies at the
/// named points deep into a random workload.)
#[test]
fn a_crash_at_any_allocator_point_is_repaired() {
    // Every crash unwinds out of a held guard; a lock left held would block for ever.
    let _watchdog = crate::watchdog!(120);
    use crate::fault::{arm_unwind, CrashPoint};
    // Every point inside a heap change; a new one is covered as soon as it is in `ALL`.
    let points = CrashPoint::ALL.iter().copied().filter(|p| !p.is_lock());
    for point in points {
        let mut crashes = 0;
        for nth in [1, 2, 3, 5, 20] {
            let (_d, path, heap) = fresh(64 << 10);
            let mut live: Vec<(Offset<u8>, u64, u8)> = Vec::new();
            let mut seed = nth as u64 * 77 + point as u64;
            arm_unwind(Some(point), nth);
            let (heap, died) = super::tests_support::die_and_reopen(heap, &path, |heap| {
                for i in 0..1200u64 {
                    let mut g = heap.lock().unwrap();
                    let r = crate::bench::splitmix64(&mut seed);
                    if !r.is_multiple_of(3) || live.is_empty() {
                        let len = 8 + r % 700;
                        let Ok(o) = g.alloc_bytes(len, if r.is_multiple_of(5) { 64 } else { 8 })
                        else {
                            g.grow_by(8 << 10).unwrap();
                            continue;
                        };
                        let fill = (i % 251) as u8;
                        g.bytes_mut(o, len).unwrap().fill(fill);
                        // Committed when this guard is dropped; only then is it `live`.
                        drop(g);
                        live.push((o, len, fill));
                    } else {
                        let (o, _, _) = live.swap_remove((r % live.len() as u64) as usize);
                        g.free(o).unwrap();
                    }
                }
            });
            if !died {
                continue; // this workload never reached the point that often
            }
            crashes += 1;
            let g = heap.lock().unwrap();
            assert!(
                heap.recovered_at_open().is_some() || g.recovered().is_some(),
                "{point:?}/{nth}: no repair reported"
            );
            let report = g.check();
            assert!(report.is_clean(), "{point:?}/{nth}: {report:?}");
            for (o, len, fill) in &live {
                let b = g.bytes(*o, *len).unwrap();
                assert!(
                    b.iter().all(|x| x == fill),
                    "{point:?}/{nth}: block {o:?} changed"
                );
            }
        }
        assert!(crashes >= 3, "{point:?} was reached only {crashes} times");
    }
}

fn check_after_split_crash(skip_repair: bool) -> crate::check::Report {
    use crate::fault::{arm_unwind, CrashPoint};
    let scenario = || {
        let (_d, path, heap) = fresh(256 << 10);
        arm_unwind(Some(CrashPoint::SplitTailWritten), 1);
        let (heap, died) = super::tests_support::die_and_reopen(heap, &path, |heap| {
            let mut g = heap.lock().unwrap();
            g.alloc_bytes(100, 8).unwrap();
        });
        assert!(died, "the crash point was not reached");
        let report = heap.lock().unwrap().check();
        report
    };
    if skip_repair {
        // On for the reopen's takeover and the check's own lock: each would repair.
        crate::mutant::with(crate::mutant::Mutant::SkipRepair, scenario)
    } else {
        scenario()
    }
}

#[test]
fn mutant_skip_repair_is_caught_by_check_after_a_split_crash() {
    let _watchdog = crate::watchdog!(20);
    assert!(check_after_split_crash(false).is_clean());
    let report = check_after_split_crash(true);
    assert!(!report.is_clean(), "check missed an unrepaired split");
}

#[test]
fn mutant_free_without_coalesce_is_caught_by_check() {
    let (_d, _p, heap) = fresh(256 << 10);
    let mut g = heap.lock().unwrap();
    let a = g.alloc_bytes(64, 8).unwrap();
    let b = g.alloc_bytes(64, 8).unwrap();
    let _c = g.alloc_bytes(64, 8).unwrap();
    crate::mutant::with(crate::mutant::Mutant::FreeWithoutCoalesce, || {
        g.free(a).unwrap();
        g.free(b).unwrap();
        g.checkpoint().unwrap();
    });
    let report = g.check();
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, Violation::AdjacentFree { .. })),
        "{report:?}"
    );
}

#[test]
fn allocations_grow_the_heap_up_to_the_limit() {
    let _watchdog = crate::watchdog!(20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.heap");
    drop(Heap::create(&path, 64 << 10).unwrap());
    let limit = (1 << 20) + 100; // not page-aligned: growth stays below it
    let opts = OpenOptions {
        grow_limit: Some(limit),
        ..OpenOptions::default()
    };
    let heap = Heap::open_with(&path, &opts).unwrap();
    let mut g = heap.lock().unwrap();
    let big = g.alloc_bytes(300 << 10, 4096).unwrap();
    assert!(g.capacity() > 64 << 10, "a large request grew the heap");
    g.bytes_mut(big, 300 << 10).unwrap().fill(7);
    let mut n = 0u64;
    loop {
        if n.is_multiple_of(100) {
            g.checkpoint().unwrap();
        }
        match g.alloc_bytes(1000, 8) {
            Ok(_) => n += 1,
            Err(Error::Alloc(AllocError::OutOfSpace { capacity, .. })) => {
                assert!(capacity <= limit && capacity > (1 << 20) - 4096);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(n > 600, "only {n} small blocks fit");
    assert!(g.bytes(big, 300 << 10).unwrap().iter().all(|&b| b == 7));
    assert!(g.check().is_clean());
    drop(g);
    // Without a limit the same request is refused instead.
    let strict = Heap::open(&path).unwrap();
    assert!(matches!(
        strict.lock().unwrap().alloc_bytes(2 << 20, 8),
        Err(Error::Alloc(AllocError::OutOfSpace { .. }))
    ));
}

/// The benchmarks' bare-protocol rounds must not skip the repair when they take the lock
/// over from a dead owner: that round goes through a real guard.
#[test]
fn raw_lock_rounds_repair_after_an_owners_death() {
    // Waits for a takeover from a dead owner.
    let _watchdog = crate::watchdog!(20);
    let (_d, path, dying) = fresh(256 << 10);
    let opts = OpenOptions {
        probe_interval: Duration::from_millis(1),
        ..OpenOptions::default()
    };
    let survivor = Heap::open_with(&path, &opts).unwrap();
    // A forgotten guard and a detached handle: an owner that died holding the lock.
    std::mem::forget(dying.lock().unwrap());
    drop(dying);
    let mut rounds = 0;
    let recoveries = raw_lock_rounds(&survivor, 3, || rounds += 1).unwrap();
    assert_eq!((rounds, recoveries), (3, 1));
    let g = survivor.lock().unwrap();
    assert!(
        g.recovered().is_none(),
        "the raw round left the repair to a later guard"
    );
    assert!(g.check().is_clean());
}

/// What a recovery reports of the transaction it found (`Recovery::undone`), field by
/// field, for one of each kind of entry (an image, an allocation, a deferred free): rolled
/// back when the owner died before the commit store, finished when it died just after.
#[test]
fn a_recovery_reports_what_it_did_to_the_transaction() {
    use crate::fault::{arm_unwind, CrashPoint};
    use crate::txn::Undone;
    let _watchdog = crate::watchdog!(30);
    for committed in [false, true] {
        let (_d, path, heap) = fresh(1 << 20);
        let (cell, doomed) = {
            let mut g = heap.lock().unwrap();
            (g.alloc(0u64).unwrap(), g.alloc(0u64).unwrap())
        };
        if committed {
            arm_unwind(Some(CrashPoint::TxCommitted), 1);
        }
        let (heap, died) = super::tests_support::die_and_reopen(heap, &path, |heap| {
            let mut g = heap.lock().unwrap();
            g.write(cell, 7).unwrap();
            g.alloc(1u64).unwrap();
            g.free(doomed).unwrap();
            if !committed {
                // Dies holding the lock, before the commit store.
                std::mem::forget(g);
                std::panic::resume_unwind(Box::new(crate::fault::Crashed {
                    point: None,
                    store: 0,
                }));
            }
        });
        assert!(died);
        let r = heap.recovered_at_open().expect("a recovery at open");
        let want = Undone {
            committed,
            bytes_restored: if committed { 0 } else { 8 },
            blocks_freed: u64::from(!committed),
            frees_finished: u64::from(committed),
            entries: 3,
        };
        assert_eq!(r.undone, Some(want), "committed: {committed}");
        let g = heap.lock().unwrap();
        assert_eq!(g.read(cell).unwrap(), if committed { 7 } else { 0 });
        assert!(g.check().is_clean());
    }
}

/// A growth that the file system refuses half-way (ext4 and XFS keep what a failed
/// `fallocate` took) is `NoSpace`, and leaves the heap, the file's length and the disk as
/// they were; the same growth works once there is room.
#[test]
fn a_growth_refused_half_way_by_the_disk_gives_the_space_back() {
    let _watchdog = crate::watchdog!(30);
    let (_dir, path, heap) = fresh(64 << 10);
    let mut g = heap.lock().unwrap();
    let (cap, len) = (g.capacity(), std::fs::metadata(&path).unwrap().len());
    crate::fault::arm_reserve_failure(Some((8192, libc::ENOSPC)));
    match g.grow(cap + (1 << 20)) {
        Err(Error::NoSpace { size, source, .. }) => {
            assert_eq!(
                (size, source.raw_os_error()),
                (cap + (1 << 20), Some(libc::ENOSPC))
            )
        }
        r => panic!("grow: {r:?}"),
    }
    assert_eq!(g.capacity(), cap);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        len,
        "the file kept the space"
    );
    assert!(g.check().is_clean());
    g.grow(cap + (1 << 20)).unwrap();
    assert_eq!(g.capacity(), cap + (1 << 20));
}

/// `stats().free_histogram` counts each free block in the power-of-two bucket of its size
/// and ends at the last bucket that holds one, as the block map (`blocks()`) says.
#[test]
fn the_free_histogram_counts_each_free_block_in_its_bucket() {
    let _watchdog = crate::watchdog!(30);
    let (_dir, _path, heap) = fresh(256 << 10);
    let mut g = heap.lock().unwrap();
    let mut live = Vec::new();
    for size in [24u64, 100, 40, 500, 24, 2000, 100, 5000, 24] {
        live.push(g.alloc_bytes(size, 8).unwrap());
    }
    // Every other block freed: free blocks of several sizes, none merged.
    for off in live.iter().step_by(2) {
        g.free(*off).unwrap();
    }
    drop(g);
    let g = heap.lock().unwrap();
    let mut want = vec![0u64; 64];
    for b in g.blocks().iter().filter(|b| b.free) {
        want[b.size.ilog2() as usize] += 1;
    }
    let last = want.iter().rposition(|&n| n != 0).unwrap();
    want.truncate(last + 1);
    assert!(want.iter().filter(|&&n| n != 0).count() >= 3, "{want:?}");
    assert_eq!(g.stats().free_histogram, want);
}
